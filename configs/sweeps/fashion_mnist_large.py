r"""Fashion-MNIST with 10,000 training images and random crops, 40% symmetric noise.

  python3 sweep.py --config=configs/sweeps/fashion_mnist_large.py \
      --workdir=runs/fashion_mnist_large

A larger CPU protocol than the committed one (fashion_mnist_noise.PROTOCOL:
1,000 images, no augmentation): configs/cpu_fashion_mnist.py as it is
(ResNet-8, 10,000 images of which 1,000 are noisy validation, the dataset's
random-crop augmentation, batch 128, SGD lr 0.05), trained for NUM_EPOCHS with
the learning rate /10 at 1/2 and 3/4 of them, every 2nd epoch evaluated.
CE, TCE at the default alpha (the rule alpha = 1/K), GCE q=0.7 and SCE
alpha=0.1 beta=1 (published CIFAR-10 settings, docs/losses.md), 3 seeds:
12 runs, two at a time, one core each.
"""

import ml_collections

from configs.sweeps import fashion_mnist_noise
from tce_jax import losses

BASE_CONFIG = "configs/cpu_fashion_mnist.py"

# Sized to about 12 minutes a run on one core from timed short runs (their
# numbers are in this file's history: git log -p configs/sweeps/fashion_mnist_large.py);
# measured results and run times belong in results/.
NUM_EPOCHS = 28

PROTOCOL = {
    "data": {"train_subset": 10_000, "augment": True},
    "num_epochs": NUM_EPOCHS,
    "schedule": {
        "name": "piecewise",
        "decay_epochs": (NUM_EPOCHS // 2, 3 * NUM_EPOCHS // 4),
    },
    "eval_every_epochs": 2,
}

LOSSES = (
    {"name": "ce"},
    {"name": "tce", "alpha": losses.DEFAULT_TCE_ALPHA},
    *(loss for loss in fashion_mnist_noise.LOSSES if loss["name"] in ("gce", "sce")),
)


def get_config():
    """The 12-run grid."""
    config = ml_collections.ConfigDict()
    config.base_config = BASE_CONFIG
    config.overrides = PROTOCOL
    config.datasets = ("fashion_mnist",)
    config.noise_kinds = ("symmetric",)
    config.noise_rates = (0.4,)
    config.losses = LOSSES
    config.seeds = (0, 1, 2)
    config.jobs = 0
    return config
