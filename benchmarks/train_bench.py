"""Training-step throughput: CE vs TCE, and this project's step vs PyTorch.

Times one ResNet-20 SGD step at a fixed batch on random images, for each
configuration below, all in one process, interleaved round-robin and repeated,
so the ratios compare configurations under the same machine load:

* ``jax-ce`` / ``jax-tce``: the step a run runs (``steps.make_train_step``:
  ``jax.jit`` over a ``('data',)`` mesh, batch sharded, state replicated and
  donated, pad-4 crop + flip + normalisation of uint8 images on the device,
  optax SGD + momentum + weight decay), with the registry's CE or TCE.
* ``torch-ce``: the same ResNet-20 in PyTorch (``benchmarks/torch_resnet.py``,
  CPU, channels_last, SGD momentum + weight decay, BatchNorm), with
  ``torch.set_num_threads`` set to the CPU count XLA uses.

For each input shape it prints a table: configuration -> median step ms,
images/s, throughput relative to PyTorch and TCE/CE step time. The two ratios
are medians over rounds of per-round ratios, so slow drifts in machine load
(other jobs on shared cores) cancel.

XLA flags apply per process; pass them with ``--xla_flags`` (they are put in
``XLA_FLAGS`` before JAX starts) and compare runs by their ratio to PyTorch.

Usage (PyTorch is a bench-only dependency: ``bash scripts/setup.sh bench``
installs its pinned CPU build; see docs/training.md)::

    python benchmarks/train_bench.py
    python benchmarks/train_bench.py --shapes=32x32x3 --rounds=7
    python benchmarks/train_bench.py \
        --xla_flags=--xla_cpu_experimental_ynn_fusion_type=-individual_convolution
"""

import argparse
import os
import pathlib
import sys
import time

import numpy as np

_REPO = pathlib.Path(__file__).resolve().parents[1]
_MODEL = "resnet20"
_NUM_CLASSES = 10
_LEARNING_RATE = 0.1
_MOMENTUM = 0.9
_WEIGHT_DECAY = 5e-4


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default="28x28x1,32x32x3", help="HxWxC list")
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per round")
    parser.add_argument("--xla_flags", default="", help="appended to XLA_FLAGS")
    parser.add_argument(
        "--no_torch", action="store_true", help="skip the PyTorch reference"
    )
    return parser.parse_args()


def jax_step_runner(
    model_name,
    loss_name,
    image_shape,
    batch_size,
    *,
    dtype="float32",
    width_multiplier=1.0,
):
    """Returns ``run(num_steps=1)``, running the training loop's step to completion.

    The batch is random uint8 images, as the input pipeline sends them; the
    step crops, flips and normalises them as for CIFAR. ``dtype`` is the
    model's computation dtype (``config.model.dtype``). Steps are dispatched
    back to back and waited for once at the end, as the training loop does.
    """
    import jax
    import ml_collections

    from tce_jax import losses
    from tce_jax.data import preprocessing
    from tce_jax.training import models, optim, steps

    mesh = jax.make_mesh((jax.device_count(),), ("data",))
    model = models.get(
        model_name,
        num_classes=_NUM_CLASSES,
        width_multiplier=width_multiplier,
        dtype=jax.numpy.dtype(dtype),
    )
    optimizer_config = ml_collections.ConfigDict(
        {
            "optimizer": {
                "learning_rate": _LEARNING_RATE,
                "momentum": _MOMENTUM,
                "nesterov": False,
                "weight_decay": _WEIGHT_DECAY,
            }
        }
    )
    optimizer = optim.create_optimizer(optimizer_config, _LEARNING_RATE)
    state = steps.create_train_state(
        model, optimizer, image_shape=image_shape, seed=0, mesh=mesh
    )
    channels = image_shape[-1]
    augmentation = preprocessing.Preprocessing(
        mean=(0.5,) * channels,
        std=(0.25,) * channels,
        crop_padding=4,
        random_flip=True,
        platform=mesh.devices.flat[0].platform,
    )
    step = steps.make_train_step(losses.get(loss_name), mesh, augmentation)
    batch_sharding = jax.NamedSharding(mesh, jax.P("data"))
    rng = np.random.default_rng(0)
    batch = jax.device_put(
        {
            "image": rng.integers(0, 256, (batch_size, *image_shape), dtype=np.uint8),
            "label": rng.integers(0, _NUM_CLASSES, batch_size).astype(np.int32),
            "index": np.arange(batch_size, dtype=np.int32),
        },
        batch_sharding,
    )
    holder = {"state": state}

    def run(num_steps=1):
        for _ in range(num_steps):
            holder["state"], loss = step(holder["state"], batch, 0)
        loss.block_until_ready()

    return run


