"""The bi-tempered normaliser: converged Newton solve against 5 fixed-point iterations.

Two parts, in one process:

1. Accuracy (float64, 100 classes): how far the tempered probabilities sum
   from 1, and how far the gradient is from the exact normaliser's, for

   * ``newton``: ``tce_jax.losses.bi_tempered_logistic_loss`` (Newton's
     method to convergence, exact-normaliser gradient by a custom JVP);
   * ``fixed5``: this project's previous implementation, the reference code's
     fixed-point iteration for the normaliser, 5 iterations, differentiated by
     autodiff through them;
   * ``fixed5_escort`` (gradient only): the reference code's backward pass,
     the exact normaliser's gradient formula evaluated at the probabilities
     of 5 fixed-point iterations.

2. Cost: forward + backward of the mean loss, float32, ``newton`` against
   ``fixed5``, timed interleaved in rounds as benchmarks/loss_bench.py does;
   ratios are taken within a round and their median reported.

Run::

    python3 benchmarks/bi_tempered_bench.py
    python3 benchmarks/bi_tempered_bench.py --rounds 11 --shapes 1024x100
"""

import argparse
import functools
import os
import statistics

import jax
import jax.numpy as jnp
import numpy as np
from loss_bench import (
    add_single_thread_flag,
    compile_step,
    parse_shape,
    time_calls,
    use_cpu_backend,
)

from tce_jax import losses

TEMPERATURES = ((0.8, 1.2), (0.5, 2.0), (0.2, 4.0))
DEFAULT_SHAPES = ((1024, 10), (1024, 100), (256, 1000))


def _exp_t(x, t):
    return jnp.power(jnp.maximum(1.0 + (1.0 - t) * x, 0.0), 1.0 / (1.0 - t))


def fixed_point_log_probs(logits, t, num_iters=5):
    """The reference code's fixed point for the normaliser (the project's
    implementation before the Newton solve), as log-probabilities."""
    max_logit = jnp.max(logits, axis=-1, keepdims=True)
    shifted = logits - max_logit
    scaled = shifted
    for _ in range(num_iters):
        partition = jnp.sum(_exp_t(scaled, t), axis=-1, keepdims=True)
        scaled = shifted * partition ** (1.0 - t)
    partition = jnp.sum(_exp_t(scaled, t), axis=-1, keepdims=True)
    normaliser = max_logit - (partition ** (t - 1.0) - 1.0) / (1.0 - t)
    return jnp.log1p((1.0 - t) * (logits - normaliser)) / (1.0 - t)


def fixed5_loss(logits, labels, *, t1, t2, num_iters=5):
    """The previous bi-tempered loss: 5 fixed-point iterations, autodiff."""
    log_probs = fixed_point_log_probs(logits, t2, num_iters)
    power_sum = jnp.sum(jnp.exp((2.0 - t1) * log_probs), axis=-1)
    label_log_prob = jnp.take_along_axis(log_probs, labels[..., None], -1)[..., 0]
    log_t = jnp.expm1((1.0 - t1) * label_log_prob) / (1.0 - t1)
    return -log_t - (1.0 - power_sum) / (2.0 - t1)


def escort_gradient(log_probs, labels, t1, t2):
    """The reference code's backward pass, at the given probabilities."""
    probs = jnp.exp(log_probs)
    onehot = jax.nn.one_hot(labels, probs.shape[-1], dtype=probs.dtype)
    delta = (probs - onehot) * probs ** (t2 - t1)
    escort = probs**t2 / jnp.sum(probs**t2, axis=-1, keepdims=True)
    return delta - escort * jnp.sum(delta, axis=-1, keepdims=True)


KINDS = {
    "N(0, 1)": lambda rng, shape: rng.normal(size=shape),
    "N(0, 10^2)": lambda rng, shape: rng.normal(size=shape) * 10.0,
    "N(0, 100^2)": lambda rng, shape: rng.normal(size=shape) * 100.0,
    "U(-1e4, 1e4)": lambda rng, shape: rng.uniform(-1e4, 1e4, size=shape),
    "+-1e4": lambda rng, shape: np.sign(rng.normal(size=shape)) * 1e4,
}


