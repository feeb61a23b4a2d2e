"""The self-tuning alpha rule: its reading, following, clipping and holding."""

import math

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
    ("contradicted", "expected"), [(0.02, 0.1), (0.3, 0.3), (0.9, 0.5)]
)
def test_alpha_follows_the_reading_clipped_to_the_floor_and_the_maximum(
    contradicted, expected
):
    alpha = alpha_rules.next_alpha(
        0.2, contradicted, epoch=4, num_epochs=40, num_classes=10, max_alpha=0.5
    )
    assert float(alpha) == pytest.approx(expected)


def test_alpha_is_held_after_the_follow_window():
    last = alpha_rules.follows_until_epoch(40)
    assert last == math.floor(alpha_rules.FOLLOW_FRACTION * 40)
    kwargs = dict(num_epochs=40, num_classes=10, max_alpha=0.5)
    assert float(alpha_rules.next_alpha(0.3, 0.05, epoch=last, **kwargs)) == (
        pytest.approx(0.1)
    )
    assert float(alpha_rules.next_alpha(0.3, 0.05, epoch=last + 1, **kwargs)) == (
        pytest.approx(0.3)
    )


def test_the_rule_runs_under_jit_with_traced_readings():
    @jax.jit
    def step(alpha, contradicted, epoch):
        return alpha_rules.next_alpha(
            alpha, contradicted, epoch=epoch, num_epochs=10, num_classes=10
        )

    alpha = jnp.float32(alpha_rules.initial_alpha(10))
    for epoch, reading in enumerate((0.6, 0.35, 0.2, 0.15, 0.12, 0.01), start=1):
        alpha = step(alpha, jnp.float32(reading), epoch)
    # Followed up to epoch 5 (0.5 * 10), then held at the epoch-5 reading.
    assert float(alpha) == pytest.approx(0.12)
    assert step._cache_size() == 1
