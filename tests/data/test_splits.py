"""Which example goes where (data/splits.py): disjoint parts that cover the
subset, the same for the same seed, labels written, sizes checked once."""

import numpy as np
import pytest
from tiny_run import tiny_config

from tce_jax import run_files
from tce_jax.data import splits

NUM_SOURCE = 120


def _splits(config, **kwargs):
    rng = np.random.default_rng(0)
    return splits.make_splits(
        config,
        train_images=rng.integers(0, 256, (NUM_SOURCE, 28, 28, 1), dtype=np.uint8),
        train_labels=np.arange(NUM_SOURCE) % 10,
        test_images=rng.integers(0, 256, (20, 28, 28, 1), dtype=np.uint8),
        test_labels=np.arange(20) % 10,
        **kwargs,
    )


def test_parts_are_disjoint_cover_the_subset_and_repeat_for_a_seed(tmp_path):
    config = tiny_config(
        **{"data.train_subset": 100, "noise.kind": "symmetric", "noise.rate": 0.4}
    )
    first = _splits(config, labels_dir=str(tmp_path))
    again = _splits(config)
    assert first.num_train + first.num_val == 100 and first.num_val == 20
    assert not set(first.train_index) & set(first.val_index)
    np.testing.assert_array_equal(first.source_index, again.source_index)
    np.testing.assert_array_equal(first.val_index, again.val_index)
    np.testing.assert_array_equal(first.noise.labels, again.noise.labels)
    assert 0 < first.realised_noise_rate < 1
    saved = np.load(tmp_path / run_files.LABELS_FILE)
    for name, values in first.label_arrays().items():
        np.testing.assert_array_equal(saved[name], values)
    other_seed = _splits(tiny_config(**{"data.train_subset": 100, "seed": 1}))
    assert not np.array_equal(first.source_index, other_seed.source_index)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"data.train_subset": NUM_SOURCE + 1}, "config.data.train_subset"),
        ({"data.validation_examples": NUM_SOURCE}, "config.data.validation_fraction"),
    ],
)
def test_what_does_not_fit_the_loaded_split_gets_one_line(overrides, field):
    with pytest.raises(splits.DataSizeError) as error:
        _splits(tiny_config(**overrides))
    message = str(error.value)
    assert message.startswith(f"{field}: got ") and "allowed:" in message
    assert "\n" not in message
