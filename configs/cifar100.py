r"""CIFAR-100, GCE-paper protocol: ResNet-34 (accelerator-sized).

  python3 launch.py --config=configs/cifar100.py --workdir=runs/cifar100 \
      --config.loss.name=tce --config.loss.alpha=0.01 --config.noise.rate=0.4

Same protocol as cifar10.py. Published CE at 40% symmetric noise: 48.20%.
For TCE pass alpha = 1/K = 0.01 (the default, losses.DEFAULT_TCE_ALPHA = 0.1,
is 1/K for the 10-class datasets).
"""

from configs import default


def get_config():
    """CIFAR-100 under the GCE-paper protocol."""
    config = default.get_config()
    config.data.dataset = "cifar100"
    config.model.name = "resnet34"
    return config
