"""Tests of the sweep runner: grid, run dirs, resume, failures, status, submitit.

Most use fake runners. The submitit tests run real jobs on submitit's local
executor (the code path of --executor=slurm, without a cluster) and fake sbatch
and sacct for what only a SLURM cluster does; one test runs a small grid of
real launch.py runs through sweep.py end to end.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import threading
import time

import ml_collections
import pytest

from tce_jax import report, run_files, slurm, sweep

ROOT = pathlib.Path(__file__).resolve().parents[1]

# A run config with the contract's layout, so these tests need no training code.
BASE_CONFIG = textwrap.dedent(
    """
    import ml_collections
    from ml_collections import config_dict

    def get_config():
        config = ml_collections.ConfigDict()
        config.seed = 0
        config.data = dict(dataset="fashion_mnist", data_dir=None, train_subset=0,
                           validation_fraction=0.1, augment=True)
        config.noise = dict(kind="symmetric", rate=0.0, transition_matrix=None)
        config.loss = ml_collections.ConfigDict()
        config.loss.name = "ce"
        config.loss.alpha = config_dict.placeholder(float)
        config.loss.q = config_dict.placeholder(float)
        config.num_epochs = 3
        config.schedule = dict(name="piecewise", decay_epochs=(1, 2))
        return config
    """
)


@pytest.fixture
def base_config_path(tmp_path):
    path = tmp_path / "base_config.py"
    path.write_text(BASE_CONFIG)
    return str(path)


def make_sweep_config(base_config_path, **axes):
    config = ml_collections.ConfigDict()
    config.base_config = base_config_path
    config.overrides = {"num_epochs": 2, "data": {"train_subset": 100}}
    config.datasets = ("fashion_mnist",)
    config.noise_kinds = ("symmetric",)
    config.noise_rates = (0.0, 0.4)
    config.losses = ({"name": "ce"}, {"name": "tce", "alpha": 0.01})
    config.seeds = (0, 1)
    config.jobs = 1
    config.update(axes)
    return config


def no_preparation(dataset, data_dir):
    return 0


class FakeRunner:
    """Writes what training writes; fails or stops early for chosen runs."""

    def __init__(self, fail=(), stop_after_epoch=None):
        self.fail = set(fail)
        self.stop_after_epoch = stop_after_epoch or {}
        self.calls = []

    def __call__(self, run, run_dir, cores):
        self.calls.append((run.rel_dir, cores, sweep.epochs_done(run_dir)))
        if run.rel_dir in self.fail:
            (run_dir / run_files.LOG_FILE).write_text("Traceback: boom\n")
            return 1
        num_epochs = run.overrides["num_epochs"]
        last_epoch = self.stop_after_epoch.get(run.rel_dir, num_epochs)
        with open(run_dir / run_files.METRICS_FILE, "a") as metrics:
            for epoch in range(sweep.epochs_done(run_dir) + 1, last_epoch + 1):
                metrics.write(json.dumps({"epoch": epoch, "test_accuracy": 0.5}) + "\n")
        if last_epoch == num_epochs:
            (run_dir / run_files.SUMMARY_FILE).write_text(json.dumps({"final": 0.5}))
            return 0
        return 3  # Killed mid-run.


def test_grid_expansion_and_run_dirs(base_config_path):
    runs = sweep.expand_grid(make_sweep_config(base_config_path))
    assert len(runs) == 2 * 2 * 2
    assert [run.rel_dir for run in runs[:4]] == [
        "fashion_mnist/symmetric-0/ce/seed0",
        "fashion_mnist/symmetric-0/tce-alpha0.01/seed0",
        "fashion_mnist/symmetric-0.4/ce/seed0",
        "fashion_mnist/symmetric-0.4/tce-alpha0.01/seed0",
    ]
    assert runs[-1].rel_dir == "fashion_mnist/symmetric-0.4/tce-alpha0.01/seed1"
    assert runs[3].overrides == {
        "num_epochs": 2,
        "data.train_subset": 100,
        "seed": 0,
        "data.dataset": "fashion_mnist",
        "noise.kind": "symmetric",
        "noise.rate": 0.4,
        "loss.name": "tce",
        "loss.alpha": 0.01,
    }


def test_cross_fitting_grid_makes_one_run_per_fold(base_config_path, tmp_path):
    config = make_sweep_config(base_config_path, noise_rates=(0.4,), holdout_folds=3)
    runs = sweep.expand_grid(config)
    assert len(runs) == 2 * 2 * 3
    assert [run.rel_dir for run in runs[:3]] == [
        f"fashion_mnist/symmetric-0.4/ce/seed0-fold{fold}of3" for fold in range(3)
    ]
    assert runs[2].overrides["data.holdout_folds"] == 3
    assert runs[2].overrides["data.holdout_fold"] == 2
    assert runs[2].info()["holdout_folds"] == 3
    # The report leaves cross-fitting runs out of its tables.
    for run in (runs[0], *sweep.expand_grid(make_sweep_config(base_config_path))[:1]):
        run_dir = tmp_path / "sweep" / run.rel_dir
        run_dir.mkdir(parents=True)
        (run_dir / run_files.RUN_INFO_FILE).write_text(json.dumps(run.info()))
    rows = report.collect(tmp_path / "sweep")
    assert [row["run"] for row in rows] == ["fashion_mnist/symmetric-0/ce/seed0"]
    for bad in (1, -1, 2.0):
        with pytest.raises(ValueError, match="holdout_folds must be 0"):
            sweep.expand_grid(make_sweep_config(base_config_path, holdout_folds=bad))


def test_loss_labels_are_readable_and_sorted():
    assert run_files.loss_label("ce", {}) == "ce"
    assert run_files.loss_label("tce", {"alpha": 1e-3}) == "tce-alpha0.001"
    assert run_files.loss_label("sce", {"b": 1.0, "a": 0.1}) == "sce-a0.1-b1"
    assert run_files.loss_label("taylor_ce", {"order": 2}) == "taylor_ce-order2"


def test_grid_rejects_duplicates_and_empty_axes(base_config_path):
    with pytest.raises(ValueError, match="twice"):
        sweep.expand_grid(make_sweep_config(base_config_path, seeds=(0, 0)))
    with pytest.raises(ValueError, match="empty"):
        sweep.expand_grid(make_sweep_config(base_config_path, noise_rates=()))


def test_resolve_config_applies_overrides_and_catches_typos(base_config_path):
    run = sweep.expand_grid(make_sweep_config(base_config_path))[3]
    config = sweep.resolve_config(base_config_path, run.overrides)
    assert config.loss.alpha == 0.01
    assert config.data.train_subset == 100
    assert config.noise.rate == 0.4
    with pytest.raises(KeyError, match="num_epoch"):
        sweep.resolve_config(base_config_path, {"num_epoch": 3})
    with pytest.raises(KeyError, match="nosie"):
        sweep.resolve_config(base_config_path, {"nosie.rate": 0.2})


def test_launch_command_passes_every_override(base_config_path):
    run = sweep.expand_grid(make_sweep_config(base_config_path))[3]
    command = sweep.launch_command(base_config_path, run, "/tmp/x")
    assert command[1].endswith("launch.py")
    assert "--config.loss.alpha=0.01" in command
    assert "--config.noise.rate=0.4" in command
    assert "--config.data.train_subset=100" in command
    assert command[-1] == "--workdir=/tmp/x"
    assert sweep._flag_value((1, 2)) == "(1, 2)"
    assert sweep._flag_value(True) == "true"


def test_command_script_is_relative_to_the_repository_root(tmp_path):
    run = sweep.expand_grid(make_sweep_config("configs/cpu_smoke.py"))[3]
    run_dir = sweep.REPO_ROOT / "runs/some_sweep" / run.rel_dir
    script = sweep.command_script("configs/cpu_smoke.py", run, run_dir)
    lines = script.splitlines()
    assert lines[2] == 'cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"'
    assert lines[3].startswith("python3 launch.py --config=configs/cpu_smoke.py ")
    assert lines[3].endswith(f"--workdir=runs/some_sweep/{run.rel_dir}")
    assert str(sweep.REPO_ROOT) not in script
    # Outside the repository the work dir stays absolute.
    outside = sweep.command_script("configs/cpu_smoke.py", run, tmp_path / "r")
    assert outside.splitlines()[3].endswith(f"--workdir={tmp_path / 'r'}")


def test_committed_commands_hold_no_machine_paths():
    scripts = list((sweep.REPO_ROOT / "results").glob("**/command.sh"))
    assert scripts
    for script in scripts:
        command = script.read_text().splitlines()[-1]
        assert command.startswith("python3 launch.py --config=configs/"), script
        assert " /" not in command and "=/" not in command, script


def test_sweep_writes_run_dirs_then_skips_finished_runs(base_config_path, tmp_path):
    config = make_sweep_config(base_config_path)
    runner = FakeRunner()
    outcome = sweep.run_sweep(
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
    outcome = sweep.run_sweep(
        config,
        tmp_path / "sweep",
        runner=again,
        preparer=lambda *args: prepared.append(args) or 0,
        log=print,
    )
    assert len(outcome.skipped) == 8 and not again.calls and not prepared


def test_each_dataset_is_prepared_once_before_the_runs(base_config_path, tmp_path):
    config = make_sweep_config(base_config_path, datasets=("fashion_mnist", "mnist"))
    prepared = []

    def prepare(dataset, data_dir):
        prepared.append((dataset, data_dir))
        return 1 if dataset == "mnist" else 0

    messages = []
    sweep.run_sweep(
        config, tmp_path, runner=FakeRunner(), preparer=prepare, log=messages.append
    )
    assert prepared == [("fashion_mnist", None), ("mnist", None)]
    assert any("preparing mnist failed" in message for message in messages)


def test_failed_run_is_reported_and_does_not_stop_the_sweep(base_config_path, tmp_path):
    config = make_sweep_config(base_config_path, jobs=2)
    bad = "fashion_mnist/symmetric-0/ce/seed0"
    messages = []
    outcome = sweep.run_sweep(
        config,
        tmp_path,
        runner=FakeRunner(fail={bad}),
        preparer=no_preparation,
        log=messages.append,
    )
    assert outcome.failed == [bad] and len(outcome.finished) == 7
    assert not outcome.ok
    assert "boom" in (tmp_path / bad / run_files.ERROR_FILE).read_text()
    assert any("FAILED" in message and bad in message for message in messages)

    # A later attempt that succeeds clears the error record.
    outcome = sweep.run_sweep(
        config, tmp_path, runner=FakeRunner(), preparer=no_preparation, log=print
    )
    assert outcome.finished == [bad] and outcome.ok
    assert not (tmp_path / bad / run_files.ERROR_FILE).exists()


def test_unfinished_run_resumes_in_its_own_dir(base_config_path, tmp_path):
    config = make_sweep_config(base_config_path, seeds=(0,), noise_rates=(0.4,))
    partial = "fashion_mnist/symmetric-0.4/ce/seed0"
    first = FakeRunner(stop_after_epoch={partial: 1})
    outcome = sweep.run_sweep(
        config, tmp_path, runner=first, preparer=no_preparation, log=print
    )
    assert outcome.failed == [partial]
    assert sweep.epochs_done(tmp_path / partial) == 1

    second = FakeRunner()
    messages = []
    outcome = sweep.run_sweep(
        config, tmp_path, runner=second, preparer=no_preparation, log=messages.append
    )
    assert second.calls == [(partial, second.calls[0][1], 1)]
    assert outcome.finished == [partial] and outcome.skipped
    assert any("resuming after epoch 1" in message for message in messages)
    assert sweep.epochs_done(tmp_path / partial) == 2


def test_runner_exception_or_missing_summary_counts_as_failure(
    base_config_path, tmp_path
):
    config = make_sweep_config(base_config_path, seeds=(0,), noise_rates=(0.0,))

    def exits_cleanly_without_summary(run, run_dir, cores):
        if run.loss_name == "ce":
            raise RuntimeError("no such loss")
        return 0

    outcome = sweep.run_sweep(
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


def test_jobs_get_disjoint_core_slices():
    assert sweep.core_slices(1, [0, 1]) == [(0, 1)]
    assert sweep.core_slices(2, [0, 1]) == [(0,), (1,)]
    assert sweep.core_slices(2, [0, 1, 2, 3, 4]) == [(0, 1), (2, 3)]
    assert sweep.core_slices(3, [0, 1]) == [(0,), (1,), (0,)]
    assert [sweep.default_jobs(n) for n in (1, 2, 8, 64)] == [1, 2, 8, 8]
    assert sweep.thread_limited_env(1)["TF_NUM_INTRAOP_THREADS"] == "1"


def test_eta_extrapolates_from_logged_epochs_then_from_finished_runs():
    fractions = {"a": 0.5, "b": 0.0}
    progress = sweep._SweepProgress(4, 0, 2, print, fraction_done=fractions.get)
    assert progress.eta_seconds() is None
    progress.start("a", 0)
    progress.start("b", 0)
    progress.running["a"] -= 100  # "a" started 100 s ago and is half done.
    # ~200 s per run: a has 100 s left, b 200 s, two more wait: (100+200+400)/2.
    assert progress.eta_seconds() == pytest.approx(350, rel=0.01)
    progress.end("a", "done")
    assert progress.durations[0] == pytest.approx(100, rel=0.01)


def test_subprocess_runner_logs_times_and_returns_the_exit_code(
    base_config_path, tmp_path, monkeypatch
):
    fake_launch = tmp_path / "fake_launch.py"
    fake_launch.write_text(
        "import pathlib, sys\n"
        "workdir = pathlib.Path(sys.argv[-1].removeprefix('--workdir='))\n"
        "print('training', sys.argv[2:4])\n"
        "(workdir / 'summary.json').write_text('{}')\n"
        "sys.exit(0 if '--config.loss.name=ce' in sys.argv else 7)\n"
    )
    monkeypatch.setattr(sweep, "LAUNCH_SCRIPT", fake_launch)
    runner = sweep.subprocess_runner(base_config_path)
    runs = sweep.expand_grid(make_sweep_config(base_config_path))
    codes = []
    for run in runs[:2]:
        run_dir = tmp_path / run.rel_dir
        run_dir.mkdir(parents=True)
        codes.append(runner(run, run_dir, tuple(sweep.available_cpus()[:1])))
    assert codes == [0, 7]
    run_dir = tmp_path / runs[0].rel_dir
    assert "training" in (run_dir / run_files.LOG_FILE).read_text()
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
    monkeypatch.setattr(sweep, "LAUNCH_SCRIPT", fake_launch)
    run = sweep.expand_grid(make_sweep_config(base_config_path))[0]
    run_dir = tmp_path / run.rel_dir
    run_dir.mkdir(parents=True)

    def interrupt(signum, frame):
        raise SystemExit(144)  # What submitit's requeue does in the signal handler.

    def signal_once_launched():
        _wait_for((tmp_path / "pid").exists, "the launch")
        os.kill(os.getpid(), signal.SIGUSR2)

    previous = signal.signal(signal.SIGUSR2, interrupt)
    try:
        threading.Thread(target=signal_once_launched, daemon=True).start()
        with pytest.raises(SystemExit):
            sweep.subprocess_runner(base_config_path)(run, run_dir, (0,))
    finally:
        signal.signal(signal.SIGUSR2, previous)
    pid = int((tmp_path / "pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


class SlowRunner:
    """Trains one fake epoch per `seconds`, from the epochs already on disk."""

    def __init__(self, seconds):
        self.seconds = seconds

    def __call__(self, run, run_dir, cores):
        with open(run_dir / run_files.LOG_FILE, "a") as log:
            log.write(f"start after epoch {sweep.epochs_done(run_dir)}\n")
        for epoch in range(
            sweep.epochs_done(run_dir) + 1, run.overrides["num_epochs"] + 1
        ):
            time.sleep(self.seconds)
            with open(run_dir / run_files.METRICS_FILE, "a") as metrics:
                metrics.write(json.dumps({"epoch": epoch}) + "\n")
        (run_dir / run_files.SUMMARY_FILE).write_text("{}")
        return 0


def _wait_for(condition, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# ----------------------------------------------------------------------------
# Status.


def test_status_tells_finished_running_failed_and_missing_runs(
    base_config_path, tmp_path
):
    config = make_sweep_config(base_config_path, noise_rates=(0.4,))
    sweep.run_sweep(
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
    old = time.time() - sweep.HEARTBEAT_STALE_SECONDS - 1
    os.utime(stopped / run_files.HEARTBEAT_FILE, (old, old))

    statuses = {s.rel_dir: s for s in sweep.sweep_status(tmp_path)}
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
    outcome = sweep.run_sweep(
        config, tmp_path, runner=FakeRunner(), preparer=no_preparation, log=print
    )
    assert outcome.busy == ["fashion_mnist/symmetric-0.4/ce/seed1"]
    assert len(outcome.finished) == 3

    result = _sweep_py("--status", f"--workdir={tmp_path}")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f"sweep {tmp_path}: 4 runs: 3 finished, 1 running, 0 queued, 0 failed, "
        "0 missing"
    )
    assert lines[-1].startswith("running   fashion_mnist/symmetric-0.4/ce/seed1 ")


def _sweep_py(*args):
    return subprocess.run(
        [sys.executable, "sweep.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--executor=foo"],
            "sweep.py: --executor=foo: allowed: local, slurm, submitit_local",
        ),
        (
            ["--executor=slurm", "--slurm_time_min=60"],
            "sweep.py: --slurm_partition: required with --executor=slurm (or "
            "slurm.partition in the sweep config)",
        ),
    ],
)
def test_bad_input_gets_one_line_and_no_traceback(args, expected, tmp_path):
    result = _sweep_py(
        "--config=configs/sweeps/demo.py", f"--workdir={tmp_path / 'sweep'}", *args
    )
    assert result.returncode == 2
    assert result.stderr.strip() == expected
    assert not (tmp_path / "sweep").exists()


def test_missing_config_file_or_a_file_as_workdir_get_one_line(tmp_path):
    missing = _sweep_py("--config=configs/sweeps/nope.py", f"--workdir={tmp_path}/s")
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        "sweep.py: --config=configs/sweeps/nope.py: cannot load it ([Errno 2] No "
        "such file or directory: 'configs/sweeps/nope.py'); allowed: a config file "
        "defining get_config()"
    )
    (tmp_path / "a_file").write_text("keep me")
    on_file = _sweep_py(
        "--config=configs/sweeps/demo.py", f"--workdir={tmp_path}/a_file"
    )
    assert on_file.returncode == 2
    assert on_file.stderr.strip() == (
        f"sweep.py: --workdir={tmp_path}/a_file: is a file; allowed: a directory "
        "(the sweep directory, created if missing)"
    )
    assert (tmp_path / "a_file").read_text() == "keep me"
    assert not (tmp_path / "s").exists()


def test_slurm_resources_come_from_the_sweep_config_then_the_flags():
    resources = slurm.resources_from(
        {"partition": "cpu", "time_min": 60, "parameters": {"qos": "low"}},
        {"time_min": 30, "gpus_per_task": 1},
        cluster="slurm",
    )
    assert resources == slurm.Resources(
        partition="cpu", time_min=30, gpus_per_task=1, parameters={"qos": "low"}
    )
    with pytest.raises(slurm.ResourceError, match=r"^slurm.nodes in the sweep"):
        slurm.resources_from({"nodes": 2}, {}, cluster="slurm")
    with pytest.raises(slurm.ResourceError, match=r"^--slurm_time_min: required"):
        slurm.resources_from({}, {}, cluster="local")
    with pytest.raises(slurm.ResourceError, match=r"^--slurm_cpus_per_task: got 0"):
        slurm.resources_from({"time_min": 1, "cpus_per_task": 0}, {}, cluster="local")


# ----------------------------------------------------------------------------
# Sweeps through submitit.

LOCAL_JOBS = slurm.Resources(time_min=10)


@pytest.fixture
def jobs_import_this_module(monkeypatch):
    """submitit jobs unpickle this module's fake runners: put tests/ on their path."""
    paths = [str(pathlib.Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, paths)))


