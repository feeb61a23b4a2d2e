"""Tests for tce_jax.data.preprocessing: on-device crop/flip and normalisation.

The augmentation must be a pure function of (seed, epoch, example index): the
same for any batch size, device count and process count (processes are
emulated with `Datasets.local_train_batches(rows=...)`, as in
test_input_pipeline.py), and normalisation must stay bit-exact with numpy's
float32 arithmetic, which the committed results were computed with.
"""

import dataclasses
import functools

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

from configs import default
from tce_jax.data import input_pipeline, preprocessing

CIFAR = input_pipeline.DATASETS["cifar10"]
NUM_TRAIN = 64


def _mesh(num_devices):
    return jax.make_mesh((num_devices,), ("data",), devices=jax.devices()[:num_devices])


def _cifar_datasets(num_devices=4, augment=True):
    """The real pipeline on random CIFAR-sized images."""
    config = default.get_config()
    config.seed = 5
    config.data.dataset = "cifar10"
    config.data.validation_fraction = 0.0
    config.data.augment = augment
    config.noise.rate = 0.0
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (NUM_TRAIN, *CIFAR.image_shape), dtype=np.uint8)
    labels = rng.integers(0, 10, NUM_TRAIN).astype(np.int32)
    return input_pipeline.build_datasets(
        config,
        mesh=_mesh(num_devices),
        train_images=images,
        train_labels=labels,
        test_images=images[:8],
        test_labels=labels[:8],
    )


@functools.partial(jax.jit, static_argnums=0)
def _train_images(pre, images, indices, epoch):
    return pre.train_images(images, indices, epoch)


@functools.partial(jax.jit, static_argnums=0)
def _decisions(pre, indices, epoch):
    return pre.decisions(indices, epoch)


def test_normalise_is_bit_exact_with_numpy_float32_for_every_dataset():
    for info in input_pipeline.DATASETS.values():
        images = _uint8_levels(info.image_shape[-1])
        scale = (1.0 / (255.0 * np.asarray(info.std))).astype(np.float32)
        offset = (-np.asarray(info.mean) / np.asarray(info.std)).astype(np.float32)
        want = images.astype(np.float32) * scale + offset
        got = jax.jit(
            functools.partial(preprocessing.normalise, mean=info.mean, std=info.std)
        )(images)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(np.asarray(got), want, err_msg=info.name)
        on_host = preprocessing.normalise_on_host(images, mean=info.mean, std=info.std)
        assert on_host.dtype == np.float32
        np.testing.assert_array_equal(on_host, want, err_msg=info.name)


def _uint8_levels(channels):
    """Every uint8 level in every channel: [1, 256, 1, channels]."""
    return np.repeat(
        np.arange(256, dtype=np.uint8)[None, :, None, None], channels, axis=-1
    )


@pytest.mark.parametrize("platform", ["gpu", "tpu"])
def test_off_cpu_normalise_is_a_multiply_add_without_a_gather(platform):
    """Off CPU: x * scale + offset as XLA fuses it, within rounding of numpy's.

    Two roundings (numpy) and one (a fused multiply-add) differ by at most an
    ulp of the larger term, more than an ulp of the result where they cancel.
    """
    for info in input_pipeline.DATASETS.values():
        images = _uint8_levels(info.image_shape[-1])
        scale = (1.0 / (255.0 * np.asarray(info.std))).astype(np.float32)
        offset = (-np.asarray(info.mean) / np.asarray(info.std)).astype(np.float32)
        product = images.astype(np.float32) * scale
        numpy_values = product + offset
        arithmetic, table = (
            jax.jit(
                functools.partial(
                    preprocessing.normalise, mean=info.mean, std=info.std, platform=p
                )
            )
            for p in (platform, "cpu")
        )
        got = arithmetic(images)
        assert got.dtype == np.float32
        rounding = np.finfo(np.float32).eps * np.maximum(abs(product), abs(offset))
        assert np.all(abs(np.asarray(got) - numpy_values) <= rounding)
        # The platform picks the computation: a gather from the table on CPU only.
        assert "gather" not in arithmetic.lower(images).as_text()
        assert "gather" in table.lower(images).as_text()


