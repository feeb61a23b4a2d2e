"""JAX's persistent compilation cache: on by default on GPU/TPU, off on the CPU,
$JAX_COMPILATION_CACHE_DIR and an explicit directory (or "" for off) win."""

import jax
import pytest

from tce_jax.training import compilation_cache


@pytest.fixture
def cache_setting():
    """Restores JAX's cache directory after the test."""
    previous = jax.config.jax_compilation_cache_dir
    yield
    jax.config.update("jax_compilation_cache_dir", previous)


@pytest.mark.parametrize(
    ("backend", "preset", "given", "expected"),
    [
        ("gpu", None, None, compilation_cache.DEFAULT_DIR),
        ("tpu", None, None, compilation_cache.DEFAULT_DIR),
        ("cpu", None, None, None),  # Off on the CPU.
        ("cpu", "/cache/from/env", None, "/cache/from/env"),
        ("gpu", "/cache/from/env", None, "/cache/from/env"),
        ("gpu", None, "/given", "/given"),
        ("gpu", "/cache/from/env", "", None),  # Turned off on purpose.
    ],
)
def test_where_the_cache_goes(
    monkeypatch, cache_setting, backend, preset, given, expected
):
    monkeypatch.setattr(jax, "default_backend", lambda: backend)
    # What JAX_COMPILATION_CACHE_DIR sets.
    jax.config.update("jax_compilation_cache_dir", preset)
    assert compilation_cache.configure(given) == expected
    assert jax.config.jax_compilation_cache_dir == expected
