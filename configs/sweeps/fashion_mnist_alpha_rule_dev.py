r"""Development runs of the self-tuning alpha (alpha_rule = "auto"); never evaluated on.

  python3 sweep.py --config=configs/sweeps/fashion_mnist_alpha_rule_dev.py:uniform \
      --workdir=runs/fashion_mnist_alpha_rule_dev/uniform
  python3 sweep.py --config=configs/sweeps/fashion_mnist_alpha_rule_dev.py:symmetric \
      --workdir=runs/fashion_mnist_alpha_rule_dev/symmetric

The rule and its constants were designed and tuned on these runs only: noise
kinds and rates (uniform 0.3 and 0.5, symmetric 0.1) and seeds (100 and up)
that the evaluation grid (fashion_mnist_alpha_rule.py) never uses. Protocol:
the 2,000-image noisy validation grids' (fashion_mnist_label_errors.OVERRIDES:
ResNet-8, 900 training images, no augmentation, 40 epochs). What was tried
and why the final rule was chosen: results/fashion_mnist_alpha_rule_dev/.
"""

import ml_collections

from configs.sweeps import fashion_mnist_label_errors, fashion_mnist_noise
from tce_jax import losses

NOISE = {"uniform": (0.3, 0.5), "symmetric": (0.1,)}


def get_config(kind: str = "uniform"):
    """CE, TCE at fixed alphas and the self-tuning TCE under one dev noise kind."""
    if kind not in NOISE:
        raise ValueError(f"dev noise kind {kind!r}; allowed: {', '.join(NOISE)}")
    config = ml_collections.ConfigDict()
    config.base_config = fashion_mnist_noise.BASE_CONFIG
    config.overrides = fashion_mnist_label_errors.OVERRIDES
    config.datasets = ("fashion_mnist",)
    config.noise_kinds = (kind,)
    config.noise_rates = NOISE[kind]
    config.losses = (
        {"name": "ce"},
        {"name": "tce", "alpha": losses.DEFAULT_TCE_ALPHA},
        {"name": "tce", "alpha": 0.3},
    )
    config.seeds = (100, 101)
    config.jobs = 0
    return config
