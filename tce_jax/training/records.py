"""What a run writes besides checkpoints: its summary, predictions and TensorBoard.

The files themselves (names, atomic writes, reading them back) belong to
``tce_jax.run_files``; here is their content: ``summarize`` (summary.json),
``save_predictions`` (one split's predictions), the TensorBoard writer and
hparams, and the commit the run's code came from.
"""

import os
import subprocess
from typing import Any

import numpy as np
from clu import metric_writers
from flax import traverse_util

from tce_jax import run_environment, run_files
from tce_jax.selection import select_on_validation
from tce_jax.training.config import RunConfig


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
    config: RunConfig,
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
        "config": config.as_given(),
        "effective_config": config.as_effective(),
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


def create_writer(workdir: str, *, is_writer: bool) -> metric_writers.MetricWriter:
    """TensorBoard events on process 0, nothing elsewhere (progress goes to logs)."""
    if not is_writer:
        return metric_writers.MultiWriter([])
    return metric_writers.AsyncWriter(metric_writers.SummaryWriter(workdir))


def flat_hparams(config: dict[str, Any]) -> dict[str, Any]:
    """A config dict (``RunConfig.as_given``) as flat scalar hparams for
    TensorBoard (None and lists skipped)."""
    flat = traverse_util.flatten_dict(config, sep=".")
    return {
        name: value
        for name, value in flat.items()
        if isinstance(value, bool | int | float | str)
    }


def save_run_predictions(
    workdir: str, outputs: dict[str, dict[str, np.ndarray]], *, at_best_val: bool
) -> None:
    """Saves each split's outputs (``evaluation.Evaluator.predictions``) as the
    run's predictions: at the best noisy-val epoch so far, or at the end."""
    for split, split_outputs in outputs.items():
        save_predictions(
            os.path.join(
                workdir, run_files.predictions_file(split, at_best_val=at_best_val)
            ),
            split_outputs,
        )
