"""Offline Fashion-MNIST: a tfds builder over Debian's `dataset-fashion-mnist` files.

Debian installs the original IDX files in /usr/share/datasets/fashion-mnist/.
They are recompressed, so their checksums differ from the ones tfds registers
for its own `fashion_mnist` builder; rather than touch the installed tfds, this
module registers a builder of the project's own, `fashion_mnist_debian`, that
reads those files directly (no download manager, no network) and produces the
same features as tfds' `fashion_mnist`: a 28x28x1 uint8 `image` and a 10-class
`label`. Preparing checks the split sizes (60,000 / 10,000) and the class
balance (6,000 / 1,000 per class) before writing anything.

Prepare it once with `python3 -m tce_jax.data.prepare_data --dataset=fashion_mnist`.
"""

import gzip
import os
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
INSTALL_HINT = "sudo apt-get install dataset-fashion-mnist"

CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
# tfds split name -> (IDX file prefix, examples, examples per class).
SPLITS = {"train": ("train", 60_000, 6_000), "test": ("t10k", 10_000, 1_000)}
_IMAGE_SIDE = 28
_IDX_IMAGES_MAGIC = 2051
_IDX_LABELS_MAGIC = 2049


def idx_paths(split, source_dir=None):
    """Returns the (images, labels) IDX .gz paths of a tfds split name."""
    source_dir = source_dir or DEBIAN_DIR
    prefix = SPLITS[split][0]
    return (
        os.path.join(source_dir, f"{prefix}-images-idx3-ubyte.gz"),
        os.path.join(source_dir, f"{prefix}-labels-idx1-ubyte.gz"),
    )


def is_available(source_dir=None):
    """Whether every IDX file of both splits is in `source_dir` (default DEBIAN_DIR)."""
    return all(
        os.path.isfile(path)
        for split in SPLITS
        for path in idx_paths(split, source_dir)
    )


def read_split(split, source_dir=None):
    """Reads and checks one split from the IDX files.

    Args:
      split: "train" or "test".
      source_dir: directory holding the four IDX .gz files (default DEBIAN_DIR).

    Returns:
      (images uint8 [N, 28, 28, 1], labels int64 [N]) in the files' order.

    Raises:
      ValueError: if a file is malformed or the split has the wrong number of
        examples or an unbalanced class.
    """
    _, expected_examples, expected_per_class = SPLITS[split]
    images_path, labels_path = idx_paths(split, source_dir)
    images = _read_idx(images_path, _IDX_IMAGES_MAGIC, header_ints=4)
    labels = _read_idx(labels_path, _IDX_LABELS_MAGIC, header_ints=2)
    images = images.reshape(-1, _IMAGE_SIDE, _IMAGE_SIDE, 1)
    per_class = np.bincount(labels, minlength=len(CLASS_NAMES))
    if (
        images.shape[0] != expected_examples
        or labels.shape[0] != expected_examples
        or per_class.shape[0] != len(CLASS_NAMES)
        or np.any(per_class != expected_per_class)
    ):
        raise ValueError(
            f"Fashion-MNIST {split} in {images_path} should have {expected_examples} "
            f"images and labels with {expected_per_class} per class; found "
            f"{images.shape[0]} images, {labels.shape[0]} labels, per class "
            f"{per_class.tolist()}. Reinstall with `{INSTALL_HINT}`."
        )
    return images, labels.astype(np.int64)


def _read_idx(path, magic, header_ints):
    with gzip.open(path, "rb") as stream:
        content = stream.read()
    header = np.frombuffer(content, dtype=">u4", count=header_ints)
    if header[0] != magic:
        raise ValueError(f"{path} is not an IDX file (magic {header[0]} != {magic})")
    data = np.frombuffer(content, dtype=np.uint8, offset=4 * header_ints)
    expected_size = int(np.prod(header[1:], dtype=np.int64))
    if data.size != expected_size:
        raise ValueError(
            f"{path} holds {data.size} bytes of data, its header promises "
            f"{expected_size}"
        )
    return data


class FashionMnistDebian(tfds.core.GeneratorBasedBuilder):
    """Fashion-MNIST read from Debian's IDX files, with tfds' feature spec."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {
        "1.0.0": "Debian's dataset-fashion-mnist IDX files."
    }

    def _info(self):
        return self.dataset_info_from_configs(
            description="Fashion-MNIST from Debian's dataset-fashion-mnist package.",
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(_IMAGE_SIDE, _IMAGE_SIDE, 1)),
                    "label": tfds.features.ClassLabel(names=CLASS_NAMES),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://github.com/zalandoresearch/fashion-mnist",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # The files are local; nothing to download.
        if not is_available():
            raise FileNotFoundError(
                f"Fashion-MNIST IDX files not found in {DEBIAN_DIR}; install "
                f"them with `{INSTALL_HINT}`."
            )
        return {split: self._generate_examples(split) for split in SPLITS}

    def _generate_examples(self, split):
        images, labels = read_split(split)
        for index, (image, label) in enumerate(zip(images, labels, strict=True)):
            yield index, {"image": image, "label": int(label)}
