r"""Fashion-MNIST on CPU: ResNet-8 on a 10,000-image subset, 12 epochs.

  python3 launch.py --config=configs/cpu_fashion_mnist.py \
      --workdir=runs/cpu_fashion_mnist --config.loss.name=tce --config.noise.rate=0.4

The GCE-paper protocol (default.py) scaled down to finish in minutes on two
CPU cores: ResNet-8 instead of ResNet-18, 10,000 training images (9,000 train
+ 1,000 noisy validation), 12 epochs with the learning rate /10 at epochs 6
and 9 (the protocol's 1/3 and 2/3 points), a larger learning rate for the
shorter run. The full test set is evaluated after every epoch.
"""

from configs import default


def get_config():
    """Fashion-MNIST sized for a 2-core CPU."""
    config = default.get_config()
    config.data.dataset = "fashion_mnist"
    config.data.train_subset = 10_000
    config.model.name = "resnet8"
    config.optimizer.learning_rate = 0.05
    config.schedule.decay_epochs = (6, 9)
    config.num_epochs = 12
    config.log_every_steps = 20
    return config
