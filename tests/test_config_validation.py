"""Config validation: every shipped config passes, and checking one is light."""

import pathlib
import subprocess
import sys
import textwrap

import pytest

from tce_jax import config_validation, sweep

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
RUN_CONFIGS = sorted((REPO_ROOT / "configs").glob("[!_]*.py"))


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=lambda path: path.stem)
def test_every_shipped_run_config_is_valid(path):
    config_validation.validate(sweep.load_config_file(path), num_devices=1)


def test_checking_a_config_does_not_import_tensorflow():
    """launch.py and sweep.py check configs before any data is touched; that
    must not cost TensorFlow's import (seconds) or its memory."""
    script = textwrap.dedent(
        """
        import sys
        import tce_jax.config_validation
        from configs import default
        tce_jax.config_validation.validate(default.get_config(), num_devices=1)
        heavy = sorted(
            name for name in ("tensorflow", "tensorflow_datasets")
            if name in sys.modules
        )
        assert not heavy, heavy
        """
    )
    subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, check=True)
