"""Checks a whole run config before any work starts.

Every problem is reported as a ``ConfigError`` whose message is one line that
names the field and says what is allowed, e.g.::

    config.model.name: unknown model 'resnet7'; allowed: preact_resnet18, resnet110, ...

The data and noise fields are checked by ``input_pipeline.validate_config``, the
loss hyperparameters by the loss registry, so the rules live next to the code
that uses them.
"""

from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import ml_collections
from absl import flags
from ml_collections import config_flags

from tce_jax import input_pipeline, losses, models

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


def loss_hparams(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """The loss hyperparameters set in ``config.loss`` (those not None)."""
    return {
        name: value
        for name, value in config.loss.items()
        if name != "name" and value is not None
    }


def _require(condition: bool, field: str, allowed: str, value: Any) -> None:
    if not condition:
        raise ConfigError(f"config.{field}: got {value!r}; allowed: {allowed}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def _validate_loss(loss: Mapping[str, Any], hparams: dict[str, Any]) -> None:
    name = loss["name"]
    if name not in losses.names():
        raise ConfigError(
            f"config.loss.name: unknown loss {name!r}; "
            f"allowed: {', '.join(losses.names())}"
        )
    allowed = losses.hparam_names(name)
    for hparam in hparams:
        if hparam not in allowed:
            raise ConfigError(
                f"config.loss.{hparam}: not a hyperparameter of loss {name!r} "
                f"(it takes: {', '.join(allowed) or 'none'}); leave it unset"
            )
    try:
        losses.get(name, **hparams)
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


def validate(config: ml_collections.ConfigDict, *, num_devices: int) -> None:
    """Raises ``ConfigError`` on the first field that is not allowed.

    Args:
      config: the full run config (see ``configs/default.py``).
      num_devices: the number of devices the run shards the batch over.

    Raises:
      ConfigError: with a one-line message naming the field.
    """
    _require(
        _is_int(config.seed) and config.seed >= 0, "seed", "an int >= 0", config.seed
    )
    _require(
        _is_int(config.num_epochs) and config.num_epochs > 0,
        "num_epochs",
        "an int > 0",
        config.num_epochs,
    )
    for field in ("batch_size", "eval_batch_size"):
        value = config[field]
        _require(
            _is_int(value) and value > 0 and value % num_devices == 0,
            field,
            f"a positive multiple of the device count ({num_devices})",
            value,
        )
    _require(
        _is_int(config.eval_every_epochs) and config.eval_every_epochs > 0,
        "eval_every_epochs",
        "an int > 0",
        config.eval_every_epochs,
    )
    _require(
        _is_int(config.test_eval_every_epochs) and config.test_eval_every_epochs >= 0,
        "test_eval_every_epochs",
        "an int >= 0 (0: test only after the last epoch and at new best noisy-val "
        "epochs)",
        config.test_eval_every_epochs,
    )
    _require(
        _is_int(config.log_every_steps) and config.log_every_steps > 0,
        "log_every_steps",
        "an int > 0",
        config.log_every_steps,
    )
    _require(
        _is_int(config.checkpoint_keep) and config.checkpoint_keep >= 1,
        "checkpoint_keep",
        "an int >= 1",
        config.checkpoint_keep,
    )
    try:
        input_pipeline.validate_config(config)
    except ValueError as error:
        raise ConfigError(_one_line(error)) from None

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

    _validate_loss(config.loss, loss_hparams(config))

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
