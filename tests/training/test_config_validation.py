"""Config validation: each bad field gets one line naming it and what is allowed,
every shipped config passes, and checking one is light."""

import pathlib
import subprocess
import sys
import textwrap

import ml_collections
import pytest
from ml_collections import config_flags
from tiny_run import tiny_config

from tce_jax.sweeps import grid
from tce_jax.training import alpha, command_line, config_validation
from tce_jax.training import config as run_config

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
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
        import tce_jax.training.config_validation
        from configs import default
        tce_jax.training.config_validation.validate(default.get_config(), num_devices=1)
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
            {"loss.alpha_rule": "val_peak", "loss.alpha_offset": 0.1},
            "config.loss.alpha_offset",
            "unset unless loss.alpha_rule is one of auto",
        ),
        (
            {
                "loss.alpha_rule": "val_track",
                "data.validation_fraction": 0.0,
                "data.validation_examples": 0,
            },
            "config.data.validation_fraction",
            "the rule reads the noisy validation accuracy",
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
    assert run_config.loss_hparams(config) == {}
    assert alpha.from_loss_config(config.loss).settings == {
        "alpha_max": 0.4,
        "alpha_offset": 0.0,
    }
    config = _smoke_config(**{"loss.alpha_rule": "val_peak"})
    config_validation.validate(config, num_devices=1)
    assert alpha.from_loss_config(config.loss).settings == {"alpha_max": 0.5}


def test_an_override_naming_no_field_gets_the_nearest_names():
    def error(*overrides):
        argv = ["prog", "--typo_test_config=configs/cpu_smoke.py", *overrides]
        found = command_line.unknown_override(argv, "typo_test_config")
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


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"seed": -1}, "config.seed"),
        ({"num_epochs": 0}, "config.num_epochs"),
        ({"batch_size": 30}, "config.batch_size"),
        ({"eval_batch_size": 0}, "config.eval_batch_size"),
        ({"log_every_steps": 0}, "config.log_every_steps"),
        ({"eval_every_epochs": 0}, "config.eval_every_epochs"),
        ({"test_eval_every_epochs": -1}, "config.test_eval_every_epochs"),
        ({"data.holdout_folds": 1}, "config.data.holdout_folds"),
        ({"data.holdout_folds": 3, "data.holdout_fold": 3}, "config.data.holdout_fold"),
        ({"data.holdout_fold": 1}, "config.data.holdout_fold"),
        ({"checkpoint_keep": 0}, "config.checkpoint_keep"),
        ({"data.dataset": "imagenet"}, "config.data.dataset"),
        ({"data.validation_fraction": 1.0}, "config.data.validation_fraction"),
        ({"data.train_subset": -5}, "config.data.train_subset"),
        ({"noise.kind": "gaussian"}, "config.noise.kind"),
        ({"noise.rate": 1.5}, "config.noise.rate"),
        ({"model.name": "resnet7"}, "config.model.name"),
        ({"model.width_multiplier": 0.0}, "config.model.width_multiplier"),
        ({"model.dtype": "int8"}, "config.model.dtype"),
        ({"model.dtype": "float16"}, "config.model.dtype"),
        ({"loss.name": "hinge"}, "config.loss.name"),
        ({"loss.q": 0.7}, "config.loss.q"),
        ({"loss.alpha": 1.5}, "config.loss"),
        ({"loss.name": "taylor_ce", "loss.t": 0}, "config.loss"),
        ({"optimizer.learning_rate": 0.0}, "config.optimizer.learning_rate"),
        ({"optimizer.momentum": 1.0}, "config.optimizer.momentum"),
        (
            {"optimizer.momentum": 0.0, "optimizer.nesterov": True},
            "config.optimizer.nesterov",
        ),
        ({"optimizer.weight_decay": -1e-4}, "config.optimizer.weight_decay"),
        ({"schedule.name": "step"}, "config.schedule.name"),
        ({"schedule.warmup_epochs": 3.0}, "config.schedule.warmup_epochs"),
        (
            {"schedule.name": "piecewise", "schedule.decay_epochs": (2, 1)},
            "config.schedule.decay_epochs",
        ),
        (
            {
                "schedule.name": "piecewise",
                "schedule.decay_epochs": (1, 2),
                "schedule.decay_factor": 0.0,
            },
            "config.schedule.decay_factor",
        ),
    ],
)
def test_every_invalid_field_gets_one_line_naming_it(overrides, field):
    with pytest.raises(config_validation.ConfigError) as error:
        config_validation.validate(tiny_config(**overrides), num_devices=4)
    message = str(error.value)
    assert message.startswith(field), message
    assert "\n" not in message