def test_submitit_sweep_runs_each_run_as_a_job_and_resubmits_the_unfinished(
    base_config_path, tmp_path, jobs_import_this_module
):
    config = make_sweep_config(base_config_path, seeds=(0,), noise_rates=(0.4,))
    bad, good = (
        "fashion_mnist/symmetric-0.4/ce/seed0",
        "fashion_mnist/symmetric-0.4/tce-alpha0.01/seed0",
    )

    def submit(runner):
        return slurm.submit_sweep(
            config,
            tmp_path,
            cluster="local",
            resources=LOCAL_JOBS,
            wait=True,
            runner=runner,
            preparer=no_preparation,
            log=print,
        )

    outcome = submit(FakeRunner(fail={bad}))
    assert outcome.submitted == [bad, good]
    assert outcome.failed == [bad] and outcome.finished == [good]
    record = json.loads((tmp_path / good / run_files.JOB_FILE).read_text())
    assert record["cluster"] == "local"
    submitit_log = f"{record['job_id']}_0_log.out"
    assert (tmp_path / run_files.SUBMITIT_DIR / submitit_log).exists()
    statuses = {s.rel_dir: s for s in sweep.sweep_status(tmp_path)}
    assert (
        statuses[bad].state == "failed" and statuses[bad].log_tail == "Traceback: boom"
    )

    # Resubmitted: the finished run is skipped, the failed one runs again.
    outcome = submit(FakeRunner())
    assert outcome.skipped == [good] and outcome.submitted == [bad]
    assert outcome.finished == [bad] and outcome.ok
    assert not (tmp_path / bad / run_files.ERROR_FILE).exists()
    outcome = submit(FakeRunner())
    assert len(outcome.skipped) == 2 and not outcome.submitted


