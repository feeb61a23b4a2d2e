"""Training and evaluation loop: one noisy-label run from a config to its metrics.

``train_and_evaluate(config, workdir)`` reads as setup (``_set_up``: config,
data, model, train state, jitted steps), restore (``_restore``), epochs
(``_train_epochs``: train, evaluate, follow the alpha rule, checkpoint, write
metrics) and summary (``_finish``). One ``('data',)`` mesh spans all devices:
the global batch is sharded along it, the state replicated; every process runs
the same function on its own rows and process 0 writes the files. The optimiser
is SGD with coupled L2 weight decay on every parameter, as
``torch.optim.SGD(weight_decay=...)``. A relaunch resumes from the newest
checkpoint and, on the same CPU type, ends with exactly the metrics of an
uninterrupted run (on GPUs, to within their nondeterministic reductions).
The files a run writes (``metrics.jsonl``, ``summary.json``, predictions,
TensorBoard events, checkpoints) are described in docs/training.md.
"""

import dataclasses
import functools
import json
import math
import os
import subprocess
import time
from collections.abc import Callable, Iterable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from clu import metric_writers
from flax import traverse_util
from flax.training import train_state
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from tce_jax import alpha_rules, losses, run_environment, run_files
from tce_jax.data import input_pipeline
from tce_jax.data.preprocessing import Preprocessing
from tce_jax.seeding import purpose_key
from tce_jax.selection import select_on_validation
from tce_jax.training import checkpointing, config_validation, models, relaunch


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the message names epoch and step."""


class TrainState(train_state.TrainState):
    """Params, optimiser state and step (from flax), plus BatchNorm statistics.

    ``alpha_rule`` is the state of a self-tuning alpha rule
    (``alpha_rules``; empty for a fixed alpha): its ``alpha`` reaches the loss
    as an array on every step, so the step compiles once, and a resumed run
    continues with the alpha and the rule's memory its checkpoint saved.
    """

    batch_stats: Any
    alpha_rule: alpha_rules.RuleState | dict


# ----------------------------------------------------------------------------
# Optimiser and learning-rate schedule.


def create_learning_rate_schedule(
    config: ml_collections.ConfigDict, steps_per_epoch: int
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
    config: ml_collections.ConfigDict, learning_rate: optax.Schedule
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


# ----------------------------------------------------------------------------
# State, train step, eval step.


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
        hparams = {"alpha": state.alpha_rule.alpha} if state.alpha_rule else {}
        loss = loss_fn(logits, batch["label"], **hparams)
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


def _to_host(tree: Any) -> Any:
    """Copies replicated arrays to numpy from this process's first shard."""
    return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), tree)


@jax.jit
def _concatenate(chunks: list[Any]) -> Any:
    """Joins same-structured outputs (scalars or batches) along their first axis."""
    return jax.tree.map(
        lambda *leaves: jnp.concatenate([jnp.atleast_1d(x) for x in leaves]), *chunks
    )


def _concatenate_to_host(chunks: list[Any]) -> Any:
    """`_to_host` of the chunks joined on the device: one copy per array, not chunk.

    Each copy from an accelerator is a round trip; the join is one small program
    (compiled once per number of chunks).
    """
    return _to_host(_concatenate(chunks))


def evaluate_split(
    eval_step: Callable[[TrainState, dict[str, jax.Array]], dict[str, jax.Array]],
    state: TrainState,
    batches: Iterable[dict[str, jax.Array]],
) -> dict[str, np.ndarray]:
    """Runs ``eval_step`` over padded batches and keeps the real examples.

    Args:
      eval_step: from ``make_eval_step``.
      state: the train state.
      batches: ``Datasets.eval_batches(split, batch_size)``.

    Returns:
      Per-example numpy arrays (padding dropped), keyed index, label,
      clean_label, is_noisy, prediction, log_prob_label and probs ([n, K]).
    """
    # Dispatch every batch before reading any result back: the host keeps
    # feeding the devices while earlier batches compute.
    outputs = [eval_step(state, batch) for batch in batches]
    if not outputs:
        raise ValueError("the split has no examples")
    merged = _concatenate_to_host(outputs)
    mask = merged.pop("mask").astype(bool)
    return {key: value[mask] for key, value in merged.items()}


def _accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(predictions == labels))


