"""Named random streams: stable, independent of each other, and of the machine."""

import jax
import numpy as np

from tce_jax import seeding


def _bits(key):
    return np.asarray(jax.random.key_data(key))


def test_each_purpose_has_its_own_stream_and_the_same_seed_repeats_it():
    keys = {
        purpose: _bits(seeding.purpose_key(0, purpose))
        for purpose in ("noise", "init", "shuffle", "augment")
    }
    assert len({bits.tobytes() for bits in keys.values()}) == len(keys)
    np.testing.assert_array_equal(_bits(seeding.purpose_key(0, "noise")), keys["noise"])
    assert not np.array_equal(_bits(seeding.purpose_key(1, "noise")), keys["noise"])


def test_streams_are_fixed_numbers_so_a_new_purpose_never_shifts_an_old_one():
    # Written out: the committed runs were made with these streams, so a change of
    # hashing must show here first.
    assert seeding.purpose_seed(0, "noise") == 2021567739
    assert seeding.purpose_seed(3, "shuffle") == seeding.purpose_seed(3, "shuffle")
    assert 0 <= seeding.purpose_seed(2**31, "x") < 2**31


def test_numpy_generators_follow_their_words():
    first = seeding.numpy_generator(7, 1).integers(0, 2**31, size=4)
    np.testing.assert_array_equal(
        seeding.numpy_generator(7, 1).integers(0, 2**31, size=4), first
    )
    assert not np.array_equal(
        seeding.numpy_generator(7, 2).integers(0, 2**31, size=4), first
    )
