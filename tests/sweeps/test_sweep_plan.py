"""Tests of the plan every executor shares: run dirs, datasets, one run's launch."""

import json
import os
import pathlib
import signal
import sys
import threading
import time

import pytest
from sweep_fakes import FakeRunner, make_sweep_config, no_preparation, wait_for

from tce_jax import run_files
from tce_jax.sweeps import grid, local_executor, sweep_plan


def test_sweep_writes_run_dirs_then_skips_finished_runs(base_config_path, tmp_path):
    config = make_sweep_config(base_config_path)
    runner = FakeRunner()
    outcome = local_executor.run_sweep(
        config, tmp_path / "sweep", runner=runner, preparer=no_preparation, log=print
    )
    assert outcome.ok and len(outcome.finished) == 8 and not outcome.skipped
    run_dir = tmp_path / "sweep/fashion_mnist/symmetric-0.4/tce-alpha0.01/seed1"
    resolved = json.loads((run_dir / run_files.CONFIG_FILE).read_text())
    assert resolved["loss"]["alpha"] == 0.01 and resolved["seed"] == 1
    assert json.loads((run_dir / run_files.RUN_INFO_FILE).read_text())["loss"] == (
        "tce-alpha0.01"
    )
    assert "--config.seed=1" in (run_dir / run_files.COMMAND_FILE).read_text()
    recorded = json.loads((tmp_path / "sweep" / run_files.SWEEP_INFO_FILE).read_text())
    assert len(recorded["runs"]) == 8

    again, prepared = FakeRunner(), []
    outcome = local_executor.run_sweep(
        config,
        tmp_path / "sweep",
        runner=again,
        preparer=lambda *args: prepared.append(args) or 0,
        log=print,
    )
    assert len(outcome.skipped) == 8 and not again.calls and not prepared


def test_each_dataset_is_prepared_once_and_a_failure_stops_the_sweep_before_any_run(
    base_config_path, tmp_path
):
    config = make_sweep_config(base_config_path, datasets=("fashion_mnist", "mnist"))
    prepared = []

    def prepare(dataset, data_dir):
        prepared.append((dataset, data_dir))
        return 1 if dataset == "mnist" else 0

    runner = FakeRunner()
    with pytest.raises(sweep_plan.DatasetUnavailableError) as raised:
        local_executor.run_sweep(
            config, tmp_path, runner=runner, preparer=prepare, log=print
        )
    assert prepared == [("fashion_mnist", None), ("mnist", None)]
    # No run started, not even fashion_mnist's: one line says why and what to do.
    assert not runner.calls
    message = str(raised.value)
    assert message.startswith("dataset mnist could not be prepared (see above), so no")
    assert "python3 -m tce_jax.data.prepare_data --dataset=mnist)" in message
    assert "\n" not in message


def test_runner_exception_or_missing_summary_counts_as_failure(
    base_config_path, tmp_path
):
    config = make_sweep_config(base_config_path, seeds=(0,), noise_rates=(0.0,))

    def exits_cleanly_without_summary(run, run_dir, cores):
        if run.loss_name == "ce":
            raise RuntimeError("no such loss")
        return 0

    outcome = local_executor.run_sweep(
        config,
        tmp_path,
        runner=exits_cleanly_without_summary,
        preparer=no_preparation,
        log=print,
    )
    assert len(outcome.failed) == 2
    errors = sorted(p.read_text() for p in pathlib.Path(tmp_path).rglob("error.txt"))
    assert errors[0].startswith("exit code -1") and "no such loss" in errors[0]
    assert errors[1].startswith("exit code -2")


def test_a_run_gets_as_many_threads_as_cores():
    env = sweep_plan.thread_limited_env(3)
    assert env["TF_NUM_INTRAOP_THREADS"] == env["OMP_NUM_THREADS"] == "3"


