r"""CIFAR-10, GCE-paper protocol: ResNet-34 (accelerator-sized).

  python3 launch.py --config=configs/cifar10.py --workdir=runs/cifar10 \
      --config.loss.name=tce --config.noise.rate=0.4

docs/losses.md: ResNet-34, SGD lr 0.01, momentum 0.9, wd 1e-4, batch 128,
120 epochs, lr /10 at 40 and 80, random crop + flip, 10% noisy validation to
select the epoch. Published CE at 40% symmetric noise: 81.88%. Baselines
take the settings published for CIFAR-10 (the registry defaults), unless set.
"""

from configs import default


def get_config():
    """CIFAR-10 under the GCE-paper protocol."""
    config = default.get_config()
    config.data.dataset = "cifar10"
    config.model.name = "resnet34"
    return config
