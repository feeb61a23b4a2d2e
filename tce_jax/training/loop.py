"""The training loop: one noisy-label run from its config to its metrics.

``train_and_evaluate(config, workdir)`` reads as setup (``_set_up``: the
config read once, data, model, train state, jitted steps), restore (the
newest checkpoint), epochs (``_train_epochs``: train, evaluate, follow the alpha
rule, checkpoint, write metrics) and summary (``_finish``). One ``('data',)``
mesh spans all devices: the global batch is sharded along it, the state
replicated; every process runs the same function on its own rows and process 0
writes the files. The optimiser and schedule are ``optim``'s, the steps
``steps``', evaluation ``evaluation``'s, the files' content ``records``'. A
relaunch resumes from the newest checkpoint and, on the same CPU type, ends
with exactly the metrics of an uninterrupted run (on GPUs, to within their
nondeterministic reductions). The files a run writes (``metrics.jsonl``,
``summary.json``, predictions, TensorBoard events, checkpoints) are described
in docs/training.md.
"""

import dataclasses
import json
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import numpy as np
import optax
from absl import logging
from clu import metric_writers
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from tce_jax import run_environment, run_files
from tce_jax.data import input_pipeline
from tce_jax.selection import select_on_validation
from tce_jax.training import (
    alpha,
    checkpointing,
    config_validation,
    evaluation,
    models,
    optim,
    records,
    relaunch,
    steps,
)
from tce_jax.training.config import ConfigError, RunConfig
from tce_jax.training.progress import StepProgress, check_finite


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str,
    *,
    mesh: jax.sharding.Mesh | None = None,
    start_over: bool = False,
) -> dict[str, Any]:
    """Trains and evaluates one run, resuming from ``workdir`` if it has checkpoints.

    Args:
      config: the run config (``configs/*.py``); read once here
        (``config_validation.read``).
      workdir: output directory (created if missing).
      mesh: a ('data',) mesh; default: all devices.
      start_over: move a run already in ``workdir`` aside
        (``relaunch.move_aside``) and train afresh.

    Returns:
      The summary written to ``workdir/summary.json``.

    Raises:
      ConfigError: the config is not valid, or would train
        another model than the run in ``workdir`` (``relaunch.check``).
      checkpointing.RestoreError: a checkpoint could not be read (all kept).
      progress.NonFiniteLossError: the loss became NaN/inf (the last good checkpoint
        is kept).
    """
    wall_start = time.perf_counter()
    run, state = _set_up(config, workdir, mesh, start_over=start_over)
    checkpointer = checkpointing.Checkpointer(
        os.path.join(run.workdir, run_files.CHECKPOINT_DIR),
        keep=run.config.checkpoint_keep,
        keep_best=run.datasets.num_val > 0,
    )
    # Resumes from the newest readable checkpoint, if any; a resumed run's
    # metrics.jsonl is cut back to the checkpoint's history.
    start_epoch, history = 0, []
    restored = checkpointer.restore_latest(state)
    if restored is not None:
        start_epoch, state, history = restored
        step = int(evaluation.to_host(state.step))
        if step != start_epoch * run.steps_per_epoch:
            raise ConfigError(
                f"config.batch_size: the checkpoint in {run.workdir} is at step "
                f"{step} after {start_epoch} epochs, which this config "
                f"({run.steps_per_epoch} steps per epoch) cannot continue; use a "
                "new workdir"
            )
        logging.info("Resumed from the checkpoint of epoch %d.", start_epoch)
        if run.is_writer:
            run_files.write_metrics(run.workdir, history)
    writer = records.create_writer(run.workdir, is_writer=run.is_writer)
    if start_epoch == 0:
        writer.write_hparams(
            records.flat_hparams(run.config.as_given())
            | run_environment.tensorboard_hparams(run.environment)
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

    config: RunConfig
    workdir: str
    mesh: jax.sharding.Mesh
    commit: str | None
    environment: dict[str, Any]
    is_writer: bool
    datasets: input_pipeline.Datasets
    steps_per_epoch: int
    learning_rate: optax.Schedule
    train_step: Callable
    evaluator: evaluation.Evaluator


def _set_up(
    config: ml_collections.ConfigDict,
    workdir: str,
    mesh: jax.sharding.Mesh | None,
    *,
    start_over: bool,
) -> tuple[_Run, steps.TrainState]:
    """Reads the config once (``config_validation.read``), checks it against
    the run already in the workdir (``relaunch``), records the environment,
    builds the data, the model, the initial train state and the jitted steps."""
    # Recorded before training: the code that runs is the code checked out now.
    commit = records.git_commit()
    workdir = os.path.abspath(workdir)
    if mesh is None:
        mesh = jax.make_mesh((jax.device_count(),), ("data",))
    config = config_validation.read(config, num_devices=mesh.size)
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

    # Checks the batch against the loaded split (input_pipeline.DataSizeError).
    datasets = input_pipeline.create_datasets(
        config, mesh=mesh, workdir=workdir, batch_size=config.batch_size
    )
    steps_per_epoch = datasets.steps_per_epoch(config.batch_size)
    learning_rate = optim.create_learning_rate_schedule(config, steps_per_epoch)
    optimizer = optim.create_optimizer(config, learning_rate)
    rule_state = config.loss.alpha.init_state(
        num_classes=datasets.info.num_classes,
        num_epochs=config.num_epochs,
        eval_every_epochs=config.eval_every_epochs,
    )
    model = models.get(
        config.model.name,
        num_classes=datasets.info.num_classes,
        width_multiplier=config.model.width_multiplier,
        dtype=config.model.compute_dtype,
    )
    train_step = steps.make_train_step(config.loss.fn, mesh, datasets.preprocessing)
    eval_step = steps.make_eval_step(mesh, datasets.preprocessing)
    state = steps.create_train_state(
        model,
        optimizer,
        image_shape=datasets.info.image_shape,
        seed=config.seed,
        mesh=mesh,
        alpha_rule=rule_state,
    )
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
        train_step=train_step,
        evaluator=evaluation.Evaluator(
            eval_step=eval_step, datasets=datasets, batch_size=config.eval_batch_size
        ),
    )
    return run, state


