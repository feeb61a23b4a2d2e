r"""Alpha study: TCE at alpha in {0, 1e-3, 1e-2, 0.1, 0.3} against CE, noise 0 and 0.4.

  python3 sweep.py --config=configs/sweeps/alpha_study.py --workdir=runs/alpha_study

Every run uses CE's exact training regime (the fashion_mnist_noise protocol:
same model, subset, learning rate, schedule and epochs); only the loss
changes. The report shows (a) at noise 0, whether TCE's curves match CE's
(curves_fashion_mnist_symmetric-0.png): the paper's claim that TCE needs no
change of regime, and (b) test accuracy against alpha under 40% noise
(accuracy_vs_alpha_fashion_mnist_symmetric.png). alpha = 0 is CE computed by
TCE's code, a check that the two agree. 12 runs per seed.
"""

import ml_collections

from configs.sweeps import fashion_mnist_noise

ALPHAS = (0.0, 1e-3, 1e-2, 0.1, 0.3)


def get_config():
    """CE plus TCE at each alpha, at noise 0 and 0.4."""
    config = ml_collections.ConfigDict()
    config.base_config = fashion_mnist_noise.BASE_CONFIG
    config.overrides = fashion_mnist_noise.PROTOCOL
    config.datasets = ("fashion_mnist",)
    config.noise_kinds = ("symmetric",)
    config.noise_rates = (0.0, 0.4)
    config.losses = (
        {"name": "ce"},
        *({"name": "tce", "alpha": alpha} for alpha in ALPHAS),
    )
    config.seeds = (0, 1, 2)
    config.jobs = 0
    return config
