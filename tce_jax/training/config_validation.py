"""Checks a whole run config before any work starts.

Every problem is reported as a ``ConfigError`` whose message is one line that
names the field and says what is allowed, e.g.::

    config.model.name: unknown model 'resnet7'; allowed: preact_resnet18, resnet110, ...

This module owns every rule a run config must follow; the input pipeline, the
train step and the sweep trust a config that ``validate`` accepted. The rules
that need the loaded data or a call's arguments (``check_batch_size``,
``check_batch_fits``) are defined here too and called where that is known.
The loss hyperparameters' ranges come from the loss registry
(``losses.get``), the noise arguments' from ``noise.check_arguments``, which
check them for library users too. Checking a config imports neither
TensorFlow nor tfds.
"""

import difflib
import math
import numbers
import re
from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import ml_collections
from absl import app, flags
from ml_collections import config_flags

from tce_jax import alpha_rules, losses, noise
from tce_jax.data.dataset_info import DATASETS
from tce_jax.training import models

SCHEDULES = ("constant", "piecewise", "cosine")
# The model's computation dtype; parameters, BatchNorm statistics, logits, the
# loss and the optimiser stay float32. float16 is not offered: its gradients
# would need loss scaling, which the train step does not do.
DTYPES = ("float32", "bfloat16")


class ConfigError(ValueError):
    """A config value that is not allowed; ``str(error)`` is one line."""


def config_from_flag(flag: flags.FlagHolder) -> ml_collections.ConfigDict:
    """The config a ``config_flags.DEFINE_config_file`` flag loaded.

    Raises:
      ConfigError: the file did not load (missing, or not a config file); one
        line naming the flag, the file and the reason.
    """
    config = flag.value
    try:
        config.keys()  # config_flags defers a load failure to the first access.
    except OSError as error:
        cause = error
        while cause.__cause__ is not None:
            cause = cause.__cause__
        lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
        path = config_flags.get_config_filename(flags.FLAGS[flag.name])
        raise ConfigError(
            f"--{flag.name}={path}: cannot load it "
            f"({lines[-1] if lines else type(cause).__name__}); allowed: a config "
            "file defining get_config()"
        ) from None
    return config


def parse_flags(argv: Sequence[str], config_flag: flags.FlagHolder) -> list[str]:
    """absl's flag parsing (``app.run``'s ``flags_parser``), with config typos
    as a ConfigError.

    config_flags raises a bare AttributeError or KeyError, with a traceback,
    when an override such as ``--config.loss.gamma_typo=3`` names no field.

    Raises:
      ConfigError: an override names no field of the config; one line naming
        the override and the nearest valid names.
    """
    try:
        return app.parse_flags_with_usage(list(argv))
    except (AttributeError, KeyError):
        error = unknown_override(argv, config_flag.name)
        if error is None:
            raise
        raise error from None


def unknown_override(argv: Sequence[str], name: str) -> ConfigError | None:
    """The first ``--<name>.<path>`` override in argv that names no config field.

    Args:
      argv: the command line.
      name: the name of a ``config_flags.DEFINE_config_file`` flag.

    Returns:
      A ConfigError naming the override and the nearest fields (difflib), or
      None: every override names a field, or the config file is not given.
    """
    config_arg = re.compile(rf"^--?{re.escape(name)}(?:=(.*))?$")
    override_arg = re.compile(rf"^--?(?:no)?{re.escape(name)}\.([^=]+)")
    path, overrides = None, []
    for i, arg in enumerate(argv[1:], start=1):
        if match := config_arg.match(arg):
            path = match.group(1)
            if path is None and i + 1 < len(argv):
                path = argv[i + 1]
        elif match := override_arg.match(arg):
            overrides.append(match.group(1))
    if path is None:
        return None
    config = flags.FLAGS[name].parser.parse(path)
    for dotted in overrides:
        holder, prefix = config, name
        for field in dotted.split("."):
            if not isinstance(holder, ml_collections.ConfigDict | dict):
                break  # A leaf (tuple, dataclass): config_flags says what is wrong.
            fields = sorted(holder.keys())
            if field not in fields:
                nearest = difflib.get_close_matches(field, fields, n=3)
                names = ", ".join(f"{prefix}.{f}" for f in nearest or fields)
                return ConfigError(
                    f"--{name}.{dotted}: {prefix} has no field {field!r}; "
                    f"{'nearest' if nearest else 'allowed'}: {names}"
                )
            holder, prefix = holder[field], f"{prefix}.{field}"
    return None


