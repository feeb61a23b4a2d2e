r"""The demo: CE and TCE on Fashion-MNIST, clean and with 60% symmetric noise.

  bash scripts/setup.sh && python3 sweep.py --config=configs/sweeps/demo.py \
      --workdir=runs/demo

Four runs of a CPU-sized ResNet-8 (configs/cpu_fashion_mnist.py shrunk by
PROTOCOL below: 3,000 images, 10 epochs), two at a time, one core each; then
the report prints the table and writes the plots to runs/demo/report/.
Measured on 2 free cores: 4 min 35 s of training (2 min 18 s per pair of
runs), 4 min 57 s for the whole command with the packages already installed;
preparing Fashion-MNIST the first time adds about 35 s. When other jobs shared
the cores it took 8 min.

What it shows is the machinery and TCE's behaviour early in training: at this
budget neither loss has started to fit the mislabelled examples (CE needs far
more updates than 10 epochs of 3,000 images), the model is not yet confident
enough for TCE's weight to drop, and CE and TCE score about the same.
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
