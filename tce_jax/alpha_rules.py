r"""How TCE's ``alpha`` is set during a run: fixed, or by the training labels.

``alpha_rule = "fixed"`` (the default) keeps the configured ``alpha``.
``alpha_rule = "auto"`` trains the first half of the epochs at ``1/K``, reads
``s`` (:func:`contradicted_fraction`: the share of training labels the model
rates below chance) at that half's last evaluation (:func:`reading_epoch`),
sets ``alpha = clip(s - offset, 1/K, max_alpha)`` (:func:`next_alpha`) and
keeps it to the end. The functions are pure and work on NumPy values or traced
JAX arrays, so a library user can drive ``tamed_cross_entropy``'s (traced)
``alpha`` from their own loop.

Why the rule reads once, at the half, how it was chosen on development runs
only (``results/fashion_mnist_alpha_rule_dev/``) and how it fared:
docs/losses.md, "The self-tuning alpha".
"""

import math

import jax
import jax.numpy as jnp

RULES = ("fixed", "auto")

# The config fields of the rule (``config.loss``); they are not hyperparameters
# of the loss function itself.
CONFIG_FIELDS = ("alpha_rule", "alpha_max", "alpha_offset")

DEFAULT_MAX_ALPHA = 0.5
DEFAULT_OFFSET = 0.0
READ_FRACTION = 0.5


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
    """The ``auto`` rule's ``alpha`` before its reading: ``1/K``."""
    return 1.0 / num_classes


def reading_epoch(num_epochs: int, eval_every_epochs: int) -> int:
    """The epoch whose evaluation sets ``alpha``: the last evaluated one of the
    first ``READ_FRACTION`` of the epochs (0 if none is)."""
    half = math.floor(READ_FRACTION * num_epochs)
    return half - half % eval_every_epochs


def next_alpha(
    alpha: jax.typing.ArrayLike,
    contradicted: jax.typing.ArrayLike,
    *,
    epoch: int | jax.Array,
    reading_epoch: int,
    num_classes: int,
    max_alpha: float = DEFAULT_MAX_ALPHA,
    offset: float = DEFAULT_OFFSET,
) -> jax.Array:
    r"""The ``auto`` rule: ``alpha`` for the epochs after an evaluation at ``epoch``.

    .. math::
      \alpha' = \begin{cases}
        \mathrm{clip}(s - \mathrm{offset}, 1/K, \alpha_{\max})
          & \text{epoch} = \text{reading\_epoch} \\
        \alpha & \text{otherwise}
      \end{cases}

    Args:
      alpha: the current ``alpha``.
      contradicted: ``s``, from :func:`contradicted_fraction` on the training
        split (given labels) after ``epoch``.
      epoch: the 1-based epoch just finished.
      reading_epoch: from :func:`reading_epoch`.
      num_classes: K.
      max_alpha: the largest ``alpha`` the rule sets, in ``(1/K, 1)``.
      offset: subtracted from ``s`` first.

    Returns:
      The new ``alpha``, a float32 scalar.

    Example:
      >>> from tce_jax import alpha_rules
      >>> float(alpha_rules.next_alpha(0.1, 0.42, epoch=20, reading_epoch=20,
      ...                              num_classes=10))  # doctest: +ELLIPSIS
      0.41999...
    """
    contradicted = jnp.asarray(contradicted, jnp.float32)
    read = jnp.clip(contradicted - offset, 1.0 / num_classes, max_alpha)
    return jnp.where(epoch == reading_epoch, read, jnp.asarray(alpha, jnp.float32))
