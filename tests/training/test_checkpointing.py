"""Per-epoch checkpoints: what is saved comes back, the newest usable one wins,
a damaged one is moved aside (never deleted) and skipped, any other restore
error stops with every checkpoint in place, and old ones are pruned but the
best kept."""

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tce_jax.training import checkpointing


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


def _files(directory):
    """Every file under the directory, with its content."""
    return {
        path.relative_to(directory): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def _empty_state_files(checkpoint):
    for path in (checkpoint / "state").rglob("*"):
        if path.is_file():
            path.write_bytes(b"")


def _garbage_array_files(checkpoint):
    for path in (checkpoint / "state" / "d").rglob("*"):
        path.write_bytes(b"\x00garbage" * 7)


def _no_array_index(checkpoint):
    for path in (checkpoint / "state").rglob("manifest.ocdbt"):
        path.unlink()


def _no_history(checkpoint):
    shutil.rmtree(checkpoint / "history")


def _unparsable_history(checkpoint):
    for path in (checkpoint / "history").rglob("*"):
        if path.is_file() and path.name != "commit_success.txt":
            path.write_text("{not json")


# Ways a checkpoint's own files get damaged (disk errors, a copy cut short),
# and how the restore tells.
DAMAGE = {
    "empty_state_files": (_empty_state_files, "does not parse as JSON"),
    "garbage_array_files": (_garbage_array_files, "OUT_OF_RANGE"),
    "no_array_index": (_no_array_index, "NOT_FOUND"),
    "no_history": (_no_history, 'Item "history" was not found'),
    "unparsable_history": (_unparsable_history, "does not parse as JSON"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_newest_checkpoint_is_moved_aside_and_the_previous_one_used(
    tmp_path, damage, caplog
):
    directory = tmp_path / "checkpoints"
    _save_epochs(directory, [0.5, 0.6, 0.7], keep=3)
    damage_fn, evidence = DAMAGE[damage]
    damage_fn(directory / "3")
    damaged_files = _files(directory / "3")
    epoch, state, history = _restore(directory)
    assert epoch == 2 and len(history) == 2
    np.testing.assert_array_equal(np.asarray(state["w"]), [2.0] * 3)
    assert _epochs(directory) == [1, 2]
    # Moved, not deleted: every file as it was, with one line saying so.
    moved = tmp_path / "checkpoints_damaged" / "3"
    assert _files(moved) == damaged_files
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning.startswith("Checkpoint of epoch 3 is damaged (")
    assert evidence in warning and f"moved it to {moved}" in warning
    assert "\n" not in warning


def test_a_short_history_is_damage_and_a_second_damaged_copy_keeps_the_first(
    tmp_path,
):
    directory = tmp_path / "checkpoints"
    _save_epochs(directory, [0.5, 0.6, 0.7], keep=3)
    for _ in range(2):  # Epoch 4 saved with one epoch of history, twice.
        checkpointer = checkpointing.Checkpointer(
            str(directory), keep=3, keep_best=True
        )
        checkpointer.save(4, _state(4), _history([0.5]))
        checkpointer.close()
        epoch, _, _ = _restore(directory)
        assert epoch == 3
    assert sorted(p.name for p in (tmp_path / "checkpoints_damaged").iterdir()) == [
        "4",
        "4.1",
    ]


def test_a_checkpoint_that_no_longer_fits_the_state_stops_and_stays(tmp_path):
    directory = tmp_path / "checkpoints"
    _save_epochs(directory, [0.5, 0.6])
    before = _files(directory)
    # The state of another model: the config changed since the checkpoints.
    other_model = {**_state(0), "extra": jnp.zeros((2,))}
    checkpointer = checkpointing.Checkpointer(str(directory), keep=2, keep_best=True)
    with pytest.raises(checkpointing.RestoreError) as raised:
        checkpointer.restore_latest(other_model)
    checkpointer.close()
    message = str(raised.value)
    assert message.startswith(
        f"cannot restore the checkpoint of epoch 2 in {directory} (ValueError: "
    )
    assert "no checkpoint was changed" in message and "\n" not in message
    assert _files(directory) == before
    assert not (tmp_path / "checkpoints_damaged").exists()


@pytest.mark.parametrize(
    "error",
    [
        OSError(5, "Input/output error"),
        MemoryError(),
        ValueError("RESOURCE_EXHAUSTED: Out of memory while reading"),
        ValueError("UNAVAILABLE: Stale file handle"),
        RuntimeError("an orbax version that reads this differently"),
    ],
    ids=lambda error: type(error).__name__ + str(error)[:12],
)
def test_errors_that_are_no_evidence_of_damage_leave_every_checkpoint(
    tmp_path, monkeypatch, error
):
    directory = tmp_path / "checkpoints"
    _save_epochs(directory, [0.5, 0.6])
    before = _files(directory)
    checkpointer = checkpointing.Checkpointer(str(directory), keep=2, keep_best=True)

    def failing_restore(*args, **kwargs):
        raise error

    monkeypatch.setattr(checkpointer._manager, "restore", failing_restore)
    with pytest.raises(checkpointing.RestoreError, match=type(error).__name__):
        checkpointer.restore_latest(_state(0))
    checkpointer.close()
    assert _files(directory) == before


def test_damage_evidence_names_only_the_checkpoints_own_files():
    evidence = checkpointing.damage_evidence
    assert "JSON" in evidence(json.JSONDecodeError("Expecting value", "", 0))
    assert "DATA_LOSS" in evidence(ValueError("DATA_LOSS: Error reading chunk"))
    for no_evidence in (
        ValueError("tree structures do not match"),
        ValueError("Requested shape: (5,) is not compatible with the stored shape"),
        FileNotFoundError("gone while listing"),
        KeyError("params"),
    ):
        assert evidence(no_evidence) is None
