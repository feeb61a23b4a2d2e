"""Per-epoch checkpoints: what is saved comes back, the newest usable one wins,
a damaged one is deleted and skipped, and old ones are pruned but the best kept."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tce_jax import checkpointing


def _state(value):
    return {"w": jnp.full((3,), value, jnp.float32), "step": jnp.asarray(value)}


def _history(val_accuracies):
    return [
        {"epoch": epoch, "val_accuracy": accuracy}
        for epoch, accuracy in enumerate(val_accuracies, start=1)
    ]


def _save_epochs(directory, val_accuracies, *, keep=2, keep_best=True):
    checkpointer = checkpointing.Checkpointer(
        str(directory), keep=keep, keep_best=keep_best
    )
    for epoch in range(1, len(val_accuracies) + 1):
        checkpointer.save(epoch, _state(epoch), _history(val_accuracies[:epoch]))
    checkpointer.close()


def _restore(directory, **kwargs):
    checkpointer = checkpointing.Checkpointer(str(directory), keep=2, keep_best=True)
    try:
        return checkpointer.restore_latest(_state(0))
    finally:
        checkpointer.close()


def _epochs(directory):
    return sorted(int(path.name) for path in directory.iterdir() if path.name.isdigit())


def test_an_empty_directory_restores_nothing(tmp_path):
    assert _restore(tmp_path / "checkpoints") is None


def test_the_newest_checkpoint_comes_back_with_its_history(tmp_path):
    directory = tmp_path / "checkpoints"
    _save_epochs(directory, [0.5, 0.6, 0.4])
    epoch, state, history = _restore(directory)
    assert epoch == 3
    assert history == _history([0.5, 0.6, 0.4])
    np.testing.assert_array_equal(np.asarray(state["w"]), [3.0, 3.0, 3.0])
    assert jax.tree.map(lambda a: a.dtype, state) == {
        "w": jnp.float32,
        "step": jnp.asarray(0).dtype,
    }


def test_the_latest_n_and_the_best_validation_epoch_are_kept(tmp_path):
    directory = tmp_path / "checkpoints"
    _save_epochs(directory, [0.5, 0.9, 0.4, 0.3, 0.2], keep=2)
    assert _epochs(directory) == [2, 4, 5]
    _save_epochs(tmp_path / "no_val", [None, None, None], keep=1, keep_best=False)
    assert _epochs(tmp_path / "no_val") == [3]


@pytest.mark.parametrize("damage", ["truncate_state", "wrong_history"])
def test_a_damaged_newest_checkpoint_is_deleted_and_the_previous_one_used(
    tmp_path, damage
):
    directory = tmp_path / "checkpoints"
    _save_epochs(directory, [0.5, 0.6, 0.7], keep=3)
    if damage == "truncate_state":
        for path in (directory / "3" / "state").rglob("*"):
            if path.is_file():
                path.write_bytes(b"")
    else:
        checkpointer = checkpointing.Checkpointer(
            str(directory), keep=3, keep_best=True
        )
        checkpointer.save(4, _state(4), _history([0.5]))  # A history that is too short.
        checkpointer.close()
    epoch, state, history = _restore(directory)
    assert epoch == (2 if damage == "truncate_state" else 3)
    assert len(history) == epoch
    np.testing.assert_array_equal(np.asarray(state["w"]), [float(epoch)] * 3)
    assert max(_epochs(directory)) == epoch
