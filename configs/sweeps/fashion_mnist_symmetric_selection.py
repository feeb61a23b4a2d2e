r"""Symmetric noise with a 2,000-image noisy validation split: choosing alpha.

  python3 sweep.py --config=configs/sweeps/fashion_mnist_symmetric_selection.py \
      --workdir=runs/fashion_mnist_symmetric_selection

The symmetric grid (fashion_mnist_noise) chose TCE's alpha on a 100-image noisy
validation split, too small to resolve the few points it chooses between. This
grid repeats the choice on the class/instance protocol (900 training images,
2,000 noisy validation images, 40 epochs; fashion_mnist_class_instance) under
symmetric noise {0, 0.2, 0.4, 0.6}: CE and TCE at alpha 0.1 (the rule
alpha = 1/K) and 0.3, 3 seeds, 36 runs. The test set is evaluated only where a
reported number needs it (test_eval_every_epochs = 0), as in
fashion_mnist_label_errors, whose symmetric-0.4 runs these repeat.
"""

import ml_collections

from configs.sweeps import fashion_mnist_label_errors, fashion_mnist_noise
from tce_jax import losses


def get_config():
    """The 36-run grid."""
    config = ml_collections.ConfigDict()
    config.base_config = fashion_mnist_noise.BASE_CONFIG
    config.overrides = fashion_mnist_label_errors.OVERRIDES
    config.datasets = ("fashion_mnist",)
    config.noise_kinds = ("symmetric",)
    config.noise_rates = (0.0, 0.2, 0.4, 0.6)
    config.losses = (
        {"name": "ce"},
        {"name": "tce", "alpha": losses.DEFAULT_TCE_ALPHA},
        {"name": "tce", "alpha": 0.3},
    )
    config.seeds = (0, 1, 2)
    config.jobs = 0
    return config
