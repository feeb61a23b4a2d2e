"""How TCE's ``alpha`` may change during training: fixed, or set by the labels.

Placeholder: the self-tuning rule is being developed on development runs.
"""

import math

import jax
import jax.numpy as jnp


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
