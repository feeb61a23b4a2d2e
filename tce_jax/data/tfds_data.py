"""Loading a dataset of ``dataset_info.DATASETS`` with tensorflow-datasets.

Fashion-MNIST comes from Debian's IDX files through the project's own tfds
builder (``tce_jax.data.fashion_mnist_debian``) when they are installed; otherwise,
and for the other datasets, tfds downloads the data. Prepare once with
``python3 -m tce_jax.data.prepare_data --dataset=NAME``; when the data can be
neither read offline nor downloaded, the error says how to get it.

A dataset is prepared once per data dir, whoever asks: ``prepare`` holds an
exclusive lock on ``<data dir>/.<dataset>.prepare.lock`` (``fcntl.flock``; the
kernel releases it when its holder dies) while tfds builds it, so concurrent
launches, processes of one job and ``prepare_data`` runs wait for the first
one and then reuse its result. When that attempt failed, the ones that waited
for it fail at once with its message (``.<dataset>.prepare.failed``) instead
of trying again; when its process died, the next one prepares the dataset.
"""

import contextlib
import fcntl
import os
from collections.abc import Iterator

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

from tce_jax.data import fashion_mnist_debian
from tce_jax.data.dataset_info import DATASETS, DatasetInfo

# Examples per tf.data batch while loading a split into host memory.
_LOAD_CHUNK = 10_000


def dataset_builder(
    info: DatasetInfo, data_dir: str | None = None
) -> tfds.core.DatasetBuilder:
    """The tfds builder for a dataset: Debian's Fashion-MNIST files when present."""
    if info.name == "fashion_mnist":
        debian = fashion_mnist_debian.FashionMnistDebian(data_dir=data_dir)
        if fashion_mnist_debian.is_available() or debian.is_prepared():
            return debian
    return tfds.builder(info.tfds_name, data_dir=data_dir)


def prepare(name: str, data_dir: str | None = None) -> tfds.core.DatasetBuilder:
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
    root = dataset_builder(info, data_dir).data_dir_root
    with _preparation_lock(root, name) as failed_while_waiting:
        if failed_while_waiting is not None:
            raise RuntimeError(failed_while_waiting)
        # Built under the lock: a builder made before another process prepared
        # the dataset would reuse the data without its split sizes.
        builder = dataset_builder(info, data_dir)
        failure_record = _failure_record(root, name)
        try:
            builder.download_and_prepare()
        except Exception as error:
            # Offline, tfds fails in many ways (DNS, HTTP, checksums); all need
            # the same advice, and the original error stays chained.
            message = _how_to_get_data(info, builder, error)
            with open(failure_record, "w") as record:
                record.write(message + "\n")
            raise RuntimeError(message) from error
        with contextlib.suppress(FileNotFoundError):
            os.remove(failure_record)  # An earlier failure, now outdated.
    return builder


def load_split(
    info: DatasetInfo, split: str, data_dir: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
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


def _lock_path(root: str, name: str) -> str:
    return os.path.join(root, f".{name}.prepare.lock")


def _failure_record(root: str, name: str) -> str:
    return os.path.join(root, f".{name}.prepare.failed")


def _modified(path: str) -> int | None:
    """The file's modification time (the filesystem's clock), None if absent."""
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def _preparation_lock(root: str, name: str) -> Iterator[str | None]:
    """Holds the data dir's lock for one dataset while the block runs.

    Yields:
      None, or the failure message of the attempt this process waited for
      (``prepare`` records it under the lock).
    """
    os.makedirs(root, exist_ok=True)
    failure_record = _failure_record(root, name)
    with open(_lock_path(root, name), "a") as lock:
        failure_before = waited = None
        try:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                logging.info(
                    "Waiting for another process that prepares %s in %s (it holds %s).",
                    name,
                    root,
                    _lock_path(root, name),
                )
                failure_before, waited = _modified(failure_record), True
                fcntl.flock(lock, fcntl.LOCK_EX)
        except OSError as error:  # A filesystem without locks (some NFS mounts).
            logging.warning(
                "Cannot lock %s (%s): preparing %s without a lock; prepare it once "
                "(python3 -m tce_jax.data.prepare_data --dataset=%s) before runs in "
                "parallel.",
                _lock_path(root, name),
                error,
                name,
                name,
            )
        failure_after = _modified(failure_record)
        if waited and failure_after is not None and failure_after != failure_before:
            with open(failure_record) as record:
                yield record.read().strip()
        else:
            yield None


def _how_to_get_data(
    info: DatasetInfo, builder: tfds.core.DatasetBuilder, error: Exception
) -> str:
    """One line: why the dataset could not be prepared, and how to get it."""
    location = builder.data_dir
    error = f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}"
    if isinstance(builder, fashion_mnist_debian.FashionMnistDebian):
        return (
            f"Preparing Fashion-MNIST from Debian's IDX files in "
            f"{fashion_mnist_debian.DEBIAN_DIR} into {location} failed "
            f"({error}). Reinstall them with "
            f"`sudo apt-get install --reinstall dataset-fashion-mnist`, or remove "
            f"{location} if an earlier preparation was interrupted, then run "
            "`python3 -m tce_jax.data.prepare_data --dataset=fashion_mnist`."
        )
    if info.name == "fashion_mnist":
        return (
            f"Fashion-MNIST is not available: Debian's IDX files are not in "
            f"{fashion_mnist_debian.DEBIAN_DIR} and tfds could not download it "
            f"({error}). Either install them with "
            f"`{fashion_mnist_debian.INSTALL_HINT}` (or `bash scripts/setup.sh` as "
            "root) and run `python3 -m tce_jax.data.prepare_data "
            "--dataset=fashion_mnist`, "
            "or run once with internet access so tfds can download it."
        )
    return (
        f"tfds could not prepare {info.tfds_name} in {location} "
        f"({error}). It is downloaded once with internet "
        "access: run `python3 -m tce_jax.data.prepare_data "
        f"--dataset={info.name}` where "
        "there is internet and point config.data.data_dir (or TFDS_DATA_DIR) at "
        "that data directory."
    )