def _torch_step_runner(image_shape, batch_size, num_threads):
    # PyTorch's OpenMP threads spin while idle; next to XLA's own thread pool
    # (and other jobs on a shared machine) that made its step up to 4x slower.
    # Passive waiting is PyTorch's best case here, so the reference is fair.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    sys.path.insert(0, str(_REPO / "benchmarks"))
    from torch_resnet import CifarResNet

    torch.set_num_threads(num_threads)
    torch.manual_seed(0)
    height, width, channels = image_shape
    model = CifarResNet(20, channels, _NUM_CLASSES).to(
        memory_format=torch.channels_last
    )
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=_LEARNING_RATE,
        momentum=_MOMENTUM,
        weight_decay=_WEIGHT_DECAY,
    )
    images = torch.randn(batch_size, channels, height, width).contiguous(
        memory_format=torch.channels_last
    )
    labels = torch.randint(0, _NUM_CLASSES, (batch_size,))

    def run():
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()

    return run


def _bench_shape(args, image_shape) -> dict[str, np.ndarray]:
    """Interleaves all configurations; returns seconds per [round, step] for each."""
    runners = {
        f"jax-{loss}": jax_step_runner(_MODEL, loss, image_shape, args.batch_size)
        for loss in ("ce", "tce")
    }
    if not args.no_torch:
        runners["torch-ce"] = _torch_step_runner(
            image_shape, args.batch_size, os.cpu_count()
        )
    for run in runners.values():  # compile / warm up (two steps: donation)
        run()
        run()
    times = {name: np.zeros((args.rounds, args.steps)) for name in runners}
    for round_index in range(args.rounds):
        for name, run in runners.items():
            for step_index in range(args.steps):
                start = time.perf_counter()
                run()
                times[name][round_index, step_index] = time.perf_counter() - start
    return times


def _print_table(image_shape, batch_size, times) -> None:
    medians = {name: float(np.median(t)) for name, t in times.items()}
    round_medians = {name: np.median(t, axis=1) for name, t in times.items()}

    def paired_ratio(numerator, denominator):
        return float(np.median(round_medians[numerator] / round_medians[denominator]))

    rounds, steps = next(iter(times.values())).shape
    shape = "x".join(map(str, image_shape))
    print(
        f"\nResNet-20, batch {batch_size}, {shape} "
        f"({rounds} interleaved rounds x {steps} steps)"
    )
    print(
        f"{'config':10s} {'step ms':>9s} {'images/s':>9s} {'vs torch':>9s} "
        f"{'TCE/CE':>7s}"
    )
    for name, median in medians.items():
        vs_torch = "-"
        if "torch-ce" in times:
            vs_torch = f"{paired_ratio('torch-ce', name):.2f}x"
        tce_ce = "-"
        if name == "jax-tce":
            tce_ce = f"{paired_ratio('jax-tce', 'jax-ce'):.3f}"
        print(
            f"{name:10s} {1e3 * median:9.1f} {batch_size / median:9.1f} "
            f"{vs_torch:>9s} {tce_ce:>7s}"
        )


def main() -> None:
    args = _parse_args()
    if args.xla_flags:
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + " " + args.xla_flags
        ).strip()
    sys.path.insert(0, str(_REPO))
    import jax

    print(
        f"jax {jax.__version__}, devices {jax.device_count()}, "
        f"cpus {os.cpu_count()}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"
    )
    for text in args.shapes.split(","):
        image_shape = tuple(int(size) for size in text.split("x"))
        _print_table(image_shape, args.batch_size, _bench_shape(args, image_shape))


if __name__ == "__main__":
    main()
