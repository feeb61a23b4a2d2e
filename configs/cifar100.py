r"""CIFAR-100, GCE-paper protocol: ResNet-34 (accelerator-sized).

  python3 launch.py --config=configs/cifar100.py --workdir=runs/cifar100 \
      --config.noise.rate=0.4
  python3 launch.py --config=configs/cifar100.py --workdir=runs/cifar100_sce \
      --config.loss.name=sce --config.noise.rate=0.4

Same protocol as cifar10.py. Published CE at 40% symmetric noise: 48.20%.
Loss hyperparameters left unset take CIFAR-100's settings
(tce_jax/training/config.py's loss_hparams, from losses.defaults(name, "cifar100")):
TCE's alpha follows the rule alpha = 1/K, 0.01 here, and each baseline gets
the setting its authors published for CIFAR-100 (SCE alpha 6 beta 0.1,
NCE+RCE 10 / 0.1, NCE+MAE 10 / 1, ...; docs/losses.md). Values set on the
command line win. The loss may also be named after the colon
(``--config=configs/cifar100.py:gce``); the default is tce.
"""

from configs import default


def get_config(loss_name: str = "tce"):
    """CIFAR-100 under the GCE-paper protocol."""
    config = default.get_config()
    config.data.dataset = "cifar100"
    config.model.name = "resnet34"
    config.loss = default.loss_config(loss_name)
    return config