def test_subprocess_runner_logs_times_and_returns_the_exit_code(
    base_config_path, tmp_path, monkeypatch
):
    fake_launch = tmp_path / "fake_launch.py"
    fake_launch.write_text(
        "import os, pathlib, sys\n"
        "workdir = pathlib.Path(sys.argv[-1].removeprefix('--workdir='))\n"
        "print('training', sys.argv[2:4])\n"
        "print('cores', sorted(os.sched_getaffinity(0)))\n"
        "(workdir / 'summary.json').write_text('{}')\n"
        "sys.exit(0 if '--config.loss.name=ce' in sys.argv else 7)\n"
    )
    monkeypatch.setattr(grid, "LAUNCH_SCRIPT", fake_launch)
    runner = sweep_plan.subprocess_runner(base_config_path)
    runs = grid.expand_grid(make_sweep_config(base_config_path))
    codes = []
    for run in runs[:2]:
        run_dir = tmp_path / run.rel_dir
        run_dir.mkdir(parents=True)
        slot = sweep_plan.Slot(cores=tuple(sweep_plan.available_cpus()[:1]))
        codes.append(runner(run, run_dir, slot))
    assert codes == [0, 7]
    run_dir = tmp_path / runs[0].rel_dir
    log = (run_dir / run_files.LOG_FILE).read_text()
    assert "training" in log
    assert f"cores {list(slot.cores)}" in log  # Pinned to its slot.
    timing = json.loads((run_dir / run_files.TIMING_FILE).read_text())
    assert timing["exit_code"] == 0 and timing["cores"] == 1
    assert timing["cpu_seconds"] >= 0


def test_interrupted_subprocess_runner_stops_its_launch(
    base_config_path, tmp_path, monkeypatch
):
    """A job exiting to be requeued must not leave launch.py writing the run dir."""
    fake_launch = tmp_path / "fake_launch.py"
    fake_launch.write_text(
        "import os, pathlib, time\n"
        f"pid = pathlib.Path({str(tmp_path / 'pid')!r})\n"
        "pid.with_suffix('.tmp').write_text(str(os.getpid()))\n"
        "pid.with_suffix('.tmp').rename(pid)  # Whole or not at all.\n"
        "time.sleep(60)\n"
    )
    monkeypatch.setattr(grid, "LAUNCH_SCRIPT", fake_launch)
    run = grid.expand_grid(make_sweep_config(base_config_path))[0]
    run_dir = tmp_path / run.rel_dir
    run_dir.mkdir(parents=True)

    def interrupt(signum, frame):
        raise SystemExit(144)  # What submitit's requeue does in the signal handler.

    def signal_once_launched():
        wait_for((tmp_path / "pid").exists, "the launch")
        os.kill(os.getpid(), signal.SIGUSR2)

    previous = signal.signal(signal.SIGUSR2, interrupt)
    try:
        threading.Thread(target=signal_once_launched, daemon=True).start()
        with pytest.raises(SystemExit):
            sweep_plan.subprocess_runner(base_config_path)(
                run, run_dir, sweep_plan.Slot(cores=(0,))
            )
    finally:
        signal.signal(signal.SIGUSR2, previous)
    pid = int((tmp_path / "pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


class _SwitchingStream:
    """A stdout that hands the processor to another thread inside every write,
    as a busy machine may: two writes of one line would let another line in."""

    def __init__(self):
        self.chunks = []

    def write(self, text):
        time.sleep(0.0005)
        self.chunks.append(text)
        return len(text)

    def flush(self):
        pass


def test_progress_lines_of_worker_threads_do_not_interleave(monkeypatch):
    stream = _SwitchingStream()
    monkeypatch.setattr(sys, "stdout", stream)
    lines = [f"[{thread}] line {i}" for thread in range(4) for i in range(25)]

    def log_lines(thread):
        for i in range(25):
            sweep_plan.print_now(f"[{thread}] line {i}")

    threads = [threading.Thread(target=log_lines, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Every line whole: with print(), some come out run together.
    assert sorted("".join(stream.chunks).splitlines()) == sorted(lines)