def train_split_metrics(split: dict[str, np.ndarray]) -> dict[str, float | None]:
    """Accuracy vs noisy and clean labels, and how much of the noise was fit.

    ``memorized_fraction`` is the fraction of noisy-labelled examples predicted
    as their noisy label (None when no example is noisy);
    ``contradicted_fraction`` the fraction whose given label the model rates
    below chance (``alpha_rules.contradicted_fraction``), the reading the
    self-tuning alpha rules follow.
    """
    noisy = split["is_noisy"].astype(bool)
    fits_noisy_label = split["prediction"] == split["label"]
    return {
        "train_accuracy": float(np.mean(fits_noisy_label)),
        "train_clean_accuracy": _accuracy(split["prediction"], split["clean_label"]),
        "memorized_fraction": (
            float(np.mean(fits_noisy_label[noisy])) if noisy.any() else None
        ),
        "contradicted_fraction": float(
            alpha_rules.contradicted_fraction(
                split["log_prob_label"], num_classes=split["probs"].shape[-1]
            )
        ),
    }


# ----------------------------------------------------------------------------
# Files in the workdir.


def git_commit() -> str | None:
    """The commit of the checkout this module runs from, or None outside git.

    A checkout with uncommitted changes to tracked files gets a ``-dirty``
    suffix: its numbers are not reproducible from the commit alone.
    """
    here = os.path.dirname(os.path.abspath(__file__))

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args],
            cwd=here,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if commit and dirty else commit or None


def summarize(
    history: list[dict[str, Any]],
    *,
    config: ml_collections.ConfigDict,
    realised_noise_rate: float,
    wall_seconds: float,
    commit: str | None,
    environment: dict[str, Any],
) -> dict[str, Any]:
    """The run's summary.json content.

    The best-validation epoch comes from ``selection.select_on_validation``;
    ``best_test_accuracy`` is for reference only and never used to select.
    """
    final = history[-1]  # The last epoch is always evaluated.
    test_accuracies = [
        r["test_accuracy"] for r in history if r["test_accuracy"] is not None
    ]
    summary = {
        "final_test_accuracy": final["test_accuracy"],
        "best_val_test_accuracy": None,
        "best_val_epoch": None,
        "best_test_accuracy": max(test_accuracies),
        "memorized_fraction": final["memorized_fraction"],
        "train_clean_accuracy": final["train_clean_accuracy"],
        "realised_noise_rate": realised_noise_rate,
        "num_epochs": final["epoch"],
        "config": config.to_dict(),
        "effective_config": config_validation.effective_config(config),
        "git_commit": commit,
        "wall_seconds": wall_seconds,
        "platform": run_environment.platform_text(environment),
        run_files.ENVIRONMENT_KEY: environment,
    }
    best = select_on_validation(history)
    if best is not None:
        summary["best_val_epoch"] = best["epoch"]
        summary["best_val_test_accuracy"] = best["test_accuracy"]
    return summary


def save_predictions(path: str, split: dict[str, np.ndarray]) -> None:
    """Writes one split's eval-mode predictions (npz, atomically), by example index.

    Keys: index, label (the noisy label trained on), clean_label, is_noisy,
    prob_label and log_prob_label (the model's probability of ``label``), probs
    (float32 [n, K], every class's probability).
    """
    order = np.argsort(split["index"], kind="stable")
    log_prob_label = split["log_prob_label"][order].astype(np.float32)
    run_files.write_npz_atomically(
        path,
        index=split["index"][order],
        label=split["label"][order],
        clean_label=split["clean_label"][order],
        is_noisy=split["is_noisy"][order].astype(bool),
        prob_label=np.exp(log_prob_label),
        log_prob_label=log_prob_label,
        probs=split["probs"][order].astype(np.float32),
    )


# ----------------------------------------------------------------------------
# The run.


