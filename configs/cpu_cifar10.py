r"""CIFAR-10 on CPU: ResNet-20 on a 10,000-image subset, 12 epochs.

  python3 launch.py --config=configs/cpu_cifar10.py --workdir=runs/cpu_cifar10 \
      --config.loss.name=tce --config.noise.rate=0.4

The cifar10.py protocol scaled down for two CPU cores: ResNet-20 instead of
ResNet-34, 10,000 training images (10% noisy validation), 12 epochs with the
learning rate /10 at epochs 6 and 9. Expect accuracies far below the
published full-protocol numbers; use it to compare losses side by side, not
against the literature. tfds downloads CIFAR-10 when online.
"""

from configs import cifar10


def get_config():
    """CIFAR-10 sized for a 2-core CPU."""
    config = cifar10.get_config()
    config.data.train_subset = 10_000
    config.model.name = "resnet20"
    config.optimizer.learning_rate = 0.05
    config.schedule.decay_epochs = (6, 9)
    config.num_epochs = 12
    config.log_every_steps = 20
    return config