def test_preempted_submitit_job_is_requeued_and_resumes(
    base_config_path, tmp_path, jobs_import_this_module
):
    config = make_sweep_config(
        base_config_path,
        seeds=(0,),
        noise_rates=(0.4,),
        losses=({"name": "ce"},),
        overrides={"num_epochs": 6},
    )
    run_dir = tmp_path / "fashion_mnist/symmetric-0.4/ce/seed0"
    outcome = slurm.submit_sweep(
        config,
        tmp_path,
        cluster="local",
        resources=LOCAL_JOBS,
        wait=False,
        runner=SlowRunner(seconds=0.4),
        preparer=no_preparation,
        log=print,
    )
    assert outcome.submitted == ["fashion_mnist/symmetric-0.4/ce/seed0"]
    _wait_for(lambda: sweep.epochs_done(run_dir) >= 2, "epoch 2")
    # What SLURM does before preempting a job or at its time limit.
    task = json.loads((run_dir / run_files.HEARTBEAT_FILE).read_text())["pid"]
    os.kill(task, signal.SIGUSR2)
    _wait_for(lambda: sweep.is_finished(run_dir), "the requeued job")
    epochs = [
        json.loads(line)["epoch"] for line in open(run_dir / run_files.METRICS_FILE)
    ]
    assert epochs == [1, 2, 3, 4, 5, 6]
    starts = (run_dir / run_files.LOG_FILE).read_text().splitlines()
    assert starts[0] == "start after epoch 0" and len(starts) == 2
    assert int(starts[1].removeprefix("start after epoch ")) >= 2
    _wait_for(lambda: not sweep.is_running(run_dir), "the job to end")


