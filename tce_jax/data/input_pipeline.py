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

import math
import os
from collections.abc import Iterable, Iterator

import jax
import ml_collections
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from tce_jax import noise, run_files, seeding
from tce_jax.data import preprocessing
from tce_jax.data.dataset_info import DATASETS, DatasetInfo
from tce_jax.data.prefetch import prefetch
from tce_jax.data.tfds_data import load_split, prepare
from tce_jax.training import config_validation

__all__ = [
    "DATASETS",
    "DATA_AXIS",
    "EVAL_SPLITS",
    "PADDING_INDEX",
    "DatasetInfo",
    "Datasets",
    "build_datasets",
    "create_datasets",
    "load_split",
    "prepare",
    "process_rows",
]

DATA_AXIS = "data"
EVAL_SPLITS = ("train", "val", "heldout", "test")
PADDING_INDEX = -1
_PREFETCH_BATCHES = 2
# A batch: named arrays, numpy on the host, jax.Arrays once global.
Batch = dict[str, np.ndarray]


# ------------------------------------------------------------------------- datasets


def create_datasets(
    config: ml_collections.ConfigDict,
    *,
    mesh: jax.sharding.Mesh,
    workdir: str | None = None,
) -> "Datasets":
    """Loads the configured dataset, corrupts its train labels and sets up batching.

    Args:
      config: the run config (reads config.seed, config.data.*, config.noise.*).
      mesh: a `jax.sharding.Mesh` with an axis named "data"; batches are sharded
        over it.
      workdir: if given, `workdir/labels.npz` receives every label array.

    Returns:
      A `Datasets`.
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
    )
    if workdir is not None and jax.process_index() == 0:
        datasets.save_labels(workdir)
    return datasets


def build_datasets(
    config: ml_collections.ConfigDict,
    *,
    mesh: jax.sharding.Mesh,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
) -> "Datasets":
    """`create_datasets` on splits already in memory (tests and benchmarks).

    Args:
      config: the run config (reads config.seed, config.data.*, config.noise.*).
      mesh: a `jax.sharding.Mesh` with an axis named "data".
      train_images: uint8 [N, H, W, C], the whole tfds train split.
      train_labels: int [N] clean labels.
      test_images: uint8 [M, H, W, C].
      test_labels: int [M].

    Returns:
      A `Datasets`.
    """
    info = DATASETS[config.data.dataset]
    if DATA_AXIS not in mesh.axis_names:
        raise ValueError(
            f"mesh must have an axis named {DATA_AXIS!r}, got axes {mesh.axis_names}"
        )
    num_source = len(train_labels)
    split_rng = seeding.numpy_generator(seeding.purpose_seed(config.seed, "split"))
    subset_size = config.data.train_subset or num_source
    if subset_size > num_source:
        raise ValueError(
            f"config.data.train_subset={subset_size} exceeds the {num_source} "
            f"examples of the {info.name} train split"
        )
    source_index = np.sort(_uniform_choice(split_rng, num_source, subset_size))
    clean_labels = np.asarray(train_labels, dtype=np.int32)[source_index]
    images = np.asarray(train_images)[source_index]
    noisy = noise.corrupt_labels(
        seeding.purpose_key(config.seed, "noise"),
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
    num_val = config.data.validation_examples or round(
        config.data.validation_fraction * subset_size
    )
    if num_val >= subset_size:
        raise ValueError(
            f"config.data.validation_fraction={config.data.validation_fraction} "
            f"(validation_examples={config.data.validation_examples}) leaves no "
            f"training examples out of {subset_size}"
        )
    val_index = np.sort(_uniform_choice(split_rng, subset_size, num_val))
    train_index = np.setdiff1d(np.arange(subset_size), val_index)
    heldout_index = np.zeros(0, dtype=train_index.dtype)
    if config.data.holdout_folds:
        # Cross-fitting: the training examples (noisy labels as above) split into
        # holdout_folds folds; this run trains on all but one and predicts it.
        fold_rng = seeding.numpy_generator(seeding.purpose_seed(config.seed, "folds"))
        order = _uniform_choice(fold_rng, len(train_index), len(train_index))
        folds = np.array_split(train_index[order], config.data.holdout_folds)
        heldout_index = np.sort(folds[config.data.holdout_fold])
        train_index = np.setdiff1d(train_index, heldout_index)
    return Datasets(
        info=info,
        mesh=mesh,
        seed=config.seed,
        augment=config.data.augment,
        images=images,
        clean_labels=clean_labels,
        noisy=noisy,
        source_index=source_index,
        train_index=train_index,
        val_index=val_index,
        heldout_index=heldout_index,
        test_images=np.asarray(test_images),
        test_labels=np.asarray(test_labels, dtype=np.int32),
    )


class Datasets:
    """The corrupted train split, its validation part and the clean test split.

    Attributes:
      info: the `DatasetInfo`.
      noise: `NoisyLabels` over the whole corrupted train split (train + val),
        indexed by example index.
      num_train, num_val, num_test: split sizes.
      realised_noise_rate: fraction of train (not val) examples whose label
        changed.
      clean_labels: int32 [N] clean labels of the corrupted train split.
      source_index: int64 [N], tfds train-split position of each example index.
      train_index, val_index: sorted example indices of the two parts.
      heldout_index: sorted example indices of the held-out fold (empty unless
        config.data.holdout_folds is set): noisy-labelled training examples
        this run does not train on, predicted out of sample.
      preprocessing: the `preprocessing.Preprocessing` the train and eval steps apply
        to the uint8 images of these batches (the dataset's normalisation, and
        its crop/flip when the config augments).
    """

    def __init__(
        self,
        *,
        info: DatasetInfo,
        mesh: jax.sharding.Mesh,
        seed: int,
        augment: bool,
        images: np.ndarray,
        clean_labels: np.ndarray,
        noisy: noise.NoisyLabels,
        source_index: np.ndarray,
        train_index: np.ndarray,
        val_index: np.ndarray,
        heldout_index: np.ndarray,
        test_images: np.ndarray,
        test_labels: np.ndarray,
    ):
        self.info = info
        self.noise = noisy
        self.clean_labels = clean_labels
        self.source_index = source_index
        self.train_index = train_index
        self.val_index = val_index
        self.heldout_index = heldout_index
        self.num_train = len(train_index)
        self.num_val = len(val_index)
        self.num_heldout = len(heldout_index)
        self.num_test = len(test_labels)
        self.realised_noise_rate = float(noisy.is_noisy[train_index].mean())
        self._mesh = mesh
        self._sharding = NamedSharding(mesh, PartitionSpec(DATA_AXIS))
        self._images = images
        self._test_images = test_images
        self._test_labels = test_labels
        self._shuffle_seed = seeding.purpose_seed(seed, "shuffle")
        self.preprocessing = preprocessing.Preprocessing(
            mean=info.mean,
            std=info.std,
            crop_padding=info.crop_padding if augment else 0,
            random_flip=info.random_flip and augment,
            seed=seed,
            platform=mesh.devices.flat[0].platform,
        )

    def steps_per_epoch(self, batch_size: int) -> int:
        """Full global batches per epoch (the remainder is dropped)."""
        return self.num_train // batch_size

    def train_order(self, epoch: int) -> np.ndarray:
        """Example indices in the order epoch `epoch` visits them (all of train)."""
        _check_epoch(epoch)
        keys = seeding.numpy_generator(self._shuffle_seed, epoch).random(self.num_train)
        return self.train_index[np.argsort(keys, kind="stable")]

    def train_batches(
        self, epoch: int, batch_size: int
    ) -> Iterator[dict[str, jax.Array]]:
        """Global training batches of one epoch, sharded over the mesh axis "data".

        Args:
          epoch: epoch number (>= 0); with the config seed it fixes the order
            (and, on the device, the augmentation: pass the same epoch to the
            train step).
          batch_size: global batch size, a multiple of the "data" axis size.

        Yields:
          `steps_per_epoch(batch_size)` dicts of jax.Arrays: image uint8
          [B, H, W, C] (as stored: `preprocessing.train_images` augments and
          normalises them), label int32 (noisy), clean_label int32, index int32.
        """
        _check_epoch(epoch)
        self._check_batch_size(batch_size)
        config_validation.check_batch_fits(batch_size, self.num_train)
        local = self.local_train_batches(
            epoch, batch_size, rows=self._local_rows(batch_size)
        )
        return self.global_batches(local, batch_size)

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
        self._check_batch_size(batch_size, field="eval_batch_size")
        local = self.local_eval_batches(
            split, batch_size, rows=self._local_rows(batch_size)
        )
        return self.global_batches(local, batch_size)

    def global_batches(
        self, local_batches: Iterable[Batch], batch_size: int
    ) -> Iterator[dict[str, jax.Array]]:
        """Global batches from this process's rows, built `_PREFETCH_BATCHES` ahead.

        Args:
          local_batches: an iterator of dicts of numpy arrays, this process's
            rows of each global batch (`local_*_batches`).
          batch_size: the global batch size.

        Returns:
          An iterator of dicts of jax.Arrays sharded over the mesh axis "data";
          closing it stops the background thread.
        """
        return prefetch(
            (self._to_global(batch, batch_size) for batch in local_batches),
            _PREFETCH_BATCHES,
        )

    def local_train_batches(
        self, epoch: int, batch_size: int, *, rows: np.ndarray
    ) -> Iterator[Batch]:
        """Rows ``rows`` of every global training batch, as numpy arrays.

        `train_batches` is this with this process's rows (`process_rows`); tests
        pass other processes' rows to emulate a multi-process run.
        """
        order = self.train_order(epoch)
        for step in range(self.steps_per_epoch(batch_size)):
            indices = order[step * batch_size : (step + 1) * batch_size][rows]
            yield {
                "image": self._images[indices],
                "label": self.noise.labels[indices],
                "clean_label": self.clean_labels[indices],
                "index": indices.astype(np.int32),
            }

    def local_eval_batches(
        self, split: str, batch_size: int, *, rows: np.ndarray
    ) -> Iterator[Batch]:
        """Rows ``rows`` of every global evaluation batch, as numpy arrays."""
        if split == "test":
            indices = np.arange(self.num_test)
            images, labels, clean = self._test_images, self._test_labels, None
        elif split in ("train", "val", "heldout"):
            indices = {
                "train": self.train_index,
                "val": self.val_index,
                "heldout": self.heldout_index,
            }[split]
            images, labels, clean = self._images, self.noise.labels, self.clean_labels
        else:
            raise ValueError(f"split must be one of {EVAL_SPLITS}, got {split!r}")
        num_batches = math.ceil(len(indices) / batch_size)
        padded = np.full(num_batches * batch_size, PADDING_INDEX, dtype=np.int64)
        padded[: len(indices)] = indices
        for step in range(num_batches):
            batch_indices = padded[step * batch_size : (step + 1) * batch_size][rows]
            mask = batch_indices != PADDING_INDEX
            safe = np.where(mask, batch_indices, 0)
            label = np.where(mask, labels[safe], 0).astype(np.int32)
            clean_label = label if clean is None else np.where(mask, clean[safe], 0)
            image = images[safe]
            image[~mask] = 0
            yield {
                "image": image,
                "label": label,
                "clean_label": clean_label.astype(np.int32),
                "is_noisy": label != clean_label,
                "mask": mask,
                "index": batch_indices.astype(np.int32),
            }

    def save_labels(self, workdir: str) -> None:
        """Writes workdir/labels.npz (atomically: a resumed run rewrites it).

        Keys: clean_labels, noisy_labels, is_noisy (all [N], by example index),
        train_index, val_index, heldout_index (example indices),
        transition_matrix (realised, [K, K], rows = clean class), rate
        (realised over train + val), source_index (tfds train-split position
        of each example index).
        """
        os.makedirs(workdir, exist_ok=True)
        run_files.write_npz_atomically(
            os.path.join(workdir, run_files.LABELS_FILE),
            clean_labels=self.clean_labels,
            noisy_labels=self.noise.labels,
            is_noisy=self.noise.is_noisy,
            train_index=self.train_index,
            val_index=self.val_index,
            heldout_index=self.heldout_index,
            transition_matrix=self.noise.transition_matrix,
            rate=np.float64(self.noise.rate),
            source_index=self.source_index,
        )

    def _check_batch_size(self, batch_size: int, field: str = "batch_size") -> None:
        config_validation.check_batch_size(
            batch_size, self._mesh.shape[DATA_AXIS], field=field
        )

    def _local_rows(self, batch_size: int) -> np.ndarray:
        return process_rows(self._mesh, batch_size, jax.process_index())

    def _to_global(self, local_batch: Batch, batch_size: int) -> dict[str, jax.Array]:
        return {
            name: jax.make_array_from_process_local_data(
                self._sharding, values, (batch_size, *values.shape[1:])
            )
            for name, values in local_batch.items()
        }


def process_rows(
    mesh: jax.sharding.Mesh, global_batch_size: int, process_index: int
) -> np.ndarray:
    """The rows of each global batch that one process's devices hold, in mesh order.

    A global batch is sharded over the mesh axis "data" in equal blocks, block i
    on the devices at position i of that axis (replicated over any other axis).
    A process feeds the blocks of the positions where it has a device, in
    increasing order, which is the order in which
    `jax.make_array_from_process_local_data` takes this process's rows.

    Args:
      mesh: the mesh the batches are sharded over (any device objects with a
        ``process_index``, so that tests can lay out mock TPU pods).
      global_batch_size: rows of a global batch, a multiple of the "data" axis
        size.
      process_index: the process, as in ``jax.process_index()``.

    Returns:
      int64 [rows of this process], increasing.
    """
    num_positions = mesh.shape[DATA_AXIS]
    if global_batch_size % num_positions:
        raise ValueError(
            f"batch_size={global_batch_size} must be a multiple of the "
            f"{num_positions} positions of the mesh axis {DATA_AXIS!r}"
        )
    owners = np.vectorize(lambda device: device.process_index, otypes=[int])(
        mesh.devices
    )
    # One row per "data" position, one column per device along the other axes.
    owners = np.moveaxis(owners, mesh.axis_names.index(DATA_AXIS), 0)
    positions = np.flatnonzero(
        (owners.reshape(num_positions, -1) == process_index).any(axis=1)
    )
    if not positions.size:
        raise ValueError(
            f"process {process_index} has no device in the mesh, so it holds no "
            "rows of a batch: build the mesh over every process's devices"
        )
    block = global_batch_size // num_positions
    return (positions[:, None] * block + np.arange(block)).ravel()


# -------------------------------------------------------------------------- helpers


def _uniform_choice(
    rng: np.random.Generator, population: int, count: int
) -> np.ndarray:
    """`count` distinct integers of range(population), uniformly, in draw order."""
    return np.argsort(rng.random(population), kind="stable")[:count]


def _check_epoch(epoch: int) -> None:
    if not config_validation.is_int(epoch) or epoch < 0:
        raise ValueError(f"epoch must be an int >= 0, got {epoch!r}")
