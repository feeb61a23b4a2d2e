r"""The demo: CE and TCE on Fashion-MNIST, clean and with 40% symmetric noise.

  bash scripts/setup.sh && python3 sweep.py --config=configs/sweeps/demo.py \
      --workdir=runs/demo

Four runs, two at a time, one core each: seed 0 of CE and of TCE at the default
alpha (0.1) at noise 0 and 0.4, four cells of the ten-seed benchmark
(fashion_mnist_benchmark) with its protocol (ResNet-8 on 900 images, 2,000
noisy validation images, 40 epochs). Then the report prints the table and
writes the plots to runs/demo/report/, and ``tce_jax.analysis.compare``
compares each run with the committed results named by ``compare_with``.

What to expect: on the machine type and software that made the committed runs,
each run is bit-identical to its committed twin. XLA compiles for the
processor it runs on, so on another machine type the numbers differ and
behave like another seed's; the comparison then says whether each lies within
the 95% prediction interval of the benchmark's seeds for one further seed. How
long it takes: docs/results.md, "The demo".
"""

from configs.sweeps import fashion_mnist_benchmark
from tce_jax import losses


def get_config():
    """CE and TCE (the default alpha) at noise 0 and 0.4, seed 0."""
    config = fashion_mnist_benchmark.get_config()
    config.scenarios = (("symmetric", 0.0), ("symmetric", 0.4))
    config.losses = ({"name": "ce"}, {"name": "tce", "alpha": losses.DEFAULT_TCE_ALPHA})
    config.seeds = (0,)
    config.compare_with = "results/fashion_mnist_benchmark"
    return config
