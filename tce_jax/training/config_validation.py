"""The validator: every rule a run config follows, checked once, before any work.

``read(config, num_devices=...)`` checks a whole ``ml_collections.ConfigDict``
and returns the immutable ``config.RunConfig`` the run reads from then on
(``config.resolve``); nothing comes back here at run time. Every problem is a
``ConfigError`` whose message is one line in one style, naming the field, the
value and what is allowed::

    config.model.name: got 'resnet7'; allowed: preact_resnet18, resnet110, ...

The loss hyperparameters' ranges come from the loss registry (``losses.get``),
the alpha rule's from its owner (``alpha.check``), the noise arguments' from
``noise.check_arguments``, which check them for library users too. What only
the loaded data can tell (the train subset and the batch against the split's
size) the data path checks once, where it loads the data
(``input_pipeline.DataSizeError``). Checking a config imports neither
TensorFlow nor tfds.
"""

import numbers
import re
from typing import Any

import ml_collections

from tce_jax import losses, noise
from tce_jax.data.dataset_info import DATASETS
from tce_jax.training import alpha, models
from tce_jax.training import config as run_config

SCHEDULES = ("constant", "piecewise", "cosine")
# The model's computation dtype; parameters, BatchNorm statistics, logits, the
# loss and the optimiser stay float32. float16 is not offered: its gradients
# would need loss scaling, which the train step does not do.
DTYPES = ("float32", "bfloat16")


ConfigError = run_config.ConfigError


def read(
    config: ml_collections.ConfigDict, *, num_devices: int
) -> run_config.RunConfig:
    """Checks the config and returns it as the run reads it.

    The fields are checked first, then the config is resolved
    (``config.resolve``: the loss is built there, and the registry checks its
    hyperparameters' ranges), then the alpha rule's rules are applied
    (``alpha.check``).

    Args:
      config: the full run config (see ``configs/default.py``).
      num_devices: the number of devices the run shards the batch over.

    Returns:
      The ``RunConfig``: frozen, with the loss hyperparameters, the alpha rule
      and the computation dtype resolved.

    Raises:
      ConfigError: with a one-line message naming the first field not allowed.
    """
    _validate_fields(config, num_devices=num_devices)
    name = config.loss["name"]
    try:
        # Builds the loss: the registry checks its hyperparameters' ranges.
        resolved = run_config.resolve(config)
    except losses.UnknownHyperparameterError as error:
        field = error.unknown[0]
        raise ConfigError(
            f"config.loss.{field}: got {config.loss[field]!r}; allowed: unset: not "
            f"a hyperparameter of loss {name!r} (it takes: "
            f"{', '.join(error.allowed) or 'none'})"
        ) from None
    except (ValueError, TypeError) as error:
        # The registry's message starts with the hyperparameter it rejects.
        reason = " ".join(str(error).split())
        field = re.match(r"\w*", reason).group(0)
        field = field if field in config.loss and field != "name" else "name"
        raise ConfigError(
            f"config.loss.{field}: got {config.loss[field]!r}; allowed: what loss "
            f"{name!r} accepts ({reason})"
        ) from None
    alpha.check(
        config,
        num_classes=DATASETS[config.data.dataset].num_classes,
        require=_require,
    )
    return resolved


def validate(config: ml_collections.ConfigDict, *, num_devices: int) -> None:
    """Raises ``ConfigError`` on the first field that is not allowed (``read``
    without its result).

    Args:
      config: the full run config (see ``configs/default.py``).
      num_devices: the number of devices the run shards the batch over.

    Raises:
      ConfigError: with a one-line message naming the field.
    """
    read(config, num_devices=num_devices)


def _validate_fields(config: ml_collections.ConfigDict, *, num_devices: int) -> None:
    """Every field but the loss's hyperparameters and the alpha rule."""
    _validate_seed(config)
    _require(
        _is_int(config.num_epochs) and config.num_epochs > 0,
        "num_epochs",
        "an int > 0",
        config.num_epochs,
    )
    for field in ("batch_size", "eval_batch_size"):
        _check_batch_size(config[field], num_devices, field=field)
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

    loss_name = config.loss["name"]
    _require(
        loss_name in losses.names(), "loss.name", ", ".join(losses.names()), loss_name
    )
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
    # Last: it ends with the noise library's own check.
    _validate_data_fields(config)


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


