r"""SVHN (cropped digits), GCE-paper protocol: ResNet-34 (accelerator-sized).

  python3 launch.py --config=configs/svhn.py --workdir=runs/svhn \
      --config.loss.name=tce --config.noise.rate=0.4

The CIFAR protocol of cifar10.py applied to SVHN's 73,257 training digits
(the extra split is not used). No baseline has a published SVHN setting;
unless set, each takes its CIFAR-10 one (why: docs/losses.md, "Settings per
dataset").
"""

from configs import default


def get_config():
    """SVHN under the GCE-paper protocol."""
    config = default.get_config()
    config.data.dataset = "svhn_cropped"
    config.model.name = "resnet34"
    return config
