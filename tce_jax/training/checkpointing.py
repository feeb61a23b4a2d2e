"""Per-epoch orbax checkpoints of the train state and the metrics history.

One checkpoint per finished epoch, numbered by the count of finished epochs, in
``workdir/checkpoints/<epoch>``. Each holds the train state (``state``) and the
list of per-epoch metric records so far (``history``), so that a resumed run
selects its best-validation epoch over the whole run, not only the part after
the restart.

Writes are atomic: orbax writes into a temporary directory and renames it when
the write is complete, so a run killed mid-write leaves no half checkpoint under
a step name (the leftover temporary directory is removed on the next start).
The manager keeps the latest ``keep`` checkpoints plus the one with the best
noisy-validation accuracy.

Restoring never deletes a checkpoint. One whose own files are shown to be
damaged (a file that does not parse, an item or array file missing or cut
short: disk errors, a copy cut short) is moved aside into
``<directory>_damaged/`` with a one-line warning, and the previous one is
tried. Any other error (a config whose state no longer fits the checkpoint,
memory, a network filesystem's hiccup, another orbax version) is no evidence
of damage: ``restore_latest`` raises ``RestoreError`` and leaves every
checkpoint where it is.
"""

import enum
import json
import os
import re
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils

BEST_METRIC = "val_accuracy"
# Where damaged checkpoints are moved: <checkpoint directory> + this suffix.
DAMAGED_SUFFIX = "_damaged"

# Status codes with which tensorstore (under orbax) reports array files that
# are missing, cut short or unreadable as stored. Codes of passing trouble
# (UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, ...) are not among them.
_DAMAGED_ARRAY_STATUS = re.compile(r"\b(DATA_LOSS|OUT_OF_RANGE|NOT_FOUND)\b")


class RestoreError(RuntimeError):
    """A checkpoint could not be restored, and nothing shows it is damaged.

    Every checkpoint is left in place; ``str(error)`` is one line naming the
    checkpoint, the error and what to do.
    """


class _HistoryMismatch(ValueError):
    """The history saved with a checkpoint does not cover its epochs."""


class _Outcome(enum.IntEnum):
    """One process's attempt at a checkpoint; the job takes the worst of them."""

    RESTORED = 0
    DAMAGED = 1
    FAILED = 2


def damage_evidence(error: Exception) -> str | None:
    """What in ``error`` shows the checkpoint's own files to be damaged, or None.

    Only errors that can come from the checkpoint's files themselves count: a
    file that does not parse, an item missing, array files tensorstore reports
    as missing or cut short, a history that does not match its epoch. A
    config-and-checkpoint mismatch, OSError, MemoryError or an unknown error
    are no evidence.
    """
    if isinstance(error, _HistoryMismatch):
        return str(error)
    if isinstance(error, json.JSONDecodeError):
        return f"a file does not parse as JSON ({error.msg})"
    first_line = (str(error).strip().splitlines() or [""])[0]
    if isinstance(error, KeyError) and "was not found in the checkpoint" in first_line:
        return f"an item is missing ({first_line.strip(chr(39) + chr(34))})"
    if isinstance(error, ValueError) and (
        status := _DAMAGED_ARRAY_STATUS.search(first_line)
    ):
        return f"its array files do not read back ({status.group(1)})"
    return None


def _one_line(error: Exception) -> str:
    first_line = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {first_line}"


