r"""How TCE's ``alpha`` is set during a run: fixed, or by the training labels.

``alpha_rule = "fixed"`` (the default) keeps the configured ``alpha``.
``alpha_rule = "auto"`` lets the labels set it, with no knowledge of the noise:

1. at each evaluation epoch, read ``s``, the share of training examples whose
   given label the model rates below chance (``p_y < 1/K``,
   :func:`contradicted_fraction`): a label-free estimate of the noise rate;
2. during the first ``FOLLOW_FRACTION`` of the epochs, set
   ``alpha = clip(s, 1/K, max_alpha)``; the run starts at ``alpha = 1/K``;
3. after that, hold ``alpha``: late in training memorisation lowers ``s``, and
   a falling ``alpha`` would let it feed on itself.

On clean labels ``s`` falls as the model learns, and ``alpha`` with it, down to
``1/K`` (CE-like); under noise the contradicted mislabelled examples keep ``s``
near the noise rate. Both functions are pure and work on NumPy values or traced
JAX arrays, so a library user can drive ``tamed_cross_entropy``'s (traced)
``alpha`` from their own loop. Why these constants: the development runs in
``results/fashion_mnist_alpha_rule_dev/``.
"""

import math

import jax
import jax.numpy as jnp

RULES = ("fixed", "auto")

# The config fields of the rule (``config.loss``); they are not hyperparameters
# of the loss function itself.
CONFIG_FIELDS = ("alpha_rule", "alpha_max")

DEFAULT_MAX_ALPHA = 0.5
FOLLOW_FRACTION = 0.5


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
    """The ``auto`` rule's ``alpha`` before its first reading: ``1/K``."""
    return 1.0 / num_classes


def follows_until_epoch(num_epochs: int) -> int:
    """The last epoch whose reading may still move ``alpha``."""
    return math.floor(FOLLOW_FRACTION * num_epochs)


def next_alpha(
    alpha: jax.typing.ArrayLike,
    contradicted: jax.typing.ArrayLike,
    *,
    epoch: int | jax.Array,
    num_epochs: int,
    num_classes: int,
    max_alpha: float = DEFAULT_MAX_ALPHA,
) -> jax.Array:
    r"""The ``auto`` rule: ``alpha`` for the epochs after a reading at ``epoch``.

    .. math::
      \alpha' = \begin{cases}
        \mathrm{clip}(s, 1/K, \alpha_{\max}) & \text{epoch} \le
          \lfloor \mathrm{FOLLOW\_FRACTION} \cdot \text{num\_epochs} \rfloor \\
        \alpha & \text{otherwise}
      \end{cases}

    Args:
      alpha: the current ``alpha``.
      contradicted: ``s``, from :func:`contradicted_fraction` on the training
        split (given labels) after ``epoch``.
      epoch: the 1-based epoch just finished.
      num_epochs: the run's epochs.
      num_classes: K.
      max_alpha: the largest ``alpha`` the rule sets, in ``(1/K, 1)``.

    Returns:
      The new ``alpha``, a float32 scalar.

    Example:
      >>> from tce_jax import alpha_rules
      >>> float(alpha_rules.next_alpha(0.1, 0.42, epoch=8, num_epochs=40,
      ...                              num_classes=10))  # doctest: +ELLIPSIS
      0.41999...
    """
    followed = jnp.clip(
        jnp.asarray(contradicted, jnp.float32), 1.0 / num_classes, max_alpha
    )
    return jnp.where(
        epoch <= follows_until_epoch(num_epochs),
        followed,
        jnp.asarray(alpha, jnp.float32),
    )
