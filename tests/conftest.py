"""Test-session setup: four emulated CPU devices, and the shared fixtures.

XLA reads the flag when the backend starts, so it must be set before anything
imports jax.
"""

import os

_FLAG = "--xla_force_host_platform_device_count=4"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _FLAG).strip()
# TensorFlow only feeds data here; keep it off the (emulated) accelerators and quiet.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402  (after XLA_FLAGS: nothing may import jax before it)


@pytest.fixture(scope="session")
def compilation_cache(tmp_path_factory):
    """JAX's on-disk compilation cache for the session: compiled steps are shared
    between runs (each run jits anew), test modules and launch.py subprocesses
    (give them ``tiny_run.launch_environment(compilation_cache)``).

    Yields:
      The cache directory.
    """
    import jax
    from jax.experimental.compilation_cache import compilation_cache as cache

    directory = tmp_path_factory.getbasetemp() / "jax_compilation_cache"
    previous = (
        jax.config.jax_compilation_cache_dir,
        jax.config.jax_persistent_cache_min_compile_time_secs,
    )
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    cache.reset_cache()
    yield directory
    jax.config.update("jax_compilation_cache_dir", previous[0])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", previous[1])
    cache.reset_cache()


@pytest.fixture
def fake_data(monkeypatch):
    """The input pipeline loads ``tiny_run.fake_load_split``'s synthetic data."""
    import tiny_run

    from tce_jax.data import input_pipeline

    monkeypatch.setattr(input_pipeline, "load_split", tiny_run.fake_load_split)


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory, compilation_cache):
    """One uninterrupted 3-epoch ``tiny_run.tiny_config()`` run on the fake data,
    shared by every test that compares with it: (workdir, summary)."""
    del compilation_cache  # Only needed active.
    import tiny_run

    from tce_jax.data import input_pipeline
    from tce_jax.training import loop

    workdir = tmp_path_factory.mktemp("reference")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(input_pipeline, "load_split", tiny_run.fake_load_split)
        summary = loop.train_and_evaluate(tiny_run.tiny_config(), str(workdir))
    return workdir, summary


@pytest.fixture
def base_config_path(tmp_path):
    """A small run config file (``sweep_fakes.BASE_CONFIG``) for sweep tests."""
    import sweep_fakes

    path = tmp_path / "base_config.py"
    path.write_text(sweep_fakes.BASE_CONFIG)
    return str(path)


@pytest.fixture
def sweep_dir(tmp_path):
    """A sweep dir of synthetic finished runs (``report_fakes.fill_sweep``)."""
    import report_fakes

    return report_fakes.fill_sweep(tmp_path)


@pytest.fixture(scope="session")
def fashion_mnist_arrays():
    """Debian's Fashion-MNIST as {split: (images, labels)}; skips without it."""
    from tce_jax.data import fashion_mnist_debian

    if not fashion_mnist_debian.is_available():
        pytest.skip(
            f"Debian's Fashion-MNIST is not installed in "
            f"{fashion_mnist_debian.DEBIAN_DIR} (apt-get install dataset-fashion-mnist)"
        )
    return {
        split: fashion_mnist_debian.read_split(split) for split in ("train", "test")
    }


@pytest.fixture
def lock_holder():
    """Starts a process holding ``fcntl.flock`` on a file, as a process that
    prepares a dataset holds its data dir's lock: ``lock_holder(path)`` returns
    the process once it holds the lock; killing it releases the lock. Every
    holder is killed after the test."""
    import subprocess
    import sys

    holders = []

    def hold(path):
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import fcntl, sys, time\n"
                "lock = open(sys.argv[1], 'a')\n"
                "fcntl.flock(lock, fcntl.LOCK_EX)\n"
                "print('holding', flush=True)\n"
                "time.sleep(600)\n",
                str(path),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        holders.append(holder)
        assert holder.stdout.readline() == "holding\n"
        return holder

    yield hold
    for holder in holders:
        holder.kill()
        holder.wait()
