r"""Committed results: Fashion-MNIST, symmetric noise 0-0.8, CE vs four robust losses.

  python3 sweep.py --config=configs/sweeps/fashion_mnist_noise.py \
      --workdir=runs/fashion_mnist_noise

5 noise rates x 5 losses x 3 seeds = 75 runs of the CPU protocol below, two
at a time, one core each (run time: results/fashion_mnist_noise/README.md,
"How it was made").

The protocol is configs/cpu_fashion_mnist.py (ResNet-8) with PROTOCOL's
overrides: 1,000 training images (900 train + 100 noisy validation), no
augmentation, batch 32, SGD lr 0.05 /10 at epochs 20 and 30, 40 epochs;
train, validation and the full 10,000-image test set are evaluated every 4th
epoch (evaluation is most of a CPU run). It was sized so that CE visibly
memorises the wrong labels, which random crops prevented within 40 epochs
(results/fashion_mnist_noise/README.md, "Does CE memorise here?"). Loss
hyperparameters are the published CIFAR-10 settings (docs/losses.md), fixed
before seeing any result: GCE q=0.7, SCE alpha=0.1 beta=1 (A=-4), PHuber-CE
tau=2; TCE at the project's default alpha (losses.DEFAULT_TCE_ALPHA), chosen
by the alpha study (alpha_study.py; how, in results/fashion_mnist_noise).

A reduced grid for a quick look, e.g. one seed and two rates:
  python3 sweep.py --config=configs/sweeps/fashion_mnist_noise.py \
      --workdir=runs/fmnist_quick --config.seeds='(0,)' \
      --config.noise_rates='(0.0, 0.6)'
"""

import ml_collections

from tce_jax import losses

BASE_CONFIG = "configs/cpu_fashion_mnist.py"

# The CPU protocol shared by this sweep, the alpha study and the demo (CE's exact
# regime for every loss): few examples, no augmentation and small batches, so
# that CE memorises the noise within a CPU budget.
PROTOCOL = {
    "data": {"train_subset": 1000, "augment": False},
    "batch_size": 32,
    "num_epochs": 40,
    "optimizer": {"learning_rate": 0.05},
    "schedule": {"name": "piecewise", "decay_epochs": (20, 30)},
    "eval_every_epochs": 4,
}

LOSSES = (
    {"name": "ce"},
    {"name": "tce", "alpha": losses.DEFAULT_TCE_ALPHA},
    {"name": "gce", "q": 0.7},
    {"name": "sce", "alpha": 0.1, "beta": 1.0},
    {"name": "phuber_ce", "tau": 2.0},
)


def get_config():
    """The 75-run grid."""
    config = ml_collections.ConfigDict()
    config.base_config = BASE_CONFIG
    config.overrides = PROTOCOL
    config.datasets = ("fashion_mnist",)
    config.noise_kinds = ("symmetric",)
    config.noise_rates = (0.0, 0.2, 0.4, 0.6, 0.8)
    config.losses = LOSSES
    config.seeds = (0, 1, 2)
    config.jobs = 0
    return config