@pytest.mark.parametrize("random_flip", [False, True])
def test_crop_and_flip_is_a_padded_crop_and_optional_mirror(random_flip):
    batch, side, padding = 1000, 8, 4
    pixels = np.arange(1, side * side + 1, dtype=np.uint8).reshape(side, side, 1)
    images = np.repeat(pixels[None], batch, axis=0)
    pre = preprocessing.Preprocessing(
        mean=(0.5,), std=(0.5,), crop_padding=padding, random_flip=random_flip, seed=1
    )
    offsets, flips = (np.asarray(x) for x in _decisions(pre, np.arange(batch), 0))
    out = np.asarray(
        jax.jit(preprocessing.crop_and_flip, static_argnames="crop_padding")(
            images, offsets, flips, crop_padding=padding
        )
    )
    padded = np.pad(pixels[:, :, 0], padding)
    for image, (top, left), flip in zip(out[..., 0], offsets, flips, strict=True):
        want = padded[top : top + side, left : left + side]
        np.testing.assert_array_equal(image, want[:, ::-1] if flip else want)
    assert len({tuple(o) for o in offsets}) == (2 * padding + 1) ** 2  # All occur.
    if random_flip:
        assert 430 < flips.sum() < 570  # About half are mirrored.
    else:
        assert not flips.any()


def test_decisions_depend_only_on_seed_epoch_and_index():
    pre = preprocessing.Preprocessing(
        mean=(0.5,), std=(0.5,), crop_padding=4, random_flip=True, seed=1
    )
    indices = np.arange(200, dtype=np.int32)

    def decide(pre, indices, epoch):
        return np.concatenate(
            [
                np.asarray(x).reshape(len(indices), -1)
                for x in _decisions(pre, indices, epoch)
            ],
            axis=1,
        )

    reference = decide(pre, indices, 3)
    # Any subset or order of the examples gets the same decisions.
    np.testing.assert_array_equal(decide(pre, indices[::-7], 3), reference[::-7])
    assert not np.array_equal(decide(pre, indices, 4), reference)
    other_seed = dataclasses.replace(pre, seed=2)
    assert not np.array_equal(decide(other_seed, indices, 3), reference)


def test_augmentation_is_the_same_for_1_and_4_devices_and_1_and_2_processes():
    batch_size = 16
    augmented = {}
    for num_devices in (1, 4):
        datasets = _cifar_datasets(num_devices)
        sharding = NamedSharding(_mesh(num_devices), PartitionSpec("data"))
        images = []
        for batch in datasets.train_batches(2, batch_size):
            out = _train_images(
                datasets.preprocessing, batch["image"], batch["index"], 2
            )
            assert out.sharding.is_equivalent_to(sharding, out.ndim)
            images.append(np.asarray(out))
        augmented[num_devices] = np.concatenate(images)
    np.testing.assert_array_equal(augmented[1], augmented[4])

    # Emulated processes: each computes its own rows of every global batch.
    datasets = _cifar_datasets(1)
    per_process = [
        np.concatenate(
            [
                np.asarray(
                    _train_images(
                        datasets.preprocessing, batch["image"], batch["index"], 2
                    )
                )
                for batch in datasets.local_train_batches(
                    2, batch_size, rows=np.split(np.arange(batch_size), 2)[p]
                )
            ]
        )
        for p in range(2)
    ]
    rows = batch_size // 2
    joined = np.stack(
        [p.reshape(-1, rows, *CIFAR.image_shape) for p in per_process], axis=1
    ).reshape(augmented[1].shape)
    np.testing.assert_array_equal(joined, augmented[1])


def test_augment_false_trains_on_the_images_as_eval_sees_them():
    plain = _cifar_datasets(augment=False).preprocessing
    augmenting = _cifar_datasets(augment=True).preprocessing
    assert (plain.crop_padding, plain.random_flip) == (0, False)
    assert (augmenting.crop_padding, augmenting.random_flip) == (4, True)
    images = np.random.default_rng(1).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    indices = np.arange(8, dtype=np.int32)
    eval_images = np.asarray(jax.jit(plain.eval_images)(images))
    np.testing.assert_array_equal(
        np.asarray(_train_images(plain, images, indices, 0)), eval_images
    )
    assert not np.array_equal(
        np.asarray(_train_images(augmenting, images, indices, 0)), eval_images
    )
