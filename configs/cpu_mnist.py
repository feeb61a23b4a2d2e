r"""MNIST on CPU: ResNet-8 on a 10,000-image subset, 12 epochs.

  python3 launch.py --config=configs/cpu_mnist.py --workdir=runs/cpu_mnist \
      --config.loss.name=tce --config.noise.rate=0.4

cpu_fashion_mnist.py's schedule on MNIST (needs tfds to have MNIST, which it
downloads when online).
"""

from configs import cpu_fashion_mnist


def get_config():
    """MNIST sized for a 2-core CPU."""
    config = cpu_fashion_mnist.get_config()
    config.data.dataset = "mnist"
    return config
