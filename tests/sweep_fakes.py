"""What the sweep tests share: a small base config and grid, and fake runners.

The fake runners write what training writes (metrics.jsonl, summary.json)
without training, so the executors' bookkeeping can be tested in seconds. They
live in a module of their own, importable by name, because submitit's jobs
unpickle them in other processes.
"""

import json
import pathlib
import subprocess
import sys
import textwrap
import time

import ml_collections

from tce_jax import run_files

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


def make_sweep_config(base_config_path, **axes):
    """2 noise rates x CE and TCE x 2 seeds of 2 epochs, one run at a time."""
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
    """Writes what training writes; fails or stops early for chosen runs.

    ``calls`` records (rel_dir, slot, epochs done before the call).
    """

    def __init__(self, fail=(), stop_after_epoch=None):
        self.fail = set(fail)
        self.stop_after_epoch = stop_after_epoch or {}
        self.calls = []

    def __call__(self, run, run_dir, slot):
        self.calls.append((run.rel_dir, slot, run_files.epochs_done(run_dir)))
        if run.rel_dir in self.fail:
            (run_dir / run_files.LOG_FILE).write_text("Traceback: boom\n")
            return 1
        num_epochs = run.overrides["num_epochs"]
        last_epoch = self.stop_after_epoch.get(run.rel_dir, num_epochs)
        with open(run_dir / run_files.METRICS_FILE, "a") as metrics:
            for epoch in range(run_files.epochs_done(run_dir) + 1, last_epoch + 1):
                metrics.write(json.dumps({"epoch": epoch, "test_accuracy": 0.5}) + "\n")
        if last_epoch == num_epochs:
            (run_dir / run_files.SUMMARY_FILE).write_text(json.dumps({"final": 0.5}))
            return 0
        return 3  # Killed mid-run.


class SlowRunner:
    """Trains one fake epoch per `seconds`, from the epochs already on disk."""

    def __init__(self, seconds):
        self.seconds = seconds

    def __call__(self, run, run_dir, slot):
        with open(run_dir / run_files.LOG_FILE, "a") as log:
            log.write(f"start after epoch {run_files.epochs_done(run_dir)}\n")
        for epoch in range(
            run_files.epochs_done(run_dir) + 1, run.overrides["num_epochs"] + 1
        ):
            time.sleep(self.seconds)
            with open(run_dir / run_files.METRICS_FILE, "a") as metrics:
                metrics.write(json.dumps({"epoch": epoch}) + "\n")
        (run_dir / run_files.SUMMARY_FILE).write_text("{}")
        return 0


def wait_for(condition, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def sweep_py(*args, env=None):
    """Runs sweep.py from the repository root (in `env`, default this process's
    environment); returns the completed process."""
    return subprocess.run(
        [sys.executable, "sweep.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
