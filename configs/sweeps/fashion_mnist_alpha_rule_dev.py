r"""Development runs of the self-tuning alpha's first version (alpha_rule = "auto").

  python3 sweep.py --config=configs/sweeps/fashion_mnist_alpha_rule_dev.py:uniform \
      --workdir=runs/fashion_mnist_alpha_rule_dev/uniform
  python3 sweep.py --config=configs/sweeps/fashion_mnist_alpha_rule_dev.py:symmetric \
      --workdir=runs/fashion_mnist_alpha_rule_dev/symmetric
  # the candidate rules: the same with :uniform-auto and :symmetric-auto

The rule was designed on these runs: noise kinds and rates (uniform 0.3 and
0.5, symmetric 0.1) and seeds (100 and up) that the evaluation grid
(fashion_mnist_alpha_rule.py) never uses. Of its constants only the offset was
compared here, on these runs' test accuracy. Protocol:
the 2,000-image noisy validation grids' (fashion_mnist_label_errors.OVERRIDES:
ResNet-8, 900 training images, no augmentation, 40 epochs). What was tried
and why the final rule was chosen: results/fashion_mnist_alpha_rule_dev/.
"""

import ml_collections

from configs.sweeps import fashion_mnist_label_errors, fashion_mnist_noise
from tce_jax import losses

NOISE = {"uniform": (0.3, 0.5), "symmetric": (0.1,)}

# The candidate rules, offset 1/K and offset 0 (the run dirs were named when
# 1/K was the default: tce-auto is offset 0.1, tce-alpha_offset0-auto offset 0).
CANDIDATES = (
    {"name": "tce", "alpha_rule": "auto", "alpha_offset": 0.1},
    {"name": "tce", "alpha_rule": "auto", "alpha_offset": 0.0},
)


def get_config(arg: str = "uniform"):
    """One dev noise kind: "KIND" for CE and TCE at fixed alphas, "KIND-auto"
    for the candidate rules."""
    kind, _, part = arg.partition("-")
    if kind not in NOISE or part not in ("", "auto"):
        raise ValueError(f"{arg!r}; allowed: {', '.join(NOISE)}, optionally with -auto")
    config = ml_collections.ConfigDict()
    config.base_config = fashion_mnist_noise.BASE_CONFIG
    config.overrides = fashion_mnist_label_errors.OVERRIDES
    config.datasets = ("fashion_mnist",)
    config.noise_kinds = (kind,)
    config.noise_rates = NOISE[kind]
    config.losses = (
        CANDIDATES
        if part
        else (
            {"name": "ce"},
            {"name": "tce", "alpha": losses.DEFAULT_TCE_ALPHA},
            {"name": "tce", "alpha": 0.3},
        )
    )
    config.seeds = (100, 101)
    config.jobs = 0
    return config
