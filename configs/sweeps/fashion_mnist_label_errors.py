r"""Which labels are wrong? The runs whose predictions rank the training labels.

  python3 sweep.py --config=configs/sweeps/fashion_mnist_label_errors.py \
      --workdir=runs/fashion_mnist_label_errors
  python3 sweep.py --config=configs/sweeps/fashion_mnist_label_errors_folds.py \
      --workdir=runs/fashion_mnist_label_errors_folds
  python3 -m tce_jax.analysis.label_errors --sweep_dir=runs/fashion_mnist_label_errors \
      --folds_dir=runs/fashion_mnist_label_errors_folds

The class/instance protocol (fashion_mnist_class_instance: 900 training images,
2,000 noisy validation images, 40 epochs) at 40% symmetric, pair and instance
noise, CE and TCE at the default alpha, 3 seeds: 18 runs, each saving its
training predictions after the last epoch and at the epoch selected on the
noisy validation split. The test set is evaluated only where a reported number
needs it (test_eval_every_epochs = 0), which changes no reported number: the
pair and instance runs equal the class/instance grid's on every training,
validation, final and selected figure. The cross-fitting runs for cleanlab are
in fashion_mnist_label_errors_folds.
"""

import ml_collections

from configs.sweeps import fashion_mnist_class_instance, fashion_mnist_noise
from tce_jax import losses

OVERRIDES = fashion_mnist_class_instance.get_config().overrides.to_dict() | {
    "test_eval_every_epochs": 0
}


def get_config():
    """The 18-run grid."""
    config = ml_collections.ConfigDict()
    config.base_config = fashion_mnist_noise.BASE_CONFIG
    config.overrides = OVERRIDES
    config.datasets = ("fashion_mnist",)
    config.noise_kinds = ("symmetric", "pair", "instance")
    config.noise_rates = (0.4,)
    config.losses = ({"name": "ce"}, {"name": "tce", "alpha": losses.DEFAULT_TCE_ALPHA})
    config.seeds = (0, 1, 2)
    config.jobs = 0
    return config
