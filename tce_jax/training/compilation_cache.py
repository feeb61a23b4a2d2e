"""JAX's persistent compilation cache for launch.py, sweeps and the accelerator check.

A sweep's runs compile the same few programs (one train step and one eval step
per model, batch size and loss) over and over, each in its own process; with
the cache on, the first run of each program compiles it (with its GPU
autotuning results, which JAX keeps with the programs) and the others load it.

Where: ``$JAX_COMPILATION_CACHE_DIR`` when set (JAX's own variable, on any
platform), else ``DEFAULT_DIR`` (``~/.cache/tce_jax/jax_compilation_cache``).
When: on by default on GPU and TPU. Off by default on the CPU: a home
directory shared by nodes of different CPU types would hand one the programs
compiled for another, and the committed CPU results were made without it (a
loaded program computes what the compiled one would, so turning it on is a
matter of speed, not of numbers).
"""

from __future__ import annotations

import os

import jax
from absl import logging

DEFAULT_DIR = os.path.join(
    os.path.expanduser("~"), ".cache", "tce_jax", "jax_compilation_cache"
)


def configure(directory: str | None = None) -> str | None:
    """Turns the cache on where it is due; call before the first compilation.

    Initialises JAX's backend (to know the platform): in a multi-process job,
    call it after joining.

    Args:
      directory: the cache directory; "" turns the cache off; None (the
        default) keeps ``$JAX_COMPILATION_CACHE_DIR`` if set, else uses
        ``DEFAULT_DIR`` on GPU and TPU and no cache on the CPU.

    Returns:
      The directory in use, or None when the cache is off.
    """
    if directory is None:
        directory = jax.config.jax_compilation_cache_dir
        if not directory and jax.default_backend() != "cpu":
            directory = DEFAULT_DIR
    jax.config.update("jax_compilation_cache_dir", directory or None)
    if directory:
        logging.info("JAX's persistent compilation cache: %s", directory)
    return directory or None
