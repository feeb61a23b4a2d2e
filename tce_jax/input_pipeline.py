"""tfds input pipelines with deterministic label noise, feeding sharded global batches.

`create_datasets(config, mesh=mesh, workdir=workdir)` loads the train and test
splits of one of `DATASETS` with tensorflow-datasets into host memory (these
datasets are 30-180 MB), optionally keeps a deterministic subset of the train
split, corrupts its labels once with `noise.corrupt_labels` and the config
seed's "noise" key, holds out a validation part (noisy labels, like train; test
stays clean), and saves every label array to `workdir/labels.npz`.

The host only gathers: a batch is the uint8 images, labels and example indices
of its examples (and, for evaluation, a padding mask), cut from those arrays in
a background thread that keeps two global batches ready. Crops, flips and
normalisation run on the device, inside the jitted steps, as the `Preprocessing`
in `Datasets.preprocessing` says (see `tce_jax.preprocessing`);
benchmarks/pipeline_bench.py measures the host path against the NumPy
augmentation it replaced.

Reproducibility, by construction:

* Example index: the position of an example in the corrupted train split (the
  tfds train split in its deterministic read order, or the sorted subset of it
  that `config.data.train_subset` keeps); `labels.npz` maps it back to the tfds
  index (`source_index`). Test examples are indexed by their tfds position.
* Shuffling: epoch e visits the train examples in a permutation drawn from
  (seed's "shuffle" stream, e) alone; global batch b is the b-th run of
  `batch_size` examples of it (the remainder is dropped).
* Augmentation: the device draws the crop offsets and flip of an example from
  a key folded from (seed's "augment" stream, epoch, example index), so they
  need no state and do not depend on which batch, device or process sees the
  example.
* Processes: process p of P builds rows [p * B / P, (p + 1) * B / P) of every
  global batch (`process_rows`) and hands them to
  `jax.make_array_from_process_local_data`; the global batch is the same for
  every process count, so a resumed or rescaled run sees exactly the same data.

Fashion-MNIST comes from Debian's IDX files through the project's own tfds
builder (`tce_jax.fashion_mnist_debian`) when they are installed; otherwise, and
for the other datasets, tfds downloads the data. Prepare once with
`python3 -m tce_jax.prepare_data --dataset=NAME`.
"""

import dataclasses
import math
import numbers
import os
import queue
import threading

import jax
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from jax.sharding import NamedSharding, PartitionSpec

from tce_jax import fashion_mnist_debian, noise, preprocessing, seeding

DATA_AXIS = "data"
EVAL_SPLITS = ("train", "val", "heldout", "test")
PADDING_INDEX = -1
_PREFETCH_BATCHES = 2
# Examples per tf.data batch while loading a split into host memory.
_LOAD_CHUNK = 10_000


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


# --------------------------------------------------------------------------- config


