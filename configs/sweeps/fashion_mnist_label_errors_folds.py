r"""Cross-fitting runs for confident learning (cleanlab) on the label-error grid.

  python3 sweep.py --config=configs/sweeps/fashion_mnist_label_errors_folds.py \
      --workdir=runs/fashion_mnist_label_errors_folds

cleanlab needs out-of-sample predicted probabilities for every training label.
Per scenario and seed of fashion_mnist_label_errors (same protocol, same noisy
labels), the 900 training examples are split into 3 folds; each run trains CE
on two of them and predicts the third (config.data.holdout_folds). 3 noise
kinds x 3 folds x 3 seeds = 27 runs of 600 training images.
"""

from configs.sweeps import fashion_mnist_label_errors


def get_config():
    """The 27-run grid."""
    config = fashion_mnist_label_errors.get_config()
    config.losses = ({"name": "ce"},)
    config.holdout_folds = 3
    return config
