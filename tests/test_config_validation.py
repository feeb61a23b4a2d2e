"""Config validation: every shipped config passes, and checking one is light."""

import pathlib
import subprocess
import sys
import textwrap

import pytest
from ml_collections import config_flags

from tce_jax import config_validation, grid

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
RUN_CONFIGS = sorted((REPO_ROOT / "configs").glob("[!_]*.py"))
# A config flag of this test module's own, so that no other module's is touched.
_TYPO_CONFIG = config_flags.DEFINE_config_file("typo_test_config")


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
    config = grid.load_config_file(REPO_ROOT / "configs" / "cpu_smoke.py")
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


def test_an_override_naming_no_field_gets_the_nearest_names():
    def error(*overrides):
        argv = ["prog", "--typo_test_config=configs/cpu_smoke.py", *overrides]
        found = config_validation.unknown_override(argv, "typo_test_config")
        return found and str(found)

    good = "--typo_test_config.loss.alpha=0.1"
    assert error(good, "--typo_test_config.seed=1") is None
    assert error(good, "--typo_test_config.lss.q=1") == (
        "--typo_test_config.lss.q: typo_test_config has no field 'lss'; nearest: "
        "typo_test_config.loss"
    )
    # A boolean override (--no<flag>.<path>), and a name close to no field.
    data_fields = sorted(grid.load_config_file("configs/cpu_smoke.py").data)
    assert error("--notypo_test_config.data.xyz") == (
        "--typo_test_config.data.xyz: typo_test_config.data has no field 'xyz'; "
        "allowed: " + ", ".join(f"typo_test_config.data.{f}" for f in data_fields)
    )
    # Past a leaf (a tuple's items), config_flags reports the problem itself.
    assert error("--typo_test_config.schedule.decay_epochs.0=3") is None