def _untyped_config(**overrides):
    """tiny_config() with overrides of any type (as a config file could write)."""
    config = ml_collections.ConfigDict(tiny_config().to_dict(), type_safe=False)
    for path, value in overrides.items():
        *sections, name = path.split(".")
        node = config
        for section in sections:
            node = node[section]
        node[name] = value
    return config


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"seed": -1}, r"config.seed: got -1; allowed: an int >= 0"),
        ({"seed": 1.5}, r"config.seed: got 1.5; allowed: an int >= 0"),
        (
            {"data.dataset": "imagenet"},
            r"data.dataset: got 'imagenet'; allowed: cifar10, cifar100",
        ),
        ({"data.data_dir": 3}, r"config.data.data_dir: got 3; allowed: a path"),
        (
            {"data.train_subset": -5},
            r"data.train_subset: got -5; allowed: an int >= 0",
        ),
        (
            {"data.validation_fraction": 1.0},
            r"validation_fraction: got 1.0; allowed: .* \[0, 1\)",
        ),
        (
            {"data.validation_examples": -1},
            r"validation_examples: got -1; allowed: an int >= 0",
        ),
        (
            {"data.train_subset": 10, "data.validation_examples": 10},
            r"validation_examples: got 10; allowed: fewer than .*train_subset=10",
        ),
        (
            {"data.augment": "no"},
            r"data.augment: got 'no'; allowed: True .* or False",
        ),
        (
            {"data.holdout_folds": 1},
            r"holdout_folds: got 1; allowed: 0 .* or an int >= 2",
        ),
        (
            {"data.holdout_folds": 2, "data.holdout_fold": 2},
            r"holdout_fold: got 2; allowed: an int in \[0, .*holdout_folds=2\)",
        ),
        (
            {"noise.rate": 1.2},
            r"noise.rate: got 1.2; allowed: a number in \[0, 1\)",
        ),
        ({"noise.kind": "flip"}, r"config.noise.kind: got 'flip'; allowed: symmetric"),
        (
            {"data.dataset": "cifar100", "noise.kind": "asymmetric_cifar10"},
            r"needs num_classes=10.*'cifar100' has 100 classes",
        ),
        (
            {"noise.kind": "matrix", "noise.transition_matrix": [[0.5, 0.4]] * 2},
            r"noise.transition_matrix: got .*must have shape \(10, 10\)",
        ),
    ],
)
def test_each_bad_data_or_noise_field_is_named_with_what_is_allowed(overrides, message):
    with pytest.raises(ValueError, match=message):
        config_validation.validate_data(_untyped_config(**overrides))


def test_validate_config_reports_missing_fields():
    config = tiny_config()
    del config.data["train_subset"]
    with pytest.raises(ValueError, match=r"config.data.train_subset: missing"):
        config_validation.validate_data(config)


def test_effective_config_fills_in_the_defaults_the_run_falls_back_on():
    config = tiny_config()
    config.loss.name = "sce"
    config.loss.alpha = 0.1
    effective = run_config.effective_config(config)
    # The chosen loss only, with the defaults it uses; no placeholders.
    assert effective["loss"] == {
        "name": "sce",
        "alpha": 0.1,
        "beta": 1.0,
        "log_zero": -4.0,
        "alpha_rule": "fixed",
    }
    assert effective["optimizer"] == config.optimizer.to_dict()
    # Under the self-tuning rule alpha is the rule's; its settings are resolved.
    config.loss.name, config.loss.alpha, config.loss.alpha_rule = "tce", None, "auto"
    assert run_config.effective_config(config)["loss"] == {
        "name": "tce",
        "alpha_rule": "auto",
        "alpha_max": 0.5,
        "alpha_offset": 0.0,
    }
