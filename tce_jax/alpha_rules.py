r"""How TCE's ``alpha`` is set during a run: fixed, or by the run's own readings.

A self-tuning rule starts at ``alpha = 1/K`` (CE-like) and, after each
evaluation, looks at a :class:`Reading`: the share ``s`` of training examples
whose given label the model rates below chance (:func:`contradicted_fraction`)
and the accuracy on the noisy validation split. The rules (``RULES``):

- ``"auto"`` (the first version): reads ``s`` once, at the last evaluation of
  the first half of the epochs, and holds ``clip(s - offset, 1/K, max)``.
- ``"val_peak"``: waits until noisy-validation accuracy first fails to
  improve (early learning is over), then sets ``alpha`` to the median of the
  last three readings of ``s`` (clipped to ``[1/K, max]``), and updates it the
  same way whenever noisy-validation accuracy reaches a new best.
- ``"val_track"``: as ``val_peak`` from the first evaluation on. The second
  version, the one to use: chosen among these three on development runs.

A rule's whole state, its settings included, is a pytree (a ``NamedTuple`` of
arrays): checkpoint it with the train state and a resumed run continues with
the same alpha and the same memory. :func:`init` makes it, :func:`update`
advances it, ``state.alpha`` is the alpha for the next epochs. Both are pure
and traceable, so a library user drives ``tamed_cross_entropy``'s (traced)
``alpha`` from their own loop::

    state = alpha_rules.init("val_peak", num_classes=10)
    for epoch in range(1, num_epochs + 1):
        train_one_epoch(alpha=state.alpha)
        s = alpha_rules.contradicted_fraction(train_log_prob_label, num_classes=10)
        state = alpha_rules.update(
            state, alpha_rules.Reading(epoch, s, val_accuracy)
        )

How the rules were developed and evaluated: docs/losses.md, "The
self-tuning alpha".
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

FIXED = "fixed"
DEFAULT_MAX_ALPHA = 0.5
# The first version's reading point, as a share of the epochs.
READ_FRACTION = 0.5
# The validation rules smooth over this many of the latest readings.
SMOOTHING_READINGS = 3


class Reading(NamedTuple):
    """What a rule sees after an evaluation.

    Attributes:
      epoch: the 1-based epoch just finished.
      contradicted: ``s``, :func:`contradicted_fraction` of the training split
        (given labels) after that epoch.
      val_accuracy: accuracy on the noisy validation split (given labels);
        only the validation rules read it.
    """

    epoch: int | jax.Array
    contradicted: float | jax.Array
    val_accuracy: float | jax.Array = math.nan


class HalfwayState(NamedTuple):
    """State of the ``"auto"`` rule: read once at ``reading_epoch``, then hold."""

    alpha: jax.Array
    floor: jax.Array
    maximum: jax.Array
    offset: jax.Array
    reading_epoch: jax.Array

    def update(self, reading: Reading) -> HalfwayState:
        contradicted = jnp.asarray(reading.contradicted, jnp.float32)
        read = jnp.clip(contradicted - self.offset, self.floor, self.maximum)
        alpha = jnp.where(reading.epoch == self.reading_epoch, read, self.alpha)
        return self._replace(alpha=alpha)


class ValidationState(NamedTuple):
    """State of the ``"val_peak"`` and ``"val_track"`` rules.

    ``started`` is False until noisy-validation accuracy first fails to
    improve (``val_track`` starts True); once started, alpha follows the
    median of ``readings`` at every evaluation that sets a new best (and at
    the one that starts the rule).
    """

    alpha: jax.Array
    floor: jax.Array
    maximum: jax.Array
    best_val: jax.Array
    readings: jax.Array
    started: jax.Array

    def update(self, reading: Reading) -> ValidationState:
        contradicted = jnp.asarray(reading.contradicted, jnp.float32)
        val = jnp.asarray(reading.val_accuracy, jnp.float32)
        readings = jnp.concatenate([self.readings[1:], contradicted[None]])
        improves = val > self.best_val
        first_stall = ~self.started & ~improves & jnp.isfinite(self.best_val)
        move = first_stall | (self.started & improves)
        smoothed = jnp.clip(jnp.nanmedian(readings), self.floor, self.maximum)
        return self._replace(
            alpha=jnp.where(move, smoothed, self.alpha),
            best_val=jnp.maximum(self.best_val, val),
            readings=readings,
            started=self.started | first_stall,
        )


RuleState = HalfwayState | ValidationState

# Each self-tuning rule's settings and their defaults (``config.loss.<name>``
# in the training harness).
RULES: dict[str, dict[str, float]] = {
    "auto": {"alpha_max": DEFAULT_MAX_ALPHA, "alpha_offset": 0.0},
    "val_peak": {"alpha_max": DEFAULT_MAX_ALPHA},
    "val_track": {"alpha_max": DEFAULT_MAX_ALPHA},
}
# Rules that read the noisy validation split.
NEEDS_VALIDATION = ("val_peak", "val_track")


def names() -> tuple[str, ...]:
    """Every rule name: ``"fixed"`` (the configured alpha) and the self-tuning ones."""
    return (FIXED, *RULES)


def setting_names() -> tuple[str, ...]:
    """The settings any self-tuning rule takes, sorted."""
    return tuple(sorted({name for settings in RULES.values() for name in settings}))


def contradicted_fraction(
    log_prob_label: jax.typing.ArrayLike, *, num_classes: int
) -> jax.Array:
    """Share of examples whose given label the model rates below chance, 1/K.

    Args:
      log_prob_label: ``log p_y`` of each example's given label, any shape.
      num_classes: K.

    Returns:
      A float32 scalar in [0, 1].
    """
    log_prob_label = jnp.asarray(log_prob_label, jnp.float32)
    return jnp.mean((log_prob_label < -math.log(num_classes)).astype(jnp.float32))


def initial_alpha(num_classes: int) -> float:
    """Every self-tuning rule's ``alpha`` before it moves: ``1/K``."""
    return 1.0 / num_classes


