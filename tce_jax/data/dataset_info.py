"""The datasets the project trains on: what the pipeline needs to know of each.

A plain table, free of TensorFlow, so that checking a config
(``tce_jax.training.config_validation``) does not load tfds;
``tce_jax.data.tfds_data`` loads the data itself.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What the pipeline needs to know about a dataset.

    Attributes:
      name: the project's name for the dataset (a key of `DATASETS`).
      tfds_name: the tfds builder that provides it when downloading.
      num_classes: number of classes K.
      image_shape: (height, width, channels).
      mean: per-channel mean of the train images, on the [0, 1] scale.
      std: per-channel standard deviation of the train images, [0, 1] scale.
      crop_padding: zero padding on each side before a random crop back to
        `image_shape` (0 = no crop).
      random_flip: whether training images are mirrored left-right with
        probability 1/2.
    """

    name: str
    tfds_name: str
    num_classes: int
    image_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int
    random_flip: bool


# Means and standard deviations are the usual per-channel statistics of each
# train split. Pad-4 crops for all; flips only for CIFAR, the usual protocols
# (a mirrored digit is not the same digit, and the label-noise literature trains
# Fashion-MNIST without flips too).
DATASETS = {
    info.name: info
    for info in (
        DatasetInfo(
            name="mnist",
            tfds_name="mnist",
            num_classes=10,
            image_shape=(28, 28, 1),
            mean=(0.1307,),
            std=(0.3081,),
            crop_padding=4,
            random_flip=False,
        ),
        DatasetInfo(
            name="fashion_mnist",
            tfds_name="fashion_mnist",
            num_classes=10,
            image_shape=(28, 28, 1),
            mean=(0.2860,),
            std=(0.3530,),
            crop_padding=4,
            random_flip=False,
        ),
        DatasetInfo(
            name="cifar10",
            tfds_name="cifar10",
            num_classes=10,
            image_shape=(32, 32, 3),
            mean=(0.4914, 0.4822, 0.4465),
            std=(0.2470, 0.2435, 0.2616),
            crop_padding=4,
            random_flip=True,
        ),
        DatasetInfo(
            name="cifar100",
            tfds_name="cifar100",
            num_classes=100,
            image_shape=(32, 32, 3),
            mean=(0.5071, 0.4865, 0.4409),
            std=(0.2673, 0.2564, 0.2762),
            crop_padding=4,
            random_flip=True,
        ),
        DatasetInfo(
            name="svhn_cropped",
            tfds_name="svhn_cropped",
            num_classes=10,
            image_shape=(32, 32, 3),
            mean=(0.4377, 0.4438, 0.4728),
            std=(0.1980, 0.2010, 0.1970),
            crop_padding=4,
            random_flip=False,
        ),
    )
}