@dataclasses.dataclass
class _StepProgress:
    """Progress lines during training: epoch, step, loss, images/s and ETA.

    Throughput is over the steps since the previous line; the ETA extrapolates
    the average time per step of this launch (evaluation included).
    """

    total_steps: int
    batch_size: int
    start_step: int
    start_time: float = dataclasses.field(default_factory=time.perf_counter)

    def __post_init__(self):
        self.last_step, self.last_time = self.start_step, self.start_time

    def restart_window(self) -> None:
        """Starts the next throughput window now (after an evaluation pass)."""
        self.last_time = time.perf_counter()

    def report(self, epoch: int, step: int, loss: float) -> None:
        now = time.perf_counter()
        images_per_second = (
            (step - self.last_step) * self.batch_size / max(now - self.last_time, 1e-9)
        )
        per_step = (now - self.start_time) / max(step - self.start_step, 1)
        eta = (self.total_steps - step) * per_step
        self.last_step, self.last_time = step, now
        logging.info(
            "epoch %d step %d/%d loss %.4f %.1f images/s ETA %s",
            epoch,
            step,
            self.total_steps,
            loss,
            images_per_second,
            time.strftime("%H:%M:%S", time.gmtime(eta)),
        )


def _check_finite(values: np.ndarray, first_step: int, epoch: int) -> None:
    """Raises NonFiniteLossError naming the first step whose loss is not finite.

    ``values`` are the losses of consecutive steps from ``first_step`` on.
    """
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        step = first_step + int(bad[0])
        kept = (
            f"the checkpoint of epoch {epoch - 1} is kept"
            if epoch > 1
            else "no epoch had finished, so there is no checkpoint"
        )
        raise NonFiniteLossError(
            f"training loss is {values[bad[0]]} at epoch {epoch}, step {step}; "
            f"stopped without saving epoch {epoch} ({kept})"
        )


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str,
    *,
    mesh: jax.sharding.Mesh | None = None,
    start_over: bool = False,
) -> dict[str, Any]:
    """Trains and evaluates one run, resuming from ``workdir`` if it has checkpoints.

    Args:
      config: the run config (``configs/*.py``); validated here.
      workdir: output directory (created if missing).
      mesh: a ('data',) mesh; default: all devices.
      start_over: move a run already in ``workdir`` aside
        (``relaunch.move_aside``) and train afresh.

    Returns:
      The summary written to ``workdir/summary.json``.

    Raises:
      config_validation.ConfigError: the config is not valid, or would train
        another model than the run in ``workdir`` (``relaunch.check``).
      checkpointing.RestoreError: a checkpoint could not be read (all kept).
      NonFiniteLossError: the loss became NaN/inf (the last good checkpoint is
        kept).
    """
    wall_start = time.perf_counter()
    run, state = _set_up(config, workdir, mesh, start_over=start_over)
    checkpointer = checkpointing.Checkpointer(
        os.path.join(run.workdir, run_files.CHECKPOINT_DIR),
        keep=config.checkpoint_keep,
        keep_best=run.datasets.num_val > 0,
    )
    start_epoch, state, history = _restore(run, state, checkpointer)
    writer = _create_writer(run.workdir, is_writer=run.is_writer)
    if start_epoch == 0:
        writer.write_hparams(
            _flat_hparams(config) | run_environment.tensorboard_hparams(run.environment)
        )
    try:
        state, history, train_eval = _train_epochs(
            run, state, history, start_epoch, checkpointer=checkpointer, writer=writer
        )
    finally:
        checkpointer.close()
        writer.flush()
    summary = _finish(run, state, history, train_eval, wall_start=wall_start)
    writer.close()
    return summary


@dataclasses.dataclass(frozen=True)
class _Run:
    """What a launch sets up once (``_set_up``) and its epochs use."""

    config: ml_collections.ConfigDict
    workdir: str
    mesh: jax.sharding.Mesh
    commit: str | None
    environment: dict[str, Any]
    is_writer: bool
    datasets: input_pipeline.Datasets
    steps_per_epoch: int
    learning_rate: optax.Schedule
    train_step: Callable
    eval_step: Callable

    def evaluate(self, state: TrainState, split: str) -> dict[str, np.ndarray]:
        """Eval-mode outputs on a whole split (``evaluate_split``)."""
        return evaluate_split(
            self.eval_step,
            state,
            self.datasets.eval_batches(split, self.config.eval_batch_size),
        )