def reading_epoch(num_epochs: int, eval_every_epochs: int) -> int:
    """The ``"auto"`` rule's reading: the last evaluated epoch of the first
    ``READ_FRACTION`` of the epochs (0 if none is)."""
    half = math.floor(READ_FRACTION * num_epochs)
    return half - half % eval_every_epochs


def init(
    rule: str,
    *,
    num_classes: int,
    num_epochs: int | None = None,
    eval_every_epochs: int | None = None,
    alpha_max: float = DEFAULT_MAX_ALPHA,
    alpha_offset: float = 0.0,
) -> RuleState:
    r"""The state of a self-tuning rule before training: ``alpha = 1/K``.

    Args:
      rule: a name of ``RULES``.
      num_classes: K.
      num_epochs, eval_every_epochs: the run's; only ``"auto"`` needs them
        (it reads at :func:`reading_epoch`).
      alpha_max: the largest alpha the rule sets, in ``(1/K, 1)``.
      alpha_offset: ``"auto"`` only: subtracted from ``s`` first.

    Returns:
      The rule's state; ``state.alpha`` is a float32 scalar.

    Raises:
      ValueError: an unknown rule, a setting the rule does not take, or
        ``"auto"`` without the epochs.

    Example:
      >>> from tce_jax import alpha_rules
      >>> state = alpha_rules.init("val_peak", num_classes=10)
      >>> for epoch, s, val in [(4, 0.42, 0.30), (8, 0.40, 0.35), (12, 0.38, 0.33)]:
      ...     state = alpha_rules.update(state, alpha_rules.Reading(epoch, s, val))
      >>> round(float(state.alpha), 2)  # validation stalled at epoch 12
      0.4
    """
    if rule not in RULES:
        raise ValueError(f"alpha rule {rule!r}; allowed: {', '.join(RULES)}")
    if alpha_offset and rule != "auto":
        raise ValueError(f"alpha rule {rule!r} takes no alpha_offset")
    floor = initial_alpha(num_classes)
    common = dict(
        alpha=jnp.float32(floor),
        floor=jnp.float32(floor),
        maximum=jnp.float32(alpha_max),
    )
    if rule == "auto":
        if num_epochs is None or eval_every_epochs is None:
            raise ValueError("alpha rule 'auto' needs num_epochs and eval_every_epochs")
        return HalfwayState(
            **common,
            offset=jnp.float32(alpha_offset),
            reading_epoch=jnp.int32(reading_epoch(num_epochs, eval_every_epochs)),
        )
    return ValidationState(
        **common,
        best_val=jnp.float32(-jnp.inf),
        readings=jnp.full(SMOOTHING_READINGS, jnp.nan, jnp.float32),
        started=jnp.asarray(rule == "val_track"),
    )


def update(state: RuleState, reading: Reading) -> RuleState:
    """The rule's state after an evaluation; ``.alpha`` is the next epochs' alpha.

    Epochs without an evaluation leave the state alone (call this only after
    evaluations).
    """
    return state.update(reading)
