"""Named random streams: every source of randomness derives from the config seed.

Each purpose (noise, init, shuffle, augment, ...) gets its own key by folding a
stable hash of its name into the root key, so adding a new stream never shifts
an existing one, and the same seed gives the same streams on every machine.
"""

import zlib

import jax
import numpy as np


def purpose_key(seed: int, purpose: str) -> jax.Array:
    """Returns the PRNG key of the stream named `purpose` under `seed`."""
    return jax.random.fold_in(
        jax.random.key(seed), zlib.crc32(purpose.encode()) & 0x7FFFFFFF
    )


def purpose_seed(seed: int, purpose: str) -> int:
    """A 31-bit integer seed for the named stream, for non-JAX consumers."""
    return zlib.crc32(f"{seed}/{purpose}".encode()) & 0x7FFFFFFF


def numpy_generator(*words: int) -> np.random.Generator:
    """A NumPy generator seeded by integer words (a purpose seed, an epoch, the
    words of a JAX key): the one way the package seeds host-side randomness."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(list(words))))


def uniform_choice(rng: np.random.Generator, population: int, count: int) -> np.ndarray:
    """``count`` distinct integers of ``range(population)``, uniformly, in draw
    order (a stable argsort of uniform draws, so the first ``k`` of a larger
    draw are the draw of ``k``)."""
    return np.argsort(rng.random(population), kind="stable")[:count]
