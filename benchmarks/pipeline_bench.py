"""Input-pipeline speed next to the ResNet-20 training step it feeds, in one process.

    python3 -m benchmarks.pipeline_bench                  # 3-8 min on 2 shared cores
    python3 -m benchmarks.pipeline_bench --model_steps=5  # quicker, noisier

Prints, on this machine and side by side:

* the time to corrupt 1,000,000 labels (symmetric noise, K = 10; target < 1 s);
* images/s of the training pipeline (noise join + crop/flip augmentation +
  normalisation + batching + the sharded device array), on Fashion-MNIST
  (Debian's IDX files when installed, else random images of its shape) and on
  CIFAR-sized random data (50,000 x 32 x 32 x 3);
* images/s of a ResNet-20 training step (`tce_jax.models.get("resnet20")`,
  SGD with momentum on cross entropy, BatchNorm in train mode) on a fixed batch,
  and the same step fed by the pipeline, so the overlap shows;
* the ratio pipeline / step (target >= 10).

Speed on a shared CPU is noisy: compare the ratios, not single absolute times.
"""

import functools
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import app, flags

from tce_jax import fashion_mnist_debian, input_pipeline, models, noise

_BATCH_SIZE = flags.DEFINE_integer("batch_size", 128, "Global batch size.")
_PIPELINE_BATCHES = flags.DEFINE_integer(
    "pipeline_batches", 200, "Batches timed per pipeline measurement."
)
_MODEL_STEPS = flags.DEFINE_integer("model_steps", 10, "Training steps timed.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Repeats; the best one is reported.")


def _config(dataset):
    return ml_collections.ConfigDict(
        {
            "seed": 0,
            "data": {
                "dataset": dataset,
                "data_dir": None,
                "train_subset": 0,
                "validation_fraction": 0.1,
                "augment": True,
            },
            "noise": {"kind": "symmetric", "rate": 0.4, "transition_matrix": None},
        }
    )


def _random_split(num_examples, image_shape, num_classes, seed):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (num_examples, *image_shape), dtype=np.uint8)
    return images, rng.integers(0, num_classes, num_examples).astype(np.int32)


def _fashion_mnist_splits():
    if fashion_mnist_debian.is_available():
        return "Debian IDX files", {
            split: fashion_mnist_debian.read_split(split) for split in ("train", "test")
        }
    shape = input_pipeline.DATASETS["fashion_mnist"].image_shape
    return "random images (Debian's files not installed)", {
        "train": _random_split(60_000, shape, 10, 0),
        "test": _random_split(10_000, shape, 10, 1),
    }


def _cifar_sized_splits():
    shape = input_pipeline.DATASETS["cifar10"].image_shape
    return "random images", {
        "train": _random_split(50_000, shape, 10, 0),
        "test": _random_split(10_000, shape, 10, 1),
    }


def _best_seconds(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def time_noise(repeats):
    """Seconds to corrupt 1,000,000 labels (best of `repeats`)."""
    labels = np.random.default_rng(0).integers(0, 10, 1_000_000)
    key = jax.random.key(0)
    return _best_seconds(
        lambda: noise.corrupt_labels(key, labels, num_classes=10, rate=0.4), repeats
    )


def _batches(datasets, batch_size):
    """Training batches across epochs, endlessly."""
    epoch = 0
    while True:
        yield from datasets.train_batches(epoch, batch_size)
        epoch += 1


def time_pipeline(datasets, batch_size, num_batches, repeats):
    """Images/s of `train_batches`, each batch ready on the device."""

    def seconds_per_run():
        batches = _batches(datasets, batch_size)
        jax.block_until_ready(next(batches))  # Start-up is not throughput.
        start = time.perf_counter()
        for _ in range(num_batches):
            jax.block_until_ready(next(batches))
        seconds = time.perf_counter() - start
        batches.close()
        return seconds

    return num_batches * batch_size / min(seconds_per_run() for _ in range(repeats))


def _resnet20_step(num_classes, image_shape, batch_size):
    """A jitted ResNet-20 SGD step and its initial state, as the trainer builds it."""
    model = models.get("resnet20", num_classes=num_classes)
    variables = model.init(
        jax.random.key(0), jnp.zeros((1, *image_shape), jnp.float32), train=False
    )
    optimizer = optax.sgd(0.1, momentum=0.9, nesterov=True)
    state = (variables["params"], variables["batch_stats"])
    state = (*state, optimizer.init(variables["params"]))

    @functools.partial(jax.jit, donate_argnums=0)
    def step(state, images, labels):
        params, batch_stats, opt_state = state

        def objective(params):
            logits, updates = model.apply(
                {"params": params, "batch_stats": batch_stats},
                images,
                train=True,
                mutable=["batch_stats"],
            )
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
            return loss.mean(), updates["batch_stats"]

        (loss, batch_stats), grads = jax.value_and_grad(objective, has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), batch_stats, opt_state), loss

    return step, state


