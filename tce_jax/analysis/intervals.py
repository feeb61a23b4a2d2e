"""Student-t intervals over seeds: accuracies, paired differences, further seeds.

The report and the comparison tool state every margin with one of these,
computed on unrounded values:

- ``mean_interval``: a mean over seeds with its 95% confidence interval,
  ``mean ± t(0.975, n - 1) · sd / sqrt(n)`` (sd with n - 1);
- ``paired_difference``: the same over per-seed differences of two losses,
  plus how many seeds are ahead; *established* when the interval excludes 0;
- ``prediction_interval``: where one further seed should land,
  ``mean ± t · sd · sqrt(1 + 1/n)``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


@dataclasses.dataclass(frozen=True)
class Interval:
    """A mean over ``n`` values with a two-sided interval (nan bounds for n < 2)."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


@dataclasses.dataclass(frozen=True)
class PairedDifference(Interval):
    """``Interval`` of per-seed differences A - B, and the seeds with A ahead."""

    ahead: int = 0

    @property
    def established(self) -> bool:
        """The interval excludes 0: A is ahead of (or behind) B at 95%."""
        return self.excludes_zero


def _t(n: int, confidence: float) -> float:
    return float(stats.t.ppf(0.5 + confidence / 2, n - 1))


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """Mean and confidence interval of the values (nan bounds below two).

    Raises:
      ValueError: no values.
    """
    values = np.asarray(values, np.float64)
    if values.size == 0:
        raise ValueError("no values")
    mean = float(values.mean())
    if values.size < 2:
        return Interval(mean, math.nan, math.nan, 1)
    half = float(
        _t(values.size, confidence) * values.std(ddof=1) / math.sqrt(values.size)
    )
    return Interval(mean, mean - half, mean + half, int(values.size))


def paired_difference(
    a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE
) -> PairedDifference:
    """The interval of ``a[i] - b[i]`` over the pairs (one pair per seed).

    Raises:
      ValueError: no pairs, or sequences of different lengths.
    """
    if len(a) != len(b):
        raise ValueError(f"{len(a)} values against {len(b)}: pair them by seed")
    differences = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    interval = mean_interval(differences, confidence)
    return PairedDifference(
        **dataclasses.asdict(interval), ahead=int(np.sum(differences > 0))
    )


def prediction_interval(
    values: Sequence[float], confidence: float = CONFIDENCE
) -> Interval:
    """Where one further value from the same spread should land.

    ``mean ± t(1/2 + confidence/2, n - 1) · sd · sqrt(1 + 1/n)``; nan bounds
    below two values.
    """
    values = np.asarray(values, np.float64)
    if values.size < 2:
        return mean_interval(values, confidence)
    mean = float(values.mean())
    half = _t(values.size, confidence) * float(values.std(ddof=1))
    half *= math.sqrt(1 + 1 / values.size)
    return Interval(mean, mean - half, mean + half, int(values.size))