def _require(condition: bool, field: str, allowed: str, value: Any) -> None:
    """The one way a rule fails: ``config.<field>: got <value>; allowed: ...``."""
    if not condition:
        raise ConfigError(f"config.{field}: got {value!r}; allowed: {allowed}")


def _is_int(value: Any) -> bool:
    """An integer (Python or NumPy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


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


def _check_batch_size(batch_size: Any, num_devices: int, *, field: str) -> None:
    """A global batch size must be a positive multiple of the device count."""
    _require(
        _is_int(batch_size) and batch_size > 0 and batch_size % num_devices == 0,
        field,
        f"a positive multiple of the {num_devices} devices (the device count)",
        batch_size,
    )


def _field(config: ml_collections.ConfigDict, path: str) -> Any:
    node = config
    for part in path.split("."):
        try:
            node = node[part]
        except (KeyError, TypeError, AttributeError) as error:
            raise ConfigError(
                f"config.{path}: missing; allowed: the field as configs/default.py "
                "defines it"
            ) from error
    return node


def _validate_seed(config: ml_collections.ConfigDict) -> None:
    seed = _field(config, "seed")
    _require(_is_int(seed) and seed >= 0, "seed", "an int >= 0", seed)


def _validate_data_fields(config: ml_collections.ConfigDict) -> None:
    name = _field(config, "data.dataset")
    _require(name in DATASETS, "data.dataset", ", ".join(sorted(DATASETS)), name)
    data_dir = _field(config, "data.data_dir")
    _require(
        data_dir is None or isinstance(data_dir, str),
        "data.data_dir",
        "a path (str), or None for the tfds default",
        data_dir,
    )
    subset = _field(config, "data.train_subset")
    _require(
        _is_int(subset) and subset >= 0,
        "data.train_subset",
        "an int >= 0 (0: the whole train split)",
        subset,
    )
    fraction = _field(config, "data.validation_fraction")
    _require(
        _is_number(fraction) and 0.0 <= fraction < 1.0,
        "data.validation_fraction",
        "a number in [0, 1)",
        fraction,
    )
    val_examples = _field(config, "data.validation_examples")
    _require(
        _is_int(val_examples) and val_examples >= 0,
        "data.validation_examples",
        "an int >= 0 (0: config.data.validation_fraction decides)",
        val_examples,
    )
    _require(
        not subset or val_examples < subset,
        "data.validation_examples",
        f"fewer than config.data.train_subset={subset} (as many leaves no training "
        "examples)",
        val_examples,
    )
    folds = _field(config, "data.holdout_folds")
    _require(
        _is_int(folds) and folds >= 0 and folds != 1,
        "data.holdout_folds",
        "0 (train on every training example) or an int >= 2 (cross-fitting folds)",
        folds,
    )
    fold = _field(config, "data.holdout_fold")
    _require(
        _is_int(fold) and 0 <= fold < max(folds, 1),
        "data.holdout_fold",
        f"an int in [0, config.data.holdout_folds={folds}) (0 when there are no folds)",
        fold,
    )
    augment = _field(config, "data.augment")
    _require(
        isinstance(augment, bool),
        "data.augment",
        "True (the dataset's random crop/flip) or False (training images as they are)",
        augment,
    )
    num_classes = DATASETS[name].num_classes
    rate = _field(config, "noise.rate")
    _require(
        _is_number(rate) and 0.0 <= rate < 1.0, "noise.rate", "a number in [0, 1)", rate
    )
    kind = _field(config, "noise.kind")
    _require(kind in noise.KINDS, "noise.kind", ", ".join(noise.KINDS), kind)
    arguments = {
        "rate": rate,
        "kind": kind,
        "transition_matrix": _field(config, "noise.transition_matrix"),
    }
    try:
        noise.check_arguments(num_classes=num_classes, **arguments)
    except ValueError as error:
        reason = " ".join(str(error).split())
        # The library's message starts with the argument it rejects (kind= or
        # transition_matrix).
        field = re.match(r"\w+", reason).group(0)
        field = field if field in arguments else "kind"
        raise ConfigError(
            f"config.noise.{field}: got {arguments[field]!r}; allowed: what "
            f"noise.check_arguments accepts ({reason}; config.data.dataset="
            f"{name!r} has {num_classes} classes)"
        ) from None