def test_slurm_job_array_asks_for_the_resources_and_resubmission_skips_live_jobs(
    base_config_path, tmp_path, monkeypatch
):
    """sbatch, sacct and srun are fakes: what reaches SLURM, what it answers."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(
        f'#!/bin/sh\ncat "$1" >> {tmp_path}/sbatch_scripts\n'
        "echo Submitted batch job 4242\n"
    )
    # Run 0's job still waits in the queue; run 1's was cancelled.
    (bin_dir / "sacct").write_text(
        "#!/bin/sh\nprintf 'JobID|State|NodeList\\n4242_0|PENDING|\\n"
        "4242_1|CANCELLED|n1\\n'\n"
    )
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")  # submitit looks for it.
    for script in bin_dir.iterdir():
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    config = make_sweep_config(base_config_path, seeds=(0,), noise_rates=(0.4,))
    resources = slurm.Resources(
        partition="gpu",
        time_min=90,
        cpus_per_task=4,
        gpus_per_task=1,
        array_parallelism=1,
        parameters={"account": "tce"},
    )

    def submit():
        return slurm.submit_sweep(
            config,
            tmp_path / "sweep",
            cluster="slurm",
            resources=resources,
            wait=False,
            preparer=no_preparation,
            log=print,
        )

    outcome = submit()
    runs = outcome.submitted
    assert len(runs) == 2
    script = (tmp_path / "sbatch_scripts").read_text()
    for line in (
        "#SBATCH --partition=gpu",
        "#SBATCH --time=90",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --array=0-1%1",
        "#SBATCH --account=tce",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --signal=USR2@90",
    ):
        assert line in script.splitlines(), line
    assert [
        json.loads((tmp_path / "sweep" / rel / run_files.JOB_FILE).read_text())[
            "job_id"
        ]
        for rel in runs
    ] == ["4242_0", "4242_1"]

    statuses = sweep.sweep_status(
        tmp_path / "sweep", queued=slurm.queued_runs(tmp_path / "sweep")
    )
    assert [(s.state, s.detail) for s in statuses] == [
        ("queued", "slurm job 4242_0 PENDING"),
        ("missing", "not started"),
    ]
    outcome = submit()
    assert outcome.busy == [runs[0]] and outcome.submitted == [runs[1]]


TINY_SWEEP = """
import ml_collections


