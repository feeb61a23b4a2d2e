r"""Development runs of the self-tuning alpha, second version (never in the benchmark).

  python3 sweep.py --config=configs/sweeps/fashion_mnist_alpha_rule_v2_dev.py:step \
      --workdir=runs/fashion_mnist_alpha_rule_v2_dev/step
  # the same with :cosine and :large

Noise settings and seeds that the ten-seed benchmark (fashion_mnist_benchmark)
never uses: clean labels, uniform 0.3 and 0.5, symmetric 0.1 and the
class-dependent asymmetric_cifar10 map at 0.4; seeds 100 and 101. Three
parts, so that a rule is seen to carry across schedules and data sizes:

- step: the benchmark's protocol (fashion_mnist_label_errors.OVERRIDES:
  ResNet-8 on 900 images, 2,000 noisy validation images, 40 epochs, learning
  rate /10 at epochs 20 and 30);
- cosine: the same with a cosine learning-rate schedule;
- large: the step protocol with 3,000 training images (run after the choice,
  as a check of the chosen rule: see the results README).

Losses: CE and TCE at alpha 0.1 and 0.3 (the references, and what choosing
alpha on noisy validation can reach), and the candidate rules. What was
tried, each candidate's numbers and why one was kept:
results/fashion_mnist_alpha_rule_v2_dev/README.md.
"""

import ml_collections

from configs.sweeps import fashion_mnist_label_errors, fashion_mnist_noise
from tce_jax import losses

SCENARIOS = (
    ("symmetric", 0.0),
    ("uniform", 0.3),
    ("uniform", 0.5),
    ("symmetric", 0.1),
    ("asymmetric_cifar10", 0.4),
)

REFERENCES = (
    {"name": "ce"},
    {"name": "tce", "alpha": losses.DEFAULT_TCE_ALPHA},
    {"name": "tce", "alpha": 0.3},
)
CANDIDATES = tuple(
    {"name": "tce", "alpha_rule": rule} for rule in ("auto", "val_peak", "val_track")
)

_STEP = fashion_mnist_label_errors.OVERRIDES
PARTS = {
    "step": _STEP,
    "cosine": _STEP | {"schedule": {**_STEP["schedule"], "name": "cosine"}},
    # 3,000 training images: the subset also holds the 2,000 validation images.
    "large": _STEP
    | {
        "data": {
            **_STEP["data"],
            "train_subset": 3000 + _STEP["data"]["validation_examples"],
        }
    },
}


def get_config(part: str = "step"):
    """One part of the development grid (see the module docstring)."""
    if part not in PARTS:
        raise ValueError(f"part {part!r}; allowed: {', '.join(PARTS)}")
    config = ml_collections.ConfigDict()
    config.base_config = fashion_mnist_noise.BASE_CONFIG
    config.overrides = PARTS[part]
    config.datasets = ("fashion_mnist",)
    config.scenarios = SCENARIOS
    config.losses = REFERENCES + CANDIDATES
    config.seeds = (100, 101)
    config.jobs = 0
    return config
