"""Tests of the sweep runner: grid, run dirs, resume, failures (fake runners)."""

import json
import pathlib
import textwrap

import ml_collections
import pytest

from tce_jax import sweep

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
            (run_dir / sweep.LOG_FILE).write_text("Traceback: boom\n")
            return 1
        num_epochs = run.overrides["num_epochs"]
        last_epoch = self.stop_after_epoch.get(run.rel_dir, num_epochs)
        with open(run_dir / sweep.METRICS_FILE, "a") as metrics:
            for epoch in range(sweep.epochs_done(run_dir) + 1, last_epoch + 1):
                metrics.write(json.dumps({"epoch": epoch, "test_accuracy": 0.5}) + "\n")
        if last_epoch == num_epochs:
            (run_dir / sweep.SUMMARY_FILE).write_text(json.dumps({"final": 0.5}))
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


def test_loss_labels_are_readable_and_sorted():
    assert sweep.loss_label("ce", {}) == "ce"
    assert sweep.loss_label("tce", {"alpha": 1e-3}) == "tce-alpha0.001"
    assert sweep.loss_label("sce", {"b": 1.0, "a": 0.1}) == "sce-a0.1-b1"
    assert sweep.loss_label("taylor_ce", {"order": 2}) == "taylor_ce-order2"


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
    resolved = json.loads((run_dir / sweep.CONFIG_FILE).read_text())
    assert resolved["loss"]["alpha"] == 0.01 and resolved["seed"] == 1
    assert json.loads((run_dir / sweep.RUN_INFO_FILE).read_text())["loss"] == (
        "tce-alpha0.01"
    )
    assert "--config.seed=1" in (run_dir / sweep.COMMAND_FILE).read_text()
    recorded = json.loads((tmp_path / "sweep" / sweep.SWEEP_INFO_FILE).read_text())
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
    assert "boom" in (tmp_path / bad / sweep.ERROR_FILE).read_text()
    assert any("FAILED" in message and bad in message for message in messages)

    # A later attempt that succeeds clears the error record.
    outcome = sweep.run_sweep(
        config, tmp_path, runner=FakeRunner(), preparer=no_preparation, log=print
    )
    assert outcome.finished == [bad] and outcome.ok
    assert not (tmp_path / bad / sweep.ERROR_FILE).exists()


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
    assert sweep.default_jobs(1) >= 1
    assert sweep.thread_limited_env(1)["TF_NUM_INTRAOP_THREADS"] == "1"


def test_eta_extrapolates_from_logged_epochs_then_from_finished_runs():
    fractions = {"a": 0.5, "b": 0.0}
    progress = sweep._Progress(4, 0, 2, print, fraction_done=fractions.get)
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
    assert "training" in (run_dir / sweep.LOG_FILE).read_text()
    timing = json.loads((run_dir / sweep.TIMING_FILE).read_text())
    assert timing["exit_code"] == 0 and timing["cores"] == 1
    assert timing["cpu_seconds"] >= 0
