"""Config validation: every shipped config passes, and checking one is light."""

import pathlib
import subprocess
import sys
import textwrap

import pytest

from tce_jax import config_validation, grid

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
RUN_CONFIGS = sorted((REPO_ROOT / "configs").glob("[!_]*.py"))


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=lambda path: path.stem)
def test_every_shipped_run_config_is_valid(path):
    config_validation.validate(grid.load_config_file(path), num_devices=1)


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


def _smoke_config(**overrides):
    config = sweep.load_config_file(REPO_ROOT / "configs" / "cpu_smoke.py")
    config.update_from_flattened_dict(overrides)
    return config


@pytest.mark.parametrize(
    ("overrides", "field", "allowed"),
    [
        ({"loss.alpha_rule": "adaptive"}, "config.loss.alpha_rule", "fixed, auto"),
        (
            {"loss.name": "ce", "loss.alpha_rule": "auto"},
            "config.loss.alpha_rule",
            "use loss.name=tce",
        ),
        (
            {"loss.alpha_rule": "auto", "loss.alpha": 0.2},
            "config.loss.alpha",
            "the rule sets alpha",
        ),
        (
            {"loss.alpha_rule": "auto", "loss.alpha_max": 1.5},
            "config.loss.alpha_max",
            "a number in (0.1, 1)",
        ),
        (
            {"loss.alpha_rule": "auto", "loss.alpha_max": 0.05},
            "config.loss.alpha_max",
            "a number in (0.1, 1)",
        ),
        ({"loss.alpha_max": 0.4}, "config.loss.alpha_max", "unless"),
        ({"loss.alpha_offset": 0.0}, "config.loss.alpha_offset", "unless"),
        (
            {"loss.alpha_rule": "auto", "loss.alpha_offset": -0.1},
            "config.loss.alpha_offset",
            "a number in [0, 1)",
        ),
        (
            {"loss.alpha_rule": "auto", "num_epochs": 8, "eval_every_epochs": 5},
            "config.eval_every_epochs",
            "at most 4",
        ),
    ],
)
def test_a_bad_alpha_rule_setting_gets_one_line(overrides, field, allowed):
    with pytest.raises(config_validation.ConfigError) as error:
        config_validation.validate(_smoke_config(**overrides), num_devices=1)
    message = str(error.value)
    assert message.startswith(field), message
    assert allowed in message, message
    assert "\n" not in message


def test_alpha_rule_fields_are_not_passed_to_the_loss():
    config = _smoke_config(**{"loss.alpha_rule": "auto", "loss.alpha_max": 0.4})
    config_validation.validate(config, num_devices=1)
    assert config_validation.loss_hparams(config) == {}
    assert config_validation.alpha_max(config) == 0.4
    assert config_validation.alpha_offset(config) == 0.0
