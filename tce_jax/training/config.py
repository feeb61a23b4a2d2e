"""The run config as a run reads it: one immutable ``RunConfig``, resolved once.

``config_validation.read`` checks a ``ml_collections.ConfigDict``
(``configs/*.py``) and turns it into a ``RunConfig`` with ``resolve``: typed,
frozen sections with the attribute names of the config file, and everything
the run would otherwise work out again and again resolved here once: the loss
hyperparameters (each set, or the loss's setting for the dataset) and the loss
built with them, the alpha rule and its settings (``alpha.AlphaRule``), the
model's computation dtype, the config as given and the effective config a run
records. Nothing reads the ConfigDict after that, and nothing goes back to the
validator.

``loss_hparams`` and ``effective_config`` give two of these for a config
without reading the rest (tests, and the baseline settings' check).
"""

from __future__ import annotations

import copy
import dataclasses
import types
from collections.abc import Callable, Mapping
from typing import Any

import jax.numpy as jnp
import ml_collections

from tce_jax import losses
from tce_jax.data.dataset_info import DATASETS
from tce_jax.training import alpha


class ConfigError(ValueError):
    """A config value that is not allowed; ``str(error)`` is one line.

    The validator raises it for every rule (``config_validation``); a relaunch
    raises it for a config that cannot continue the run in its directory.
    """


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """``config.data``: the dataset, its split and augmentation."""

    dataset: str
    data_dir: str | None
    train_subset: int
    validation_fraction: float
    validation_examples: int
    holdout_folds: int
    holdout_fold: int
    augment: bool


@dataclasses.dataclass(frozen=True)
class NoiseConfig:
    """``config.noise``: the label noise the train split is corrupted with."""

    kind: str
    rate: float
    transition_matrix: Any


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """``config.model``, with the computation dtype resolved."""

    name: str
    width_multiplier: float
    dtype: str
    compute_dtype: jnp.dtype


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """``config.optimizer``: SGD's settings."""

    learning_rate: float
    momentum: float
    nesterov: bool
    weight_decay: float


@dataclasses.dataclass(frozen=True)
class ScheduleConfig:
    """``config.schedule``: the learning-rate schedule."""

    name: str
    warmup_epochs: float
    decay_epochs: tuple
    decay_factor: float


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """``config.loss`` resolved: the loss, its hyperparameters and the alpha rule.

    Attributes:
      name: the loss's registry name.
      hparams: what ``losses.get(name, **hparams)`` builds it with
        (``loss_hparams``).
      alpha: how TCE's alpha is set (fixed, or by a self-tuning rule).
      fn: the loss built, ``losses.get(name, **hparams)``: the per-example
        ``fn(logits, labels[, alpha=...])``.
    """

    name: str
    hparams: Mapping[str, Any]
    alpha: alpha.AlphaRule
    fn: Callable[..., Any] = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything a run reads of its config; made by ``config_validation.read``."""

    seed: int
    num_epochs: int
    batch_size: int
    eval_batch_size: int
    log_every_steps: int
    eval_every_epochs: int
    test_eval_every_epochs: int
    checkpoint_keep: int
    data: DataConfig
    noise: NoiseConfig
    model: ModelConfig
    optimizer: OptimizerConfig
    schedule: ScheduleConfig
    loss: LossConfig
    given: Mapping[str, Any] = dataclasses.field(repr=False)
    effective: Mapping[str, Any] = dataclasses.field(repr=False)

    def as_given(self) -> dict[str, Any]:
        """The config as the file and overrides gave it (``ConfigDict.to_dict``)."""
        return copy.deepcopy(dict(self.given))

    def as_effective(self) -> dict[str, Any]:
        """The config as the run uses it (``effective_config``)."""
        return copy.deepcopy(dict(self.effective))


def resolve_loss(config: ml_collections.ConfigDict) -> LossConfig:
    """The loss, its hyperparameters and the alpha rule, resolved and built.

    Each hyperparameter is the value set in ``config.loss`` or, where that is
    None, the loss's setting for ``config.data.dataset`` (``losses.defaults(
    name, dataset)``: the setting its authors published for that dataset, else
    CIFAR-10's; TCE's alpha 1/K; docs/losses.md). ``name`` and the alpha rule's
    fields (``alpha.config_fields``) are not hyperparameters of the loss, and
    under a self-tuning rule ``alpha`` is the rule's, so it is left out.

    Raises:
      losses.UnknownHyperparameterError, ValueError, TypeError: from
        ``losses.get``, for a value set for a hyperparameter the loss does not
        take or outside its range (the validator words them for the config).
    """
    loss = config.loss
    rule = alpha.from_loss_config(loss)
    not_hparams = {"name", *alpha.config_fields()}
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
    if not rule.is_fixed:
        hparams.pop("alpha", None)
    return LossConfig(
        name=loss.name,
        hparams=types.MappingProxyType(hparams),
        alpha=rule,
        fn=losses.get(loss.name, **hparams),
    )


def loss_hparams(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """The hyperparameters the run's loss is built with (``losses.get(name,
    **them)``), as ``resolve_loss`` resolves them."""
    return dict(resolve_loss(config).hparams)


def effective_config(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """The config as the run uses it: every default it falls back on filled in.

    ``config.loss`` carries a placeholder for every hyperparameter of every
    loss; here it holds only the chosen loss's hyperparameters, each with the
    value the loss uses (``resolve_loss``: set, or the dataset's setting), and
    the alpha rule with its resolved settings (under a self-tuning rule,
    ``alpha`` is the rule's and left out). Two runs with equal effective
    configs train the same model whatever the defaults were when each ran, so
    comparisons match runs on this.
    """
    return resolve(config).as_effective()


def _section(cls: type, node: Any, **resolved: Any) -> Any:
    """A frozen section: its fields read from ``node``, but those ``resolved``."""
    names = [f.name for f in dataclasses.fields(cls) if f.name not in resolved]
    return cls(**{name: node[name] for name in names}, **resolved)


def resolve(config: ml_collections.ConfigDict) -> RunConfig:
    """The ``RunConfig`` of a config the validator accepted.

    ``config_validation.read`` calls it after checking the fields; it trusts
    them.
    """
    sections = {
        "data": _section(DataConfig, config.data),
        "noise": _section(NoiseConfig, config.noise),
        "model": _section(
            ModelConfig, config.model, compute_dtype=jnp.dtype(config.model.dtype)
        ),
        "optimizer": _section(OptimizerConfig, config.optimizer),
        "schedule": _section(ScheduleConfig, config.schedule),
    }
    loss = resolve_loss(config)
    effective = config.to_dict()
    effective["loss"] = {
        "name": loss.name,
        **loss.hparams,
        alpha.RULE_FIELD: loss.alpha.name,
        **loss.alpha.settings,
    }
    return RunConfig(
        seed=config.seed,
        num_epochs=config.num_epochs,
        batch_size=config.batch_size,
        eval_batch_size=config.eval_batch_size,
        log_every_steps=config.log_every_steps,
        eval_every_epochs=config.eval_every_epochs,
        test_eval_every_epochs=config.test_eval_every_epochs,
        checkpoint_keep=config.checkpoint_keep,
        **sections,
        loss=loss,
        given=types.MappingProxyType(config.to_dict()),
        effective=types.MappingProxyType(effective),
    )
