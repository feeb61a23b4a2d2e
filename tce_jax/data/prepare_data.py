"""Prepares a dataset for tce_jax once, so that training runs need no network.

Offline Fashion-MNIST (from Debian's `dataset-fashion-mnist` IDX files, checked
for 60,000 / 10,000 examples and 6,000 / 1,000 per class):

    python3 -m tce_jax.data.prepare_data --dataset=fashion_mnist

The other datasets (mnist, cifar10, cifar100, svhn_cropped) are downloaded by
tfds, which needs internet access once; `--data_dir` picks the tfds data
directory (default: TFDS_DATA_DIR or ~/tensorflow_datasets). Runs at once on
one data dir prepare it once: the others wait for the first and reuse what it
built (``tfds_data.prepare``).
"""

import os
import sys

# TensorFlow (under tfds) only builds the dataset: keep its C++ start-up
# chatter off stderr, so that an error is the one line below it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags

from tce_jax import run_files
from tce_jax.data import tfds_data
from tce_jax.data.dataset_info import DATASETS

_DATASET = flags.DEFINE_enum(
    "dataset",
    "fashion_mnist",
    sorted(DATASETS),
    "Dataset to prepare.",
)
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "tfds data directory (default: the tfds default)."
)


def main(argv: list[str]) -> int:
    del argv  # No positional arguments.
    data_dir = _DATA_DIR.value
    problem = run_files.not_a_directory(
        "data_dir",
        data_dir,
        "a directory (created if missing) or no flag for the tfds default",
    )
    if problem:
        print(f"prepare_data: {problem}", file=sys.stderr)
        return 2
    try:
        builder = tfds_data.prepare(_DATASET.value, data_dir)
    except RuntimeError as error:  # tfds_data's message says what to do.
        print(f"prepare_data: {error}", file=sys.stderr)
        return 1
    splits = ", ".join(
        f"{name}: {split.num_examples}" for name, split in builder.info.splits.items()
    )
    print(f"{_DATASET.value}: tfds {builder.name} in {builder.data_dir} ({splits})")
    return 0


if __name__ == "__main__":
    app.run(main)
