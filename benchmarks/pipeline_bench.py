"""Host input-pipeline speed, before and after augmentation moved to the device.

    python3 -m benchmarks.pipeline_bench                  # 2-5 min on 2 shared cores
    python3 -m benchmarks.pipeline_bench --model_steps=3  # quicker, noisier

Prints, on this machine and side by side in one process:

* the time to corrupt 1,000,000 labels (symmetric noise, K = 10; target < 1 s);
* images/s of the host side of the training pipeline, on Fashion-MNIST
  (Debian's IDX files when installed, else random images of its shape) and on
  CIFAR-sized random data (50,000 x 32 x 32 x 3), for two paths measured
  interleaved:
  - ``host now``: what `Datasets.train_batches` does: gather the uint8 images,
    labels and indices of a batch, build the sharded device arrays (crop, flip
    and normalisation then run inside the train step);
  - ``host before``: the NumPy path it replaced, kept here as the baseline:
    the same gather, then a crop/flip of every image from a SplitMix64 hash
    and float32 normalisation on the host, then the (4x larger) transfer;
  both in the pipeline's background thread, each batch waited for on the
  device; per image, the host cost in microseconds;
* images/s of the training loop's ResNet-20 step (CE, with on-device crop/flip and
  normalisation) on a fixed batch and fed by the pipeline, so the overlap shows;
* the ratio host pipeline / step (target >= 10).

Speed on a shared CPU is noisy: compare the ratios, not single absolute times.
"""

import time

import jax
import numpy as np
import optax
from absl import app, flags

from configs import default
from tce_jax import losses, noise
from tce_jax.data import fashion_mnist_debian, input_pipeline
from tce_jax.training import models, steps

_BATCH_SIZE = flags.DEFINE_integer("batch_size", 128, "Global batch size.")
_PIPELINE_BATCHES = flags.DEFINE_integer(
    "pipeline_batches", 200, "Batches timed per pipeline measurement."
)
_MODEL_STEPS = flags.DEFINE_integer("model_steps", 10, "Training steps timed.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Repeats; the best one is reported.")


def pipeline_config(dataset):
    """The default run config on `dataset`: augmented, 40% symmetric noise."""
    config = default.get_config()
    config.data.dataset = dataset
    return config


def random_split(num_examples, image_shape, num_classes, seed):
    """Random uint8 images and labels."""
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
        "train": random_split(60_000, shape, 10, 0),
        "test": random_split(10_000, shape, 10, 1),
    }