def _train_epochs(
    run: _Run,
    state: steps.TrainState,
    history: list[dict[str, Any]],
    start_epoch: int,
    *,
    checkpointer: checkpointing.Checkpointer,
    writer: metric_writers.MetricWriter,
) -> tuple[steps.TrainState, list[dict[str, Any]], dict[str, np.ndarray] | None]:
    """Runs the epochs after ``start_epoch``: each trains and evaluates
    (``_run_epoch``), follows the alpha rule, saves predictions when noisy-val
    accuracy improves, checkpoints and writes its metrics.

    Returns:
      The final state, the whole history and the last evaluation's train
      outputs (None when no epoch was left to train).
    """
    config = run.config
    elapsed_before = history[-1]["elapsed_seconds"] if history else 0.0
    progress = StepProgress(
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
            rule = alpha.follow(evaluation.to_host(state.alpha_rule), record)
            state = state.replace(
                alpha_rule=jax.device_put(rule, NamedSharding(run.mesh, P()))
            )
        if evaluation.improves(record["val_accuracy"], best_val):
            best_val = record["val_accuracy"]
            # Written before the checkpoint: a run killed in between redoes
            # this epoch and writes the same predictions again.
            predictions = run.evaluator.predictions(state, train_eval)
            if run.is_writer:
                records.save_run_predictions(run.workdir, predictions, at_best_val=True)
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
    state: steps.TrainState,
    history: list[dict[str, Any]],
    train_eval: dict[str, np.ndarray] | None,
    *,
    wall_start: float,
) -> dict[str, Any]:
    """Writes the summary and the final predictions; returns the summary."""
    # train_eval is None when relaunched after the last epoch: nothing to train.
    predictions = run.evaluator.predictions(state, train_eval)
    summary = records.summarize(
        history,
        config=run.config,
        realised_noise_rate=run.datasets.realised_noise_rate,
        wall_seconds=time.perf_counter() - wall_start,
        commit=run.commit,
        environment=run.environment,
    )
    if run.is_writer:
        records.save_run_predictions(run.workdir, predictions, at_best_val=False)
        run_files.write_summary(run.workdir, summary)
    logging.info("summary: %s", json.dumps({k: summary[k] for k in list(summary)[:8]}))
    return summary


def _run_epoch(
    epoch: int,
    state: steps.TrainState,
    *,
    run: _Run,
    progress: StepProgress,
    writer: metric_writers.MetricWriter,
    evaluate: bool,
    test_due: bool,
    best_val: float | None,
) -> tuple[steps.TrainState, dict[str, Any], dict[str, np.ndarray] | None]:
    """Trains one epoch, then (if ``evaluate``) evaluates (``Evaluator.epoch``).

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
            window = evaluation.concatenate_to_host(padded)[: len(unread)]
            check_finite(window, first_step + len(step_losses), epoch)
            step_losses = np.concatenate([step_losses, window])
            unread = []
            recent = float(np.mean(step_losses[-config.log_every_steps :]))
            progress.report(epoch, step, recent)
            writer.write_scalars(step, {"train_loss_running": recent})
    train_seconds = time.perf_counter() - timed_from
    timed_steps = len(step_losses) - 1

    if evaluate:
        accuracies, train_eval = run.evaluator.epoch(
            state, test_due=test_due, best_val=best_val
        )
    else:
        accuracies, train_eval = dict.fromkeys(evaluation.ACCURACY_KEYS), None
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