def accuracy_table() -> str:
    """Float64: sum-to-one error and gradient error of each method."""
    lines = [
        "| t1, t2 | logits | sum error: fixed5 | newton | grad error: fixed5 "
        "| fixed5_escort | newton |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        for t1, t2 in TEMPERATURES:
            for kind, draw in KINDS.items():
                z = jnp.asarray(draw(rng, (256, 100)))
                y = jnp.asarray(rng.integers(0, z.shape[-1], size=z.shape[0]))

                def newton(z, t1=t1, t2=t2, y=y):
                    return jnp.sum(losses.bi_tempered_logistic_loss(z, y, t1=t1, t2=t2))

                def fixed5(z, t1=t1, t2=t2, y=y):
                    return jnp.sum(fixed5_loss(z, y, t1=t1, t2=t2))

                exact = jax.jit(jax.grad(newton))(z)
                old = jax.jit(jax.grad(fixed5))(z)
                log_probs_old = fixed_point_log_probs(z, t2)
                escort = escort_gradient(log_probs_old, y, t1, t2)
                log_probs_new = losses._tempered_log_softmax(z, t2, 50)

                def sum_error(log_probs):
                    return float(jnp.max(jnp.abs(jnp.sum(jnp.exp(log_probs), -1) - 1)))

                def grad_error(grad, exact=exact):
                    # Relative to the largest entry of the batch's gradient.
                    return float(
                        jnp.max(jnp.abs(grad - exact)) / jnp.max(jnp.abs(exact))
                    )

                # The Newton gradient against the escort formula at its own
                # (converged) probabilities: how exact "exact" is.
                newton_vs_formula = grad_error(
                    escort_gradient(log_probs_new, y, t1, t2)
                )
                errors = (
                    sum_error(log_probs_old),
                    sum_error(log_probs_new),
                    grad_error(old),
                    grad_error(escort),
                    newton_vs_formula,
                )
                cells = " | ".join(f"{error:.1e}" for error in errors)
                lines.append(f"| {t1}, {t2} | {kind} | {cells} |")
    return "\n".join(lines)


def bench_shape(shape, *, t1, t2, rounds: int, target_seconds: float) -> dict:
    batch, num_classes = shape
    key_logits, key_labels = jax.random.split(jax.random.key(0))
    logits = 3.0 * jax.random.normal(key_logits, shape, jnp.float32)
    labels = jax.random.randint(key_labels, (batch,), 0, num_classes)
    programs = {
        "fixed5": functools.partial(fixed5_loss, t1=t1, t2=t2),
        "newton": functools.partial(losses.bi_tempered_logistic_loss, t1=t1, t2=t2),
    }
    steps = {name: compile_step(fn, logits, labels) for name, fn in programs.items()}
    for step in steps.values():
        time_calls(step, logits, labels, 3)
    single = min(time_calls(steps["fixed5"], logits, labels, 5) for _ in range(5))
    calls = max(1, round(target_seconds / single))
    times = {name: [] for name in steps}
    names = list(steps)
    for round_index in range(rounds):
        for name in names if round_index % 2 == 0 else names[::-1]:
            times[name].append(time_calls(steps[name], logits, labels, calls))
    return {
        "shape": shape,
        "median_us": {name: 1e6 * statistics.median(t) for name, t in times.items()},
        "ratio": statistics.median(
            a / b for a, b in zip(times["newton"], times["fixed5"], strict=True)
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--target-ms", type=float, default=20.0)
    parser.add_argument("--shapes", type=parse_shape, nargs="+", default=DEFAULT_SHAPES)
    add_single_thread_flag(parser)
    args = parser.parse_args()
    use_cpu_backend(single_thread=args.single_thread)
    print(
        f"jax {jax.__version__}, backend {jax.default_backend()}, {os.cpu_count()} CPUs"
    )
    print()
    print(
        "Accuracy, float64, 100 classes, 256 examples per row; sum error: max "
        "|sum_k p_k - 1|; grad error: max |g - g_exact| / max |g_exact| over "
        "the batch, g_exact the Newton loss's gradient (newton column: that "
        "gradient against the escort formula at its own probabilities)."
    )
    print()
    print(accuracy_table())
    print()
    print(
        f"Cost, float32, forward + backward of the mean loss, {args.rounds} "
        f"interleaved rounds, ~{args.target_ms:g} ms per measurement "
        f"({'one XLA thread' if args.single_thread else 'default XLA threads'}):"
    )
    print()
    print("| t1, t2 | shape | fixed5 (us) | newton (us) | newton / fixed5 |")
    print("|---|---|---:|---:|---:|")
    for t1, t2 in TEMPERATURES:
        for shape in args.shapes:
            result = bench_shape(
                shape,
                t1=t1,
                t2=t2,
                rounds=args.rounds,
                target_seconds=args.target_ms / 1e3,
            )
            us = result["median_us"]
            print(
                f"| {t1}, {t2} | {shape} | {us['fixed5']:,.0f} | {us['newton']:,.0f} "
                f"| {result['ratio']:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
