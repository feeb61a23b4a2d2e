"""A launch into a run dir that holds a run: continued, refused in one line, or
moved aside to start over. The run dirs here are files only (no training); the
end-to-end relaunches are in test_train.py and test_launch.py."""

import json
import pathlib

import pytest
import tiny_run

from tce_jax import run_files
from tce_jax.training import config_validation, relaunch


def tiny_config(**overrides):
    """``tiny_run.tiny_config`` as a launch reads it (``config_validation.read``)."""
    return config_validation.read(tiny_run.tiny_config(**overrides), num_devices=1)


def _trained_run(run_dir, config, *, epochs):
    """A run dir as a launch of `config` leaves it after `epochs` epochs."""
    relaunch.record(config, run_dir)
    run_files.write_metrics(run_dir, [{"epoch": e} for e in range(1, epochs + 1)])


def _refusal(run_dir, config):
    with pytest.raises(config_validation.ConfigError) as raised:
        relaunch.check(config, run_dir)
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_a_relaunch_that_trains_another_model_is_refused_naming_the_fields(
    tmp_path,
):
    _trained_run(tmp_path, tiny_config(), epochs=3)
    message = _refusal(
        tmp_path,
        tiny_config(**{"model.name": "resnet20", "loss.name": "gce", "seed": 4}),
    )
    assert message.startswith(
        f"{tmp_path} holds a run trained with another config: loss.name (recorded "
        "'tce', now 'gce'), model.name (recorded 'resnet8', now 'resnet20'), seed "
        "(recorded 0, now 4); "
    )
    assert f"to move that run to {tmp_path}.replaced-<time>" in message
    assert "--start_over" in message


@pytest.mark.parametrize(
    "changed",
    [
        {"data.augment": False},
        {"noise.rate": 0.2},
        {"batch_size": 64},
        {"optimizer.learning_rate": 0.5},
        {"schedule.name": "cosine"},
        {"loss.alpha": 0.3},
        {"data.train_subset": 100},
    ],
    ids=lambda changed: next(iter(changed)),
)
def test_every_field_that_changes_the_model_is_refused(tmp_path, changed):
    _trained_run(tmp_path, tiny_config(), epochs=1)
    assert f"{next(iter(changed))} (recorded " in _refusal(
        tmp_path, tiny_config(**changed)
    )


def test_what_is_evaluated_logged_or_kept_may_change_and_is_recorded(tmp_path):
    _trained_run(tmp_path, tiny_config(), epochs=2)
    bookkeeping = tiny_config(
        **{
            "data.data_dir": str(tmp_path / "elsewhere"),
            "eval_batch_size": 128,
            "log_every_steps": 1,
            "checkpoint_keep": 5,
            "test_eval_every_epochs": 0,
            "eval_every_epochs": 2,
        }
    )
    relaunch.check(bookkeeping, tmp_path)
    relaunch.record(bookkeeping, tmp_path)
    assert relaunch.recorded_config(tmp_path)["eval_batch_size"] == 128


def test_num_epochs_may_grow_where_the_schedule_permits(tmp_path):
    _trained_run(tmp_path, tiny_config(), epochs=3)  # A constant schedule.
    relaunch.check(tiny_config(num_epochs=10), tmp_path)
    assert "num_epochs (recorded 3, now 2; the run has trained 3 epochs)" in (
        _refusal(tmp_path, tiny_config(num_epochs=2))
    )
    piecewise = {"schedule.name": "piecewise", "schedule.decay_epochs": (1, 2)}
    _trained_run(tmp_path / "piecewise", tiny_config(**piecewise), epochs=1)
    relaunch.check(tiny_config(num_epochs=6, **piecewise), tmp_path / "piecewise")

    cosine = {"schedule.name": "cosine", "num_epochs": 4}
    _trained_run(tmp_path / "cosine", tiny_config(**cosine), epochs=1)
    assert "the cosine schedule's every step depends on it" in _refusal(
        tmp_path / "cosine", tiny_config(**(cosine | {"num_epochs": 8}))
    )
    auto = {"loss.alpha_rule": "auto", "num_epochs": 4}
    _trained_run(tmp_path / "auto", tiny_config(**auto), epochs=1)
    message = _refusal(tmp_path / "auto", tiny_config(**(auto | {"num_epochs": 8})))
    assert "a self-tuning alpha rule may read the epochs by it" in message
    # Its alpha is set from the evaluated epochs: their spacing matters too.
    assert "eval_every_epochs" in _refusal(
        tmp_path / "auto", tiny_config(**(auto | {"eval_every_epochs": 2}))
    )


def test_a_dir_with_nothing_trained_or_nothing_recorded_takes_any_config(tmp_path):
    relaunch.check(tiny_config(), tmp_path / "missing")
    relaunch.record(tiny_config(), tmp_path / "started")  # Stopped before epoch 1.
    relaunch.check(tiny_config(**{"model.name": "resnet20"}), tmp_path / "started")
    (tmp_path / "older").mkdir()
    run_files.write_metrics(tmp_path / "older", [{"epoch": 1}])  # Older code.
    relaunch.check(tiny_config(**{"model.name": "resnet20"}), tmp_path / "older")


def test_a_run_by_older_code_is_checked_against_its_summary(tmp_path):
    summary = {"effective_config": tiny_config().as_effective()}
    run_files.write_summary(tmp_path, json.loads(json.dumps(summary)))
    assert "model.name (recorded 'resnet8'" in _refusal(
        tmp_path, tiny_config(**{"model.name": "resnet20"})
    )
    relaunch.check(tiny_config(), tmp_path)


def test_fields_the_record_lacks_are_not_compared(tmp_path):
    """A field added to the config since the record keeps its old behaviour."""
    relaunch.record(tiny_config(), tmp_path)
    record = tmp_path / run_files.EFFECTIVE_CONFIG_FILE
    recorded = json.loads(record.read_text())
    del recorded["data"]["augment"]
    record.write_text(json.dumps(recorded))
    run_files.write_metrics(tmp_path, [{"epoch": 1}])
    relaunch.check(tiny_config(**{"data.augment": False}), tmp_path)


def test_starting_over_moves_the_whole_run_aside_out_of_sweep_reports(tmp_path):
    sweep_dir = tmp_path / "sweep"
    run_dir = sweep_dir / "fashion_mnist/symmetric-0.4/ce/seed0"
    _trained_run(run_dir, tiny_config(), epochs=3)
    run_files.write_summary(run_dir, {"final_test_accuracy": 0.5})
    files = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*"))
    moved = relaunch.move_aside(run_dir)
    assert moved.startswith(f"{run_dir}.replaced-")
    assert sorted(p.relative_to(moved) for p in pathlib.Path(moved).rglob("*")) == (
        files
    )
    assert not run_dir.exists()
    assert run_files.find_runs(sweep_dir) == []
    assert relaunch.move_aside(run_dir) is None  # Nothing left to move.
