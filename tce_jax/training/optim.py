"""The optimiser and its learning-rate schedule.

SGD with momentum and coupled L2 weight decay on every parameter, as
``torch.optim.SGD(weight_decay=...)``; the learning rate warms up linearly,
then follows a constant, piecewise or cosine schedule, its epochs counted in
steps.
"""

import optax

from tce_jax.training.config import RunConfig


def create_learning_rate_schedule(
    config: RunConfig, steps_per_epoch: int
) -> optax.Schedule:
    """The learning rate per step: optional linear warmup, then the named schedule.

    Epoch-valued settings (warmup_epochs, decay_epochs) become step counts with
    ``steps_per_epoch``. ``piecewise`` multiplies the rate by ``decay_factor`` at
    each of ``decay_epochs``; ``cosine`` decays to 0 at the last step; warmup
    ramps linearly from 0 to the base rate.

    Args:
      config: the run config (reads optimizer.learning_rate, schedule.*,
        num_epochs).
      steps_per_epoch: optimiser steps per epoch.

    Returns:
      An optax schedule mapping the step count to the learning rate.
    """
    base = config.optimizer.learning_rate
    schedule = config.schedule
    total_steps = config.num_epochs * steps_per_epoch
    warmup_steps = round(schedule.warmup_epochs * steps_per_epoch)
    if schedule.name == "constant":
        main = optax.constant_schedule(base)
    elif schedule.name == "piecewise":
        # After join_schedules, the main schedule counts steps from the warmup end.
        boundaries = {
            round(epoch * steps_per_epoch) - warmup_steps: schedule.decay_factor
            for epoch in schedule.decay_epochs
        }
        main = optax.piecewise_constant_schedule(base, boundaries)
    elif schedule.name == "cosine":
        main = optax.cosine_decay_schedule(base, max(1, total_steps - warmup_steps))
    else:
        raise ValueError(f"unknown schedule {schedule.name!r}")
    if warmup_steps == 0:
        return main
    warmup = optax.linear_schedule(0.0, base, warmup_steps)
    return optax.join_schedules([warmup, main], [warmup_steps])


def create_optimizer(
    config: RunConfig, learning_rate: optax.Schedule
) -> optax.GradientTransformation:
    """SGD with momentum and coupled L2 weight decay on all parameters."""
    optimizer = config.optimizer
    sgd = optax.sgd(
        learning_rate,
        momentum=optimizer.momentum or None,
        nesterov=optimizer.nesterov,
    )
    if not optimizer.weight_decay:
        return sgd
    return optax.chain(optax.add_decayed_weights(optimizer.weight_decay), sgd)
