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
noisy-validation accuracy. A checkpoint whose files are damaged anyway (disk
errors, a copy cut short) fails to restore; ``restore_latest`` then deletes it
and falls back to the previous one.
"""

from collections.abc import Sequence
from typing import Any

import jax
import orbax.checkpoint as ocp
from absl import logging

# Orbax raises whatever its storage layers raise on damaged files (ValueError,
# OSError, tensorstore errors, JSON decode errors, ...), so a restore attempt has
# to treat any Exception as "this checkpoint is unusable".
_RESTORE_ERRORS = (Exception,)

BEST_METRIC = "val_accuracy"


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
        """Restores the newest checkpoint that reads back, deleting damaged ones.

        Args:
          template_state: a train state with the right structure, shapes, dtypes
            and shardings (e.g. the freshly initialised one).

        Returns:
          ``(epoch, state, history)``, or None when there is no usable
          checkpoint.
        """
        abstract_state = jax.tree.map(ocp.utils.to_shape_dtype_struct, template_state)
        for epoch in sorted(self._manager.all_steps(), reverse=True):
            try:
                restored = self._manager.restore(
                    epoch,
                    args=ocp.args.Composite(
                        state=ocp.args.StandardRestore(abstract_state),
                        history=ocp.args.JsonRestore(),
                    ),
                )
                history = list(restored.history)
                if len(history) != epoch:
                    raise ValueError(
                        f"history has {len(history)} epochs, expected {epoch}"
                    )
            except _RESTORE_ERRORS as error:
                logging.warning(
                    "Checkpoint of epoch %d in %s is unusable (%s: %s); deleting it "
                    "and falling back to the previous one.",
                    epoch,
                    self._manager.directory,
                    type(error).__name__,
                    str(error).splitlines()[0] if str(error) else "",
                )
                self._manager.delete(epoch)
                continue
            return epoch, restored.state, history
        return None

    def close(self) -> None:
        """Waits for pending writes and releases the manager."""
        self._manager.wait_until_finished()
        self._manager.close()
