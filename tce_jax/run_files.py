"""The files of a run directory and of a sweep directory: names, writing, reading.

A run directory (``launch.py --workdir``; under a sweep, one directory of the
grid) holds what training writes (``train``: ``effective_config.json``,
``metrics.jsonl``, ``summary.json``, the prediction files, ``labels.npz`` from
the input pipeline, TensorBoard events and ``checkpoints/``) and what the
sweep writes around it (``run.json``, ``config.json``, ``command.sh``,
``log.txt``, ``error.txt``, ``timing.jsonl``, ``heartbeat``, and on a cluster
``job.json``); the sweep directory holds ``sweep.json``.
Every file name is defined here, once, and so is every reading of them: where
the runs of a sweep are, what state a run is in and on what evidence, its
metrics, summary, predictions and CPU time. Files that a reader may see while
they are being rewritten (a resumed run rewrites them) are written atomically:
to a temporary file in the same directory, then renamed over the old one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import pathlib
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

# Written by training (train.py, input_pipeline.py).
METRICS_FILE = "metrics.jsonl"
# The metrics.jsonl fields that time the run rather than measure the model:
# they differ between any two runs.
TIMING_METRICS = ("images_per_second", "elapsed_seconds")
SUMMARY_FILE = "summary.json"
LABELS_FILE = "labels.npz"
CHECKPOINT_DIR = "checkpoints"
# The config the run trains with, every default filled in (tce_jax.training.relaunch).
EFFECTIVE_CONFIG_FILE = "effective_config.json"
# A run moved aside to start over is renamed <run dir> + this + a timestamp
# (tce_jax.training.relaunch); it is no run of any sweep.
REPLACED_RUN_MARK = ".replaced-"
# Written by the sweep around a run.
RUN_INFO_FILE = "run.json"
CONFIG_FILE = "config.json"
COMMAND_FILE = "command.sh"
LOG_FILE = "log.txt"
ERROR_FILE = "error.txt"
TIMING_FILE = "timing.jsonl"
HEARTBEAT_FILE = "heartbeat"
# The cluster job of a run submitted by the slurm executor (tce_jax.sweeps.slurm).
JOB_FILE = "job.json"
# The key under which run.json and summary.json keep where the run ran
# (tce_jax.run_environment).
ENVIRONMENT_KEY = "environment"
# In the sweep directory.
SWEEP_INFO_FILE = "sweep.json"
# submitit's job scripts and logs (the slurm executor, tce_jax.sweeps.slurm).
SUBMITIT_DIR = "submitit"

PathLike = str | os.PathLike

# Whoever supervises a run (a local sweep's thread, a cluster job) touches its
# heartbeat this often; one older than HEARTBEAT_STALE_SECONDS means nobody
# runs it any more (killed, node lost, sweep interrupted). The margin allows
# for clock skew on shared filesystems.
HEARTBEAT_SECONDS = 20.0
HEARTBEAT_STALE_SECONDS = 90.0

# The states of a run, and the evidence for each (``run_state``).
FINISHED, RUNNING, QUEUED, FAILED, MISSING = (
    "finished",
    "running",
    "queued",
    "failed",
    "missing",
)
RUN_STATES = (FINISHED, RUNNING, QUEUED, FAILED, MISSING)


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


@contextlib.contextmanager
def heartbeat(run_dir: PathLike, every: float = HEARTBEAT_SECONDS) -> Iterator[None]:
    """Keeps the run's heartbeat fresh (host and pid inside) while the block runs."""
    path = pathlib.Path(run_dir, HEARTBEAT_FILE)
    stop = threading.Event()
    text = json.dumps({"host": socket.gethostname(), "pid": os.getpid()}) + "\n"

    def beat():
        while not stop.wait(every):
            path.write_text(text)

    # The first beat before the block: from its start the run reads as running.
    path.write_text(text)
    thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        path.unlink(missing_ok=True)


def write_job(run_dir: PathLike, *, cluster: str, job_id: str, folder: str) -> None:
    """Records the cluster job of a submitted run (job.json): submitit's cluster
    ("slurm" or "local"), job id and job folder."""
    record = {"cluster": cluster, "job_id": job_id, "folder": folder}
    write_text_atomically(pathlib.Path(run_dir, JOB_FILE), json.dumps(record) + "\n")


