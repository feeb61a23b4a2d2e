"""A tiny training run on synthetic data, shared by the training tests.

``fake_load_split`` replaces the tfds loading with a small synthetic
Fashion-MNIST-shaped dataset; ``tiny_config`` is cpu_smoke shrunk to seconds
(``TINY_OVERRIDES`` is its command-line form, ``LAUNCH_ON_FAKE_DATA`` runs
launch.py on the synthetic data in a subprocess). The fixtures that use them
(the fake data, one reference run, the compilation cache) are in conftest.py.
"""

import json
import os
import pathlib

import numpy as np

from configs import cpu_smoke
from tce_jax import run_files

ROOT = pathlib.Path(__file__).resolve().parents[1]
NUM_FAKE_TRAIN = 400
NUM_FAKE_TEST = 150


def fake_load_split(info, split, data_dir=None):
    """Deterministic synthetic images whose class is visible in their brightness."""
    del data_dir
    size = NUM_FAKE_TRAIN if split == "train" else NUM_FAKE_TEST
    rng = np.random.default_rng(0 if split == "train" else 1)
    labels = rng.integers(0, info.num_classes, size).astype(np.int32)
    noise = rng.integers(0, 100, (size, *info.image_shape))
    images = noise + (labels * 15)[:, None, None, None]
    return images.astype(np.uint8), labels


def tiny_config(**overrides):
    """cpu_smoke shrunk to seconds: ResNet-8 at 1/4 width on the fake data."""
    config = cpu_smoke.get_config()
    config.data.validation_fraction = 0.2
    config.data.train_subset = 0
    config.model.width_multiplier = 0.25
    config.batch_size = 32
    config.eval_batch_size = 64
    config.log_every_steps = 4
    config.num_epochs = 3
    config.checkpoint_keep = 2
    config.update_from_flattened_dict(overrides)
    return config


# The command-line form of tiny_config().
TINY_OVERRIDES = (
    "--config=configs/cpu_smoke.py",
    "--config.data.validation_fraction=0.2",
    "--config.data.train_subset=0",
    "--config.model.width_multiplier=0.25",
    "--config.batch_size=32",
    "--config.eval_batch_size=64",
    "--config.log_every_steps=4",
    "--config.num_epochs=3",
    "--config.checkpoint_keep=2",
)

# launch.py, with the synthetic training data above (nothing to prepare).
LAUNCH_ON_FAKE_DATA = f"""
import sys
sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / "tests")!r}]
from absl import app
import launch
import tiny_run
from tce_jax.data import input_pipeline
input_pipeline.load_split = tiny_run.fake_load_split
input_pipeline.prepare = lambda dataset, data_dir: None
app.run(launch.main)
"""


def launch_environment(cache_dir=None):
    """The environment of a launch.py subprocess, sharing the compilation cache."""
    env = dict(os.environ)
    if cache_dir is not None:
        env["JAX_COMPILATION_CACHE_DIR"] = str(cache_dir)
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.5"
    return env


def read_history(workdir):
    lines = pathlib.Path(workdir, "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def without_timing(history):
    return [
        {k: v for k, v in r.items() if k not in run_files.TIMING_METRICS}
        for r in history
    ]


def comparable_summary(summary):
    # Other work may commit to the repository between two runs of a test, and
    # the environment names the process and device counts of each launch.
    return {
        k: v
        for k, v in summary.items()
        if k not in ("wall_seconds", "git_commit", "environment")
    }
