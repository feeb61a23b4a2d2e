r"""MNIST, GCE-paper protocol, ResNet-18 (accelerator-sized).

  python3 launch.py --config=configs/mnist.py --workdir=runs/mnist \
      --config.loss.name=tce --config.noise.rate=0.4

Same protocol as Fashion-MNIST (the default), on MNIST. Baselines take the
settings published for MNIST unless set (e.g. SCE alpha 0.01 beta 1, NCE+RCE
1 / 10, PHuber-CE tau 10; docs/losses.md, "Settings per dataset").
"""

from configs import default


def get_config():
    """MNIST under the GCE-paper protocol."""
    config = default.get_config()
    config.data.dataset = "mnist"
    config.model.name = "resnet18"
    return config
