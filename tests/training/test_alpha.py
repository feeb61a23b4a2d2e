"""The alpha rule in a run (training/alpha.py): resolved once from the loss
config, started, handed to the loss and moved by evaluations."""

import math

import ml_collections
import pytest

from tce_jax import alpha_rules
from tce_jax.training import alpha


def _loss(**fields):
    loss = ml_collections.ConfigDict({"name": "tce", "alpha": None})
    alpha.add_config_fields(loss, ml_collections.config_dict.placeholder)
    loss.update(fields)
    return loss


def test_the_config_fields_are_the_rule_name_and_every_rules_settings():
    loss = _loss()
    assert loss.alpha_rule == alpha.FIXED
    assert set(alpha.config_fields()) == {"alpha_rule", *alpha_rules.setting_names()}
    assert all(loss[field] is None for field in alpha_rules.setting_names())


def test_a_fixed_alpha_has_no_state_and_gives_the_loss_nothing():
    rule = alpha.from_loss_config(_loss())
    assert rule.is_fixed and dict(rule.settings) == {}
    assert rule.init_state(num_classes=10, num_epochs=8, eval_every_epochs=1) is None
    assert alpha.loss_kwargs(None) == {}


@pytest.mark.parametrize("name", list(alpha_rules.RULES))
def test_a_rule_resolves_its_defaults_and_takes_what_is_set(name):
    rule = alpha.from_loss_config(_loss(alpha_rule=name))
    assert dict(rule.settings) == alpha_rules.RULES[name]
    set_rule = alpha.from_loss_config(_loss(alpha_rule=name, alpha_max=0.3))
    assert set_rule.settings["alpha_max"] == 0.3
    with pytest.raises(TypeError):
        set_rule.settings["alpha_max"] = 0.4  # Read once, never changed.
    state = set_rule.init_state(num_classes=10, num_epochs=8, eval_every_epochs=2)
    assert float(state.alpha) == pytest.approx(0.1)
    assert float(state.maximum) == pytest.approx(0.3)
    assert alpha.loss_kwargs(state) == {"alpha": state.alpha}


def test_follow_records_the_epochs_alpha_and_moves_only_after_an_evaluation():
    rule = alpha.from_loss_config(_loss(alpha_rule="val_track"))
    state = rule.init_state(num_classes=10, num_epochs=4, eval_every_epochs=2)
    unevaluated = {"epoch": 1, "contradicted_fraction": None, "val_accuracy": None}
    assert alpha.follow(state, unevaluated) is state
    assert unevaluated["alpha"] == pytest.approx(0.1)
    evaluated = {"epoch": 2, "contradicted_fraction": 0.3, "val_accuracy": 0.5}
    moved = alpha.follow(state, evaluated)
    assert evaluated["alpha"] == pytest.approx(0.1)  # The alpha it trained with.
    assert float(moved.alpha) == pytest.approx(0.3)  # A new best: the median of one.


def test_follow_passes_a_missing_validation_accuracy_as_nan():
    rule = alpha.from_loss_config(_loss(alpha_rule="auto"))
    state = rule.init_state(num_classes=10, num_epochs=4, eval_every_epochs=2)
    record = {"epoch": 2, "contradicted_fraction": 0.25, "val_accuracy": None}
    moved = alpha.follow(state, record)
    assert float(moved.alpha) == pytest.approx(0.25)  # auto reads at epoch 2 of 4.
    assert not math.isnan(float(moved.alpha))