def record_environment(run_dir: PathLike, environment: Mapping[str, Any]) -> None:
    """Adds where the run runs to the run.json a sweep wrote (no run.json: no-op).

    run.json places the run in its grid; a run launched on its own has none,
    and its summary.json keeps the environment instead.
    """
    path = pathlib.Path(run_dir, RUN_INFO_FILE)
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        return
    info[ENVIRONMENT_KEY] = dict(environment)
    write_text_atomically(path, json.dumps(info, indent=2) + "\n")


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


def epochs_done(run_dir: PathLike) -> int:
    """Epochs recorded in metrics.jsonl (0 if none yet)."""
    metrics = read_metrics(run_dir)
    return metrics[-1]["epoch"] if metrics else 0


def read_run_info(run_dir: PathLike) -> dict[str, Any] | None:
    """The run's place in its grid: run.json, else derived from summary's config.

    Runs trained by launch.py alone have no run.json; their summary holds the
    config. None: neither file (the run was never prepared).
    """
    info_path = pathlib.Path(run_dir, RUN_INFO_FILE)
    if info_path.exists():
        return json.loads(info_path.read_text())
    summary = read_summary(run_dir)
    if summary is None:
        return None
    config = summary.get("config") or {}
    loss = dict(config.get("loss") or {})
    name = loss.pop("name", "?")
    hparams = {key: value for key, value in loss.items() if value is not None}
    return {
        "dataset": config.get("data", {}).get("dataset", "?"),
        "noise_kind": config.get("noise", {}).get("kind", "?"),
        "noise_rate": float(config.get("noise", {}).get("rate", math.nan)),
        "loss": loss_label(name, hparams),
        "loss_name": name,
        "loss_hparams": hparams,
        "seed": config.get("seed"),
        "holdout_folds": config.get("data", {}).get("holdout_folds", 0),
    }


def read_environment(run_dir: PathLike) -> dict[str, Any] | None:
    """Where the run ran (``run_environment``): recorded in run.json when its
    launch starts (under a sweep), in summary.json when it ends; None before
    either."""
    for read in (read_run_info, read_summary):
        if environment := (read(run_dir) or {}).get(ENVIRONMENT_KEY):
            return environment
    return None


def read_predictions(
    run_dir: PathLike, split: str, *, at_best_val: bool = False
) -> dict[str, np.ndarray] | None:
    """A split's saved predictions (``predictions_file``) as arrays; None if absent."""
    try:
        with np.load(
            pathlib.Path(run_dir, predictions_file(split, at_best_val=at_best_val))
        ) as data:
            return {key: data[key] for key in data.files}
    except FileNotFoundError:
        return None


def read_job(run_dir: PathLike) -> dict[str, str] | None:
    """job.json as written by ``write_job``; None for a run never submitted."""
    try:
        return json.loads(pathlib.Path(run_dir, JOB_FILE).read_text())
    except FileNotFoundError:
        return None


def cpu_seconds(run_dir: PathLike) -> float | None:
    """CPU seconds of all attempts at a run (the sweep's timing.jsonl), if timed."""
    try:
        lines = pathlib.Path(run_dir, TIMING_FILE).read_text().splitlines()
    except FileNotFoundError:
        return None
    return round(sum(json.loads(line)["cpu_seconds"] for line in lines if line), 1)


def log_tail(run_dir: PathLike, lines: int) -> str:
    """The last lines of the run's log.txt ("" if it has none)."""
    try:
        return "\n".join(
            pathlib.Path(run_dir, LOG_FILE).read_text().splitlines()[-lines:]
        )
    except FileNotFoundError:
        return ""


# ----------------------------------------------------------------------------
# Run states.


def is_finished(run_dir: PathLike) -> bool:
    """Training wrote its summary: the run is done (whatever else is in the dir)."""
    return pathlib.Path(run_dir, SUMMARY_FILE).exists()


def is_running(run_dir: PathLike) -> bool:
    """Whether a supervisor (on any host) has touched the run's heartbeat lately."""
    try:
        age = time.time() - pathlib.Path(run_dir, HEARTBEAT_FILE).stat().st_mtime
    except FileNotFoundError:
        return False
    return age < HEARTBEAT_STALE_SECONDS


@dataclasses.dataclass(frozen=True)
class RunState:
    """Where one run stands, and why.

    Attributes:
      state: one of ``RUN_STATES``; see ``run_state`` for the evidence.
      detail: one line about it (progress, host, exit code, job id).
      log_tail: the last lines of a failed run's log.
    """

    state: str
    detail: str = ""
    log_tail: str = ""


