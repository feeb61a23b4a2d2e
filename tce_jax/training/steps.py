"""The train state and the jitted train and eval steps.

One ``('data',)`` mesh spans all devices: the global batch is sharded along
it, the state replicated. A step receives uint8 images and augments and
normalises them on the device (``preprocessing.Preprocessing``); the loss
receives float32 logits whatever the model's computation dtype, and TCE's
alpha, under a self-tuning rule, as an array (``alpha.loss_kwargs``).
"""

import functools
from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax
from flax.training import train_state
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from tce_jax import alpha_rules
from tce_jax.data.preprocessing import Preprocessing
from tce_jax.seeding import purpose_key
from tce_jax.training import alpha


class TrainState(train_state.TrainState):
    """Params, optimiser state and step (from flax), plus BatchNorm statistics.

    ``alpha_rule`` is the state of a self-tuning alpha rule
    (``alpha_rules``; empty for a fixed alpha): its ``alpha`` reaches the loss
    as an array on every step, so the step compiles once, and a resumed run
    continues with the alpha and the rule's memory its checkpoint saved.
    """

    batch_stats: Any
    alpha_rule: alpha_rules.RuleState | dict


def create_train_state(
    model: flax.linen.Module,
    optimizer: optax.GradientTransformation,
    *,
    image_shape: tuple[int, ...],
    seed: int,
    mesh: jax.sharding.Mesh,
    alpha_rule: alpha_rules.RuleState | None = None,
) -> TrainState:
    """Initialises the model from the seed's "init" stream, replicated on ``mesh``.

    Initialisation runs unsharded and is then replicated, so the parameters do
    not depend on the device count. It uses the non-partitionable threefry
    lowering: on XLA:CPU the partitionable one compiles about 10x slower (a
    ResNet-8 init took 29 s instead of 3.7 s on 2 cores) and partitioning buys
    nothing for an unsharded init.
    """
    with jax.threefry_partitionable(False):
        variables = jax.jit(functools.partial(model.init, train=False))(
            purpose_key(seed, "init"), jnp.zeros((1, *image_shape), jnp.float32)
        )
    state = TrainState.create(
        apply_fn=model.apply,
        params=variables["params"],
        batch_stats=variables["batch_stats"],
        alpha_rule={} if alpha_rule is None else alpha_rule,
        tx=optimizer,
    )
    # An int32 array (not a Python int) so the first step does not compile twice.
    state = state.replace(step=jnp.zeros((), jnp.int32))
    return jax.device_put(state, NamedSharding(mesh, P()))


def _train_step(
    state: TrainState,
    batch: dict[str, jax.Array],
    epoch: jax.Array,
    *,
    loss_fn: Callable[[jax.Array, jax.Array], jax.Array],
    preprocessing: Preprocessing,
) -> tuple[TrainState, jax.Array]:
    """One SGD step on the mean loss of the (noisy-labelled) batch."""
    images = preprocessing.train_images(batch["image"], batch["index"], epoch)

    def objective(params):
        logits, updates = state.apply_fn(
            {"params": params, "batch_stats": state.batch_stats},
            images,
            train=True,
            mutable=["batch_stats"],
        )
        loss = loss_fn(logits, batch["label"], **alpha.loss_kwargs(state.alpha_rule))
        return jnp.mean(loss), updates["batch_stats"]

    (loss, batch_stats), grads = jax.value_and_grad(objective, has_aux=True)(
        state.params
    )
    state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
    return state, loss


def make_train_step(
    loss_fn: Callable[[jax.Array, jax.Array], jax.Array],
    mesh: jax.sharding.Mesh,
    preprocessing: Preprocessing,
) -> Callable[
    [TrainState, dict[str, jax.Array], int | jax.Array], tuple[TrainState, jax.Array]
]:
    """The jitted train step: batch sharded on 'data', state replicated and donated.

    The batch holds uint8 images (``Datasets.train_batches``); crop, flip and
    normalisation happen inside the step.

    Args:
      loss_fn: per-example loss ``fn(logits, labels[, alpha=...]) ->
        [B]``; it receives float32 logits whatever the model's computation
        dtype.
      mesh: the ('data',) device mesh.
      preprocessing: ``Datasets.preprocessing``.

    Returns:
      ``step(state, batch, epoch) -> (new_state, mean_loss)``, with ``epoch``
      the 0-based epoch the batch belongs to (it seeds the augmentation; a
      traced argument, so every epoch runs the same compiled program);
      ``state`` is donated.
    """
    replicated = NamedSharding(mesh, P())
    return jax.jit(
        functools.partial(_train_step, loss_fn=loss_fn, preprocessing=preprocessing),
        donate_argnums=0,
        out_shardings=(replicated, replicated),
    )


def _eval_step(
    state: TrainState, batch: dict[str, jax.Array], *, preprocessing: Preprocessing
) -> dict[str, jax.Array]:
    """Eval-mode predictions and the log-probability of the given label."""
    logits = state.apply_fn(
        {"params": state.params, "batch_stats": state.batch_stats},
        preprocessing.eval_images(batch["image"]),
        train=False,
    )
    log_probs = jax.nn.log_softmax(logits)
    log_prob_label = jnp.take_along_axis(log_probs, batch["label"][:, None], axis=-1)
    outputs = {
        "prediction": jnp.argmax(logits, axis=-1).astype(jnp.int32),
        "log_prob_label": log_prob_label[:, 0],
        "probs": jnp.exp(log_probs),
    }
    for key in ("index", "label", "clean_label", "is_noisy", "mask"):
        outputs[key] = batch[key]
    return outputs


def make_eval_step(
    mesh: jax.sharding.Mesh, preprocessing: Preprocessing
) -> Callable[[TrainState, dict[str, jax.Array]], dict[str, jax.Array]]:
    """The jitted eval step; its per-example outputs are replicated on every device.

    Replicated outputs are readable from any process, which makes the host-side
    bookkeeping the same on one host and on many. The batch holds uint8 images
    (``Datasets.eval_batches``), normalised inside the step.
    """
    return jax.jit(
        functools.partial(_eval_step, preprocessing=preprocessing),
        out_shardings=NamedSharding(mesh, P()),
    )