def get_config():
    config = ml_collections.ConfigDict()
    config.base_config = "configs/cpu_smoke.py"
    config.overrides = {
        "data": {"train_subset": 64},
        "model": {"width_multiplier": 0.25},
        "batch_size": 32,
        "eval_batch_size": 1000,
        "num_epochs": 1,
    }
    config.datasets = ("fashion_mnist",)
    config.noise_kinds = ("symmetric",)
    config.noise_rates = (0.4,)
    config.losses = ({"name": "ce"}, {"name": "tce"})
    config.seeds = (0,)
    config.jobs = 0
    return config
"""


def test_sweep_py_on_submitit_runs_launch_py_reports_and_skips_finished_runs(
    tmp_path,
):
    """Two tiny real runs as jobs on submitit's local executor, through sweep.py."""
    config_path = tmp_path / "tiny_sweep.py"
    config_path.write_text(TINY_SWEEP)
    sweep_dir = tmp_path / "sweep"
    result = _sweep_py(
        f"--config={config_path}",
        f"--workdir={sweep_dir}",
        "--executor=submitit_local",
        "--slurm_time_min=10",
        "--wait",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = report.collect(sweep_dir)
    assert [row["loss"] for row in rows] == ["ce", "tce"]
    assert [row["status"] for row in rows] == [report.FINISHED] * 2
    assert (sweep_dir / "report" / "results.csv").exists()
    for row in rows:
        run_dir = sweep_dir / row["run"]
        # The local sweep's files: the same launch.py command, its log and times.
        assert "launch.py" in (run_dir / run_files.COMMAND_FILE).read_text()
        assert "Resumed" not in (run_dir / run_files.LOG_FILE).read_text()
        assert (
            json.loads((run_dir / run_files.TIMING_FILE).read_text())["exit_code"] == 0
        )

    # Resubmitted: nothing is left to run, so nothing is submitted.
    outcome = slurm.submit_sweep(
        sweep.load_config_file(config_path),
        sweep_dir,
        cluster="local",
        resources=LOCAL_JOBS,
        wait=True,
        preparer=no_preparation,
        log=print,
    )
    assert len(outcome.skipped) == 2 and not outcome.submitted
