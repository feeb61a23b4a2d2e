"""Forward+backward time of TCE against optax's cross entropy, on CPU in float32.

Three jitted ``value_and_grad(mean(loss))`` programs per shape, timed in one
process, interleaved and repeated:

* ``ce``: ``optax.softmax_cross_entropy_with_integer_labels``;
* ``tce``: ``tce_jax.losses.tamed_cross_entropy`` (custom VJP);
* ``tce_autodiff``: plain autodiff of the naive log-space formula
  ``-logaddexp(log a, log(1 - a) + log_softmax(z)_y) / (1 - a)``.

Each round times every program (in an order that alternates between rounds)
over enough calls to last about 20 ms. Ratios are taken within a round, so
that load from other processes, which drifts slowly, cancels; the table gives
their median over rounds. It also reports the temporary memory XLA allocates
for each program (``compiled.memory_analysis()``).

Run::

    python3 benchmarks/loss_bench.py            # all four shapes, 41 rounds
    python3 benchmarks/loss_bench.py --rounds 11 --shapes 1024x10
    python3 benchmarks/loss_bench.py --single-thread   # steadier when shared
"""

import argparse
import functools
import os
import statistics
import time

import jax
import jax.numpy as jnp
import optax

from tce_jax import losses

DEFAULT_SHAPES = ((1024, 10), (1024, 100), (4096, 1000), (256, 32000))


def naive_tce(logits: jax.Array, labels: jax.Array, *, alpha: float) -> jax.Array:
    """TCE written directly in log space, differentiated by plain autodiff."""
    log_prob = jnp.take_along_axis(
        jax.nn.log_softmax(logits, axis=-1), labels[..., None], axis=-1
    )[..., 0]
    return -jnp.logaddexp(jnp.log(alpha), jnp.log1p(-alpha) + log_prob) / (1 - alpha)


def compile_step(loss_fn, logits: jax.Array, labels: jax.Array):
    """AOT-compiles ``value_and_grad`` of the mean loss for these inputs."""

    def mean_loss(z, y):
        return jnp.mean(loss_fn(z, y))

    return jax.jit(jax.value_and_grad(mean_loss)).lower(logits, labels).compile()


def time_calls(step, logits, labels, calls: int) -> float:
    """Seconds per call, averaged over ``calls`` back-to-back calls."""
    start = time.perf_counter()
    for _ in range(calls):
        out = step(logits, labels)
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / calls


def bench_shape(shape, *, alpha: float, rounds: int, target_seconds: float) -> dict:
    batch, num_classes = shape
    key_logits, key_labels = jax.random.split(jax.random.key(0))
    logits = 3.0 * jax.random.normal(key_logits, shape, jnp.float32)
    labels = jax.random.randint(key_labels, (batch,), 0, num_classes)
    programs = {
        "ce": optax.softmax_cross_entropy_with_integer_labels,
        "tce": functools.partial(losses.tamed_cross_entropy, alpha=alpha),
        "tce_autodiff": functools.partial(naive_tce, alpha=alpha),
    }
    steps = {name: compile_step(fn, logits, labels) for name, fn in programs.items()}
    memory = {
        name: step.memory_analysis().temp_size_in_bytes for name, step in steps.items()
    }
    # Warm up, then size the inner loop so one measurement lasts target_seconds.
    for step in steps.values():
        time_calls(step, logits, labels, 3)
    single = min(time_calls(steps["ce"], logits, labels, 5) for _ in range(5))
    calls = max(1, round(target_seconds / single))

    times = {name: [] for name in steps}
    names = list(steps)
    for round_index in range(rounds):
        order = names if round_index % 2 == 0 else names[::-1]
        for name in order:
            times[name].append(time_calls(steps[name], logits, labels, calls))

    def median_ratio(numerator: str, denominator: str) -> float:
        return statistics.median(
            a / b for a, b in zip(times[numerator], times[denominator], strict=True)
        )

    return {
        "shape": shape,
        "median_us": {name: 1e6 * statistics.median(t) for name, t in times.items()},
        "tce_over_ce": median_ratio("tce", "ce"),
        "custom_over_autodiff": median_ratio("tce", "tce_autodiff"),
        "temp_bytes": memory,
        "calls": calls,
    }


