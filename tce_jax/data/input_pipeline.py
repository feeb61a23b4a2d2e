"""tfds input pipelines with deterministic label noise, feeding sharded global batches.

`create_datasets(config, mesh=mesh, workdir=workdir)` loads the train and test
splits of one of `DATASETS` with tensorflow-datasets into host memory,
optionally keeps a deterministic subset of the train split, corrupts its
labels once with `noise.corrupt_labels` and the config seed's "noise" key,
holds out a validation part (noisy labels, like train; test stays clean), and
saves every label array to `workdir/labels.npz` (`source_index` maps an
example's index, its position in the corrupted train split, back to tfds).

The host only gathers: a batch is the uint8 images, labels and example indices
of its examples (and, for evaluation, a padding mask), cut in a background
thread that keeps two global batches ready; crops, flips and normalisation run
on the device inside the jitted steps (`Datasets.preprocessing`,
`tce_jax.data.preprocessing`). Epoch e's order is drawn from (the seed's "shuffle"
stream, e) alone, augmentation from (the "augment" stream, epoch, example
index), and each process builds the rows its own devices hold (`process_rows`),
so the global batch is the same for every process count and device layout, and
a resumed or rescaled run sees exactly the same data. In full:
docs/data_and_noise.md, "Reproducible batches".

The config is trusted: `config_validation.validate` checked it at launch. The
dataset table is `tce_jax.data.dataset_info`, loading it `tce_jax.data.tfds_data`, the
background thread `tce_jax.data.prefetch`; `DATASETS`, `load_split` and `prepare`
are re-exported here.
"""

import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any

import jax
import numpy as np

from tce_jax import seeding
from tce_jax.data import batches, preprocessing
from tce_jax.data.batches import DATA_AXIS, PADDING_INDEX, Batch, process_rows
from tce_jax.data.dataset_info import DATASETS, DatasetInfo
from tce_jax.data.splits import DataSizeError, Splits, make_splits
from tce_jax.data.tfds_data import load_split, prepare

__all__ = [
    "DATASETS",
    "DATA_AXIS",
    "EVAL_SPLITS",
    "PADDING_INDEX",
    "DataSizeError",
    "DatasetInfo",
    "Datasets",
    "build_datasets",
    "create_datasets",
    "load_split",
    "prepare",
    "process_rows",
]

EVAL_SPLITS = ("train", "val", "heldout", "test")


def create_datasets(
    config: Any,
    *,
    mesh: jax.sharding.Mesh,
    workdir: str | None = None,
    batch_size: int | None = None,
) -> "Datasets":
    """Loads the configured dataset, corrupts its train labels and sets up batching.

    Args:
      config: the run config (reads config.seed, config.data.*, config.noise.*).
      mesh: a `jax.sharding.Mesh` with an axis named "data"; batches are sharded
        over it.
      workdir: if given, `workdir/labels.npz` receives every label array
        (written by process 0).
      batch_size: if given, the run's training batch (config.batch_size),
        checked against the loaded split.

    Returns:
      A `Datasets`.

    Raises:
      DataSizeError: the config's train subset, validation part or batch size
        does not fit the loaded split.
    """
    info = DATASETS[config.data.dataset]
    train_images, train_labels = load_split(info, "train", config.data.data_dir)
    test_images, test_labels = load_split(info, "test", config.data.data_dir)
    datasets = build_datasets(
        config,
        mesh=mesh,
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        labels_dir=workdir if jax.process_index() == 0 else None,
    )
    if batch_size is not None and batch_size > datasets.splits.num_train:
        raise DataSizeError(
            f"config.batch_size: got {batch_size}; allowed: at most the "
            f"{datasets.splits.num_train} training examples (an epoch needs one "
            "full batch)"
        )
    return datasets


def build_datasets(
    config: Any,
    *,
    mesh: jax.sharding.Mesh,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    labels_dir: str | None = None,
) -> "Datasets":
    """`create_datasets` on splits already in memory (tests and benchmarks).

    Args:
      config: the run config (reads config.seed, config.data.*, config.noise.*).
      mesh: a `jax.sharding.Mesh` with an axis named "data".
      train_images: uint8 [N, H, W, C], the whole tfds train split.
      train_labels: int [N] clean labels.
      test_images: uint8 [M, H, W, C].
      test_labels: int [M].
      labels_dir: if given, `labels_dir/labels.npz` receives every label array.

    Returns:
      A `Datasets`.
    """
    if DATA_AXIS not in mesh.axis_names:
        raise ValueError(
            f"mesh must have an axis named {DATA_AXIS!r}, got axes {mesh.axis_names}"
        )
    info = DATASETS[config.data.dataset]
    augment = config.data.augment
    return Datasets(
        splits=make_splits(
            config,
            train_images=train_images,
            train_labels=train_labels,
            test_images=test_images,
            test_labels=test_labels,
            labels_dir=labels_dir,
        ),
        mesh=mesh,
        preprocessing=preprocessing.Preprocessing(
            mean=info.mean,
            std=info.std,
            crop_padding=info.crop_padding if augment else 0,
            random_flip=info.random_flip and augment,
            seed=config.seed,
            platform=mesh.devices.flat[0].platform,
        ),
    )