class Checkpointer:
    """Saves and restores (train state, metrics history) pairs, one per epoch.

    Every process must call every method (orbax synchronises the processes);
    orbax itself makes only the primary process write the shared files.
    """

    def __init__(self, directory: str, *, keep: int, keep_best: bool):
        """Opens (and creates) the checkpoint directory.

        Args:
          directory: absolute path of the checkpoint directory.
          keep: number of most recent checkpoints to keep (>= 1).
          keep_best: also keep the checkpoint with the highest ``BEST_METRIC``
            (pass False when the run has no validation split).
        """
        policies = [ocp.checkpoint_managers.LatestN(n=keep)]
        if keep_best:
            policies.append(
                ocp.checkpoint_managers.BestN(
                    get_metric_fn=lambda metrics: metrics[BEST_METRIC],
                    n=1,
                    keep_checkpoints_without_metrics=False,
                )
            )
        self._options = ocp.CheckpointManagerOptions(
            preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy(policies),
            cleanup_tmp_directories=True,
        )
        self._keep_best = keep_best
        self._directory = os.path.abspath(directory).rstrip(os.sep)
        self._manager = ocp.CheckpointManager(
            directory, options=self._options, item_names=("state", "history")
        )

    def save(self, epoch: int, state: Any, history: Sequence[dict[str, Any]]) -> None:
        """Starts writing the checkpoint of ``epoch`` (asynchronously).

        The device arrays are copied to host memory before this returns, so the
        caller may donate ``state`` to the next train step right away.

        Args:
          epoch: number of finished epochs (the checkpoint's step number).
          state: the train state pytree.
          history: the metric records of epochs 1..epoch.
        """
        metrics = None
        # Epochs that were not evaluated (eval_every_epochs) compete for LatestN only.
        if self._keep_best and history[-1][BEST_METRIC] is not None:
            metrics = {BEST_METRIC: history[-1][BEST_METRIC]}
        self._manager.save(
            epoch,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                history=ocp.args.JsonSave(list(history)),
            ),
            metrics=metrics,
        )

    def restore_latest(self, template_state: Any) -> tuple[int, Any, list] | None:
        """Restores the newest checkpoint that reads back; never deletes one.

        A checkpoint shown to be damaged (``damage_evidence``) is moved into
        ``<directory>_damaged/<epoch>`` with a one-line warning and the
        previous one is tried. Every process of a job must call this; they
        agree on each checkpoint (the worst outcome of any process holds), and
        process 0 moves the damaged ones.

        Args:
          template_state: a train state with the right structure, shapes, dtypes
            and shardings (e.g. the freshly initialised one).

        Returns:
          ``(epoch, state, history)``, or None when there is no usable
          checkpoint.

        Raises:
          RestoreError: a checkpoint failed to restore without evidence of
            damage; every checkpoint is left in place.
        """
        abstract_state = jax.tree.map(ocp.utils.to_shape_dtype_struct, template_state)
        for epoch in sorted(self._manager.all_steps(), reverse=True):
            error = evidence = None
            try:
                restored = self._manager.restore(
                    epoch,
                    args=ocp.args.Composite(
                        state=ocp.args.StandardRestore(abstract_state),
                        history=ocp.args.JsonRestore(),
                    ),
                )
                if len(restored.history) != epoch:
                    raise _HistoryMismatch(
                        f"its history has {len(restored.history)} epochs, "
                        f"expected {epoch}"
                    )
            except Exception as caught:  # Sorted out by damage_evidence.
                error, evidence = caught, damage_evidence(caught)
            if error is None:
                outcome = _Outcome.RESTORED
            else:
                outcome = _Outcome.DAMAGED if evidence else _Outcome.FAILED
            outcome = _worst_of_all_processes(outcome)
            if outcome == _Outcome.RESTORED:
                return epoch, restored.state, list(restored.history)
            if outcome == _Outcome.FAILED:
                seen = (
                    _one_line(error)
                    if error is not None and evidence is None
                    else "another process of the job could not read it"
                )
                raise RestoreError(
                    f"cannot restore the checkpoint of epoch {epoch} in "
                    f"{self._directory} ({seen}); no checkpoint was changed. If the "
                    "config or the code changed since it was written, use a new "
                    "--workdir; if the error passes (memory, a network "
                    "filesystem), relaunch"
                )
            self._move_aside(
                epoch, evidence or "another process of the job found it damaged"
            )
        return None

    def _move_aside(self, epoch: int, why: str) -> None:
        """Moves a damaged checkpoint into ``<directory>_damaged/`` (process 0
        moves it, every process then sees it gone)."""
        damaged_dir = self._directory + DAMAGED_SUFFIX
        target = os.path.join(damaged_dir, str(epoch))
        repeat = 1
        while os.path.exists(target):  # Damaged before, retrained, damaged again.
            target = os.path.join(damaged_dir, f"{epoch}.{repeat}")
            repeat += 1
        if jax.process_index() == 0:
            os.makedirs(damaged_dir, exist_ok=True)
            os.rename(os.path.join(self._directory, str(epoch)), target)
            logging.warning(
                "Checkpoint of epoch %d is damaged (%s); moved it to %s and trying "
                "the previous one.",
                epoch,
                why,
                target,
            )
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices(f"checkpoint {epoch} moved aside")
        self._manager.reload()

    def close(self) -> None:
        """Waits for pending writes and releases the manager."""
        self._manager.wait_until_finished()
        self._manager.close()


def _worst_of_all_processes(outcome: _Outcome) -> _Outcome:
    """The worst outcome any process of the job had (this one's alone)."""
    if jax.process_count() == 1:
        return outcome
    outcomes = multihost_utils.process_allgather(np.int32(outcome))
    return _Outcome(int(np.max(outcomes)))