def _set_up(
    config: ml_collections.ConfigDict,
    workdir: str,
    mesh: jax.sharding.Mesh | None,
    *,
    start_over: bool,
) -> tuple[_Run, TrainState]:
    """Validates the config, checks it against the run already in the workdir
    (``relaunch``), records the environment, builds the data, the model, the
    initial train state and the jitted steps."""
    # Recorded before training: the code that runs is the code checked out now.
    commit = git_commit()
    workdir = os.path.abspath(workdir)
    if mesh is None:
        mesh = jax.make_mesh((jax.device_count(),), ("data",))
    config_validation.validate(config, num_devices=mesh.size)
    is_writer = jax.process_index() == 0
    if start_over:
        if is_writer:
            relaunch.move_aside(workdir)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices("run moved aside")
    relaunch.check(config, workdir)
    # Where this launch runs: XLA's numbers depend on it (run_environment).
    environment = run_environment.collect(mesh.devices.flat)
    logging.info("running on %s", run_environment.describe(environment))
    if is_writer:
        relaunch.record(config, workdir)
        run_files.record_environment(workdir, environment)

    datasets = input_pipeline.create_datasets(config, mesh=mesh, workdir=workdir)
    config_validation.check_batch_fits(config.batch_size, datasets.num_train)
    steps_per_epoch = datasets.steps_per_epoch(config.batch_size)
    learning_rate = create_learning_rate_schedule(config, steps_per_epoch)
    model = models.get(
        config.model.name,
        num_classes=datasets.info.num_classes,
        width_multiplier=config.model.width_multiplier,
        dtype=config_validation.compute_dtype(config),
    )
    state = create_train_state(
        model,
        create_optimizer(config, learning_rate),
        image_shape=datasets.info.image_shape,
        seed=config.seed,
        mesh=mesh,
        alpha_rule=(
            None
            if config.loss.alpha_rule == alpha_rules.FIXED
            else alpha_rules.init(
                config.loss.alpha_rule,
                num_classes=datasets.info.num_classes,
                num_epochs=config.num_epochs,
                eval_every_epochs=config.eval_every_epochs,
                **config_validation.alpha_rule_settings(config),
            )
        ),
    )
    loss_fn = losses.get(config.loss.name, **config_validation.loss_hparams(config))
    run = _Run(
        config=config,
        workdir=workdir,
        mesh=mesh,
        commit=commit,
        environment=environment,
        is_writer=is_writer,
        datasets=datasets,
        steps_per_epoch=steps_per_epoch,
        learning_rate=learning_rate,
        train_step=make_train_step(loss_fn, mesh, datasets.preprocessing),
        eval_step=make_eval_step(mesh, datasets.preprocessing),
    )
    return run, state


def _restore(
    run: _Run, state: TrainState, checkpointer: checkpointing.Checkpointer
) -> tuple[int, TrainState, list[dict[str, Any]]]:
    """The newest readable checkpoint's (epoch, state, history), or a fresh start.

    A resumed run's ``metrics.jsonl`` is cut back to the checkpoint's history.
    """
    restored = checkpointer.restore_latest(state)
    if restored is None:
        return 0, state, []
    start_epoch, state, history = restored
    step = int(_to_host(state.step))
    if step != start_epoch * run.steps_per_epoch:
        raise config_validation.ConfigError(
            f"config.batch_size: the checkpoint in {run.workdir} is at step "
            f"{step} after {start_epoch} epochs, which this config "
            f"({run.steps_per_epoch} steps per epoch) cannot continue; use a new "
            f"workdir"
        )
    logging.info("Resumed from the checkpoint of epoch %d.", start_epoch)
    if run.is_writer:
        run_files.write_metrics(run.workdir, history)
    return start_epoch, state, history


