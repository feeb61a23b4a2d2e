r"""Evaluation of the self-tuning alpha (alpha_rule = "auto") against CE and baselines.

  python3 sweep.py --config=configs/sweeps/fashion_mnist_alpha_rule.py:symmetric \
      --workdir=runs/fashion_mnist_alpha_rule/symmetric
  python3 sweep.py --config=configs/sweeps/fashion_mnist_alpha_rule.py:class_instance \
      --workdir=runs/fashion_mnist_alpha_rule/class_instance
  python3 sweep.py --config=configs/sweeps/fashion_mnist_alpha_rule.py:baselines \
      --workdir=runs/fashion_mnist_alpha_rule/baselines

The protocol and seeds of the 2,000-image noisy validation grids (ResNet-8,
900 training images, no augmentation, 40 epochs; seeds 0-2), so that every run
pairs with the committed CE and TCE (alpha 0.1, 0.3) runs of the same cell:

- symmetric: the self-tuning TCE at symmetric noise 0, 0.2, 0.4, 0.6, with the
  overrides of fashion_mnist_symmetric_selection (12 runs);
- class_instance: the self-tuning TCE at pair and instance noise 0.2, 0.4, with
  the overrides of fashion_mnist_class_instance (12 runs);
- baselines: GCE (q 0.7) and SCE (alpha 0.1, beta 1, A -4) at symmetric 0-0.6,
  their published CIFAR-10 settings (24 runs), as in fashion_mnist_class_instance.

The rule and its constants (tce_jax/alpha_rules.py) were fixed on development
runs (fashion_mnist_alpha_rule_dev.py) and committed before these runs started.
"""

import ml_collections

from configs.sweeps import (
    fashion_mnist_class_instance,
    fashion_mnist_label_errors,
    fashion_mnist_noise,
)

AUTO = {"name": "tce", "alpha_rule": "auto"}
SYMMETRIC_RATES = (0.0, 0.2, 0.4, 0.6)

PARTS = {
    "symmetric": dict(
        overrides=fashion_mnist_label_errors.OVERRIDES,
        noise_kinds=("symmetric",),
        noise_rates=SYMMETRIC_RATES,
        losses=(AUTO,),
    ),
    "class_instance": dict(
        overrides=fashion_mnist_class_instance.get_config().overrides.to_dict(),
        noise_kinds=("pair", "instance"),
        noise_rates=(0.2, 0.4),
        losses=(AUTO,),
    ),
    "baselines": dict(
        overrides=fashion_mnist_label_errors.OVERRIDES,
        noise_kinds=("symmetric",),
        noise_rates=SYMMETRIC_RATES,
        # The entries of fashion_mnist_class_instance, so run dirs are named alike.
        losses=tuple(
            loss
            for loss in fashion_mnist_class_instance.LOSSES
            if loss["name"] in ("gce", "sce")
        ),
    ),
}


def get_config(part: str = "symmetric"):
    """One part of the evaluation grid (see the module docstring)."""
    if part not in PARTS:
        raise ValueError(f"part {part!r}; allowed: {', '.join(PARTS)}")
    config = ml_collections.ConfigDict()
    config.base_config = fashion_mnist_noise.BASE_CONFIG
    config.datasets = ("fashion_mnist",)
    for key, value in PARTS[part].items():
        config[key] = value
    config.seeds = (0, 1, 2)
    config.jobs = 0
    return config