def run_state(
    run_dir: PathLike, *, queued: str | None = None, tail_lines: int = 8
) -> RunState:
    """The state of a run, from its files (and the cluster's queue), first match:

    - finished: summary.json exists;
    - running: a fresh heartbeat (``is_running``);
    - queued: the caller's cluster queue holds its job (``queued`` describes it);
    - failed: error.txt records an exit status, or the run started (log,
      metrics or heartbeat) and stopped without one (killed, node lost, sweep
      interrupted);
    - missing: none of these; never started (its dir may be prepared).

    Args:
      run_dir: the run directory (need not exist).
      queued: the cluster job that waits for this run, if any.
      tail_lines: lines of a failed run's log to keep.
    """
    run_dir = pathlib.Path(run_dir)
    if is_finished(run_dir):
        return RunState(FINISHED)
    if is_running(run_dir):
        try:
            where = json.loads((run_dir / HEARTBEAT_FILE).read_text())
            host = f" on {where['host']} (pid {where['pid']})"
        except (FileNotFoundError, KeyError, json.JSONDecodeError):
            host = ""  # Rewritten or removed just now.
        return RunState(RUNNING, _progress_text(run_dir) + host)
    if queued is not None:
        return RunState(QUEUED, queued)
    if (run_dir / ERROR_FILE).exists():
        exit_line = (run_dir / ERROR_FILE).read_text().split("\n", 1)[0]
        detail = f"{exit_line}, after {_progress_text(run_dir)}"
    elif any(
        (run_dir / name).exists() for name in (LOG_FILE, METRICS_FILE, HEARTBEAT_FILE)
    ):
        detail = (
            f"stopped without an exit status after {_progress_text(run_dir)} "
            "(killed, node lost or sweep interrupted)"
        )
    else:
        return RunState(MISSING, "not started")
    return RunState(FAILED, detail, log_tail(run_dir, tail_lines))


def _progress_text(run_dir: pathlib.Path) -> str:
    try:
        num_epochs = json.loads((run_dir / CONFIG_FILE).read_text())["num_epochs"]
    except (FileNotFoundError, KeyError, json.JSONDecodeError):
        num_epochs = "?"
    return f"epoch {epochs_done(run_dir)}/{num_epochs}"


# ----------------------------------------------------------------------------
# The runs of a sweep.


def grid_runs(sweep_dir: PathLike) -> list[str]:
    """The run dirs of the grid recorded in sweep.json, relative, in grid order.

    Raises:
      FileNotFoundError: the directory holds no sweep.json.
    """
    info_path = pathlib.Path(sweep_dir, SWEEP_INFO_FILE)
    if not info_path.exists():
        raise FileNotFoundError(f"{sweep_dir} has no {SWEEP_INFO_FILE}")
    return list(json.loads(info_path.read_text())["runs"])


def find_runs(sweep_dir: PathLike) -> list[str]:
    """Every run dir under a sweep dir, relative: the grid's, then any other.

    The grid's come from sweep.json (a run never started is among them); the
    others are directories holding run.json or summary.json (runs moved in,
    or trained by launch.py), sorted by name, except runs moved aside to
    start over (``REPLACED_RUN_MARK``).
    """
    sweep_dir = pathlib.Path(sweep_dir)
    try:
        rel_dirs = grid_runs(sweep_dir)
    except FileNotFoundError:
        rel_dirs = []
    found = {
        path.parent.relative_to(sweep_dir).as_posix()
        for name in (RUN_INFO_FILE, SUMMARY_FILE)
        for path in sweep_dir.rglob(name)
    }
    found = {rel_dir for rel_dir in found if REPLACED_RUN_MARK not in rel_dir}
    return rel_dirs + sorted(found - set(rel_dirs))


def not_a_directory(flag: str, path: str | None, allowed: str) -> str | None:
    """The one-line problem of ``--<flag>=<path>`` naming a file where a
    directory (a run, sweep or data directory) is wanted, or None.

    Args:
      flag: the flag's name.
      path: its value; None (the flag not given) and a missing path pass.
      allowed: what the flag takes, e.g. "a directory (created if missing)".
    """
    if path is None or not os.path.exists(path) or os.path.isdir(path):
        return None
    return f"--{flag}={path}: is a file; allowed: {allowed}"
