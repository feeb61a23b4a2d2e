"""A sweep's plan, shared by its executors: which runs to start, and how to run one.

``plan_sweep`` records the grid (``grid``) in sweep.json, skips finished runs,
leaves alone the runs busy elsewhere, writes each remaining run's directory
(run.json, the resolved config.json and command.sh, so any run can be repeated
by hand) and prepares its datasets once. An executor then trains each pending
run with ``run_once``: ``launch.py`` in a subprocess (``subprocess_runner``)
under a heartbeat, its output in log.txt, its times in timing.jsonl and a
failure in error.txt; an unfinished run resumes from its checkpoints. The
executors: ``local_executor`` (this machine) and ``slurm`` (a job array).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping

import ml_collections

from tce_jax import run_files
from tce_jax.run_files import (
    COMMAND_FILE,
    CONFIG_FILE,
    ERROR_FILE,
    LOG_FILE,
    RUN_INFO_FILE,
    SWEEP_INFO_FILE,
    TIMING_FILE,
)
from tce_jax.sweeps import grid

# Worker threads log too: print() writes a line's text and its newline
# separately, so lines of two threads could run into each other.
_STDOUT_LOCK = threading.Lock()


def print_now(line: str) -> None:
    """Writes one progress line to stdout whole, and at once even when stdout
    is a file or a pipe; safe to call from several threads.

    Args:
      line: the text, without its newline.
    """
    with _STDOUT_LOCK:
        sys.stdout.write(f"{line}\n")
        sys.stdout.flush()


# Lines of a failed run's log kept in its error.txt and echoed to the console.
ERROR_TAIL_LINES = 25


@dataclasses.dataclass(frozen=True)
class Slot:
    """What one run may use.

    Attributes:
      cores: the CPUs the run is pinned to; its thread pools are sized to them.
      env: environment variables that give the run its accelerators (e.g.
        ``CUDA_VISIBLE_DEVICES``); empty: it sees what this process sees.
    """

    cores: tuple[int, ...]
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)


# A runner trains one run in its directory within a slot; returns an exit code.
Runner = Callable[[grid.Run, pathlib.Path, Slot], int]
# A preparer makes a dataset (name, data_dir) ready offline; returns an exit code.
Preparer = Callable[[str, str | None], int]


def prepare_dataset(dataset: str, data_dir: str | None) -> int:
    """Prepares a dataset once (tce_jax.data.prepare_data) before runs read it.

    Parallel runs would otherwise each start building the same tfds dataset.
    """
    command = [
        sys.executable,
        "-m",
        "tce_jax.data.prepare_data",
        f"--dataset={dataset}",
    ]
    if data_dir:
        command.append(f"--data_dir={data_dir}")
    return subprocess.run(command, cwd=grid.REPO_ROOT, check=False).returncode


def available_cpus() -> list[int]:
    """The CPUs this process may run on (its affinity: a cluster's allocation)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def thread_limited_env(num_threads: int) -> dict[str, str]:
    """Environment for a run allowed `num_threads` cores.

    XLA sizes its CPU thread pool from the process's CPU affinity (set by the
    runner); TensorFlow and OpenMP read these variables.
    """
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS=str(num_threads),
        TF_NUM_INTRAOP_THREADS=str(num_threads),
        TF_NUM_INTEROP_THREADS=str(num_threads),
        TF_CPP_MIN_LOG_LEVEL=env.get("TF_CPP_MIN_LOG_LEVEL", "2"),
    )
    return env


