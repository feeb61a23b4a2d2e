r"""Smoke check on CPU: Fashion-MNIST, 3 epochs, well under a minute on 2 cores.

  python3 launch.py --config=configs/cpu_smoke.py --workdir=/tmp/tce_smoke

A tiny ResNet-8 (half width) on a 2,560-image subset of the noisy training
split (10% of it held out as noisy validation), evaluated on the full test set
after every epoch. Checks that everything runs end to end; the accuracy it
reaches says nothing about the losses.
"""

from configs import default


def get_config():
    """The default config shrunk to a one-minute CPU run."""
    config = default.get_config()
    config.data.train_subset = 2560
    config.model.name = "resnet8"
    config.model.width_multiplier = 0.5
    config.optimizer.learning_rate = 0.05
    config.schedule.name = "constant"
    config.num_epochs = 3
    config.log_every_steps = 6
    return config
