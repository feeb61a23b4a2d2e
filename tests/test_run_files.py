"""Tests of the run and sweep files: names, the run states and their evidence,
finding the runs of a sweep."""

import json
import os
import time

from tce_jax import run_files


def test_loss_labels_are_readable_and_sorted():
    assert run_files.loss_label("ce", {}) == "ce"
    assert run_files.loss_label("tce", {"alpha": 1e-3}) == "tce-alpha0.001"
    assert run_files.loss_label("sce", {"b": 1.0, "a": 0.1}) == "sce-a0.1-b1"
    assert run_files.loss_label("taylor_ce", {"order": 2}) == "taylor_ce-order2"


def test_each_state_rests_on_its_evidence(tmp_path):
    run_dir = tmp_path / "run"
    assert run_files.run_state(run_dir) == run_files.RunState("missing", "not started")
    run_dir.mkdir()
    (run_dir / run_files.RUN_INFO_FILE).write_text("{}")
    assert run_files.run_state(run_dir).state == run_files.MISSING
    queued = run_files.run_state(run_dir, queued="slurm job 7 PENDING")
    assert (queued.state, queued.detail) == ("queued", "slurm job 7 PENDING")
    (run_dir / run_files.CONFIG_FILE).write_text('{"num_epochs": 4}')
    run_files.write_metrics(run_dir, [{"epoch": 1}, {"epoch": 2}])
    (run_dir / run_files.LOG_FILE).write_text("one\ntwo\nthree\n")
    stopped = run_files.run_state(run_dir, tail_lines=2)
    assert stopped == run_files.RunState(
        "failed",
        "stopped without an exit status after epoch 2/4 (killed, node lost or "
        "sweep interrupted)",
        "two\nthree",
    )
    (run_dir / run_files.ERROR_FILE).write_text("exit code 3\n...")
    assert run_files.run_state(run_dir).detail == "exit code 3, after epoch 2/4"
    with run_files.heartbeat(run_dir):
        running = run_files.run_state(run_dir, queued="slurm job 7 RUNNING")
        assert running.state == run_files.RUNNING
        assert running.detail.startswith("epoch 2/4 on ") and str(os.getpid()) in (
            running.detail
        )
    assert not (run_dir / run_files.HEARTBEAT_FILE).exists()
    (run_dir / run_files.HEARTBEAT_FILE).write_text("{}")
    stale = time.time() - run_files.HEARTBEAT_STALE_SECONDS - 1
    os.utime(run_dir / run_files.HEARTBEAT_FILE, (stale, stale))
    assert run_files.run_state(run_dir).state == run_files.FAILED
    run_files.write_summary(run_dir, {})
    assert run_files.run_state(run_dir) == run_files.RunState("finished")


def test_runs_of_a_sweep_are_the_grid_then_the_others_found(tmp_path):
    (tmp_path / run_files.SWEEP_INFO_FILE).write_text(
        json.dumps({"runs": ["b/seed0", "a/seed0"]})
    )
    for rel_dir, name in (
        ("a/seed0", run_files.RUN_INFO_FILE),
        ("z/seed1", run_files.SUMMARY_FILE),
        ("c/seed1", run_files.RUN_INFO_FILE),
        ("c/notes", "readme.txt"),
    ):
        (tmp_path / rel_dir).mkdir(parents=True)
        (tmp_path / rel_dir / name).write_text("{}")
    assert run_files.grid_runs(tmp_path) == ["b/seed0", "a/seed0"]
    assert run_files.find_runs(tmp_path) == ["b/seed0", "a/seed0", "c/seed1", "z/seed1"]
    (tmp_path / run_files.SWEEP_INFO_FILE).unlink()
    assert run_files.find_runs(tmp_path) == ["a/seed0", "c/seed1", "z/seed1"]


def test_run_info_falls_back_on_the_summary_config_and_cpu_time_adds_up(tmp_path):
    config = {
        "seed": 2,
        "data": {"dataset": "mnist"},
        "noise": {"kind": "symmetric", "rate": 0.2},
        "loss": {"name": "tce", "alpha": 0.1, "q": None},
    }
    run_files.write_summary(tmp_path, {"config": config})
    info = run_files.read_run_info(tmp_path)
    assert info["loss"] == "tce-alpha0.1" and info["seed"] == 2
    assert info["noise_rate"] == 0.2 and info["holdout_folds"] == 0
    assert run_files.cpu_seconds(tmp_path) is None
    (tmp_path / run_files.TIMING_FILE).write_text(
        '{"cpu_seconds": 1.25}\n{"cpu_seconds": 2.0}\n'
    )
    assert run_files.cpu_seconds(tmp_path) == 3.2  # Rounded to 0.1 s.
    assert run_files.read_predictions(tmp_path, "train") is None
    run_files.write_npz_atomically(
        tmp_path / run_files.predictions_file("train"), index=[3, 1]
    )
    assert run_files.read_predictions(tmp_path, "train")["index"].tolist() == [3, 1]
