"""The self-tuning alpha rules: their readings, when they move, clipping, state."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tce_jax import alpha_rules
from tce_jax.alpha_rules import Reading


def run_rule(state, readings):
    """The alphas a rule sets after each (epoch, s, val) reading."""
    alphas = []
    for reading in readings:
        state = alpha_rules.update(state, Reading(*reading))
        alphas.append(float(state.alpha))
    return alphas, state


def test_contradicted_fraction_counts_labels_rated_strictly_below_chance():
    probs = np.array([0.05, 0.1, 0.0999, 0.5, 1.0, 1e-30], np.float64)
    log_probs = np.log(probs)
    # 1/K = 0.1: 0.05, 0.0999 and 1e-30 are below; 0.1 itself is not.
    fraction = alpha_rules.contradicted_fraction(
        log_probs.astype(np.float32), num_classes=10
    )
    assert float(fraction) == pytest.approx(3 / 6)
    assert (
        float(alpha_rules.contradicted_fraction(np.full(4, -np.inf), num_classes=10))
        == 1.0
    )


def test_every_rule_starts_at_one_over_k():
    for rule in alpha_rules.RULES:
        state = alpha_rules.init(rule, num_classes=4, num_epochs=8, eval_every_epochs=1)
        assert state.alpha.dtype == jnp.float32
        assert float(state.alpha) == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("contradicted", "offset", "expected"),
    [(0.05, 0.0, 0.1), (0.42, 0.0, 0.42), (0.42, 0.1, 0.32), (0.9, 0.0, 0.5)],
)
def test_halfway_alpha_is_the_reading_less_the_offset_clipped(
    contradicted, offset, expected
):
    state = alpha_rules.init(
        "auto", num_classes=10, num_epochs=40, eval_every_epochs=4, alpha_offset=offset
    )
    alphas, _ = run_rule(state, [(20, contradicted)])
    assert alphas == [pytest.approx(expected)]


@pytest.mark.parametrize(
    ("num_epochs", "eval_every_epochs", "expected"),
    [(40, 4, 20), (40, 3, 18), (40, 1, 20), (7, 1, 3), (9, 5, 0)],
)
def test_the_halfway_reading_is_the_last_evaluation_of_the_first_half(
    num_epochs, eval_every_epochs, expected
):
    assert alpha_rules.reading_epoch(num_epochs, eval_every_epochs) == expected


def test_halfway_alpha_changes_only_at_the_reading_epoch():
    state = alpha_rules.init("auto", num_classes=10, num_epochs=40, eval_every_epochs=4)
    readings = [(epoch, 0.6) for epoch in (4, 16, 20, 24, 40)]
    alphas, _ = run_rule(state, readings)
    assert alphas == pytest.approx([0.1, 0.1, 0.5, 0.5, 0.5])


def test_val_peak_waits_for_validation_to_stall_then_takes_the_median():
    state = alpha_rules.init("val_peak", num_classes=10)
    readings = [
        (4, 0.50, 0.30),  # validation improves: early learning goes on
        (8, 0.40, 0.35),
        (12, 0.38, 0.36),
        (16, 0.90, 0.20),  # first stall (with a spike in s): median of .40 .38 .90
        (20, 0.30, 0.33),  # no new best: alpha held
        (24, 0.20, 0.37),  # new best: median of .90 .30 .20
        (28, 0.02, 0.38),  # new best: median of .30 .20 .02
    ]
    alphas, state = run_rule(state, readings)
    assert alphas == pytest.approx([0.1, 0.1, 0.1, 0.40, 0.40, 0.30, 0.20])
    assert bool(state.started)
    assert float(state.best_val) == pytest.approx(0.38)


def test_val_track_follows_every_new_best_from_the_start():
    state = alpha_rules.init("val_track", num_classes=10)
    readings = [(1, 0.45, 0.3), (2, 0.35, 0.4), (3, 0.9, 0.2), (4, 0.05, 0.5)]
    alphas, _ = run_rule(state, readings)
    # First reading alone; then the median of two (their mean), held at the
    # stall; then the median of .35 .9 .05.
    assert alphas == pytest.approx([0.45, 0.40, 0.40, 0.35])


def test_validation_rules_clip_to_the_floor_and_the_maximum():
    state = alpha_rules.init("val_track", num_classes=10, alpha_max=0.3)
    alphas, _ = run_rule(state, [(1, 0.9, 0.3), (2, 0.9, 0.4), (3, 0.0, 0.5)])
    assert alphas == pytest.approx([0.3, 0.3, 0.3])
    state = alpha_rules.init("val_track", num_classes=10)
    alphas, _ = run_rule(state, [(1, 0.01, 0.3), (2, 0.02, 0.4)])
    assert alphas == pytest.approx([0.1, 0.1])


def test_one_spike_cannot_move_a_validation_rule():
    """A spike in s comes with a drop in validation accuracy (the model is
    briefly worse), which never moves val_track; even at a new best the
    median of three discards one outlier."""
    state = alpha_rules.init("val_track", num_classes=10)
    base = [(1, 0.2, 0.5), (2, 0.2, 0.6), (3, 0.2, 0.7)]
    _, settled = run_rule(state, base)
    spiked, _ = run_rule(settled, [(4, 0.95, 0.8), (5, 0.2, 0.9)])
    assert spiked == pytest.approx([0.2, 0.2])


@pytest.mark.parametrize("rule", sorted(alpha_rules.RULES))
def test_rules_run_under_jit_with_traced_readings_and_compile_once(rule):
    state = alpha_rules.init(rule, num_classes=10, num_epochs=10, eval_every_epochs=1)
    # A wrapper of its own: jit caches are per function, shared by every rule.
    step = jax.jit(lambda state, reading: alpha_rules.update(state, reading))
    readings = [(epoch, 0.5 - 0.03 * epoch, 0.1 * epoch % 0.7) for epoch in range(1, 9)]
    eager_alphas, _ = run_rule(state, readings)
    for epoch, s, val in readings:
        state = step(state, Reading(jnp.int32(epoch), jnp.float32(s), jnp.float32(val)))
    assert float(state.alpha) == pytest.approx(eager_alphas[-1])
    assert step._cache_size() == 1


def test_rule_state_is_a_pytree_of_arrays_for_checkpoints():
    for rule in alpha_rules.RULES:
        state = alpha_rules.init(
            rule, num_classes=10, num_epochs=8, eval_every_epochs=2
        )
        leaves = jax.tree.leaves(state)
        assert leaves and all(isinstance(leaf, jax.Array) for leaf in leaves)
        rebuilt = jax.tree.unflatten(jax.tree.structure(state), leaves)
        assert type(rebuilt) is type(state)


def test_bad_rule_arguments_say_what_is_allowed():
    with pytest.raises(ValueError, match="allowed: auto, val_peak, val_track"):
        alpha_rules.init("adaptive", num_classes=10)
    with pytest.raises(ValueError, match="takes no alpha_offset"):
        alpha_rules.init("val_peak", num_classes=10, alpha_offset=0.1)
    with pytest.raises(ValueError, match="needs num_epochs"):
        alpha_rules.init("auto", num_classes=10)


def test_names_and_settings():
    assert alpha_rules.names() == ("fixed", "auto", "val_peak", "val_track")
    assert alpha_rules.setting_names() == ("alpha_max", "alpha_offset")
