"""Which example goes where: the corrupted train split, its parts, the test split.

``make_splits`` keeps a deterministic subset of the tfds train split,
corrupts its labels once with ``noise.corrupt_labels`` and the config seed's
"noise" key, holds out a validation part (noisy labels, like train; test stays
clean) and, under cross-fitting, a held-out fold. An example's index is its
position in the corrupted train split; ``source_index`` maps it back to tfds.
``Splits.save_labels`` writes every label array to ``labels.npz``. Every
draw comes from its own named stream of the config seed (``seeding``).

What only the loaded data can tell, whether the config's train subset and
validation part fit the split, is checked here, once, as the split is made
(``DataSizeError``).
"""

import dataclasses
import os
from typing import Any

import numpy as np

from tce_jax import noise, run_files, seeding
from tce_jax.data import preprocessing
from tce_jax.data.dataset_info import DATASETS, DatasetInfo


class DataSizeError(ValueError):
    """The config asks more of the data than the loaded split holds; one line,
    ``config.<field>: got <value>; allowed: ...`` as the validator's."""


@dataclasses.dataclass(frozen=True)
class Splits:
    """The corrupted train split, its validation part and the clean test split.

    Attributes:
      info: the `DatasetInfo`.
      images: uint8 [N, H, W, C], the corrupted train split by example index.
      clean_labels: int32 [N] clean labels of the corrupted train split.
      noise: `NoisyLabels` over the whole corrupted train split (train + val),
        indexed by example index.
      source_index: int64 [N], tfds train-split position of each example index.
      train_index, val_index: sorted example indices of the two parts.
      heldout_index: sorted example indices of the held-out fold (empty unless
        config.data.holdout_folds is set): noisy-labelled training examples
        the run does not train on, predicted out of sample.
      test_images: uint8 [M, H, W, C].
      test_labels: int32 [M].
      order_seed: the seed of each epoch's order of the training examples (the
        config seed's "shuffle" stream).
    """

    info: DatasetInfo
    images: np.ndarray
    clean_labels: np.ndarray
    noise: noise.NoisyLabels
    source_index: np.ndarray
    train_index: np.ndarray
    val_index: np.ndarray
    heldout_index: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    order_seed: int

    @property
    def num_train(self) -> int:
        return len(self.train_index)

    @property
    def num_val(self) -> int:
        return len(self.val_index)

    @property
    def num_heldout(self) -> int:
        return len(self.heldout_index)

    @property
    def num_test(self) -> int:
        return len(self.test_labels)

    @property
    def realised_noise_rate(self) -> float:
        """Fraction of train (not val) examples whose label changed."""
        return float(self.noise.is_noisy[self.train_index].mean())

    def label_arrays(self) -> dict[str, np.ndarray]:
        """What ``labels.npz`` holds.

        Keys: clean_labels, noisy_labels, is_noisy (all [N], by example index),
        train_index, val_index, heldout_index (example indices),
        transition_matrix (realised, [K, K], rows = clean class), rate
        (realised over train + val), source_index (tfds train-split position
        of each example index).
        """
        return {
            "clean_labels": self.clean_labels,
            "noisy_labels": self.noise.labels,
            "is_noisy": self.noise.is_noisy,
            "train_index": self.train_index,
            "val_index": self.val_index,
            "heldout_index": self.heldout_index,
            "transition_matrix": self.noise.transition_matrix,
            "rate": np.float64(self.noise.rate),
            "source_index": self.source_index,
        }

    def save_labels(self, workdir: str) -> None:
        """Writes workdir/labels.npz (``label_arrays``; atomically: a resumed
        run rewrites it)."""
        os.makedirs(workdir, exist_ok=True)
        run_files.write_npz_atomically(
            os.path.join(workdir, run_files.LABELS_FILE), **self.label_arrays()
        )


def make_splits(
    config: Any,
    *,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    labels_dir: str | None = None,
) -> Splits:
    """The splits of a run, from the dataset's splits in memory.

    Args:
      config: the run config (reads config.seed, config.data.*, config.noise.*).
      train_images: uint8 [N, H, W, C], the whole tfds train split.
      train_labels: int [N] clean labels.
      test_images: uint8 [M, H, W, C].
      test_labels: int [M].
      labels_dir: if given, ``labels_dir/labels.npz`` receives every label
        array (``Splits.save_labels``).

    Raises:
      DataSizeError: the train subset or the validation part does not fit.
    """
    info = DATASETS[config.data.dataset]
    data = config.data
    num_source = len(train_labels)
    subset_size = data.train_subset or num_source
    if subset_size > num_source:
        raise DataSizeError(
            f"config.data.train_subset: got {subset_size}; allowed: at most the "
            f"{num_source} examples of the {info.name} train split (0: all of them)"
        )
    num_val = data.validation_examples or round(data.validation_fraction * subset_size)
    if num_val >= subset_size:
        raise DataSizeError(
            f"config.data.validation_fraction: got {data.validation_fraction}; "
            f"allowed: a fraction that leaves training examples out of "
            f"{subset_size} (it holds out {num_val}; "
            f"validation_examples={data.validation_examples})"
        )
    # Every draw, each from its own stream of the config seed: the subset, then
    # the validation part ("split"), the folds, the epochs' order, the noise.
    split_rng = seeding.numpy_generator(seeding.purpose_seed(config.seed, "split"))
    source_index = np.sort(seeding.uniform_choice(split_rng, num_source, subset_size))
    val_index = np.sort(seeding.uniform_choice(split_rng, subset_size, num_val))
    train_index = np.setdiff1d(np.arange(subset_size), val_index)
    heldout_index = np.zeros(0, dtype=train_index.dtype)
    if data.holdout_folds:
        # Cross-fitting: the training examples (noisy labels as below) split
        # into holdout_folds folds; this run trains on all but one and predicts it.
        fold_rng = seeding.numpy_generator(seeding.purpose_seed(config.seed, "folds"))
        order = seeding.uniform_choice(fold_rng, len(train_index), len(train_index))
        folds = np.array_split(train_index[order], data.holdout_folds)
        heldout_index = np.sort(folds[data.holdout_fold])
        train_index = np.setdiff1d(train_index, heldout_index)
    order_seed = seeding.purpose_seed(config.seed, "shuffle")
    noise_key = seeding.purpose_key(config.seed, "noise")
    clean_labels = np.asarray(train_labels, dtype=np.int32)[source_index]
    images = np.asarray(train_images)[source_index]
    noisy = noise.corrupt_labels(
        noise_key,
        clean_labels,
        num_classes=info.num_classes,
        rate=config.noise.rate,
        kind=config.noise.kind,
        transition_matrix=config.noise.transition_matrix,
        # The instance kind projects each image as the model sees it.
        images=(
            preprocessing.normalise_on_host(images, mean=info.mean, std=info.std)
            if config.noise.kind == "instance"
            else None
        ),
    )
    splits = Splits(
        info=info,
        images=images,
        clean_labels=clean_labels,
        noise=noisy,
        source_index=source_index,
        train_index=train_index,
        val_index=val_index,
        heldout_index=heldout_index,
        test_images=np.asarray(test_images),
        test_labels=np.asarray(test_labels, dtype=np.int32),
        order_seed=order_seed,
    )
    if labels_dir is not None:
        os.makedirs(labels_dir, exist_ok=True)
        run_files.write_npz_atomically(
            os.path.join(labels_dir, run_files.LABELS_FILE), **splits.label_arrays()
        )
    return splits
