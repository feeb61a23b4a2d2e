r"""The paper's setting at accelerator size: CIFAR-10, ResNet-34, CE/TCE/GCE/SCE.

  python3 -m tce_jax.data.prepare_data --dataset=cifar10   # once, with internet access
  python3 sweep.py --config=configs/sweeps/cifar10_noise.py \
      --workdir=runs/cifar10_noise

or on a SLURM cluster (one GPU and 4 CPUs per run on a GPU partition; every
path on a filesystem the nodes share):

  python3 sweep.py --config=configs/sweeps/cifar10_noise.py \
      --workdir=/shared/runs/cifar10_noise --executor=slurm \
      --slurm_partition=gpu --slurm_time_min=240

What it needs: internet access once, for tfds to download CIFAR-10 (about 170
MB; prepared offline after that, see docs/data_and_noise.md), and a GPU or
TPU: a run is 120 epochs of ResNet-34 on 45,000 images, days on a CPU. On a
GPU machine the local executor runs one run per GPU at a time; on a TPU VM,
one at a time. Time a run with the accelerator check first
(docs/accelerators.md): its "cifar10 2 epochs" row is 2 of a run's 120
epochs. Not run for this repository (no GPU here): results/ holds nothing
from it.

The protocol is configs/cifar10.py, the GCE paper's (docs/losses.md): ResNet-34,
SGD lr 0.01, momentum 0.9, weight decay 1e-4, batch 128, 120 epochs, lr /10 at
epochs 40 and 80, random crop + flip, 10% of the noisy training split as noisy
validation to select the epoch. The noise is the GCE paper's CIFAR-10 grid:
symmetric at 0.2, 0.4, 0.6 and 0.8, and asymmetric (truck->automobile,
bird->airplane, deer->horse, cat<->dog) at 0.1, 0.2, 0.3 and 0.4. The losses
at their published CIFAR-10 settings: CE, TCE at alpha = 1/K = 0.1, GCE q=0.7,
SCE alpha=0.1 beta=1. 8 noise settings x 4 losses x 3 seeds = 96 runs.
"""

import ml_collections

from tce_jax import losses

BASE_CONFIG = "configs/cifar10.py"

SCENARIOS = (
    *(("symmetric", rate) for rate in (0.2, 0.4, 0.6, 0.8)),
    *(("asymmetric_cifar10", rate) for rate in (0.1, 0.2, 0.3, 0.4)),
)

LOSSES = (
    {"name": "ce"},
    {"name": "tce", "alpha": losses.DEFAULT_TCE_ALPHA},
    {"name": "gce", "q": 0.7},
    {"name": "sce", "alpha": 0.1, "beta": 1.0},
)


def get_config():
    """The 96-run grid."""
    config = ml_collections.ConfigDict()
    config.base_config = BASE_CONFIG
    config.overrides = {}
    config.datasets = ("cifar10",)
    config.scenarios = SCENARIOS
    config.losses = LOSSES
    config.seeds = (0, 1, 2)
    config.jobs = 0  # One run per GPU (on a TPU VM: one at a time).
    return config
