"""Batches: each process's rows of a global batch, eval padding, and sharding.

A global batch is sharded over the mesh axis "data"; each process builds only
the rows its own devices hold (``process_rows``), so the global batch is the
same for every process count and device layout. The host only gathers: a
batch is the uint8 images, labels and example indices of its examples (and,
for evaluation, a padding mask), cut in a background thread that keeps
``PREFETCH_BATCHES`` global batches ready (``global_batches``).
"""

import math
from collections.abc import Iterable, Iterator

import jax
import numpy as np
from jax.sharding import NamedSharding

from tce_jax.data.prefetch import prefetch

DATA_AXIS = "data"
PADDING_INDEX = -1
PREFETCH_BATCHES = 2
# A batch: named arrays, numpy on the host, jax.Arrays once global.
Batch = dict[str, np.ndarray]


def train_rows(
    order: np.ndarray,
    batch_size: int,
    *,
    rows: np.ndarray,
    images: np.ndarray,
    labels: np.ndarray,
    clean_labels: np.ndarray,
) -> Iterator[Batch]:
    """Rows ``rows`` of each full global batch of ``order`` (the rest dropped).

    Yields:
      image uint8 (as stored), label int32 (noisy), clean_label int32, index
      int32 (the example indices).
    """
    for step in range(len(order) // batch_size):
        indices = order[step * batch_size : (step + 1) * batch_size][rows]
        yield {
            "image": images[indices],
            "label": labels[indices],
            "clean_label": clean_labels[indices],
            "index": indices.astype(np.int32),
        }


def eval_rows(
    indices: np.ndarray,
    batch_size: int,
    *,
    rows: np.ndarray,
    images: np.ndarray,
    labels: np.ndarray,
    clean_labels: np.ndarray | None,
) -> Iterator[Batch]:
    """Rows ``rows`` of every global batch of ``indices``, the last one padded.

    Args:
      indices: the example indices of the split, in order.
      batch_size: the global batch size.
      rows: this process's rows of a global batch (``process_rows``).
      images, labels: indexed by ``indices``.
      clean_labels: likewise, or None where ``labels`` are clean (test).

    Yields:
      image uint8 (zero on padding rows), label int32, clean_label int32,
      is_noisy bool, mask bool (False on padding rows), index int32
      (``PADDING_INDEX`` on padding rows).
    """
    num_batches = math.ceil(len(indices) / batch_size)
    padded = np.full(num_batches * batch_size, PADDING_INDEX, dtype=np.int64)
    padded[: len(indices)] = indices
    for step in range(num_batches):
        batch_indices = padded[step * batch_size : (step + 1) * batch_size][rows]
        mask = batch_indices != PADDING_INDEX
        safe = np.where(mask, batch_indices, 0)
        label = np.where(mask, labels[safe], 0).astype(np.int32)
        clean_label = (
            label if clean_labels is None else np.where(mask, clean_labels[safe], 0)
        )
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


def global_batches(
    mesh: jax.sharding.Mesh, local_batches: Iterable[Batch], batch_size: int
) -> Iterator[dict[str, jax.Array]]:
    """Global batches from this process's rows, built ``PREFETCH_BATCHES`` ahead.

    Args:
      mesh: the mesh whose axis "data" the batches are sharded over.
      local_batches: this process's rows of each global batch.
      batch_size: the global batch size.

    Returns:
      An iterator of dicts of jax.Arrays; closing it stops the background
      thread.
    """
    sharding = NamedSharding(mesh, jax.sharding.PartitionSpec(DATA_AXIS))

    def to_global(local_batch: Batch) -> dict[str, jax.Array]:
        return {
            name: jax.make_array_from_process_local_data(
                sharding, values, (batch_size, *values.shape[1:])
            )
            for name, values in local_batch.items()
        }

    return prefetch((to_global(batch) for batch in local_batches), PREFETCH_BATCHES)


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
