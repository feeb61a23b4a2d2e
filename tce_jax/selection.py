"""Model selection: the one rule by which a run's reported epoch is chosen.

The epoch is the one with the best accuracy on the *noisy* validation split,
the earliest on ties; test accuracy never takes part (docs/losses.md: selecting
on test inflates every robust loss). Training summaries and the sweep report
both use this, so they cannot disagree.
"""

from collections.abc import Sequence
from typing import Any


def select_on_validation(history: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The epoch record with the best ``val_accuracy`` (earliest on ties).

    Args:
      history: per-epoch metric records, each with ``epoch`` and
        ``val_accuracy`` (None for runs without validation or epochs that were
        not evaluated).

    Returns:
      The selected record, or None if no epoch has a validation accuracy.
    """
    scored = [record for record in history if record.get("val_accuracy") is not None]
    if not scored:
        return None
    return max(scored, key=lambda record: (record["val_accuracy"], -record["epoch"]))