def validate_config(config):
    """Checks the config fields the data side uses, before any work is done.

    Reads config.seed, config.data.{dataset, data_dir, train_subset,
    validation_fraction, validation_examples, holdout_folds, holdout_fold,
    augment} and config.noise.{kind, rate,
    transition_matrix}.

    Raises:
      ValueError: naming the offending field and what is allowed.
    """
    seed = _field(config, "seed")
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"config.seed must be an int >= 0, got {seed!r}")
    name = _field(config, "data.dataset")
    if name not in DATASETS:
        raise ValueError(
            f"config.data.dataset must be one of {sorted(DATASETS)}, got {name!r}"
        )
    data_dir = _field(config, "data.data_dir")
    if data_dir is not None and not isinstance(data_dir, str):
        raise ValueError(
            f"config.data.data_dir must be a path (str) or None for the tfds "
            f"default, got {data_dir!r}"
        )
    subset = _field(config, "data.train_subset")
    if not _is_int(subset) or subset < 0:
        raise ValueError(
            f"config.data.train_subset must be an int >= 0 (0 = the whole train "
            f"split), got {subset!r}"
        )
    fraction = _field(config, "data.validation_fraction")
    if not _is_real(fraction) or not 0.0 <= fraction < 1.0:
        raise ValueError(
            f"config.data.validation_fraction must be a number in [0, 1), got "
            f"{fraction!r}"
        )
    val_examples = _field(config, "data.validation_examples")
    if not _is_int(val_examples) or val_examples < 0:
        raise ValueError(
            f"config.data.validation_examples must be an int >= 0 (0 = "
            f"config.data.validation_fraction decides), got {val_examples!r}"
        )
    if subset and val_examples >= subset:
        raise ValueError(
            f"config.data.validation_examples={val_examples} leaves no training "
            f"examples out of config.data.train_subset={subset}"
        )
    folds = _field(config, "data.holdout_folds")
    fold = _field(config, "data.holdout_fold")
    if not _is_int(folds) or folds < 0 or folds == 1:
        raise ValueError(
            f"config.data.holdout_folds must be 0 (train on every training "
            f"example) or an int >= 2 (cross-fitting folds), got {folds!r}"
        )
    if not _is_int(fold) or not 0 <= fold < max(folds, 1):
        raise ValueError(
            f"config.data.holdout_fold must be an int in [0, "
            f"config.data.holdout_folds={folds}) (0 when there are no folds), "
            f"got {fold!r}"
        )
    augment_flag = _field(config, "data.augment")
    if not isinstance(augment_flag, bool):
        raise ValueError(
            f"config.data.augment must be True (the dataset's random crop/flip) or "
            f"False (training images as they are), got {augment_flag!r}"
        )
    num_classes = DATASETS[name].num_classes
    try:
        noise.check_arguments(
            num_classes=num_classes,
            rate=_field(config, "noise.rate"),
            kind=_field(config, "noise.kind"),
            transition_matrix=_field(config, "noise.transition_matrix"),
        )
    except ValueError as error:
        raise ValueError(
            f"config.noise.{error} (config.data.dataset={name!r} has {num_classes} "
            "classes)"
        ) from error


def _field(config, path):
    node = config
    for part in path.split("."):
        try:
            node = node[part]
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"config.{path} is missing") from error
    return node


# -------------------------------------------------------------------------- loading


def dataset_builder(info, data_dir=None):
    """The tfds builder for a dataset: Debian's Fashion-MNIST files when present."""
    if info.name == "fashion_mnist":
        debian = fashion_mnist_debian.FashionMnistDebian(data_dir=data_dir)
        if fashion_mnist_debian.is_available() or debian.is_prepared():
            return debian
    return tfds.builder(info.tfds_name, data_dir=data_dir)


def prepare(name, data_dir=None):
    """Downloads (or, for Fashion-MNIST, reads offline) and prepares a dataset.

    Args:
      name: a key of `DATASETS`.
      data_dir: tfds data directory; None for the tfds default.

    Returns:
      The prepared tfds builder.

    Raises:
      RuntimeError: if the data can be neither read offline nor downloaded,
        saying how to get it.
    """
    info = DATASETS[name]
    builder = dataset_builder(info, data_dir)
    try:
        builder.download_and_prepare()
    except Exception as error:
        # Offline, tfds fails in many ways (DNS, HTTP, checksums); all need the
        # same advice, and the original error stays chained for the details.
        raise RuntimeError(_how_to_get_data(info, builder, error)) from error
    return builder


def load_split(info, split, data_dir=None):
    """Loads a whole tfds split into host memory.

    Args:
      info: a `DatasetInfo`.
      split: "train" or "test".
      data_dir: tfds data directory; None for the tfds default.

    Returns:
      (images uint8 [N, H, W, C], labels int32 [N]) in tfds' deterministic read
      order.
    """
    try:
        # tf.data only feeds the host; keep TensorFlow off the accelerators.
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:
        pass  # TensorFlow was initialised earlier; its device choice stands.
    builder = prepare(info.name, data_dir)
    dataset = builder.as_dataset(split=split, shuffle_files=False)
    chunks = list(tfds.as_numpy(dataset.batch(_LOAD_CHUNK).prefetch(1)))
    images = np.concatenate([chunk["image"] for chunk in chunks])
    labels = np.concatenate([chunk["label"] for chunk in chunks])
    if images.shape[1:] != info.image_shape or images.dtype != np.uint8:
        raise ValueError(
            f"{builder.name} {split} images are {images.dtype} {images.shape[1:]}, "
            f"expected uint8 {info.image_shape}"
        )
    return images, labels.astype(np.int32)


