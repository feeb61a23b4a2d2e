"""Student-t intervals: hand-computed values, pairing, coverage of a further seed."""

import math

import numpy as np
import pytest

from tce_jax.analysis import intervals

# t(0.975, 3), from a table of Student's t.
T_975_3 = 3.182446305284263


def test_mean_interval_matches_the_hand_computed_t_interval():
    interval = intervals.mean_interval([1.0, 2.0, 3.0, 4.0])
    half = T_975_3 * np.std([1, 2, 3, 4], ddof=1) / 2
    assert interval.mean == 2.5
    assert interval.low == pytest.approx(2.5 - half, rel=1e-12)
    assert interval.high == pytest.approx(2.5 + half, rel=1e-12)
    assert interval.n == 4
    assert interval.excludes_zero


def test_one_value_has_no_interval_and_none_is_an_error():
    interval = intervals.mean_interval([0.7])
    assert interval.mean == 0.7 and interval.n == 1
    assert math.isnan(interval.low) and math.isnan(interval.high)
    assert not interval.excludes_zero
    with pytest.raises(ValueError, match="no values"):
        intervals.mean_interval([])


def test_paired_difference_uses_the_per_seed_differences():
    a = [0.80, 0.71, 0.66, 0.74]
    b = [0.70, 0.65, 0.60, 0.62]
    paired = intervals.paired_difference(a, b)
    unpaired_spread = intervals.mean_interval(a).half_width
    assert paired.mean == pytest.approx(0.085)
    assert paired.ahead == 4
    assert paired.established
    # Pairing removes the seed-to-seed spread both losses share.
    assert paired.half_width < unpaired_spread
    behind = intervals.paired_difference(b, a)
    assert behind.established and behind.high < 0 and behind.ahead == 0
    with pytest.raises(ValueError, match="pair them by seed"):
        intervals.paired_difference([1.0], [1.0, 2.0])


def test_a_difference_whose_interval_straddles_zero_is_not_established():
    paired = intervals.paired_difference([0.5, 0.7, 0.6], [0.6, 0.6, 0.55])
    assert paired.low < 0 < paired.high
    assert not paired.established
    assert paired.ahead == 2


def test_prediction_interval_covers_a_further_seed_95_percent_of_the_time():
    """Normal samples of 3 and a fourth draw: the t prediction interval is
    exact for normal data, so its coverage must be 95% up to Monte Carlo error."""
    rng = np.random.default_rng(0)
    trials = 4000
    covered = 0
    for _ in range(trials):
        sample = rng.normal(size=4)
        interval = intervals.prediction_interval(sample[:3])
        covered += interval.low <= sample[3] <= interval.high
    assert covered / trials == pytest.approx(0.95, abs=0.012)
    # The confidence interval of the mean is far narrower and would not cover.
    sample = [0.0, 1.0, 2.0]
    assert (
        intervals.prediction_interval(sample).half_width
        > 1.9 * intervals.mean_interval(sample).half_width
    )
