"""TCE's alpha in a run: the one owner of the alpha rule in the harness.

A run's alpha is either fixed (``config.loss.alpha``, a loss hyperparameter)
or set by a self-tuning rule of the library (``tce_jax.alpha_rules``:
``config.loss.alpha_rule`` names it, ``config.loss.<setting>`` overrides its
settings). This module alone knows those config fields and their rules
(``check``), resolves them once (``from_loss_config``: an ``AlphaRule``), and
says how a run follows the rule: the state it starts from
(``AlphaRule.init_state``), what the loss receives on every step
(``loss_kwargs``) and how an evaluation moves it (``follow``).

Adding a rule: its entry in ``alpha_rules.RULES`` (state, settings and their
defaults), plus here any config rule it needs beyond those ``check`` applies
to every rule; and its tests.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
from collections.abc import Callable, Mapping
from typing import Any

import jax

from tce_jax import alpha_rules

FIXED = alpha_rules.FIXED
# The loss config's field naming the rule.
RULE_FIELD = "alpha_rule"

# ``require(condition, field, allowed, value)``: the validator's way to raise a
# rule's violation (``config_validation``).
Require = Callable[[bool, str, str, Any], None]


def config_fields() -> tuple[str, ...]:
    """The fields of ``config.loss`` that belong to the rule, not to the loss:
    ``alpha_rule`` and every rule's settings (``config.loss.<setting>``)."""
    return (RULE_FIELD, *alpha_rules.setting_names())


def add_config_fields(loss: Any, placeholder: Callable[[type], Any]) -> None:
    """Adds the rule's fields to a loss config section (``configs/default.py``):
    ``alpha_rule = "fixed"`` and a float placeholder for each setting."""
    loss[RULE_FIELD] = FIXED
    for setting in alpha_rules.setting_names():
        loss[setting] = placeholder(float)


@dataclasses.dataclass(frozen=True)
class AlphaRule:
    """How a run sets TCE's alpha, resolved from the config once.

    Attributes:
      name: ``"fixed"`` or a rule of ``alpha_rules.RULES``.
      settings: the rule's settings, each set or its default (empty when fixed).
    """

    name: str
    settings: Mapping[str, float]

    @property
    def is_fixed(self) -> bool:
        """Whether alpha is the loss's configured hyperparameter."""
        return self.name == FIXED

    def init_state(
        self, *, num_classes: int, num_epochs: int, eval_every_epochs: int
    ) -> alpha_rules.RuleState | None:
        """The rule's state before the first epoch; None for a fixed alpha."""
        if self.is_fixed:
            return None
        return alpha_rules.init(
            self.name,
            num_classes=num_classes,
            num_epochs=num_epochs,
            eval_every_epochs=eval_every_epochs,
            **self.settings,
        )


def _value(loss: Any, field: str) -> Any:
    """``loss.<field>``; None where the section lacks it (an older config)."""
    return loss[field] if field in loss else None


def _rule_name(loss: Any) -> str:
    return loss[RULE_FIELD] if RULE_FIELD in loss else FIXED


def _settings(loss: Any) -> dict[str, Any]:
    """Each setting of the named rule: ``loss.<setting>``, or its default."""
    defaults = (
        alpha_rules.RULES[rule]
        if (rule := _rule_name(loss)) in alpha_rules.RULES
        else {}
    )
    return {
        name: default if _value(loss, name) is None else _value(loss, name)
        for name, default in defaults.items()
    }


def from_loss_config(loss: Any) -> AlphaRule:
    """The rule a config's loss section names, with its settings resolved.

    Args:
      loss: ``config.loss`` (anything with ``.get``), already checked.
    """
    return AlphaRule(
        name=_rule_name(loss), settings=types.MappingProxyType(_settings(loss))
    )


def check(config: Any, *, num_classes: int, require: Require) -> None:
    """The config rules of the alpha rule, each raised through ``require``.

    Args:
      config: the run config (reads loss.*, data.validation_*, num_epochs,
        eval_every_epochs).
      num_classes: K of ``config.data.dataset``.
      require: the validator's ``require(condition, field, allowed, value)``.
    """
    loss = config.loss
    rule = _rule_name(loss)
    require(
        rule in alpha_rules.names(),
        f"loss.{RULE_FIELD}",
        ", ".join(alpha_rules.names()),
        rule,
    )
    takes = alpha_rules.RULES[rule] if rule in alpha_rules.RULES else {}
    for field in alpha_rules.setting_names():
        require(
            field in takes or _value(loss, field) is None,
            f"loss.{field}",
            "unset unless loss.alpha_rule is one of "
            + ", ".join(
                name
                for name, settings in alpha_rules.RULES.items()
                if field in settings
            ),
            _value(loss, field),
        )
    if rule == FIXED:
        return
    require(
        loss.name == "tce",
        f"loss.{RULE_FIELD}",
        f"fixed for loss {loss.name!r} ({rule} sets TCE's alpha; use loss.name=tce)",
        rule,
    )
    require(
        _value(loss, "alpha") is None,
        "loss.alpha",
        f"unset with loss.alpha_rule={rule} (the rule sets alpha)",
        _value(loss, "alpha"),
    )
    settings = _settings(loss)
    floor = alpha_rules.initial_alpha(num_classes)
    maximum = settings["alpha_max"]
    require(
        _is_number(maximum) and floor < maximum < 1.0,
        "loss.alpha_max",
        f"a number in ({floor:g}, 1): above the rule's floor 1/K and below 1",
        maximum,
    )
    if "alpha_offset" in settings:
        offset = settings["alpha_offset"]
        require(
            _is_number(offset) and 0.0 <= offset < 1.0,
            "loss.alpha_offset",
            "a number in [0, 1)",
            offset,
        )
    if rule in alpha_rules.NEEDS_VALIDATION:
        data = config.data
        require(
            data.validation_examples > 0 or data.validation_fraction > 0,
            "data.validation_fraction",
            f"> 0 (or data.validation_examples > 0) with loss.alpha_rule={rule}: "
            "the rule reads the noisy validation accuracy",
            data.validation_fraction,
        )
    if rule == "auto":
        half = math.floor(alpha_rules.READ_FRACTION * config.num_epochs)
        require(
            alpha_rules.reading_epoch(config.num_epochs, config.eval_every_epochs) > 0,
            "eval_every_epochs",
            f"at most {half} with loss.alpha_rule=auto (the rule reads the training "
            f"labels at the last evaluation epoch up to epoch {half})",
            config.eval_every_epochs,
        )


def loss_kwargs(state: alpha_rules.RuleState | dict) -> dict[str, jax.Array]:
    """What the loss receives besides logits and labels on a step: the rule's
    current alpha (an array, so the step compiles once), nothing when fixed."""
    return {"alpha": state.alpha} if state else {}


def follow(
    state: alpha_rules.RuleState, record: dict[str, Any]
) -> alpha_rules.RuleState:
    """Records the epoch's alpha in ``record`` and, after an evaluation,
    advances the rule (``alpha_rules.update``); epochs without one keep it.

    Args:
      state: the rule's state, on the host.
      record: the epoch's metrics (``epoch``, ``contradicted_fraction``,
        ``val_accuracy``); receives ``alpha``.
    """
    record["alpha"] = float(state.alpha)
    if record["contradicted_fraction"] is None:
        return state
    reading = alpha_rules.Reading(
        epoch=record["epoch"],
        contradicted=record["contradicted_fraction"],
        val_accuracy=(
            math.nan if record["val_accuracy"] is None else record["val_accuracy"]
        ),
    )
    return alpha_rules.update(state, reading)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
