"""Fashion-MNIST from Debian's dataset-fashion-mnist files, as a tfds builder."""

import numpy as np
import pytest

from tce_jax.data import fashion_mnist_debian
from tce_jax.data.dataset_info import DATASETS


def test_debian_files_have_the_expected_counts(fashion_mnist_arrays):
    for split, (size, per_class) in (
        ("train", (60_000, 6_000)),
        ("test", (10_000, 1_000)),
    ):
        images, labels = fashion_mnist_arrays[split]
        assert images.shape == (size, 28, 28, 1) and images.dtype == np.uint8
        np.testing.assert_array_equal(np.bincount(labels), [per_class] * 10)
    # The normalisation constants are the train split's statistics.
    train = fashion_mnist_arrays["train"][0] / 255.0
    info = DATASETS["fashion_mnist"]
    assert train.mean() == pytest.approx(info.mean[0], abs=5e-4)
    assert train.std() == pytest.approx(info.std[0], abs=5e-4)


def test_debian_builder_yields_the_idx_examples(fashion_mnist_arrays, tmp_path):
    builder = fashion_mnist_debian.FashionMnistDebian(data_dir=str(tmp_path))
    generators = builder._split_generators(dl_manager=None)
    assert set(generators) == {"train", "test"}
    images, labels = fashion_mnist_arrays["train"]
    for (key, example), image, label in zip(
        generators["train"], images, labels, strict=False
    ):
        np.testing.assert_array_equal(example["image"], image)
        assert example["label"] == label
        builder.info.features.encode_example(example)  # Matches the feature spec.
        if key == 2:
            break
