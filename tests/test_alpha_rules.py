"""The self-tuning alpha rule: its reading, following, clipping and holding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tce_jax import alpha_rules


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


@pytest.mark.parametrize(
    ("contradicted", "offset", "expected"),
    [(0.05, 0.0, 0.1), (0.42, 0.0, 0.42), (0.42, 0.1, 0.32), (0.9, 0.0, 0.5)],
)
def test_alpha_is_the_reading_less_the_offset_clipped_to_floor_and_maximum(
    contradicted, offset, expected
):
    alpha = alpha_rules.next_alpha(
        0.1,
        contradicted,
        epoch=20,
        reading_epoch=20,
        num_classes=10,
        max_alpha=0.5,
        offset=offset,
    )
    assert float(alpha) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("num_epochs", "eval_every_epochs", "expected"),
    [(40, 4, 20), (40, 3, 18), (40, 1, 20), (7, 1, 3), (9, 5, 0)],
)
def test_the_reading_is_the_last_evaluation_of_the_first_half(
    num_epochs, eval_every_epochs, expected
):
    assert alpha_rules.reading_epoch(num_epochs, eval_every_epochs) == expected


def test_alpha_changes_only_at_the_reading_epoch():
    kwargs = dict(reading_epoch=20, num_classes=10, max_alpha=0.5)
    for epoch in (4, 16, 24, 40):
        assert float(alpha_rules.next_alpha(0.1, 0.6, epoch=epoch, **kwargs)) == (
            pytest.approx(0.1)
        )
    assert float(alpha_rules.next_alpha(0.1, 0.6, epoch=20, **kwargs)) == (
        pytest.approx(0.5)
    )


def test_the_rule_runs_under_jit_with_traced_readings():
    @jax.jit
    def step(alpha, contradicted, epoch):
        return alpha_rules.next_alpha(
            alpha, contradicted, epoch=epoch, reading_epoch=5, num_classes=10
        )

    alpha = jnp.float32(alpha_rules.initial_alpha(10))
    for epoch, reading in enumerate((0.6, 0.45, 0.4, 0.38, 0.35, 0.01), start=1):
        alpha = step(alpha, jnp.float32(reading), epoch)
    # Set once from the epoch-5 reading, then held.
    assert float(alpha) == pytest.approx(0.35)
    assert step._cache_size() == 1