def _train_epochs(
    run: _Run,
    state: TrainState,
    history: list[dict[str, Any]],
    start_epoch: int,
    *,
    checkpointer: checkpointing.Checkpointer,
    writer: metric_writers.MetricWriter,
) -> tuple[TrainState, list[dict[str, Any]], dict[str, np.ndarray] | None]:
    """Runs the epochs after ``start_epoch``: each trains and evaluates
    (``_run_epoch``), follows the alpha rule, saves predictions when noisy-val
    accuracy improves, checkpoints and writes its metrics.

    Returns:
      The final state, the whole history and the last evaluation's train
      outputs (None when no epoch was left to train).
    """
    config = run.config
    elapsed_before = history[-1]["elapsed_seconds"] if history else 0.0
    progress = _StepProgress(
        total_steps=config.num_epochs * run.steps_per_epoch,
        batch_size=config.batch_size,
        start_step=start_epoch * run.steps_per_epoch,
    )
    run_start = time.perf_counter()
    best_val = (select_on_validation(history) or {}).get("val_accuracy")
    test_every = config.test_eval_every_epochs
    train_eval = None
    for epoch in range(start_epoch + 1, config.num_epochs + 1):
        last = epoch == config.num_epochs
        state, record, train_eval = _run_epoch(
            epoch,
            state,
            run=run,
            progress=progress,
            writer=writer,
            evaluate=epoch % config.eval_every_epochs == 0 or last,
            test_due=last or bool(test_every and epoch % test_every == 0),
            best_val=best_val,
        )
        record["elapsed_seconds"] = elapsed_before + (time.perf_counter() - run_start)
        if state.alpha_rule:
            state = _follow_alpha_rule(run, state, record)
        if _improves(record["val_accuracy"], best_val):
            best_val = record["val_accuracy"]
            # Written before the checkpoint: a run killed in between redoes
            # this epoch and writes the same predictions again.
            _save_run_predictions(run, state, train_eval, at_best_val=True)
        history.append(record)
        checkpointer.save(epoch, state, history)
        writer.write_scalars(
            epoch * run.steps_per_epoch,
            {k: v for k, v in record.items() if v is not None and k != "epoch"},
        )
        if run.is_writer:
            run_files.write_metrics(run.workdir, history)
        logging.info("epoch %d: %s", epoch, json.dumps(record))
    return state, history, train_eval


def _finish(
    run: _Run,
    state: TrainState,
    history: list[dict[str, Any]],
    train_eval: dict[str, np.ndarray] | None,
    *,
    wall_start: float,
) -> dict[str, Any]:
    """Writes the summary and the final predictions; returns the summary."""
    if train_eval is None:  # Relaunched after the last epoch: nothing to train.
        train_eval = run.evaluate(state, "train")
    summary = summarize(
        history,
        config=run.config,
        realised_noise_rate=run.datasets.realised_noise_rate,
        wall_seconds=time.perf_counter() - wall_start,
        commit=run.commit,
        environment=run.environment,
    )
    _save_run_predictions(run, state, train_eval, at_best_val=False)
    if run.is_writer:
        run_files.write_summary(run.workdir, summary)
    logging.info("summary: %s", json.dumps({k: summary[k] for k in list(summary)[:8]}))
    return summary


def _follow_alpha_rule(
    run: _Run, state: TrainState, record: dict[str, Any]
) -> TrainState:
    """Records the epoch's alpha and, after an evaluation, advances the rule
    (``alpha_rules.update``).

    Every process reads the same replicated evaluation, so all reach the same
    state. Epochs without an evaluation keep it.
    """
    rule = _to_host(state.alpha_rule)
    record["alpha"] = float(rule.alpha)
    if record["contradicted_fraction"] is None:
        return state
    reading = alpha_rules.Reading(
        epoch=record["epoch"],
        contradicted=record["contradicted_fraction"],
        val_accuracy=(
            math.nan if record["val_accuracy"] is None else record["val_accuracy"]
        ),
    )
    rule = alpha_rules.update(rule, reading)
    return state.replace(alpha_rule=jax.device_put(rule, NamedSharding(run.mesh, P())))


def _create_writer(workdir: str, *, is_writer: bool) -> metric_writers.MetricWriter:
    """TensorBoard events on process 0, nothing elsewhere (progress goes to logs)."""
    if not is_writer:
        return metric_writers.MultiWriter([])
    return metric_writers.AsyncWriter(metric_writers.SummaryWriter(workdir))


