r"""CIFAR-100, GCE-paper protocol: ResNet-34 (accelerator-sized).

  python3 launch.py --config=configs/cifar100.py --workdir=runs/cifar100 \
      --config.noise.rate=0.4
  python3 launch.py --config=configs/cifar100.py:gce --workdir=runs/cifar100_gce \
      --config.noise.rate=0.4

Same protocol as cifar10.py. Published CE at 40% symmetric noise: 48.20%.
The loss is named after the colon (default tce). TCE's alpha follows the rule
alpha = 1/K (losses.default_tce_alpha), 0.01 here: the config sets it because
the registry's default, losses.DEFAULT_TCE_ALPHA = 0.1, is the rule for 10
classes. Other losses get their own defaults (sce, nce_rce and nce_mae have
an alpha of their own, so the TCE value is not carried over to them).
"""

from configs import default
from tce_jax import losses

NUM_CLASSES = 100


def get_config(loss_name: str = "tce"):
    """CIFAR-100 under the GCE-paper protocol; TCE at alpha = 1/100."""
    config = default.get_config()
    config.data.dataset = "cifar100"
    config.model.name = "resnet34"
    config.loss = default.loss_config(loss_name)
    if loss_name == "tce":
        config.loss.alpha = losses.default_tce_alpha(NUM_CLASSES)
    return config
