r"""The ten-seed benchmark: CE, TCE and the robust baselines under eight noise settings.

  python3 sweep.py --config=configs/sweeps/fashion_mnist_benchmark.py \
      --workdir=runs/fashion_mnist_benchmark

The 2,000-image noisy-validation protocol (fashion_mnist_label_errors.OVERRIDES:
ResNet-8 trained on 900 Fashion-MNIST images, 2,000 noisy validation images,
no augmentation, batch 32, SGD lr 0.05 /10 at epochs 20 and 30, 40 epochs,
train and validation evaluated every 4th epoch, test where a reported number
needs it) under eight noise settings (clean; symmetric 0.2, 0.4, 0.6; pair 0.2,
0.4; instance 0.2, 0.4), seeds 0-9, one core per run, two at a time. Seeds
vary slowest, so a sweep stopped part-way has whole seeds. Losses, with the
settings fixed before any run: CE; TCE at alpha 0.1 (= 1/K) and 0.3 (so that
the report can also choose alpha on noisy validation); GCE q 0.7; SCE alpha 0.1
beta 1 (A = -4); and, from the plan's amendment 2, the self-tuning TCE
(alpha_rule val_track). The pre-registered question, targets and how each is
computed: results/fashion_mnist_benchmark/PLAN.md; the report checks that
every run descends from the plan's commit.
"""

import ml_collections

from configs.sweeps import fashion_mnist_label_errors, fashion_mnist_noise
from tce_jax import losses

SCENARIOS = (
    ("symmetric", 0.0),
    ("symmetric", 0.2),
    ("symmetric", 0.4),
    ("symmetric", 0.6),
    ("pair", 0.2),
    ("pair", 0.4),
    ("instance", 0.2),
    ("instance", 0.4),
)

LOSSES = (
    {"name": "ce"},
    {"name": "tce", "alpha": losses.DEFAULT_TCE_ALPHA},
    {"name": "tce", "alpha": 0.3},
    {"name": "gce", "q": 0.7},
    {"name": "sce", "alpha": 0.1, "beta": 1.0},
    # The self-tuning alpha (second version), added by the plan's amendment 2.
    {"name": "tce", "alpha_rule": "val_track"},
)


def get_config():
    """The benchmark grid: 8 noise settings x 6 losses x 10 seeds."""
    config = ml_collections.ConfigDict()
    config.base_config = fashion_mnist_noise.BASE_CONFIG
    config.overrides = fashion_mnist_label_errors.OVERRIDES
    config.datasets = ("fashion_mnist",)
    config.scenarios = SCENARIOS
    config.losses = LOSSES
    config.seeds = tuple(range(10))
    config.jobs = 0
    return config