def subprocess_runner(base_config_path: str | os.PathLike) -> Runner:
    """A runner that starts launch.py in its slot, logging to log.txt.

    Each attempt's wall and CPU seconds go to the run's timing.jsonl: on a
    shared machine, CPU seconds are what sizes a protocol, not wall time.
    """

    def run_launch(run: grid.Run, run_dir: pathlib.Path, slot: Slot) -> int:
        command = grid.launch_command(base_config_path, run, run_dir)
        pin_to_cores = None
        if shutil.which("taskset"):
            # An exec wrapper, not a preexec_fn: forking a process that runs JAX's
            # threads is unsafe (and JAX warns about it).
            cores = ",".join(str(core) for core in sorted(slot.cores))
            command = ["taskset", "--cpu-list", cores, *command]
        elif hasattr(os, "sched_setaffinity"):

            def pin_to_cores():
                os.sched_setaffinity(0, slot.cores)

        devices = "".join(f" {key}={value}" for key, value in sorted(slot.env.items()))
        started = time.monotonic()
        with open(run_dir / LOG_FILE, "a") as log:
            now = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"\n# {now} cores={slot.cores}{devices}\n")
            log.flush()
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=thread_limited_env(len(slot.cores)) | dict(slot.env),
                cwd=grid.REPO_ROOT,
                preexec_fn=pin_to_cores,
            )
            try:
                _, status, usage = os.wait4(process.pid, 0)
            except BaseException:
                # Interrupted (Ctrl-C, or a cluster job exiting to be requeued):
                # launch.py must not go on writing the run dir unsupervised.
                process.kill()
                process.wait()
                raise
        code = os.waitstatus_to_exitcode(status)
        timing = {
            "exit_code": code,
            "cores": len(slot.cores),
            "wall_seconds": round(time.monotonic() - started, 1),
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        }
        with open(run_dir / TIMING_FILE, "a") as timing_file:
            timing_file.write(json.dumps(timing) + "\n")
        return code

    return run_launch


def run_once(run: grid.Run, run_dir: pathlib.Path, runner: Runner, slot: Slot) -> int:
    """Trains one run to its end under a heartbeat; records a failure in error.txt.

    Returns:
      The runner's exit code; -1 if it raised, -2 if it exited cleanly without
      writing the summary.
    """
    (run_dir / ERROR_FILE).unlink(missing_ok=True)
    with run_files.heartbeat(run_dir):
        try:
            code = runner(run, run_dir, slot)
        except Exception as error:
            code = -1
            with open(run_dir / LOG_FILE, "a") as run_log:
                run_log.write(f"runner raised {error!r}\n")
    if code == 0 and not run_files.is_finished(run_dir):
        code = -2  # Exited cleanly without a summary: treat as failed.
    if code != 0:
        tail = run_files.log_tail(run_dir, ERROR_TAIL_LINES)
        (run_dir / ERROR_FILE).write_text(f"exit code {code}\n{tail}\n")
    return code


def log_failure(run_dir: pathlib.Path, log: Callable[[str], None]) -> None:
    """Logs a failed run's error.txt: its exit code and the end of its log."""
    try:
        error = (run_dir / ERROR_FILE).read_text().rstrip()
    except FileNotFoundError:
        error = "(no error.txt)"
    log(f"  {run_dir}: {error}")


class DatasetUnavailableError(RuntimeError):
    """A dataset of the sweep could not be prepared; no run was started.

    ``str(error)`` is one line saying which and how to prepare it offline.
    """


