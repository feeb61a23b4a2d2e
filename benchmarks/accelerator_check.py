"""A prepared accelerator check: end-to-end, step, host-pipeline and loss speed.

    python3 -m benchmarks.accelerator_check                 # a GPU or TPU machine
    python3 -m benchmarks.accelerator_check --budget_s=300  # start no row after 5 min
    python3 -m benchmarks.accelerator_check --quick         # CPU smoke run: under 1 min

Runs on whatever JAX finds (``jax.devices()``; the batch is sharded over all
devices, each row's batch rounded up to a multiple of the device count, e.g.
128 -> 132 on 6 GPUs) and prints one Markdown table, each row as soon as it is
measured, in this order:

* ``loss`` (first: seconds each): forward + backward of the mean loss at
  (4096, 1000) and (8192, 32000), float32 logits, CE (optax) against TCE's
  custom VJP and TCE by plain autodiff (``benchmarks/loss_bench.py``'s
  ``bench_shape``; median of interleaved rounds).
* ``cifar10 2 epochs`` (the figure a user needs most): two epochs of
  configs/cifar10.py (ResNet-34, batch 128, float32, train + noisy-val + test
  evaluation after each epoch, checkpoints) on random images of CIFAR-10's
  sizes, through ``loop.train_and_evaluate``: the wall time of the whole call
  and the training images/s of epoch 2.
* ``step``: images/s of the training loop's train step (``steps.make_train_step``:
  on-device pad-4 crop, flip and normalisation of uint8 CIFAR-sized 32x32x3
  images, forward, backward, SGD with momentum and weight decay, state
  donated) for ResNet-18 and ResNet-34, batch 128 and 512, float32 and
  bfloat16 computation (``config.model.dtype``), CE and TCE; beside it the
  images/s of the host pipeline at that batch size (``Datasets.train_batches``
  on 50,000 random CIFAR-sized images: index gather and transfer, each batch
  waited for on the device; measured in the first row of each batch size) and
  their ratio: host/step >= 1 means the host keeps the accelerator fed (the
  pipeline runs in a background thread during the step). ``compile s`` is the
  first call: tracing, compilation (with GPU autotuning) and one step, or
  loading all that from the compilation cache on a rerun.

A row that fails (out of memory, say) prints its error in its detail cell and
the check goes on with the next; the exit status is then 1.

Device time is spent only where it tells something:

* Without ``--quick`` the check stops at once, with one line, when JAX's
  backend is the CPU: with no usable accelerator (a CPU-only jaxlib, a GPU
  driver JAX cannot use) JAX falls back to the CPU without a word, and the full
  plan would take hours there.
* ``--budget_s``: the seconds the whole check may take, counted from its
  start (imports and device start-up included). A row starts only if the time
  left covers its estimate: the longest time a finished row of its check and
  model took, else of its check, else (no row of its check has finished) the
  check's allowance, ``FIRST_ROW_SECONDS``; the rows it cannot finish are
  printed as skipped, with the reason. Only a row that takes longer than its
  estimate can overrun the budget: with ``--budget_s=420`` the check fits an
  8-minute loan of one GPU unless the CIFAR-10 row takes more than a minute
  past its 240-second allowance.
* JAX's persistent compilation cache (``--compilation_cache_dir``; GPU
  autotuning results are kept with the programs) lets a rerun skip
  compilation.

``--quick`` shrinks every part so that the script runs end to end on a CPU
(its figures mean nothing): one step row (a quarter-width ResNet-8, batch 16,
bfloat16, TCE), small loss shapes, and the CIFAR-10 config on 1,024 images
with a quarter-width ResNet-8.
"""

import time

# The budget counts from here, before JAX (and the devices) start.
STARTED = time.monotonic()

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import functools  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Callable, Iterable, Iterator  # noqa: E402

import jax  # noqa: E402

# The input pipeline and the training loop (which import TensorFlow, seconds of
# start-up and lines on stderr) are imported where they are used, so that the
# refusal to run on a CPU backend comes at once and alone.
from benchmarks import loss_bench, train_bench  # noqa: E402
from configs import cifar10  # noqa: E402
from tce_jax import losses  # noqa: E402
from tce_jax.training import compilation_cache  # noqa: E402

