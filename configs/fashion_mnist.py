r"""Fashion-MNIST, GCE-paper protocol, ResNet-18 (accelerator-sized).

  python3 launch.py --config=configs/fashion_mnist.py --workdir=runs/fashion_mnist \
      --config.loss.name=tce --config.noise.rate=0.4

The protocol is the default's (SGD 0.01, momentum 0.9, wd 1e-4, batch 128,
120 epochs, lr /10 at 40 and 80, 10% noisy validation). Baselines take the
Fashion-MNIST settings unless set: GCE's published q = 0.7, and for the others,
which published none, their CIFAR-10 settings (why: docs/losses.md, "Settings
per dataset").
"""

from configs import default


def get_config():
    """Fashion-MNIST under the GCE-paper protocol."""
    config = default.get_config()
    config.data.dataset = "fashion_mnist"
    config.model.name = "resnet18"
    return config