def loss_hparams(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """The hyperparameters the run's loss is built with (``losses.get(name, **them)``).

    Each is the value set in ``config.loss`` or, where that is None, the
    loss's setting for ``config.data.dataset`` (``losses.defaults(name,
    dataset)``: the setting its authors published for that dataset, else
    CIFAR-10's; TCE's alpha 1/K; docs/losses.md). ``name``, ``alpha_rule`` and
    the rules' settings (``alpha_rules.setting_names``) are not
    hyperparameters of the loss, and under a self-tuning rule ``alpha`` is the
    rule's, so it is left out. A value set for a hyperparameter the loss does
    not take is kept, so that ``losses.get`` rejects it.
    """
    loss = config.loss
    not_hparams = {"name", "alpha_rule", *alpha_rules.setting_names()}
    given = {
        name: value
        for name, value in loss.items()
        if name not in not_hparams and value is not None
    }
    dataset = config.data.dataset
    hparams = (
        losses.defaults(loss.name, dataset, num_classes=DATASETS[dataset].num_classes)
        | given
    )
    if loss.get("alpha_rule", alpha_rules.FIXED) != alpha_rules.FIXED:
        hparams.pop("alpha", None)
    return hparams


def alpha_rule_settings(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """The self-tuning rule's settings: ``config.loss.<setting>`` or the rule's
    default (empty for ``alpha_rule = "fixed"``)."""
    rule = config.loss.get("alpha_rule", alpha_rules.FIXED)
    return {
        name: default if config.loss.get(name) is None else config.loss.get(name)
        for name, default in alpha_rules.RULES.get(rule, {}).items()
    }


def effective_config(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """The config as the run uses it: every default it falls back on filled in.

    ``config.loss`` carries a placeholder for every hyperparameter of every
    loss; here it holds only the chosen loss's hyperparameters, each with the
    value the loss uses (``loss_hparams``: set, or the dataset's setting), and
    the alpha rule with its resolved settings (under a self-tuning rule,
    ``alpha`` is the rule's and left out). Two runs with equal effective
    configs train the same model whatever the defaults were when each ran, so
    comparisons match runs on this.
    """
    effective = config.to_dict()
    loss = config.loss
    rule = loss.get("alpha_rule", alpha_rules.FIXED)
    effective["loss"] = {
        "name": loss.name,
        **loss_hparams(config),
        "alpha_rule": rule,
        **alpha_rule_settings(config),
    }
    return effective


def _validate_alpha_rule(config: ml_collections.ConfigDict) -> None:
    loss = config.loss
    rule = loss.get("alpha_rule", alpha_rules.FIXED)
    _require(
        rule in alpha_rules.names(),
        "loss.alpha_rule",
        ", ".join(alpha_rules.names()),
        rule,
    )
    takes = alpha_rules.RULES.get(rule, {})
    for field in alpha_rules.setting_names():
        _require(
            field in takes or loss.get(field) is None,
            f"loss.{field}",
            "unset unless loss.alpha_rule is one of "
            + ", ".join(
                name
                for name, settings in alpha_rules.RULES.items()
                if field in settings
            ),
            loss.get(field),
        )
    if rule == alpha_rules.FIXED:
        return
    _require(
        loss.name == "tce",
        "loss.alpha_rule",
        f"fixed for loss {loss.name!r} ({rule} sets TCE's alpha; use loss.name=tce)",
        rule,
    )
    _require(
        loss.get("alpha") is None,
        "loss.alpha",
        f"unset with loss.alpha_rule={rule} (the rule sets alpha)",
        loss.get("alpha"),
    )
    settings = alpha_rule_settings(config)
    floor = alpha_rules.initial_alpha(DATASETS[config.data.dataset].num_classes)
    maximum = settings["alpha_max"]
    _require(
        _is_number(maximum) and floor < maximum < 1.0,
        "loss.alpha_max",
        f"a number in ({floor:g}, 1): above the rule's floor 1/K and below 1",
        maximum,
    )
    if "alpha_offset" in settings:
        offset = settings["alpha_offset"]
        _require(
            _is_number(offset) and 0.0 <= offset < 1.0,
            "loss.alpha_offset",
            "a number in [0, 1)",
            offset,
        )
    if rule in alpha_rules.NEEDS_VALIDATION:
        data = config.data
        _require(
            data.validation_examples > 0 or data.validation_fraction > 0,
            "data.validation_fraction",
            f"> 0 (or data.validation_examples > 0) with loss.alpha_rule={rule}: "
            "the rule reads the noisy validation accuracy",
            data.validation_fraction,
        )
    if rule == "auto":
        half = math.floor(alpha_rules.READ_FRACTION * config.num_epochs)
        _require(
            alpha_rules.reading_epoch(config.num_epochs, config.eval_every_epochs) > 0,
            "eval_every_epochs",
            f"at most {half} with loss.alpha_rule=auto (the rule reads the training "
            f"labels at the last evaluation epoch up to epoch {half})",
            config.eval_every_epochs,
        )


def _require(condition: bool, field: str, allowed: str, value: Any) -> None:
    if not condition:
        raise ConfigError(f"config.{field}: got {value!r}; allowed: {allowed}")


def is_int(value: Any) -> bool:
    """An integer (Python or NumPy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def _validate_loss(config: ml_collections.ConfigDict) -> None:
    name = config.loss["name"]
    if name not in losses.names():
        raise ConfigError(
            f"config.loss.name: unknown loss {name!r}; "
            f"allowed: {', '.join(losses.names())}"
        )
    try:
        losses.get(name, **loss_hparams(config))
    except losses.UnknownHyperparameterError as error:
        raise ConfigError(
            f"config.loss.{error.unknown[0]}: not a hyperparameter of loss {name!r} "
            f"(it takes: {', '.join(error.allowed) or 'none'}); leave it unset"
        ) from None
    except (ValueError, TypeError) as error:
        raise ConfigError(f"config.loss ({name}): {_one_line(error)}") from None


def _validate_schedule(config: ml_collections.ConfigDict) -> None:
    schedule = config.schedule
    _require(
        schedule.name in SCHEDULES, "schedule.name", ", ".join(SCHEDULES), schedule.name
    )
    warmup = schedule.warmup_epochs
    _require(
        _is_number(warmup) and 0 <= warmup < config.num_epochs,
        "schedule.warmup_epochs",
        "a number >= 0 and < num_epochs",
        warmup,
    )
    if schedule.name == "piecewise":
        decay_epochs = tuple(schedule.decay_epochs)
        _require(
            all(_is_number(e) for e in decay_epochs)
            and list(decay_epochs) == sorted(set(decay_epochs))
            and all(warmup < e < config.num_epochs for e in decay_epochs),
            "schedule.decay_epochs",
            "strictly increasing epochs between warmup_epochs and num_epochs",
            decay_epochs,
        )
        _require(
            _is_number(schedule.decay_factor) and 0 < schedule.decay_factor,
            "schedule.decay_factor",
            "a number > 0 (the learning rate is multiplied by it at each decay epoch)",
            schedule.decay_factor,
        )


def check_batch_size(batch_size: Any, num_devices: int, *, field: str) -> None:
    """A global batch size must be a positive multiple of the device count.

    ``validate`` applies it to the config's batch sizes; the input pipeline to
    the batch sizes its callers pass.
    """
    _require(
        is_int(batch_size) and batch_size > 0 and batch_size % num_devices == 0,
        field,
        f"a positive multiple of the {num_devices} devices (the device count)",
        batch_size,
    )


def check_batch_fits(batch_size: int, num_train: int) -> None:
    """An epoch needs at least one full batch of the training examples.

    Only known once the data is loaded: the train loop and the pipeline apply it.
    """
    if batch_size > num_train:
        raise ConfigError(
            f"config.batch_size: got {batch_size}, which exceeds the {num_train} "
            f"training examples: an epoch would have no step; allowed: at most the "
            f"number of training examples ({num_train})"
        )


def _field(config: ml_collections.ConfigDict, path: str) -> Any:
    node = config
    for part in path.split("."):
        try:
            node = node[part]
        except (KeyError, TypeError, AttributeError) as error:
            raise ConfigError(f"config.{path} is missing") from error
    return node


def _validate_seed(config: ml_collections.ConfigDict) -> None:
    seed = _field(config, "seed")
    if not is_int(seed) or seed < 0:
        raise ConfigError(f"config.seed must be an int >= 0, got {seed!r}")


def validate_data(config: ml_collections.ConfigDict) -> None:
    """Checks the fields the data side uses (part of ``validate``).

    Reads config.seed, config.data.{dataset, data_dir, train_subset,
    validation_fraction, validation_examples, holdout_folds, holdout_fold,
    augment} and config.noise.{kind, rate, transition_matrix}.

    Raises:
      ConfigError: naming the offending field and what is allowed.
    """
    _validate_seed(config)
    _validate_data_fields(config)


def _validate_data_fields(config: ml_collections.ConfigDict) -> None:
    name = _field(config, "data.dataset")
    if name not in DATASETS:
        raise ConfigError(
            f"config.data.dataset must be one of {sorted(DATASETS)}, got {name!r}"
        )
    data_dir = _field(config, "data.data_dir")
    if data_dir is not None and not isinstance(data_dir, str):
        raise ConfigError(
            f"config.data.data_dir must be a path (str) or None for the tfds "
            f"default, got {data_dir!r}"
        )
    subset = _field(config, "data.train_subset")
    if not is_int(subset) or subset < 0:
        raise ConfigError(
            f"config.data.train_subset must be an int >= 0 (0 = the whole train "
            f"split), got {subset!r}"
        )
    fraction = _field(config, "data.validation_fraction")
    if not _is_number(fraction) or not 0.0 <= fraction < 1.0:
        raise ConfigError(
            f"config.data.validation_fraction must be a number in [0, 1), got "
            f"{fraction!r}"
        )
    val_examples = _field(config, "data.validation_examples")
    if not is_int(val_examples) or val_examples < 0:
        raise ConfigError(
            f"config.data.validation_examples must be an int >= 0 (0 = "
            f"config.data.validation_fraction decides), got {val_examples!r}"
        )
    if subset and val_examples >= subset:
        raise ConfigError(
            f"config.data.validation_examples={val_examples} leaves no training "
            f"examples out of config.data.train_subset={subset}"
        )
    folds = _field(config, "data.holdout_folds")
    fold = _field(config, "data.holdout_fold")
    if not is_int(folds) or folds < 0 or folds == 1:
        raise ConfigError(
            f"config.data.holdout_folds must be 0 (train on every training "
            f"example) or an int >= 2 (cross-fitting folds), got {folds!r}"
        )
    if not is_int(fold) or not 0 <= fold < max(folds, 1):
        raise ConfigError(
            f"config.data.holdout_fold must be an int in [0, "
            f"config.data.holdout_folds={folds}) (0 when there are no folds), "
            f"got {fold!r}"
        )
    augment_flag = _field(config, "data.augment")
    if not isinstance(augment_flag, bool):
        raise ConfigError(
            f"config.data.augment must be True (the dataset's random crop/flip) or "
            f"False (training images as they are), got {augment_flag!r}"
        )
    num_classes = DATASETS[name].num_classes
    try:
        noise.check_arguments(
            num_classes=num_classes,
            rate=_field(config, "noise.rate"),
            kind=_field(config, "noise.kind"),
            transition_matrix=_field(config, "noise.transition_matrix"),
        )
    except ValueError as error:
        raise ConfigError(
            f"config.noise.{_one_line(error)} (config.data.dataset={name!r} has "
            f"{num_classes} classes)"
        ) from None


def validate(config: ml_collections.ConfigDict, *, num_devices: int) -> None:
    """Raises ``ConfigError`` on the first field that is not allowed.

    Args:
      config: the full run config (see ``configs/default.py``).
      num_devices: the number of devices the run shards the batch over.

    Raises:
      ConfigError: with a one-line message naming the field.
    """
    _validate_seed(config)
    _require(
        is_int(config.num_epochs) and config.num_epochs > 0,
        "num_epochs",
        "an int > 0",
        config.num_epochs,
    )
    for field in ("batch_size", "eval_batch_size"):
        check_batch_size(config[field], num_devices, field=field)
    _require(
        is_int(config.eval_every_epochs) and config.eval_every_epochs > 0,
        "eval_every_epochs",
        "an int > 0",
        config.eval_every_epochs,
    )
    _require(
        is_int(config.test_eval_every_epochs) and config.test_eval_every_epochs >= 0,
        "test_eval_every_epochs",
        "an int >= 0 (0: test only after the last epoch and at new best noisy-val "
        "epochs)",
        config.test_eval_every_epochs,
    )
    _require(
        is_int(config.log_every_steps) and config.log_every_steps > 0,
        "log_every_steps",
        "an int > 0",
        config.log_every_steps,
    )
    _require(
        is_int(config.checkpoint_keep) and config.checkpoint_keep >= 1,
        "checkpoint_keep",
        "an int >= 1",
        config.checkpoint_keep,
    )
    _validate_data_fields(config)

    model = config.model
    allowed_models = ", ".join(models.names())
    _require(model.name in models.names(), "model.name", allowed_models, model.name)
    _require(
        _is_number(model.width_multiplier) and model.width_multiplier > 0,
        "model.width_multiplier",
        "a number > 0",
        model.width_multiplier,
    )
    _require(
        model.dtype in DTYPES,
        "model.dtype",
        f"{', '.join(DTYPES)} (the computation dtype; parameters stay float32)",
        model.dtype,
    )

    _validate_loss(config)
    _validate_alpha_rule(config)

    optimizer = config.optimizer
    _require(
        _is_number(optimizer.learning_rate) and optimizer.learning_rate > 0,
        "optimizer.learning_rate",
        "a number > 0",
        optimizer.learning_rate,
    )
    _require(
        _is_number(optimizer.momentum) and 0 <= optimizer.momentum < 1,
        "optimizer.momentum",
        "a number in [0, 1)",
        optimizer.momentum,
    )
    _require(
        not optimizer.nesterov or optimizer.momentum > 0,
        "optimizer.nesterov",
        "False when momentum is 0 (Nesterov needs momentum)",
        optimizer.nesterov,
    )
    _require(
        _is_number(optimizer.weight_decay) and optimizer.weight_decay >= 0,
        "optimizer.weight_decay",
        "a number >= 0",
        optimizer.weight_decay,
    )
    _validate_schedule(config)


def compute_dtype(config: ml_collections.ConfigDict) -> jnp.dtype:
    """The model's computation dtype named by ``config.model.dtype``."""
    return jnp.dtype(config.model.dtype)
