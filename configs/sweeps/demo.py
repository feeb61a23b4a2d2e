r"""The demo: CE and TCE on Fashion-MNIST, clean and with 60% symmetric noise.

  bash scripts/setup.sh && python3 sweep.py --config=configs/sweeps/demo.py \
      --workdir=runs/demo

Four runs, two at a time, one core each, with the CPU protocol of the committed
results (fashion_mnist_noise.PROTOCOL: ResNet-8, 1,000 images, no
augmentation, 40 epochs); then the report prints the table and writes the plots
to runs/demo/report/. The runs are seed 0 of that grid, so the demo
reproduces its numbers exactly (results/fashion_mnist_noise/README.md); how
long it takes: README.md, "The demo".
"""

import ml_collections

from configs.sweeps import fashion_mnist_noise
from tce_jax import losses


def get_config():
    """CE and TCE (the default alpha) at noise 0 and 0.6, one seed."""
    config = ml_collections.ConfigDict()
    config.base_config = fashion_mnist_noise.BASE_CONFIG
    config.overrides = fashion_mnist_noise.PROTOCOL
    config.datasets = ("fashion_mnist",)
    config.noise_kinds = ("symmetric",)
    config.noise_rates = (0.0, 0.6)
    config.losses = ({"name": "ce"}, {"name": "tce", "alpha": losses.DEFAULT_TCE_ALPHA})
    config.seeds = (0,)
    config.jobs = 0
    return config
