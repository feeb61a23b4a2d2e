"""A launch into a run dir that already holds a run: the same run continued, or refused.

Every launch records the config it trains with, as
``config.effective_config`` gives it (every default filled in), in
the run dir's ``effective_config.json`` before any work. A later launch into
the same dir continues that run from its checkpoints only if it would train
the same model: its effective config may differ from the recorded one only in
fields that never change the trained model (``BOOKKEEPING_FIELDS``: what is
evaluated, logged or kept, and where the data is read from) and in
``num_epochs`` where the schedule permits (a constant or piecewise schedule
and a fixed TCE alpha, not below the epochs already trained: a cosine
schedule's every step depends on it, and a self-tuning alpha rule may read
the epochs by it). Anything else (model, loss, data, noise, seed, optimiser, schedule,
batch size...) is refused before any work, in one line naming the differing
fields: the old checkpoints would be continued by, or be overwritten with,
another model. ``start_over`` moves the old run aside instead, to
``<run dir>.replaced-<time>``.

A run dir without a record (made by older code) is checked against its
summary.json's effective config when it has one.
"""

from __future__ import annotations

import json
import os
import pathlib
import time
from collections.abc import Mapping
from typing import Any

from absl import logging
from flax import traverse_util

from tce_jax import run_files
from tce_jax.training.config import ConfigError, RunConfig

# Fields that never change the trained model.
BOOKKEEPING_FIELDS = (
    "data.data_dir",
    "eval_batch_size",
    "log_every_steps",
    "checkpoint_keep",
    "test_eval_every_epochs",
)


def _flat(effective: Mapping[str, Any]) -> dict[str, Any]:
    """The effective config, flat, as JSON has it (tuples as lists)."""
    as_json = json.loads(json.dumps(dict(effective), default=str))
    return traverse_util.flatten_dict(as_json, sep=".")


def recorded_config(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The effective config the run in ``run_dir`` trained with, flat; None
    when there is no record (no run, or a run by older code without one)."""
    record = pathlib.Path(run_dir, run_files.EFFECTIVE_CONFIG_FILE)
    try:
        return _flat(json.loads(record.read_text()))
    except FileNotFoundError:
        pass
    summary = run_files.read_summary(run_dir) or {}
    effective = summary.get("effective_config")
    return _flat(effective) if effective else None


def has_trained(run_dir: str | os.PathLike) -> bool:
    """Whether ``run_dir`` holds training to protect: a checkpoint, a logged
    epoch or a summary."""
    checkpoints = pathlib.Path(run_dir, run_files.CHECKPOINT_DIR)
    return (
        run_files.is_finished(run_dir)
        or run_files.epochs_done(run_dir) > 0
        or (
            checkpoints.is_dir()
            and any(path.name.isdigit() for path in checkpoints.iterdir())
        )
    )


def differences(
    recorded: Mapping[str, Any],
    config: RunConfig,
    *,
    epochs_done: int,
) -> list[str]:
    """The fields in which ``config`` would train another model than the record.

    Only fields both have are compared: a field that code added or removed
    since the record was written carries its old behaviour by default.

    Args:
      recorded: ``recorded_config(run_dir)``.
      config: the config of this launch.
      epochs_done: epochs the recorded run has trained.

    Returns:
      One ``"name (recorded R, now N[; why])"`` per differing field, sorted.
    """
    now = _flat(config.as_effective())
    fixed_alpha = config.loss.alpha.is_fixed
    may_change = set(BOOKKEEPING_FIELDS)
    if fixed_alpha:  # A self-tuning alpha is set from evaluated epochs.
        may_change.add("eval_every_epochs")
    found = []
    for field in sorted(recorded.keys() & now.keys()):
        if recorded[field] == now[field] or field in may_change:
            continue
        text = f"{field} (recorded {recorded[field]!r}, now {now[field]!r}"
        if field == "num_epochs":
            why = _why_num_epochs_cannot_change(
                now, fixed_alpha=fixed_alpha, epochs_done=epochs_done
            )
            if why is None:
                continue
            text += f"; {why}"
        found.append(text + ")")
    return found


def _why_num_epochs_cannot_change(
    now: Mapping[str, Any], *, fixed_alpha: bool, epochs_done: int
) -> str | None:
    """Why this launch's num_epochs cannot continue the run, or None if it can."""
    if now["schedule.name"] == "cosine":
        return "the cosine schedule's every step depends on it"
    if not fixed_alpha:
        return "a self-tuning alpha rule may read the epochs by it"
    if now["num_epochs"] < epochs_done:
        return f"the run has trained {epochs_done} epochs"
    return None


def check(config: RunConfig, run_dir: str | os.PathLike) -> None:
    """Refuses a launch that would train another model than the run in ``run_dir``.

    Args:
      config: the config of this launch (validated).
      run_dir: the run's directory (need not exist).

    Raises:
      ConfigError: one line naming the differing fields and
        the ways out.
    """
    recorded = recorded_config(run_dir)
    if recorded is None or not has_trained(run_dir):
        return
    changed = differences(recorded, config, epochs_done=run_files.epochs_done(run_dir))
    if changed:
        run_dir = os.path.abspath(run_dir)
        raise ConfigError(
            f"{run_dir} holds a run trained with another config: "
            f"{', '.join(changed)}; its checkpoints cannot continue this one. Use "
            "another workdir, or start over (launch.py --start_over) to move that "
            f"run to {run_dir}{run_files.REPLACED_RUN_MARK}<time> and train afresh"
        )


def record(config: RunConfig, run_dir: str | os.PathLike) -> None:
    """Writes (or updates) the run's record of its effective config."""
    os.makedirs(run_dir, exist_ok=True)
    run_files.write_text_atomically(
        os.path.join(run_dir, run_files.EFFECTIVE_CONFIG_FILE),
        json.dumps(config.as_effective(), indent=2, default=str) + "\n",
    )


def move_aside(run_dir: str | os.PathLike) -> str | None:
    """Moves the run in ``run_dir`` to ``<run_dir>.replaced-<time>`` (whole,
    one rename); returns where, or None when there was nothing to move."""
    run_dir = os.path.abspath(run_dir)
    if not os.path.isdir(run_dir) or not os.listdir(run_dir):
        return None
    target = f"{run_dir}{run_files.REPLACED_RUN_MARK}{time.strftime('%Y%m%d-%H%M%S')}"
    os.rename(run_dir, target)
    logging.warning("Starting over: moved the run in %s to %s.", run_dir, target)
    return target