def cifar_sized_splits():
    shape = input_pipeline.DATASETS["cifar10"].image_shape
    return "random images", {
        "train": random_split(50_000, shape, 10, 0),
        "test": random_split(10_000, shape, 10, 1),
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


# ------------------------------------------------------------- the previous path


def _splitmix64(values):
    """SplitMix64's step: add the golden-ratio increment, then the finaliser."""
    values = values + np.uint64(0x9E3779B97F4A7C15)
    values = values ^ (values >> np.uint64(30))
    values = values * np.uint64(0xBF58476D1CE4E5B9)
    values = values ^ (values >> np.uint64(27))
    values = values * np.uint64(0x94D049BB133111EB)
    return values ^ (values >> np.uint64(31))


def _host_crop_and_flip(images, bits, *, crop_padding, random_flip):
    """The host augmentation before it moved to the device: one NumPy gather."""
    batch, height, width, _ = images.shape
    span = np.uint64(2 * crop_padding + 1)
    top = (bits % span).astype(np.int64)
    left = ((bits >> np.uint64(16)) % span).astype(np.int64)
    padding = ((0, 0), (crop_padding, crop_padding), (crop_padding, crop_padding))
    padded = np.pad(images, (*padding, (0, 0)))
    rows = top[:, None] + np.arange(height)
    columns = left[:, None] + np.arange(width)
    if random_flip:
        mirrored = ((bits >> np.uint64(32)) & np.uint64(1)).astype(bool)
        columns = np.where(mirrored[:, None], columns[:, ::-1], columns)
    return padded[
        np.arange(batch)[:, None, None], rows[:, :, None], columns[:, None, :]
    ]


def previous_train_batches(datasets, epoch, batch_size):
    """Global training batches as the host built them before (float32 images)."""
    pre = datasets.preprocessing
    scale = (1.0 / (255.0 * np.asarray(pre.std))).astype(np.float32)
    offset = (-np.asarray(pre.mean) / np.asarray(pre.std)).astype(np.float32)
    epoch_state = _splitmix64(_splitmix64(np.array([pre.seed], np.uint64)) + epoch)

    def local():
        for batch in datasets.local_train_batches(
            epoch, batch_size, rows=np.arange(batch_size)
        ):
            bits = _splitmix64(epoch_state + batch["index"].astype(np.uint64))
            images = _host_crop_and_flip(
                batch["image"],
                bits,
                crop_padding=pre.crop_padding,
                random_flip=pre.random_flip,
            )
            yield {**batch, "image": images.astype(np.float32) * scale + offset}

    return datasets.global_batches(local(), batch_size)


# ----------------------------------------------------------------------- timing


def _batches(train_batches, datasets, batch_size):
    """(epoch, batch) across epochs, endlessly."""
    epoch = 0
    while True:
        for batch in train_batches(datasets, epoch, batch_size):
            yield epoch, batch
        epoch += 1


def _current_train_batches(datasets, epoch, batch_size):
    return datasets.train_batches(epoch, batch_size)


PATHS = {"now": _current_train_batches, "before": previous_train_batches}


def time_pipelines(datasets, batch_size, num_batches, repeats, paths=PATHS):
    """Images/s of each path in `paths`, each batch ready on the device.

    The paths alternate within every repeat, so all see the same machine load.
    """

    def seconds_per_run(train_batches):
        batches = _batches(train_batches, datasets, batch_size)
        jax.block_until_ready(next(batches))  # Start-up is not throughput.
        start = time.perf_counter()
        for _ in range(num_batches):
            jax.block_until_ready(next(batches))
        seconds = time.perf_counter() - start
        batches.close()
        return seconds

    best = dict.fromkeys(paths, np.inf)
    for _ in range(repeats):
        for name, train_batches in paths.items():
            best[name] = min(best[name], seconds_per_run(train_batches))
    return {name: num_batches * batch_size / seconds for name, seconds in best.items()}


def time_steps(datasets, mesh, batch_size, num_steps, repeats):
    """Images/s of the run's ResNet-20 step: fixed batch, and fed by the pipeline."""
    info = datasets.info
    model = models.get("resnet20", num_classes=info.num_classes)
    optimizer = optax.sgd(0.1, momentum=0.9, nesterov=True)
    state = steps.create_train_state(
        model, optimizer, image_shape=info.image_shape, seed=0, mesh=mesh
    )
    step = steps.make_train_step(losses.get("ce"), mesh, datasets.preprocessing)
    batches = _batches(_current_train_batches, datasets, batch_size)
    fixed = next(batches)
    state, loss = step(state, fixed[1], fixed[0])  # Compiles.
    jax.block_until_ready(loss)

    def on_fixed_batch():
        nonlocal state, loss
        for _ in range(num_steps):
            state, loss = step(state, fixed[1], fixed[0])
        jax.block_until_ready(loss)

    def fed_by_pipeline():
        nonlocal state, loss
        for _ in range(num_steps):
            epoch, batch = next(batches)
            state, loss = step(state, batch, epoch)
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
    mesh = jax.make_mesh((1,), ("data",), devices=jax.devices()[:1])
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, batch {batch_size}")

    seconds = time_noise(repeats)
    print(f"noise: corrupt 1,000,000 labels (symmetric, K=10): {seconds:.3f} s")

    rows = []
    for name, (source, splits) in (
        ("fashion_mnist", _fashion_mnist_splits()),
        ("cifar10", cifar_sized_splits()),
    ):
        datasets = input_pipeline.build_datasets(
            pipeline_config(name),
            mesh=mesh,
            train_images=splits["train"][0],
            train_labels=splits["train"][1],
            test_images=splits["test"][0],
            test_labels=splits["test"][1],
        )
        host = time_pipelines(datasets, batch_size, _PIPELINE_BATCHES.value, repeats)
        step, fed = time_steps(datasets, mesh, batch_size, _MODEL_STEPS.value, repeats)
        shape = "x".join(map(str, datasets.info.image_shape))
        rows.append((f"{name} {shape} ({source})", host, step, fed))

    print(
        f"{'data':<48} {'host now':>10} {'host before':>11} {'now/before':>10} "
        f"{'us/img now':>10} {'us/img before':>13} {'ResNet-20 step':>14} "
        f"{'now/step':>8} {'fed step':>8}"
    )
    for label, host, step, fed in rows:
        now, before = host["now"], host["before"]
        print(
            f"{label:<48} {now:>10,.0f} {before:>11,.0f} {now / before:>9.1f}x "
            f"{1e6 / now:>10.2f} {1e6 / before:>13.2f} {step:>14,.0f} "
            f"{now / step:>7.0f}x {fed:>8,.0f}"
        )
    print(
        "images/s (best of repeats): host now = uint8 gather + transfer; host before "
        "= the same plus NumPy crop/flip and normalisation and a float32 transfer; "
        "ResNet-20 step = the run's step (crop/flip/normalise on the device) on a "
        "fixed batch; fed step = the same fed by the pipeline."
    )


if __name__ == "__main__":
    app.run(main)