def _kib(num_bytes: int) -> str:
    return f"{num_bytes / 1024:,.0f}"


def markdown_table(results: list[dict]) -> str:
    lines = [
        "| shape | CE (us) | TCE custom VJP (us) | TCE autodiff (us) | TCE/CE "
        "| custom VJP/autodiff | temp KiB CE / TCE / autodiff |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        batch, num_classes = result["shape"]
        us = result["median_us"]
        memory = result["temp_bytes"]
        lines.append(
            f"| ({batch}, {num_classes}) | {us['ce']:,.0f} | {us['tce']:,.0f} "
            f"| {us['tce_autodiff']:,.0f} | {result['tce_over_ce']:.3f} "
            f"| {result['custom_over_autodiff']:.3f} "
            f"| {_kib(memory['ce'])} / {_kib(memory['tce'])} / "
            f"{_kib(memory['tce_autodiff'])} |"
        )
    return "\n".join(lines)


def parse_shape(text: str) -> tuple[int, int]:
    batch, num_classes = text.lower().split("x")
    return int(batch), int(num_classes)


def add_single_thread_flag(parser: argparse.ArgumentParser) -> None:
    """``--single-thread``, shared by the loss benchmarks."""
    parser.add_argument(
        "--single-thread",
        action="store_true",
        help="run XLA on one thread: steadier ratios on a machine shared with "
        "other work (set before the CPU backend starts)",
    )


def use_cpu_backend(*, single_thread: bool) -> None:
    """The CPU backend (unless JAX_PLATFORMS says otherwise), on one XLA thread
    if asked. Called from main, not at import, so that
    benchmarks/accelerator_check.py can reuse bench_shape on its accelerator;
    docs/losses.md's figures are CPU ones."""
    jax.config.update("jax_platforms", os.environ.get("JAX_PLATFORMS", "cpu"))
    if single_thread:
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "")
            + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument(
        "--target-ms",
        type=float,
        default=20.0,
        help="length of one timed measurement (many calls back to back)",
    )
    parser.add_argument("--alpha", type=float, default=losses.DEFAULT_TCE_ALPHA)
    parser.add_argument(
        "--shapes",
        type=parse_shape,
        nargs="+",
        default=DEFAULT_SHAPES,
        help="BATCHxCLASSES, e.g. 1024x10",
    )
    add_single_thread_flag(parser)
    args = parser.parse_args()
    use_cpu_backend(single_thread=args.single_thread)

    print(
        f"jax {jax.__version__}, optax {optax.__version__}, "
        f"backend {jax.default_backend()}, {os.cpu_count()} CPUs, float32, "
        f"alpha={args.alpha}, {args.rounds} interleaved rounds, "
        f"{'one XLA thread' if args.single_thread else 'default XLA threads'}, "
        f"~{args.target_ms:g} ms per measurement"
    )
    results = []
    for shape in args.shapes:
        result = bench_shape(
            shape,
            alpha=args.alpha,
            rounds=args.rounds,
            target_seconds=args.target_ms / 1e3,
        )
        print(
            f"  {shape}: {result['calls']} calls per measurement, "
            f"TCE/CE {result['tce_over_ce']:.3f}",
            flush=True,
        )
        results.append(result)
    print()
    print(markdown_table(results))
    print()
    print(
        "Times: median over rounds of the mean time per call (value and gradient "
        "of the mean loss). Ratios: median over rounds of the within-round ratio. "
        "temp: XLA's temporary buffers for the whole program."
    )


if __name__ == "__main__":
    main()