@dataclasses.dataclass
class SweepOutcome:
    """What happened to each run of a sweep (lists of rel_dirs).

    ``busy`` runs were left alone: running elsewhere (fresh heartbeat) or, on
    a cluster, waiting in its queue. ``submitted`` runs went to a cluster.
    """

    skipped: list[str] = dataclasses.field(default_factory=list)
    busy: list[str] = dataclasses.field(default_factory=list)
    submitted: list[str] = dataclasses.field(default_factory=list)
    finished: list[str] = dataclasses.field(default_factory=list)
    failed: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def prepare_run_dir(
    base_config_path: str, run: grid.Run, run_dir: pathlib.Path
) -> None:
    """Writes run.json, the resolved config.json and command.sh into run_dir."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config = grid.resolve_config(base_config_path, run.overrides)
    (run_dir / RUN_INFO_FILE).write_text(json.dumps(run.info(), indent=2) + "\n")
    (run_dir / CONFIG_FILE).write_text(config.to_json_best_effort(indent=2) + "\n")
    (run_dir / COMMAND_FILE).write_text(
        grid.command_script(base_config_path, run, run_dir)
    )


@dataclasses.dataclass
class SweepPlan:
    """A sweep's grid and which of its runs are to be run now.

    Attributes:
      sweep_dir: absolute root of the run dirs.
      base_config_path: the sweep config's base run config.
      runs: the whole grid.
      pending: the runs to start (their dirs and datasets are ready).
      outcome: ``skipped`` and ``busy`` filled in; the rest is for the executor.
    """

    sweep_dir: pathlib.Path
    base_config_path: str
    runs: list[grid.Run]
    pending: list[grid.Run]
    outcome: SweepOutcome


def plan_sweep(
    sweep_config: ml_collections.ConfigDict,
    sweep_dir: str | os.PathLike,
    *,
    busy: Callable[[pathlib.Path], bool] = run_files.is_running,
    preparer: Preparer = prepare_dataset,
    log: Callable[[str], None] = print_now,
) -> SweepPlan:
    """Records the grid in sweep.json and readies the runs left to do.

    Shared by every executor: finished runs are skipped, busy ones left alone,
    the others get their run dir (run.json, config.json, command.sh) and their
    datasets are prepared once, here, rather than by each run.

    Args:
      sweep_config: see ``grid``.
      sweep_dir: root of the run dirs.
      busy: whether a run dir is being run or queued elsewhere.
      preparer: prepares each dataset of the pending runs.
      log: progress sink.

    Raises:
      DatasetUnavailableError: a dataset could not be prepared (before any
        run starts).
    """
    sweep_dir = pathlib.Path(sweep_dir).resolve()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    base_config_path = sweep_config.base_config
    runs = grid.expand_grid(sweep_config)
    (sweep_dir / SWEEP_INFO_FILE).write_text(
        json.dumps(
            {
                "sweep_config": sweep_config.to_dict(),
                "runs": [run.rel_dir for run in runs],
            },
            indent=2,
            default=str,
        )
        + "\n"
    )
    outcome = SweepOutcome()
    pending = []
    for run in runs:
        run_dir = sweep_dir / run.rel_dir
        if run_files.is_finished(run_dir):
            outcome.skipped.append(run.rel_dir)
        elif busy(run_dir):
            outcome.busy.append(run.rel_dir)
        else:
            prepare_run_dir(base_config_path, run, run_dir)
            pending.append(run)
    busy_text = (
        f", {len(outcome.busy)} running or queued elsewhere" if outcome.busy else ""
    )
    log(
        f"sweep {sweep_dir}: {len(runs)} runs, {len(outcome.skipped)} already "
        f"finished{busy_text}, {len(pending)} to run"
    )
    data_dirs = {
        run.dataset: grid.resolve_config(base_config_path, run.overrides).data.data_dir
        for run in pending
    }
    failed = {
        dataset: data_dir
        for dataset, data_dir in data_dirs.items()
        if preparer(dataset, data_dir) != 0
    }
    if failed:
        commands = " and ".join(
            "python3 -m tce_jax.data.prepare_data --dataset="
            + dataset
            + (f" --data_dir={data_dir}" if data_dir else "")
            for dataset, data_dir in failed.items()
        )
        raise DatasetUnavailableError(
            f"dataset {', '.join(failed)} could not be prepared (see above), so no "
            "run was started: each would fail the same way. Prepare it once where "
            f"there is internet ({commands}), point config.data.data_dir (or "
            "TFDS_DATA_DIR) at that data dir here, and start the sweep again"
        )
    return SweepPlan(sweep_dir, base_config_path, runs, pending, outcome)