@dataclasses.dataclass(frozen=True)
class Datasets:
    """A run's splits (`splits.Splits`) served as sharded global batches.

    The splits' facts read through: ``info``, ``noise``, ``clean_labels``,
    ``source_index``, ``train_index``, ``val_index``, ``heldout_index``,
    ``num_train``, ``num_val``, ``num_heldout``, ``num_test``,
    ``realised_noise_rate`` and ``save_labels`` are ``splits``'.

    Attributes:
      splits: the `Splits`.
      mesh: the mesh whose axis "data" the batches are sharded over.
      preprocessing: the `preprocessing.Preprocessing` the train and eval steps
        apply to the uint8 images of these batches (the dataset's
        normalisation, and its crop/flip when the config augments).
    """

    splits: Splits
    mesh: jax.sharding.Mesh
    preprocessing: preprocessing.Preprocessing

    def __getattr__(self, name: str) -> Any:
        # Only called for names Datasets lacks: the splits' facts.
        if name == "splits":
            raise AttributeError(name)
        return getattr(self.splits, name)

    def steps_per_epoch(self, batch_size: int) -> int:
        """Full global batches per epoch (the remainder is dropped)."""
        return self.num_train // batch_size

    def train_order(self, epoch: int) -> np.ndarray:
        """Example indices in the order epoch `epoch` visits them (all of train)."""
        _check_epoch(epoch)
        keys = seeding.numpy_generator(self.splits.order_seed, epoch).random(
            self.num_train
        )
        return self.train_index[np.argsort(keys, kind="stable")]

    def train_batches(
        self, epoch: int, batch_size: int
    ) -> Iterator[dict[str, jax.Array]]:
        """Global training batches of one epoch, sharded over the mesh axis "data".

        Args:
          epoch: epoch number (>= 0); with the config seed it fixes the order
            (and, on the device, the augmentation: pass the same epoch to the
            train step).
          batch_size: global batch size, a multiple of the "data" axis size,
            at most the training examples.

        Yields:
          `steps_per_epoch(batch_size)` dicts of jax.Arrays: image uint8
          [B, H, W, C] (as stored: `preprocessing.train_images` augments and
          normalises them), label int32 (noisy), clean_label int32, index int32.
        """
        _check_epoch(epoch)
        self._check_batch_size(batch_size)
        if batch_size > self.num_train:
            raise ValueError(
                f"batch_size={batch_size} exceeds the {self.num_train} training "
                "examples: an epoch would have no step"
            )
        order = self.train_order(epoch)
        splits = self.splits
        local = batches.train_rows(
            order,
            batch_size,
            rows=process_rows(self.mesh, batch_size, jax.process_index()),
            images=splits.images,
            labels=splits.noise.labels,
            clean_labels=splits.clean_labels,
        )
        return batches.global_batches(self.mesh, local, batch_size)

    def eval_batches(
        self, split: str, batch_size: int
    ) -> Iterator[dict[str, jax.Array]]:
        """Global evaluation batches of a whole split, padded, without augmentation.

        Args:
          split: "train", "val", "heldout" or "test".
          batch_size: global batch size (same constraints as for training).

        Yields:
          ceil(n / batch_size) dicts of jax.Arrays: image uint8 [B, H, W, C]
          (`preprocessing.eval_images` normalises them; zero on padding rows),
          label int32 (noisy for train, val and heldout, clean for test), clean_label
          int32, is_noisy bool, mask bool (False on padding rows of the last
          batch), index int32 (`PADDING_INDEX` on padding rows).
        """
        if split not in EVAL_SPLITS:
            raise ValueError(f"split must be one of {EVAL_SPLITS}, got {split!r}")
        self._check_batch_size(batch_size)
        local = self.local_eval_batches(
            split, batch_size, rows=self._local_rows(batch_size)
        )
        return self.global_batches(local, batch_size)

    def global_batches(
        self, local_batches: Iterable[Batch], batch_size: int
    ) -> Iterator[dict[str, jax.Array]]:
        """Global batches from this process's rows (`batches.global_batches`)."""
        return batches.global_batches(self.mesh, local_batches, batch_size)

    def local_train_batches(
        self, epoch: int, batch_size: int, *, rows: np.ndarray
    ) -> Iterator[Batch]:
        """Rows ``rows`` of every global training batch, as numpy arrays.

        `train_batches` is this with this process's rows (`process_rows`); tests
        pass other processes' rows to emulate a multi-process run.
        """
        return batches.train_rows(
            self.train_order(epoch),
            batch_size,
            rows=rows,
            images=self.splits.images,
            labels=self.noise.labels,
            clean_labels=self.clean_labels,
        )

    def local_eval_batches(
        self, split: str, batch_size: int, *, rows: np.ndarray
    ) -> Iterator[Batch]:
        """Rows ``rows`` of every global evaluation batch, as numpy arrays."""
        splits = self.splits
        if split == "test":
            return batches.eval_rows(
                np.arange(splits.num_test),
                batch_size,
                rows=rows,
                images=splits.test_images,
                labels=splits.test_labels,
                clean_labels=None,
            )
        if split not in EVAL_SPLITS:
            raise ValueError(f"split must be one of {EVAL_SPLITS}, got {split!r}")
        indices = {
            "train": splits.train_index,
            "val": splits.val_index,
            "heldout": splits.heldout_index,
        }[split]
        return batches.eval_rows(
            indices,
            batch_size,
            rows=rows,
            images=splits.images,
            labels=splits.noise.labels,
            clean_labels=splits.clean_labels,
        )

    def _check_batch_size(self, batch_size: int) -> None:
        num_devices = self.mesh.shape[DATA_AXIS]
        if not _is_int(batch_size) or batch_size <= 0 or batch_size % num_devices:
            raise ValueError(
                f"batch_size={batch_size!r} must be a positive multiple of the "
                f"{num_devices} devices (the device count)"
            )

    def _local_rows(self, batch_size: int) -> np.ndarray:
        return process_rows(self.mesh, batch_size, jax.process_index())


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _check_epoch(epoch: int) -> None:
    if not _is_int(epoch) or epoch < 0:
        raise ValueError(f"epoch must be an int >= 0, got {epoch!r}")