def time_steps(datasets, batch_size, num_steps, repeats):
    """Images/s of the ResNet-20 step on a fixed batch and fed by the pipeline."""
    info = datasets.info
    step, state = _resnet20_step(info.num_classes, info.image_shape, batch_size)
    batches = _batches(datasets, batch_size)
    fixed = next(batches)
    state, loss = step(state, fixed["image"], fixed["label"])  # Compiles.
    jax.block_until_ready(loss)

    def on_fixed_batch():
        nonlocal state, loss
        for _ in range(num_steps):
            state, loss = step(state, fixed["image"], fixed["label"])
        jax.block_until_ready(loss)

    def fed_by_pipeline():
        nonlocal state, loss
        for _ in range(num_steps):
            batch = next(batches)
            state, loss = step(state, batch["image"], batch["label"])
        jax.block_until_ready(loss)

    # Interleaved, so that both see the same load from other processes.
    fixed_seconds, fed_seconds = np.inf, np.inf
    for _ in range(repeats):
        fixed_seconds = min(fixed_seconds, _best_seconds(on_fixed_batch, 1))
        fed_seconds = min(fed_seconds, _best_seconds(fed_by_pipeline, 1))
    batches.close()
    images = num_steps * batch_size
    return images / fixed_seconds, images / fed_seconds


def main(argv):
    del argv  # No positional arguments.
    batch_size, repeats = _BATCH_SIZE.value, _REPEATS.value
    # Auto axes: jax.make_mesh defaults to Explicit ones, under which the
    # batch-sharded convolution gradients need explicit output shardings.
    mesh = jax.make_mesh(
        (1,),
        ("data",),
        axis_types=(jax.sharding.AxisType.Auto,),
        devices=jax.devices()[:1],
    )
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, batch {batch_size}")

    seconds = time_noise(repeats)
    print(f"noise: corrupt 1,000,000 labels (symmetric, K=10): {seconds:.3f} s")

    rows = []
    for name, (source, splits) in (
        ("fashion_mnist", _fashion_mnist_splits()),
        ("cifar10", _cifar_sized_splits()),
    ):
        datasets = input_pipeline.build_datasets(
            _config(name),
            mesh=mesh,
            train_images=splits["train"][0],
            train_labels=splits["train"][1],
            test_images=splits["test"][0],
            test_labels=splits["test"][1],
        )
        pipeline = time_pipeline(datasets, batch_size, _PIPELINE_BATCHES.value, repeats)
        step, fed = time_steps(datasets, batch_size, _MODEL_STEPS.value, repeats)
        shape = "x".join(map(str, datasets.info.image_shape))
        rows.append((f"{name} {shape} ({source})", pipeline, step, fed))

    print(
        f"{'data':<56} {'pipeline img/s':>14} {'ResNet-20 img/s':>15} "
        f"{'ratio':>6} {'fed step img/s':>14}"
    )
    for label, pipeline, step, fed in rows:
        print(
            f"{label:<56} {pipeline:>14,.0f} {step:>15,.0f} {pipeline / step:>5.0f}x "
            f"{fed:>14,.0f}"
        )


if __name__ == "__main__":
    app.run(main)