def _flat_hparams(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """The config as flat scalar hparams for TensorBoard (None and lists skipped)."""
    flat = traverse_util.flatten_dict(config.to_dict(), sep=".")
    return {
        name: value
        for name, value in flat.items()
        if isinstance(value, bool | int | float | str)
    }


ACCURACY_KEYS = (
    "train_accuracy",
    "train_clean_accuracy",
    "memorized_fraction",
    "contradicted_fraction",
    "val_accuracy",
    "test_accuracy",
)


def _improves(val_accuracy: float | None, best_val: float | None) -> bool:
    """Whether an epoch's noisy-val accuracy beats every earlier epoch's.

    Selection takes the earliest epoch of the best accuracy, which is always
    such an epoch; so testing at these epochs (and the last) covers every test
    accuracy a summary reports.
    """
    return val_accuracy is not None and (best_val is None or val_accuracy > best_val)


def _save_run_predictions(
    run: _Run,
    state: TrainState,
    train_eval: dict[str, np.ndarray],
    *,
    at_best_val: bool,
) -> None:
    """Saves the predictions on train (``train_eval``) and on the held-out fold
    if any. Every process evaluates (the eval step is a collective); process 0
    writes."""
    splits = {"train": train_eval}
    if run.datasets.num_heldout:
        splits["heldout"] = run.evaluate(state, "heldout")
    if run.is_writer:
        for split, outputs in splits.items():
            save_predictions(
                os.path.join(
                    run.workdir,
                    run_files.predictions_file(split, at_best_val=at_best_val),
                ),
                outputs,
            )


def _evaluate_all(
    run: _Run, state: TrainState, *, test_due: bool, best_val: float | None
) -> tuple[dict[str, float | None], dict[str, np.ndarray]]:
    """Eval-mode accuracies on train, (noisy) val and test, and the train outputs.

    Test is evaluated when ``test_due`` or when val improves on ``best_val``
    (the best noisy-val accuracy of the earlier epochs); otherwise its accuracy
    is None.
    """
    train_eval = run.evaluate(state, "train")
    val_accuracy = None
    if run.datasets.num_val:
        val = run.evaluate(state, "val")
        val_accuracy = _accuracy(val["prediction"], val["label"])
    test_accuracy = None
    if test_due or _improves(val_accuracy, best_val):
        test = run.evaluate(state, "test")
        test_accuracy = _accuracy(test["prediction"], test["clean_label"])
    accuracies = {
        **train_split_metrics(train_eval),
        "val_accuracy": val_accuracy,
        "test_accuracy": test_accuracy,
    }
    assert tuple(accuracies) == ACCURACY_KEYS
    return accuracies, train_eval


def _run_epoch(
    epoch: int,
    state: TrainState,
    *,
    run: _Run,
    progress: _StepProgress,
    writer: metric_writers.MetricWriter,
    evaluate: bool,
    test_due: bool,
    best_val: float | None,
) -> tuple[TrainState, dict[str, Any], dict[str, np.ndarray] | None]:
    """Trains one epoch, then (if ``evaluate``) evaluates (``_evaluate_all``).

    The record of an epoch that is not evaluated has None for every accuracy.
    """
    config, steps_per_epoch = run.config, run.steps_per_epoch
    first_step = (epoch - 1) * steps_per_epoch + 1
    # The epoch's losses stay on the device until a progress line needs them;
    # then those not yet read come back in one copy and are checked. A window
    # is padded to its longest (with its last loss), so joining compiles once.
    window_size = min(config.log_every_steps, steps_per_epoch)
    unread: list[jax.Array] = []
    step_losses = np.zeros(0, np.float32)
    # The epoch's throughput is timed from the end of its first step, so that the
    # first epoch's figure does not include compilation.
    timed_from = None
    progress.restart_window()
    for batch in run.datasets.train_batches(epoch - 1, config.batch_size):
        state, loss = run.train_step(state, batch, epoch - 1)
        unread.append(loss)
        num_steps = len(step_losses) + len(unread)
        step = first_step + num_steps - 1
        if timed_from is None:
            jax.block_until_ready(loss)
            timed_from = time.perf_counter()
        if step % config.log_every_steps == 0 or num_steps == steps_per_epoch:
            padded = unread + unread[-1:] * (window_size - len(unread))
            window = _concatenate_to_host(padded)[: len(unread)]
            _check_finite(window, first_step + len(step_losses), epoch)
            step_losses = np.concatenate([step_losses, window])
            unread = []
            recent = float(np.mean(step_losses[-config.log_every_steps :]))
            progress.report(epoch, step, recent)
            writer.write_scalars(step, {"train_loss_running": recent})
    train_seconds = time.perf_counter() - timed_from
    timed_steps = len(step_losses) - 1

    if evaluate:
        accuracies, train_eval = _evaluate_all(
            run, state, test_due=test_due, best_val=best_val
        )
    else:
        accuracies, train_eval = dict.fromkeys(ACCURACY_KEYS), None
    record = {
        "epoch": epoch,
        "step": epoch * steps_per_epoch,
        "learning_rate": float(run.learning_rate(epoch * steps_per_epoch - 1)),
        "train_loss": float(np.mean(step_losses)),
        **accuracies,
        "images_per_second": (
            timed_steps * config.batch_size / train_seconds if timed_steps else None
        ),
        "elapsed_seconds": None,
    }
    return state, record, train_eval
