"""A prepared accelerator check: step, host-pipeline, loss and end-to-end speed.

    python3 -m benchmarks.accelerator_check            # one GPU: under 8 minutes
    python3 -m benchmarks.accelerator_check --quick    # CPU smoke run: under 1 min

Runs on whatever JAX finds (``jax.devices()``; the batch is sharded over all
devices) and prints one Markdown table with three kinds of rows:

* ``step``: images/s of train.py's train step (``train.make_train_step``:
  on-device pad-4 crop, flip and normalisation of uint8 CIFAR-sized 32x32x3
  images, forward, backward, SGD with momentum and weight decay, state
  donated) for ResNet-18 and ResNet-34, batch 128 and 512, float32 and
  bfloat16 computation (``config.model.dtype``), CE and TCE; beside it the
  images/s of the host pipeline at that batch size (``Datasets.train_batches``
  on 50,000 random CIFAR-sized images: index gather and transfer, each batch
  waited for on the device) and their ratio: host/step >= 1 means the host
  keeps the accelerator fed (the pipeline runs in a background thread during
  the step). ``compile s`` is the first call: tracing, compilation (with GPU
  autotuning) and one step.
* ``loss``: forward + backward of the mean loss at (4096, 1000) and
  (8192, 32000), float32 logits, CE (optax) against TCE's custom VJP and TCE by
  plain autodiff (``benchmarks/loss_bench.py``'s ``bench_shape``; median of
  interleaved rounds).
* ``cifar10``: two epochs of configs/cifar10.py (ResNet-34, batch 128,
  float32, train + noisy-val + test evaluation after each epoch, checkpoints)
  on random images of CIFAR-10's sizes, through ``train.train_and_evaluate``:
  the wall time of the whole call and the training images/s of epoch 2.

``--quick`` shrinks every part so that the script runs end to end on a CPU
(its figures mean nothing): one step row (a quarter-width ResNet-8, batch 16,
bfloat16, TCE), small loss shapes, and the CIFAR-10 config on 1,024 images
with a quarter-width ResNet-8.
"""

import argparse
import dataclasses
import itertools
import json
import os
import statistics
import tempfile
import time

import jax

from benchmarks import loss_bench, pipeline_bench, train_bench
from configs import cifar10
from tce_jax import input_pipeline, losses, train

IMAGE_SHAPE = (32, 32, 3)


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


def _row(check, model, batch, dtype, loss, step, host, detail):
    ratio = f"{host / step:.1f}x" if step and host else "-"
    step = f"{step:,.0f}" if step else "-"
    host = f"{host:,.0f}" if host else "-"
    cells = (check, model, batch, dtype, loss, step, host, ratio, detail)
    return "| " + " | ".join(map(str, cells)) + " |"


def host_images_per_second(batch_size, num_batches, repeats):
    """Images/s of `Datasets.train_batches` on 50,000 random CIFAR-sized images."""
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


def step_rows(plan):
    host = {
        batch: host_images_per_second(batch, plan.host_batches, plan.host_repeats)
        for batch in sorted({batch for _, batch, _, _ in plan.steps})
    }
    for model, batch, dtype, loss in plan.steps:
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
        yield _row(
            "step",
            _model_name(model, plan.width_multiplier),
            batch,
            dtype,
            loss,
            step,
            host[batch],
            f"compile {compile_seconds:.1f} s",
        )


def _model_name(model, width_multiplier):
    return model if width_multiplier == 1 else f"{model} x{width_multiplier:g}"


def loss_rows(plan):
    for shape in plan.loss_shapes:
        result = loss_bench.bench_shape(
            shape,
            alpha=losses.DEFAULT_TCE_ALPHA,
            rounds=plan.loss_rounds,
            target_seconds=0.02,
        )
        us = result["median_us"]
        yield _row(
            "loss",
            "-",
            f"{shape[0]}x{shape[1]}",
            "float32",
            "CE vs TCE",
            None,
            None,
            f"CE {us['ce']:,.0f} us, TCE {us['tce']:,.0f} us "
            f"(TCE/CE {result['tce_over_ce']:.3f}), TCE autodiff "
            f"{us['tce_autodiff']:,.0f} us",
        )


def cifar10_row(plan):
    """Two epochs of configs/cifar10.py on random images, timed end to end."""
    config = cifar10.get_config()
    config.num_epochs = 2
    config.schedule.decay_epochs = ()  # Its decays come at epochs 40 and 80.
    config.update_from_flattened_dict(plan.cifar_overrides)
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
            train.train_and_evaluate(config, workdir)
            wall = time.perf_counter() - start
            with open(os.path.join(workdir, "metrics.jsonl")) as f:
                history = [json.loads(line) for line in f]
    finally:
        input_pipeline.load_split = load_split
    return _row(
        "cifar10 2 epochs",
        _model_name(config.model.name, config.model.width_multiplier),
        config.batch_size,
        config.model.dtype,
        config.loss.name,
        history[-1]["images_per_second"],
        None,
        f"wall {wall:.0f} s for 2 epochs on {sizes['train']:,} random train images "
        "(10% held out as validation; data, compilation, evaluation of "
        "train/val/test and checkpoints included)",
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="a CPU-sized run of every part"
    )
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    start = time.perf_counter()
    devices = jax.devices()
    print(
        f"jax {jax.__version__}, {len(devices)} x {devices[0].device_kind} "
        f"({devices[0].platform}), {os.cpu_count()} host CPUs"
        + (" -- quick: figures are meaningless" if args.quick else ""),
        flush=True,
    )
    rows = []
    for rows_of in (step_rows, loss_rows):
        for row in rows_of(plan):
            print(row, flush=True)  # Progress; the table is printed at the end.
            rows.append(row)
    rows.append(cifar10_row(plan))
    print()
    print(
        "| check | model | batch | dtype | loss | step img/s | host img/s "
        "| host/step | detail |"
    )
    print("|---|---|---:|---|---|---:|---:|---:|---|")
    print("\n".join(rows))
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