IMAGE_SHAPE = (32, 32, 3)
DEFAULT_BUDGET_SECONDS = 900.0
# The estimate of a check's row before any row of that check has finished:
# about what one takes on a modest GPU (a T4), compilation included.
FIRST_ROW_SECONDS = {"loss": 20.0, "cifar10 2 epochs": 240.0, "step": 90.0}
EXIT_NO_ACCELERATOR = 2
EXIT_ROW_FAILED = 1
TABLE_HEADER = (
    "| check | model | batch | dtype | loss | step img/s | host img/s "
    "| host/step | detail |\n|---|---|---:|---|---|---:|---:|---:|---|"
)
# What a measured row reports: step (or training) images/s, host images/s, detail.
Measurement = tuple[float | None, float | None, str]


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the check runs."""

    # (model, batch size, dtype, loss) of each train-step row.
    steps: tuple[tuple[str, int, str, str], ...]
    width_multiplier: float
    step_seconds: float  # Length of one timed run of back-to-back steps.
    step_repeats: int
    host_batches: int
    host_repeats: int
    loss_shapes: tuple[tuple[int, int], ...]
    loss_rounds: int
    cifar_train_size: int
    cifar_test_size: int
    cifar_overrides: dict


FULL = Plan(
    steps=tuple(
        itertools.product(
            ("resnet18", "resnet34"), (128, 512), ("float32", "bfloat16"), ("ce", "tce")
        )
    ),
    width_multiplier=1.0,
    step_seconds=1.0,
    step_repeats=3,
    host_batches=100,
    host_repeats=3,
    loss_shapes=((4096, 1000), (8192, 32000)),
    loss_rounds=11,
    cifar_train_size=50_000,
    cifar_test_size=10_000,
    cifar_overrides={},
)

# Compilation is most of a CPU run (ResNet-18/34 take a minute each, even
# narrow): one bfloat16 step row; the CIFAR-10 run covers float32.
QUICK = dataclasses.replace(
    FULL,
    steps=(("resnet8", 16, "bfloat16", "tce"),),
    width_multiplier=0.25,
    step_seconds=0.0,
    step_repeats=1,
    host_batches=20,
    host_repeats=1,
    loss_shapes=((256, 100), (512, 1000)),
    loss_rounds=3,
    cifar_train_size=1024,
    cifar_test_size=256,
    cifar_overrides={
        "model.name": "resnet8",
        "model.width_multiplier": 0.25,
        "eval_batch_size": 256,
    },
)


@dataclasses.dataclass(frozen=True)
class PlannedRow:
    """A row of the table before it is measured.

    Attributes:
      cells: check, model, batch, dtype and loss, the row's first five cells.
      measure: runs the measurement (the device time the row costs).
    """

    cells: tuple[str, str, int | str, str, str]
    measure: Callable[[], Measurement]


def format_row(cells, step, host, detail):
    """A Markdown table row; step and host are images/s (None: not measured)."""
    ratio = f"{host / step:.1f}x" if step and host else "-"
    step = f"{step:,.0f}" if step else "-"
    host = f"{host:,.0f}" if host else "-"
    return "| " + " | ".join(map(str, (*cells, step, host, ratio, detail))) + " |"


def sized_batch(batch: int, num_devices: int) -> int:
    """The smallest multiple of the device count that is at least ``batch``:
    the global batch is split evenly over the devices."""
    return -(-batch // num_devices) * num_devices


def planned_rows(plan: Plan, num_devices: int) -> list[PlannedRow]:
    """The rows of the check in the order they run: losses, CIFAR-10, steps.

    Args:
      plan: ``FULL`` or ``QUICK``.
      num_devices: the devices the batches are sharded over; every batch is
        ``sized_batch`` to them.
    """
    rows = [
        PlannedRow(
            ("loss", "-", f"{shape[0]}x{shape[1]}", "float32", "CE vs TCE"),
            functools.partial(measure_loss, shape, plan),
        )
        for shape in plan.loss_shapes
    ]
    config = cifar10_config(plan, num_devices)
    rows.append(
        PlannedRow(
            (
                "cifar10 2 epochs",
                _model_name(config.model.name, config.model.width_multiplier),
                config.batch_size,
                config.model.dtype,
                config.loss.name,
            ),
            functools.partial(measure_cifar10, config, plan),
        )
    )
    # The host pipeline is measured once per batch size, in its first step row.
    host = functools.cache(
        lambda batch: host_images_per_second(
            batch, plan.host_batches, plan.host_repeats
        )
    )
    for model, batch, dtype, loss in plan.steps:
        batch = sized_batch(batch, num_devices)
        rows.append(
            PlannedRow(
                ("step", _model_name(model, plan.width_multiplier), batch, dtype, loss),
                functools.partial(measure_step, model, batch, dtype, loss, plan, host),
            )
        )
    return rows


def batch_sizing_note(plan: Plan, num_devices: int) -> str | None:
    """One line on the batches rounded up to the device count, or None."""
    nominal = sorted(
        {batch for _, batch, _, _ in plan.steps} | {cifar10_config(plan, 1).batch_size}
    )
    changed = [
        f"{batch} -> {sized_batch(batch, num_devices)}"
        for batch in nominal
        if sized_batch(batch, num_devices) != batch
    ]
    if not changed:
        return None
    return (
        f"batches rounded up to a multiple of the {num_devices} devices: "
        + ", ".join(changed)
    )


def run_within_budget(
    rows: Iterable[PlannedRow],
    budget_seconds: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    start: float | None = None,
) -> Iterator[str]:
    """Measures the rows in order, skipping those the time left cannot cover.

    A row's estimate is the longest time a finished row with the same check and
    model took, else the longest of the same check, else the check's
    ``FIRST_ROW_SECONDS``. A row that raises prints its error in its detail
    cell (prefixed ``error:``) and the next row runs.

    Args:
      rows: the planned rows.
      budget_seconds: the time the check may take from ``start``.
      clock: seconds, monotonic.
      start: when the budget began (default: now).

    Yields:
      Each row's table line as soon as it is measured, failed or skipped.
    """
    start = clock() if start is None else start
    took: dict[tuple[str, str], float] = {}
    for row in rows:
        check, model = row.cells[:2]
        left = budget_seconds - (clock() - start)
        same_model = [t for (c, m), t in took.items() if (c, m) == (check, model)]
        same_check = [t for (c, _), t in took.items() if c == check]
        estimate = max(same_model or same_check, default=None)
        source = (
            "the longest of the finished rows of this check and model"
            if same_model
            else "the longest of the finished rows of this check"
            if same_check
            else "the allowance for a first row of this check"
        )
        if estimate is None:
            estimate = FIRST_ROW_SECONDS.get(check, 0.0)
        if left <= 0:
            reason = f"skipped: --budget_s={budget_seconds:g} used up"
        elif estimate > left:
            reason = (
                f"skipped: needs about {estimate:.0f} s ({source}), {left:.0f} s of "
                f"--budget_s={budget_seconds:g} left"
            )
        else:
            began = clock()
            try:
                measurement = row.measure()
            except Exception as error:  # The check goes on with the next row.
                first_line = (str(error).strip().splitlines() or [""])[0]
                yield format_row(
                    row.cells,
                    None,
                    None,
                    f"error: {type(error).__name__}: {first_line}",
                )
                continue
            took[check, model] = max(took.get((check, model), 0.0), clock() - began)
            yield format_row(row.cells, *measurement)
            continue
        yield format_row(row.cells, None, None, reason)


def host_images_per_second(batch_size, num_batches, repeats):
    """Images/s of `Datasets.train_batches` on 50,000 random CIFAR-sized images."""
    from benchmarks import pipeline_bench
    from tce_jax.data import input_pipeline

    mesh = jax.make_mesh((jax.device_count(),), ("data",))
    _, splits = pipeline_bench.cifar_sized_splits()
    datasets = input_pipeline.build_datasets(
        pipeline_bench.pipeline_config("cifar10"),
        mesh=mesh,
        train_images=splits["train"][0],
        train_labels=splits["train"][1],
        test_images=splits["test"][0],
        test_labels=splits["test"][1],
    )
    paths = {"now": pipeline_bench.PATHS["now"]}
    return pipeline_bench.time_pipelines(
        datasets, batch_size, num_batches, repeats, paths=paths
    )["now"]


def step_images_per_second(run, batch_size, plan):
    """Median images/s over repeats of back-to-back steps lasting step_seconds."""
    start = time.perf_counter()
    run()
    single = time.perf_counter() - start
    num_steps = max(1, round(plan.step_seconds / single))
    rates = []
    for _ in range(plan.step_repeats):
        start = time.perf_counter()
        run(num_steps)
        rates.append(num_steps * batch_size / (time.perf_counter() - start))
    return statistics.median(rates)


def _model_name(model, width_multiplier):
    return model if width_multiplier == 1 else f"{model} x{width_multiplier:g}"


def measure_step(model, batch, dtype, loss, plan, host_images_per_batch):
    """A step row: the train step's images/s beside the host pipeline's."""
    start = time.perf_counter()
    run = train_bench.jax_step_runner(
        model,
        loss,
        IMAGE_SHAPE,
        batch,
        dtype=dtype,
        width_multiplier=plan.width_multiplier,
    )
    run()  # Compiles.
    compile_seconds = time.perf_counter() - start
    step = step_images_per_second(run, batch, plan)
    return step, host_images_per_batch(batch), f"compile {compile_seconds:.1f} s"


def measure_loss(shape, plan):
    result = loss_bench.bench_shape(
        shape,
        alpha=losses.DEFAULT_TCE_ALPHA,
        rounds=plan.loss_rounds,
        target_seconds=0.02,
    )
    us = result["median_us"]
    return (
        None,
        None,
        f"CE {us['ce']:,.0f} us, TCE {us['tce']:,.0f} us "
        f"(TCE/CE {result['tce_over_ce']:.3f}), TCE autodiff "
        f"{us['tce_autodiff']:,.0f} us",
    )


def cifar10_config(plan, num_devices):
    """configs/cifar10.py for two epochs, with the plan's overrides and its
    batch sizes rounded up to the device count."""
    config = cifar10.get_config()
    config.num_epochs = 2
    config.schedule.decay_epochs = ()  # Its decays come at epochs 40 and 80.
    config.update_from_flattened_dict(plan.cifar_overrides)
    config.batch_size = sized_batch(config.batch_size, num_devices)
    config.eval_batch_size = sized_batch(config.eval_batch_size, num_devices)
    return config


def measure_cifar10(config, plan):
    """Two epochs of the config on random images, timed end to end."""
    from benchmarks import pipeline_bench
    from tce_jax.data import input_pipeline
    from tce_jax.training import loop

    sizes = {"train": plan.cifar_train_size, "test": plan.cifar_test_size}

    def random_split(info, split, data_dir=None):
        del data_dir
        seed = ("train", "test").index(split)
        return pipeline_bench.random_split(
            sizes[split], info.image_shape, info.num_classes, seed
        )

    # Offline: the tfds loading is replaced by random images of the same sizes.
    load_split = input_pipeline.load_split
    input_pipeline.load_split = random_split
    try:
        with tempfile.TemporaryDirectory() as workdir:
            start = time.perf_counter()
            loop.train_and_evaluate(config, workdir)
            wall = time.perf_counter() - start
            with open(os.path.join(workdir, "metrics.jsonl")) as f:
                history = [json.loads(line) for line in f]
    finally:
        input_pipeline.load_split = load_split
    return (
        history[-1]["images_per_second"],
        None,
        f"wall {wall:.0f} s for 2 epochs on {sizes['train']:,} random train images "
        "(10% held out as validation; data, compilation, evaluation of "
        "train/val/test and checkpoints included)",
    )


def _positive_seconds(text):
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"allowed: seconds > 0, got {text!r}")
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="a CPU-sized run of every part"
    )
    parser.add_argument(
        "--budget_s",
        type=_positive_seconds,
        default=DEFAULT_BUDGET_SECONDS,
        help="seconds the whole check may take, start-up included: start no row "
        "that the seconds left cannot cover (default: %(default)g)",
    )
    parser.add_argument(
        "--compilation_cache_dir",
        default=jax.config.jax_compilation_cache_dir or compilation_cache.DEFAULT_DIR,
        help="JAX's persistent compilation cache, so that a rerun skips "
        "compilation; empty: off (default: $JAX_COMPILATION_CACHE_DIR, else "
        "%(default)s)",
    )
    args = parser.parse_args(argv)
    backend = jax.default_backend()
    if backend == "cpu" and not args.quick:
        print(
            "accelerator_check: JAX's backend is the CPU (no GPU or TPU it can use: "
            "a CPU-only jaxlib, or a driver problem), where the full check would take "
            "hours; install JAX for the accelerator (docs/accelerators.md) "
            "or pass --quick for a CPU smoke run",
            file=sys.stderr,
        )
        return EXIT_NO_ACCELERATOR
    compilation_cache.configure(args.compilation_cache_dir)
    plan = QUICK if args.quick else FULL
    devices = jax.devices()
    print(
        f"jax {jax.__version__}, {len(devices)} x {devices[0].device_kind} "
        f"({backend}), {os.cpu_count()} host CPUs, --budget_s={args.budget_s:g}"
        + (" -- quick: figures are meaningless" if args.quick else ""),
        flush=True,
    )
    if note := batch_sizing_note(plan, len(devices)):
        print(note, flush=True)
    print(TABLE_HEADER, flush=True)
    failed = 0
    rows = planned_rows(plan, len(devices))
    for row in run_within_budget(rows, args.budget_s, start=STARTED):
        failed += "| error: " in row
        print(row, flush=True)
    print(f"\ntotal {time.monotonic() - STARTED:.0f} s, start-up included")
    if failed:
        print(f"{failed} row(s) failed: see their detail", flush=True)
        return EXIT_ROW_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
