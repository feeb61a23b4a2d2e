"""The files of a run directory and of a sweep directory: names, writing, reading.

A run directory (``launch.py --workdir``; under a sweep, one directory of the
grid) holds what training writes (``train``: ``metrics.jsonl``,
``summary.json``, the prediction files, ``labels.npz`` from the input pipeline,
TensorBoard events and ``checkpoints/``) and what the sweep writes around it
(``run.json``, ``config.json``, ``command.sh``, ``log.txt``, ``error.txt``,
``timing.jsonl``, ``heartbeat``, and on a cluster ``job.json``); the sweep
directory holds ``sweep.json``.
Every file name is defined here, once. Files that a reader may see while they
are being rewritten (a resumed run rewrites them) are written atomically: to a
temporary file in the same directory, then renamed over the old one.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Mapping
from typing import Any

import numpy as np

# Written by training (train.py, input_pipeline.py).
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
LABELS_FILE = "labels.npz"
CHECKPOINT_DIR = "checkpoints"
# Written by the sweep around a run.
RUN_INFO_FILE = "run.json"
CONFIG_FILE = "config.json"
COMMAND_FILE = "command.sh"
LOG_FILE = "log.txt"
ERROR_FILE = "error.txt"
TIMING_FILE = "timing.jsonl"
HEARTBEAT_FILE = "heartbeat"
# The cluster job of a run submitted by the slurm executor (tce_jax.slurm).
JOB_FILE = "job.json"
# In the sweep directory.
SWEEP_INFO_FILE = "sweep.json"
# submitit's job scripts and logs (the slurm executor, tce_jax.slurm).
SUBMITIT_DIR = "submitit"

PathLike = str | os.PathLike


def predictions_file(split: str, *, at_best_val: bool = False) -> str:
    """The file holding one split's predictions after the last epoch or at the
    selected (best noisy-val) epoch: ``train_predictions.npz``,
    ``train_predictions_best_val.npz``, ``heldout_predictions.npz``, ..."""
    return f"{split}_predictions{'_best_val' if at_best_val else ''}.npz"


def format_number(value: float) -> str:
    """Short, exact-enough text for a number in a directory name (0.4, 1e-05)."""
    return f"{value:g}"


def loss_label(name: str, hparams: Mapping[str, Any]) -> str:
    """Readable name of a loss with its hyperparameters, e.g. 'tce-alpha0.01'.

    It names the loss level of a sweep's run directories and the report's rows.
    A string setting shows its value alone: ``alpha_rule="auto"`` gives
    'tce-auto'.
    """
    parts = [name]
    for key in sorted(hparams):
        value = hparams[key]
        if isinstance(value, str):
            parts.append(value)
        else:
            text = format_number(value) if isinstance(value, float) else str(value)
            parts.append(f"{key}{text}")
    return "-".join(parts)


# ----------------------------------------------------------------------------
# Writing.


def write_text_atomically(path: PathLike, text: str) -> None:
    """Writes ``text`` to ``path`` whole or not at all (no newline translation)."""
    tmp_path = f"{path}.tmp"
    with open(tmp_path, "w", newline="") as f:
        f.write(text)
    os.replace(tmp_path, path)


def write_npz_atomically(path: PathLike, **arrays: Any) -> None:
    """``np.savez(path, **arrays)``, whole or not at all."""
    # np.savez appends ".npz" to a name without it; this one has it.
    partial_path = f"{path}.partial.npz"
    np.savez(partial_path, **arrays)
    os.replace(partial_path, path)


def write_metrics(run_dir: PathLike, history: list[dict[str, Any]]) -> None:
    """Rewrites metrics.jsonl from the history (so a resume never duplicates)."""
    write_text_atomically(
        os.path.join(run_dir, METRICS_FILE),
        "".join(json.dumps(record) + "\n" for record in history),
    )


def write_summary(run_dir: PathLike, summary: dict[str, Any]) -> None:
    """Writes summary.json; its presence marks the run as finished."""
    write_text_atomically(
        os.path.join(run_dir, SUMMARY_FILE), json.dumps(summary, indent=2) + "\n"
    )


# ----------------------------------------------------------------------------
# Reading.


def read_metrics(run_dir: PathLike) -> list[dict[str, Any]]:
    """metrics.jsonl as a list of per-epoch dicts, by epoch (last write wins).

    A resumed run may log an epoch twice; the later line is the one that
    matches the checkpointed state the run continued from. No file: [].
    """
    try:
        lines = pathlib.Path(run_dir, METRICS_FILE).read_text().splitlines()
    except FileNotFoundError:
        return []
    by_epoch = {}
    for line in lines:
        if line.strip():
            record = json.loads(line)
            by_epoch[record["epoch"]] = record
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


def read_summary(run_dir: PathLike) -> dict[str, Any] | None:
    """summary.json as a dict; None if the run has not finished."""
    try:
        return json.loads(pathlib.Path(run_dir, SUMMARY_FILE).read_text())
    except FileNotFoundError:
        return None
