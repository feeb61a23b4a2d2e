"""Tests of sweep.py --status: each run's state from its files, formatted."""

import os
import time

from sweep_fakes import FakeRunner, make_sweep_config, no_preparation, sweep_py

from tce_jax import run_files
from tce_jax.sweeps import local_executor, sweep_status


def test_status_tells_finished_running_failed_and_missing_runs(
    base_config_path, tmp_path
):
    config = make_sweep_config(base_config_path, noise_rates=(0.4,))
    local_executor.run_sweep(
        config,
        tmp_path,
        runner=FakeRunner(
            fail={"fashion_mnist/symmetric-0.4/ce/seed0"},
            stop_after_epoch={"fashion_mnist/symmetric-0.4/tce-alpha0.01/seed0": 1},
        ),
        preparer=no_preparation,
        log=print,
    )
    running = tmp_path / "fashion_mnist/symmetric-0.4/ce/seed1"
    (running / run_files.SUMMARY_FILE).unlink()
    (running / run_files.HEARTBEAT_FILE).write_text('{"host": "node7", "pid": 42}')
    missing = tmp_path / "fashion_mnist/symmetric-0.4/tce-alpha0.01/seed1"
    for path in missing.iterdir():  # Prepared, never started.
        if path.name not in (run_files.RUN_INFO_FILE, run_files.CONFIG_FILE):
            path.unlink()
    # The stopped run was killed without an exit status; its heartbeat is stale.
    stopped = tmp_path / "fashion_mnist/symmetric-0.4/tce-alpha0.01/seed0"
    (stopped / run_files.ERROR_FILE).unlink()
    (stopped / run_files.HEARTBEAT_FILE).write_text("{}")
    old = time.time() - run_files.HEARTBEAT_STALE_SECONDS - 1
    os.utime(stopped / run_files.HEARTBEAT_FILE, (old, old))

    statuses = sweep_status.sweep_status(tmp_path)
    assert {rel_dir: s.state for rel_dir, s in statuses.items()} == {
        "fashion_mnist/symmetric-0.4/ce/seed0": "failed",
        "fashion_mnist/symmetric-0.4/tce-alpha0.01/seed0": "failed",
        "fashion_mnist/symmetric-0.4/ce/seed1": "running",
        "fashion_mnist/symmetric-0.4/tce-alpha0.01/seed1": "missing",
    }
    failed = statuses["fashion_mnist/symmetric-0.4/ce/seed0"]
    assert failed.detail == "exit code 1, after epoch 0/2"
    assert failed.log_tail == "Traceback: boom"
    assert statuses["fashion_mnist/symmetric-0.4/tce-alpha0.01/seed0"].detail == (
        "stopped without an exit status after epoch 1/2 (killed, node lost or "
        "sweep interrupted)"
    )
    assert statuses["fashion_mnist/symmetric-0.4/ce/seed1"].detail == (
        "epoch 2/2 on node7 (pid 42)"
    )
    # A second sweep process leaves the running run alone.
    outcome = local_executor.run_sweep(
        config, tmp_path, runner=FakeRunner(), preparer=no_preparation, log=print
    )
    assert outcome.busy == ["fashion_mnist/symmetric-0.4/ce/seed1"]
    assert len(outcome.finished) == 3

    result = sweep_py("--status", f"--workdir={tmp_path}")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f"sweep {tmp_path}: 4 runs: 3 finished, 1 running, 0 queued, 0 failed, "
        "0 missing"
    )
    assert lines[-1].startswith("running   fashion_mnist/symmetric-0.4/ce/seed1 ")


def test_status_names_each_runs_platform_and_runs_that_fell_back_to_the_cpu(
    base_config_path, tmp_path
):
    config = make_sweep_config(base_config_path, noise_rates=(0.4,))
    local_executor.run_sweep(
        config, tmp_path, runner=FakeRunner(), preparer=no_preparation, log=print
    )
    runs = run_files.grid_runs(tmp_path)
    gpu = {"platform": "gpu", "device_count": 1, "device_kind": "NVIDIA A100"}
    cpu = {"platform": "cpu", "device_count": 1, "device_kind": "cpu"}
    for rel_dir, environment in zip(runs, (gpu, gpu, cpu), strict=False):
        run_files.record_environment(tmp_path / rel_dir, environment)
    states = sweep_status.sweep_status(tmp_path)
    text = sweep_status.format_status(
        states, sweep_status.run_environments(tmp_path, states)
    )
    lines = text.splitlines()
    assert lines[1] == (
        "platforms: 1 run(s) on cpu (1 x cpu), 2 run(s) on gpu (1 x NVIDIA A100)"
    )
    assert lines[2].startswith(
        "1 run(s) ran on the CPU while the others had a GPU or TPU: JAX found no "
        "accelerator it could use for them"
    )
    assert lines[2].endswith(f"e.g. {runs[2]}")
    by_run = {line.split()[1]: line for line in lines[3:]}
    assert by_run[runs[0]].endswith(" [gpu (1 x NVIDIA A100)]")
    assert by_run[runs[2]].endswith(" [cpu (1 x cpu)]")
    assert by_run[runs[3]].endswith(runs[3])  # No record: no platform.
