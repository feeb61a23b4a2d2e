"""Prepares a dataset for tce_jax once, so that training runs need no network.

Offline Fashion-MNIST (from Debian's `dataset-fashion-mnist` IDX files, checked
for 60,000 / 10,000 examples and 6,000 / 1,000 per class):

    python3 -m tce_jax.prepare_data --dataset=fashion_mnist

The other datasets (mnist, cifar10, cifar100, svhn_cropped) are downloaded by
tfds, which needs internet access once; `--data_dir` picks the tfds data
directory (default: TFDS_DATA_DIR or ~/tensorflow_datasets).
"""

from absl import app, flags

from tce_jax import tfds_data
from tce_jax.dataset_info import DATASETS

_DATASET = flags.DEFINE_enum(
    "dataset",
    "fashion_mnist",
    sorted(DATASETS),
    "Dataset to prepare.",
)
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "tfds data directory (default: the tfds default)."
)


def main(argv):
    del argv  # No positional arguments.
    builder = tfds_data.prepare(_DATASET.value, _DATA_DIR.value)
    splits = ", ".join(
        f"{name}: {split.num_examples}" for name, split in builder.info.splits.items()
    )
    print(f"{_DATASET.value}: tfds {builder.name} in {builder.data_dir} ({splits})")


if __name__ == "__main__":
    app.run(main)