def _how_to_get_data(info, builder, error):
    location = builder.data_dir
    if isinstance(builder, fashion_mnist_debian.FashionMnistDebian):
        return (
            f"Preparing Fashion-MNIST from Debian's IDX files in "
            f"{fashion_mnist_debian.DEBIAN_DIR} into {location} failed "
            f"({type(error).__name__}: {error}). Reinstall them with "
            f"`sudo apt-get install --reinstall dataset-fashion-mnist`, or remove "
            f"{location} if an earlier preparation was interrupted, then run "
            "`python3 -m tce_jax.prepare_data --dataset=fashion_mnist`."
        )
    if info.name == "fashion_mnist":
        return (
            f"Fashion-MNIST is not available: Debian's IDX files are not in "
            f"{fashion_mnist_debian.DEBIAN_DIR} and tfds could not download it "
            f"({type(error).__name__}: {error}). Either install them with "
            f"`{fashion_mnist_debian.INSTALL_HINT}` (or `bash scripts/setup.sh` as "
            "root) and run `python3 -m tce_jax.prepare_data --dataset=fashion_mnist`, "
            "or run once with internet access so tfds can download it."
        )
    return (
        f"tfds could not prepare {info.tfds_name} in {location} "
        f"({type(error).__name__}: {error}). It is downloaded once with internet "
        f"access: run `python3 -m tce_jax.prepare_data --dataset={info.name}` where "
        "there is internet and point config.data.data_dir (or TFDS_DATA_DIR) at "
        "that data directory."
    )


# ------------------------------------------------------------------------- datasets


