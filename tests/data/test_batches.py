"""Batching (data/batches.py): training drops the ragged end, evaluation pads
it, and the rows of a global batch split between processes without overlap."""

import numpy as np

from tce_jax.data import batches

IMAGES = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1) + 1
LABELS = np.arange(10, dtype=np.int32) % 3
CLEAN = np.arange(10, dtype=np.int32) % 2


def test_training_keeps_full_global_batches_and_drops_the_rest():
    order = np.array([9, 8, 7, 6, 5, 4, 3, 2, 1, 0])
    got = list(
        batches.train_rows(
            order,
            4,
            rows=np.arange(4),
            images=IMAGES,
            labels=LABELS,
            clean_labels=CLEAN,
        )
    )
    assert [list(b["index"]) for b in got] == [[9, 8, 7, 6], [5, 4, 3, 2]]
    np.testing.assert_array_equal(got[0]["label"], LABELS[[9, 8, 7, 6]])
    np.testing.assert_array_equal(got[0]["clean_label"], CLEAN[[9, 8, 7, 6]])


def test_evaluation_sees_every_example_once_and_masks_the_padding():
    indices = np.arange(7)
    got = list(
        batches.eval_rows(
            indices,
            4,
            rows=np.arange(4),
            images=IMAGES,
            labels=LABELS,
            clean_labels=CLEAN,
        )
    )
    index = np.concatenate([b["index"] for b in got])
    mask = np.concatenate([b["mask"] for b in got])
    np.testing.assert_array_equal(index[mask], indices)
    assert list(index[~mask]) == [batches.PADDING_INDEX]
    last = got[-1]
    assert last["image"][~last["mask"]].sum() == 0 and last["label"][~last["mask"]] == 0
    np.testing.assert_array_equal(
        np.concatenate([b["is_noisy"][b["mask"]] for b in got]),
        LABELS[:7] != CLEAN[:7],
    )


def test_two_processes_rows_make_up_each_batch_between_them():
    indices = np.arange(10)
    halves = [np.arange(0, 2), np.arange(2, 4)]
    per_process = [
        list(
            batches.eval_rows(
                indices, 4, rows=rows, images=IMAGES, labels=LABELS, clean_labels=None
            )
        )
        for rows in halves
    ]
    together = np.concatenate(
        [
            np.concatenate([a["index"], b["index"]])
            for a, b in zip(*per_process, strict=True)
        ]
    )
    assert sorted(together[together != batches.PADDING_INDEX]) == list(range(10))
    # Clean labels (test): no example is noisy.
    assert not any(b["is_noisy"].any() for part in per_process for b in part)