def create_datasets(config, *, mesh, workdir=None):
    """Loads the configured dataset, corrupts its train labels and sets up batching.

    Args:
      config: the run config (reads config.seed, config.data.*, config.noise.*).
      mesh: a `jax.sharding.Mesh` with an axis named "data"; batches are sharded
        over it.
      workdir: if given, `workdir/labels.npz` receives every label array.

    Returns:
      A `Datasets`.
    """
    validate_config(config)
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
    config, *, mesh, train_images, train_labels, test_images, test_labels
):
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
    validate_config(config)
    info = DATASETS[config.data.dataset]
    if DATA_AXIS not in mesh.axis_names:
        raise ValueError(
            f"mesh must have an axis named {DATA_AXIS!r}, got axes {mesh.axis_names}"
        )
    num_source = len(train_labels)
    split_rng = _generator(seeding.purpose_seed(config.seed, "split"))
    subset_size = config.data.train_subset or num_source
    if subset_size > num_source:
        raise ValueError(
            f"config.data.train_subset={subset_size} exceeds the {num_source} "
            f"examples of the {info.name} train split"
        )
    source_index = np.sort(_uniform_choice(split_rng, num_source, subset_size))
    clean_labels = np.asarray(train_labels, dtype=np.int32)[source_index]
    noisy = noise.corrupt_labels(
        seeding.purpose_key(config.seed, "noise"),
        clean_labels,
        num_classes=info.num_classes,
        rate=config.noise.rate,
        kind=config.noise.kind,
        transition_matrix=config.noise.transition_matrix,
        # The instance kind projects each image as the model sees it.
        images=(
            preprocessing.normalise_on_host(
                np.asarray(train_images)[source_index], mean=info.mean, std=info.std
            )
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
        fold_rng = _generator(seeding.purpose_seed(config.seed, "folds"))
        order = np.argsort(fold_rng.random(len(train_index)), kind="stable")
        folds = np.array_split(train_index[order], config.data.holdout_folds)
        heldout_index = np.sort(folds[config.data.holdout_fold])
        train_index = np.setdiff1d(train_index, heldout_index)
    return Datasets(
        info=info,
        mesh=mesh,
        seed=config.seed,
        augment=config.data.augment,
        images=np.asarray(train_images)[source_index],
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
        info,
        mesh,
        seed,
        augment,
        images,
        clean_labels,
        noisy,
        source_index,
        train_index,
        val_index,
        heldout_index,
        test_images,
        test_labels,
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
        )

    def steps_per_epoch(self, batch_size):
        """Full global batches per epoch (the remainder is dropped)."""
        return self.num_train // batch_size

    def train_order(self, epoch):
        """Example indices in the order epoch `epoch` visits them (all of train)."""
        _check_epoch(epoch)
        keys = _generator(self._shuffle_seed, epoch).random(self.num_train)
        return self.train_index[np.argsort(keys, kind="stable")]

    def train_batches(self, epoch, batch_size):
        """Global training batches of one epoch, sharded over the mesh axis "data".

        Args:
          epoch: epoch number (>= 0); with the config seed it fixes the order
            (and, on the device, the augmentation: pass the same epoch to the
            train step).
          batch_size: global batch size, a multiple of the "data" axis size and
            of the process count.

        Yields:
          `steps_per_epoch(batch_size)` dicts of jax.Arrays: image uint8
          [B, H, W, C] (as stored: `preprocessing.train_images` augments and
          normalises them), label int32 (noisy), clean_label int32, index int32.
        """
        _check_epoch(epoch)
        self._check_batch_size(batch_size)
        if self.steps_per_epoch(batch_size) == 0:
            raise ValueError(
                f"batch_size={batch_size} exceeds the {self.num_train} training "
                "examples: an epoch would have no step"
            )
        local = self.local_train_batches(
            epoch,
            batch_size,
            process_index=self._process_slot(batch_size),
            process_count=jax.process_count(),
        )
        return self.global_batches(local, batch_size)

    def eval_batches(self, split, batch_size):
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
            split,
            batch_size,
            process_index=self._process_slot(batch_size),
            process_count=jax.process_count(),
        )
        return self.global_batches(local, batch_size)

    def global_batches(self, local_batches, batch_size):
        """Global batches from this process's rows, built `_PREFETCH_BATCHES` ahead.

        Args:
          local_batches: an iterator of dicts of numpy arrays, this process's
            rows of each global batch (`local_*_batches`).
          batch_size: the global batch size.

        Returns:
          An iterator of dicts of jax.Arrays sharded over the mesh axis "data";
          closing it stops the background thread.
        """
        return _prefetch(self._to_global(batch, batch_size) for batch in local_batches)

    def local_train_batches(self, epoch, batch_size, *, process_index, process_count):
        """This process's rows of every global training batch, as numpy arrays.

        `train_batches` is this with the real process index and count; tests call
        it with others to emulate a multi-process run.
        """
        rows = process_rows(batch_size, process_index, process_count)
        order = self.train_order(epoch)
        for step in range(self.steps_per_epoch(batch_size)):
            indices = order[step * batch_size : (step + 1) * batch_size][rows]
            yield {
                "image": self._images[indices],
                "label": self.noise.labels[indices],
                "clean_label": self.clean_labels[indices],
                "index": indices.astype(np.int32),
            }

    def local_eval_batches(self, split, batch_size, *, process_index, process_count):
        """This process's rows of every global evaluation batch, as numpy arrays."""
        rows = process_rows(batch_size, process_index, process_count)
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

    def save_labels(self, workdir):
        """Writes workdir/labels.npz (atomically: a resumed run rewrites it).

        Keys: clean_labels, noisy_labels, is_noisy (all [N], by example index),
        train_index, val_index, heldout_index (example indices),
        transition_matrix (realised, [K, K], rows = clean class), rate
        (realised over train + val), source_index (tfds train-split position
        of each example index).
        """
        os.makedirs(workdir, exist_ok=True)
        path = os.path.join(workdir, "labels.npz")
        partial_path = path + ".partial.npz"
        np.savez(
            partial_path,
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
        os.replace(partial_path, path)

    def _check_batch_size(self, batch_size):
        data_size = self._mesh.shape[DATA_AXIS]
        if not _is_int(batch_size) or batch_size <= 0 or batch_size % data_size:
            raise ValueError(
                f"batch_size must be a positive multiple of the {data_size} devices "
                f"on mesh axis {DATA_AXIS!r}, got {batch_size!r}"
            )

    def _process_slot(self, batch_size):
        """Which block of rows of a global batch this process's devices hold.

        Read from the sharding rather than assumed to be `jax.process_index()`,
        so that any mesh whose "data" axis keeps each process's devices together
        gets its rows right, and any other mesh fails loudly.
        """
        rows_per_process = batch_size // jax.process_count()
        device_rows = [
            range(batch_size)[index[0]]
            for index in self._sharding.addressable_devices_indices_map(
                (batch_size,)
            ).values()
        ]
        start = min(rows.start for rows in device_rows)
        stop = max(rows.stop for rows in device_rows)
        if stop - start != rows_per_process or start % rows_per_process:
            raise ValueError(
                f"this process's devices hold rows [{start}, {stop}) of a global "
                f"batch of {batch_size}; the pipeline needs one contiguous block of "
                f"{rows_per_process} rows per process: build the mesh with "
                "jax.make_mesh, which keeps each process's devices together"
            )
        return start // rows_per_process

    def _to_global(self, local_batch, batch_size):
        return {
            name: jax.make_array_from_process_local_data(
                self._sharding, values, (batch_size, *values.shape[1:])
            )
            for name, values in local_batch.items()
        }


def process_rows(global_batch_size, process_index, process_count):
    """The contiguous rows of each global batch that one process produces.

    Contiguous blocks match `jax.make_array_from_process_local_data` for meshes
    whose "data" axis lists each process's devices together (as `jax.make_mesh`
    does).
    """
    if not 0 <= process_index < process_count:
        raise ValueError(
            f"process_index must be in [0, {process_count}), got {process_index}"
        )
    if global_batch_size % process_count:
        raise ValueError(
            f"batch_size={global_batch_size} must be a multiple of the process "
            f"count {process_count}"
        )
    rows_per_process = global_batch_size // process_count
    return slice(
        process_index * rows_per_process, (process_index + 1) * rows_per_process
    )


# -------------------------------------------------------------------------- helpers


def _generator(*words):
    """A numpy Generator from integer words; only its float64 draws are used."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(list(words))))


def _uniform_choice(rng, population, count):
    """`count` distinct integers of range(population), uniformly, in draw order."""
    return np.argsort(rng.random(population), kind="stable")[:count]


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_epoch(epoch):
    if not _is_int(epoch) or epoch < 0:
        raise ValueError(f"epoch must be an int >= 0, got {epoch!r}")


class _ProducerFailure:
    def __init__(self, error):
        self.error = error


_END = object()


def _prefetch(batches, buffer_size=_PREFETCH_BATCHES):
    """Runs the `batches` iterator in a thread, `buffer_size` items ahead.

    Numpy and the host-to-device copies release the GIL, so the next batches are
    built while the consumer's jitted step runs. Closing the returned generator
    stops the thread.
    """
    ready = queue.Queue(maxsize=buffer_size)
    stop = threading.Event()

    def put(item):
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for batch in batches:
                if not put(batch):
                    return
            put(_END)
        except Exception as error:
            # Handed to the consumer thread, which re-raises it.
            put(_ProducerFailure(error))

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if item is _END:
                return
            if isinstance(item, _ProducerFailure):
                raise item.error
            yield item
    finally:
        stop.set()
