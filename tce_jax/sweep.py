"""Grids of training runs: expand a sweep config, run it resumably, report it.

A sweep config (``configs/sweeps/*.py``, each with ``get_config()``) names a base
run config and the axes of the grid::

    base_config: path of a run config (e.g. "configs/cpu_fashion_mnist.py")
    overrides:   nested dict applied to every run (e.g. {"num_epochs": 8})
    datasets, noise_kinds, noise_rates, seeds: tuples
    losses:      tuple of dicts, each {"name": <registry name>, <hparam>: value}
    jobs:        runs at once (0 = chosen from the number of cores)
    holdout_folds: optional; K >= 2 makes every grid point K cross-fitting
                 runs (``seed0-fold1of3``: trains on all folds of the training
                 examples but fold 1 and predicts it; config.data.holdout_fold)

Every point of dataset x noise kind x noise rate x loss x seed is one run in its
own readable directory under the sweep dir, e.g.
``fashion_mnist/symmetric-0.4/tce-alpha0.01/seed0``. Each run is a subprocess
``python3 launch.py --config=<base> --config.<key>=<value> ... --workdir=<dir>``,
so any run can be repeated by hand with the command saved in its directory
(``command.sh``, next to the resolved ``config.json``). Runs that wrote
``summary.json`` are skipped; unfinished ones are started again in the same
directory and resume from their checkpoints. A failing run is recorded in its
``error.txt`` and the sweep goes on.

Whoever supervises a run (a thread of the local sweep, or a cluster job, see
``slurm``) touches its ``heartbeat`` file while launch.py runs: a fresh
heartbeat means the run is in progress somewhere, so another sweep process does
not start it a second time, and ``sweep_status`` can tell running runs from
stopped ones on either executor.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import importlib.util
import itertools
import json
import os
import pathlib
import queue
import shlex
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ml_collections
from flax import traverse_util

from tce_jax import run_files
from tce_jax.run_files import (
    COMMAND_FILE,
    CONFIG_FILE,
    ERROR_FILE,
    HEARTBEAT_FILE,
    LOG_FILE,
    RUN_INFO_FILE,
    SWEEP_INFO_FILE,
    TIMING_FILE,
)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
LAUNCH_SCRIPT = REPO_ROOT / "launch.py"

# A supervised run's heartbeat file is touched this often; one older than
# HEARTBEAT_STALE_SECONDS means nobody runs it any more (killed, node lost,
# sweep interrupted). The margin allows for clock skew on shared filesystems.
HEARTBEAT_SECONDS = 20.0
HEARTBEAT_STALE_SECONDS = 90.0

# Progress lines must show up at once even when stdout is a file or a pipe.
print_now = functools.partial(print, flush=True)

# Lines of a failed run's log kept in its error.txt and echoed to the console.
_ERROR_TAIL_LINES = 25
# Lines of a failed run's log that the status shows.
_STATUS_TAIL_LINES = 8


@dataclasses.dataclass(frozen=True)
class Run:
    """One point of the grid.

    Attributes:
      dataset: input_pipeline.DATASETS name.
      noise_kind: noise.KINDS name.
      noise_rate: nominal noise rate.
      loss_name: losses registry name.
      loss_hparams: sorted (name, value) pairs passed to the loss.
      seed: config seed.
      fold, num_folds: the held-out fold of a cross-fitting run (num_folds 0:
        an ordinary run).
      overrides: flat {"dotted.key": value} applied to the base config, holding
        the sweep-wide overrides and this run's axis values.
    """

    dataset: str
    noise_kind: str
    noise_rate: float
    loss_name: str
    loss_hparams: tuple[tuple[str, Any], ...]
    seed: int
    overrides: Mapping[str, Any]
    fold: int = 0
    num_folds: int = 0

    @property
    def loss_label(self) -> str:
        return run_files.loss_label(self.loss_name, dict(self.loss_hparams))

    @property
    def rel_dir(self) -> str:
        """Work dir relative to the sweep dir; readable and deterministic."""
        return "/".join(
            (
                self.dataset,
                f"{self.noise_kind}-{run_files.format_number(self.noise_rate)}",
                self.loss_label,
                f"seed{self.seed}"
                + (f"-fold{self.fold}of{self.num_folds}" if self.num_folds else ""),
            )
        )

    def info(self) -> dict[str, Any]:
        """What the report needs to place the run in its tables (run.json)."""
        return {
            "dataset": self.dataset,
            "noise_kind": self.noise_kind,
            "noise_rate": self.noise_rate,
            "loss": self.loss_label,
            "loss_name": self.loss_name,
            "loss_hparams": dict(self.loss_hparams),
            "seed": self.seed,
            "holdout_fold": self.fold,
            "holdout_folds": self.num_folds,
            "rel_dir": self.rel_dir,
            "overrides": dict(self.overrides),
        }


def flatten(nested: Mapping[str, Any] | ml_collections.ConfigDict) -> dict[str, Any]:
    """{"data": {"train_subset": 5}} -> {"data.train_subset": 5}."""
    if isinstance(nested, ml_collections.ConfigDict):
        nested = nested.to_dict()
    return traverse_util.flatten_dict(dict(nested), sep=".")


def expand_grid(sweep_config: ml_collections.ConfigDict) -> list[Run]:
    """All runs of a sweep config, in a stable order (seed varies slowest).

    Seeds vary slowest so that a sweep stopped half-way has complete tables for
    its first seeds rather than some cells with every seed and others empty.

    Raises:
      ValueError: on an empty axis, a loss without a name or duplicated runs.
    """
    axes = {
        name: tuple(sweep_config[name])
        for name in ("datasets", "noise_kinds", "noise_rates", "losses", "seeds")
    }
    for name, values in axes.items():
        if not values:
            raise ValueError(f"sweep axis {name!r} is empty")
    shared = flatten(sweep_config.get("overrides") or {})
    num_folds = sweep_config.get("holdout_folds", 0)
    if not isinstance(num_folds, int) or num_folds < 0 or num_folds == 1:
        raise ValueError(
            f"sweep holdout_folds must be 0 (ordinary runs) or an int >= 2, got "
            f"{num_folds!r}"
        )
    runs = []
    for seed, dataset, kind, rate, loss, fold in itertools.product(
        axes["seeds"],
        axes["datasets"],
        axes["noise_kinds"],
        axes["noise_rates"],
        axes["losses"],
        range(max(num_folds, 1)),
    ):
        loss = dict(loss)
        if "name" not in loss:
            raise ValueError(f"loss entry {loss} has no 'name'")
        name = loss.pop("name")
        hparams = tuple(sorted(loss.items()))
        overrides = {
            **shared,
            "seed": int(seed),
            "data.dataset": dataset,
            "noise.kind": kind,
            "noise.rate": float(rate),
            "loss.name": name,
            **{f"loss.{key}": value for key, value in hparams},
        }
        if num_folds:
            overrides |= {"data.holdout_folds": num_folds, "data.holdout_fold": fold}
        runs.append(
            Run(
                dataset=dataset,
                noise_kind=kind,
                noise_rate=float(rate),
                loss_name=name,
                loss_hparams=hparams,
                seed=int(seed),
                overrides=overrides,
                fold=fold,
                num_folds=num_folds,
            )
        )
    seen = set()
    for run in runs:
        if run.rel_dir in seen:
            raise ValueError(f"run {run.rel_dir} appears twice in the grid")
        seen.add(run.rel_dir)
    return runs


def resolve_path(path: str | os.PathLike) -> pathlib.Path:
    """A config path as given, else relative to the repository root."""
    candidate = pathlib.Path(path)
    if candidate.exists():
        return candidate.resolve()
    in_repo = REPO_ROOT / candidate
    if in_repo.exists():
        return in_repo
    raise FileNotFoundError(f"config file {path} not found (nor under {REPO_ROOT})")


def load_config_file(path: str | os.PathLike) -> ml_collections.ConfigDict:
    """Calls get_config() of a config file, as config_flags would."""
    path = resolve_path(path)
    if str(REPO_ROOT) not in sys.path:
        # Config files import each other as `configs.<name>`, as under launch.py.
        sys.path.insert(0, str(REPO_ROOT))
    spec = importlib.util.spec_from_file_location(f"_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def resolve_config(
    base_config_path: str | os.PathLike, overrides: Mapping[str, Any]
) -> ml_collections.ConfigDict:
    """The run config launch.py will build from the base config and overrides.

    Raises:
      KeyError: if an override names a field the base config does not have (a
        typo in a sweep config fails here, before any run starts).
    """
    config = load_config_file(base_config_path)
    was_locked = config.is_locked
    # Locked, an update cannot add a field: a typo raises KeyError naming it.
    config.lock()
    try:
        # Setting through the ConfigDict keeps FieldReference links and
        # placeholder types, exactly like a --config.<key> flag does.
        config.update_from_flattened_dict(
            {
                dotted: tuple(value) if isinstance(value, list) else value
                for dotted, value in overrides.items()
            }
        )
    finally:
        if not was_locked:
            config.unlock()
    return config


def _flag_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return repr(tuple(value))
    return str(value)


def _repo_relative(path: str | os.PathLike) -> str:
    """The path relative to the repository root when it lies inside it.

    Launches run with the repository root as working directory, so commands
    written this way are the same on every machine and in every clone.
    """
    path = pathlib.Path(path).absolute()
    return str(path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path)


def launch_command(
    base_config_path: str | os.PathLike,
    run: Run,
    workdir: str | os.PathLike,
    *,
    python: str = sys.executable,
) -> list[str]:
    """The launch.py command line of one run, to be run from the repository root."""
    command = [
        python,
        _repo_relative(LAUNCH_SCRIPT),
        f"--config={_repo_relative(resolve_path(base_config_path))}",
    ]
    command += [f"--config.{key}={_flag_value(v)}" for key, v in run.overrides.items()]
    command.append(f"--workdir={_repo_relative(workdir)}")
    return command


def command_script(
    base_config_path: str | os.PathLike, run: Run, run_dir: str | os.PathLike
) -> str:
    """The text of a run's command.sh: its launch command, portable across clones.

    Inside the repository the script first moves to the repository root, found
    from the script's own place, so it still works after the run directory is
    moved within the repository (e.g. into results/).
    """
    command = shlex.join(
        launch_command(base_config_path, run, run_dir, python="python3")
    )
    if pathlib.Path(run_dir).absolute().is_relative_to(REPO_ROOT):
        to_root = 'cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"'
    else:
        to_root = f"cd {shlex.quote(str(REPO_ROOT))}"
    return f"#!/usr/bin/env bash\nset -e\n{to_root}\n{command}\n"


def is_finished(run_dir: pathlib.Path) -> bool:
    return (run_dir / run_files.SUMMARY_FILE).exists()


def is_running(run_dir: pathlib.Path) -> bool:
    """Whether a supervisor (on any host) has touched the run's heartbeat lately."""
    try:
        age = time.time() - (run_dir / HEARTBEAT_FILE).stat().st_mtime
    except FileNotFoundError:
        return False
    return age < HEARTBEAT_STALE_SECONDS


@contextlib.contextmanager
def heartbeat(run_dir: pathlib.Path, every: float = HEARTBEAT_SECONDS):
    """Keeps run_dir/heartbeat fresh (host and pid inside) while the block runs."""
    path = run_dir / HEARTBEAT_FILE
    stop = threading.Event()
    text = json.dumps({"host": socket.gethostname(), "pid": os.getpid()}) + "\n"

    def beat():
        while True:
            path.write_text(text)
            if stop.wait(every):
                return

    thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        path.unlink(missing_ok=True)


def epochs_done(run_dir: pathlib.Path) -> int:
    """Epochs recorded in metrics.jsonl (0 if none yet)."""
    metrics = run_files.read_metrics(run_dir)
    return metrics[-1]["epoch"] if metrics else 0


def default_jobs(cpu_count: int | None = None) -> int:
    """Runs at once: one per core, at most 8.

    XLA gains little from a second thread on the CPU-sized ResNets (a ResNet-8
    step at batch 128 took 320 ms pinned to one core and 335 ms with two), so
    on small machines one single-core run per core gives the most runs per hour.
    """
    cpu_count = cpu_count or os.cpu_count() or 1
    return max(1, min(cpu_count, 8))


def available_cpus() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def core_slices(num_jobs: int, cpus: Sequence[int]) -> list[tuple[int, ...]]:
    """Splits the cores into one disjoint slice per job (shared if too few)."""
    if num_jobs >= len(cpus):
        return [(cpus[i % len(cpus)],) for i in range(num_jobs)]
    size = len(cpus) // num_jobs
    return [tuple(cpus[i * size : (i + 1) * size]) for i in range(num_jobs)]


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


# A runner trains one run in its directory on the given cores; returns an exit code.
Runner = Callable[[Run, pathlib.Path, tuple[int, ...]], int]
# A preparer makes a dataset (name, data_dir) ready offline; returns an exit code.
Preparer = Callable[[str, str | None], int]


def prepare_dataset(dataset: str, data_dir: str | None) -> int:
    """Prepares a dataset once (tce_jax.prepare_data) before runs read it.

    Parallel runs would otherwise each start building the same tfds dataset.
    """
    command = [sys.executable, "-m", "tce_jax.prepare_data", f"--dataset={dataset}"]
    if data_dir:
        command.append(f"--data_dir={data_dir}")
    return subprocess.run(command, cwd=REPO_ROOT, check=False).returncode


def subprocess_runner(base_config_path: str | os.PathLike) -> Runner:
    """A runner that starts launch.py, pinned to its cores, logging to log.txt.

    Each attempt's wall and CPU seconds go to the run's timing.jsonl: on a
    shared machine, CPU seconds are what sizes a protocol, not wall time.
    """

    def run_launch(run: Run, run_dir: pathlib.Path, cores: tuple[int, ...]) -> int:
        command = launch_command(base_config_path, run, run_dir)

        def pin_to_cores():
            if hasattr(os, "sched_setaffinity"):
                os.sched_setaffinity(0, cores)

        started = time.monotonic()
        with open(run_dir / LOG_FILE, "a") as log:
            log.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} cores={cores}\n")
            log.flush()
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=thread_limited_env(len(cores)),
                cwd=REPO_ROOT,
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
            "cores": len(cores),
            "wall_seconds": round(time.monotonic() - started, 1),
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        }
        with open(run_dir / TIMING_FILE, "a") as timing_file:
            timing_file.write(json.dumps(timing) + "\n")
        return code

    return run_launch


def run_once(
    run: Run, run_dir: pathlib.Path, runner: Runner, cores: tuple[int, ...]
) -> int:
    """Trains one run to its end under a heartbeat; records a failure in error.txt.

    Returns:
      The runner's exit code; -1 if it raised, -2 if it exited cleanly without
      writing the summary.
    """
    (run_dir / ERROR_FILE).unlink(missing_ok=True)
    with heartbeat(run_dir):
        try:
            code = runner(run, run_dir, cores)
        except Exception as error:
            code = -1
            with open(run_dir / LOG_FILE, "a") as run_log:
                run_log.write(f"runner raised {error!r}\n")
    if code == 0 and not is_finished(run_dir):
        code = -2  # Exited cleanly without a summary: treat as failed.
    if code != 0:
        (run_dir / ERROR_FILE).write_text(f"exit code {code}\n{_log_tail(run_dir)}\n")
    return code


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


def _format_duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class _SweepProgress:
    """Counts runs and estimates the time left.

    Per-run time is the mean of the runs finished so far; before the first one
    finishes, it is extrapolated from the epochs the running runs have logged.
    """

    def __init__(
        self,
        total: int,
        skipped: int,
        jobs: int,
        log: Callable[[str], None],
        fraction_done: Callable[[str], float],
    ):
        self.total, self.done, self.jobs, self.log = total, skipped, jobs, log
        self.fraction_done = fraction_done
        self.started = time.monotonic()
        self.durations: list[float] = []
        self.running: dict[str, float] = {}
        # start() runs in worker threads, the rest in the main thread.
        self.lock = threading.Lock()

    def start(self, rel_dir: str, resumed_epochs: int) -> None:
        with self.lock:
            self.running[rel_dir] = time.monotonic()
        resumed = f" (resuming after epoch {resumed_epochs})" if resumed_epochs else ""
        self.log(f"[{self.done}/{self.total}] start {rel_dir}{resumed}")

    def end(self, rel_dir: str, status: str) -> None:
        with self.lock:
            seconds = time.monotonic() - self.running.pop(rel_dir)
        self.done += 1
        if status == "done":
            self.durations.append(seconds)
        self.log(
            f"[{self.done}/{self.total}] {status} {rel_dir} in "
            f"{_format_duration(seconds)}; {self.eta_text()}"
        )

    def eta_seconds(self) -> float | None:
        now = time.monotonic()
        with self.lock:
            running = dict(self.running)
        fractions = {rel_dir: self.fraction_done(rel_dir) for rel_dir in running}
        estimates = self.durations or [
            (now - start) / fractions[rel_dir]
            for rel_dir, start in running.items()
            if fractions[rel_dir] > 0
        ]
        if not estimates:
            return None
        per_run = sum(estimates) / len(estimates)
        left_running = sum(per_run * (1 - fraction) for fraction in fractions.values())
        waiting = self.total - self.done - len(running)
        return (waiting * per_run + left_running) / self.jobs

    def eta_text(self) -> str:
        elapsed = _format_duration(time.monotonic() - self.started)
        eta = self.eta_seconds()
        if self.done >= self.total:
            return f"elapsed {elapsed}"
        return f"elapsed {elapsed}, ETA " + (
            "?" if eta is None else _format_duration(eta)
        )


def prepare_run_dir(base_config_path: str, run: Run, run_dir: pathlib.Path) -> None:
    """Writes run.json, the resolved config.json and command.sh into run_dir."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config = resolve_config(base_config_path, run.overrides)
    (run_dir / RUN_INFO_FILE).write_text(json.dumps(run.info(), indent=2) + "\n")
    (run_dir / CONFIG_FILE).write_text(config.to_json_best_effort(indent=2) + "\n")
    (run_dir / COMMAND_FILE).write_text(command_script(base_config_path, run, run_dir))


def _log_tail(run_dir: pathlib.Path, lines: int = _ERROR_TAIL_LINES) -> str:
    try:
        return "\n".join((run_dir / LOG_FILE).read_text().splitlines()[-lines:])
    except FileNotFoundError:
        return ""


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
    runs: list[Run]
    pending: list[Run]
    outcome: SweepOutcome


def plan_sweep(
    sweep_config: ml_collections.ConfigDict,
    sweep_dir: str | os.PathLike,
    *,
    busy: Callable[[pathlib.Path], bool] = is_running,
    preparer: Preparer = prepare_dataset,
    log: Callable[[str], None] = print_now,
) -> SweepPlan:
    """Records the grid in sweep.json and readies the runs left to do.

    Shared by every executor: finished runs are skipped, busy ones left alone,
    the others get their run dir (run.json, config.json, command.sh) and their
    datasets are prepared once, here, rather than by each run.

    Args:
      sweep_config: see the module docstring.
      sweep_dir: root of the run dirs.
      busy: whether a run dir is being run or queued elsewhere.
      preparer: prepares each dataset of the pending runs.
      log: progress sink.
    """
    sweep_dir = pathlib.Path(sweep_dir).resolve()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    base_config_path = sweep_config.base_config
    runs = expand_grid(sweep_config)
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
        if is_finished(run_dir):
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
        run.dataset: resolve_config(base_config_path, run.overrides).data.data_dir
        for run in pending
    }
    for dataset, data_dir in data_dirs.items():
        if preparer(dataset, data_dir) != 0:
            log(f"preparing {dataset} failed; its runs will fail too")
    return SweepPlan(sweep_dir, base_config_path, runs, pending, outcome)


def log_failure(run_dir: pathlib.Path, log: Callable[[str], None]) -> None:
    """Logs a failed run's error.txt: its exit code and the end of its log."""
    try:
        error = (run_dir / ERROR_FILE).read_text().rstrip()
    except FileNotFoundError:
        error = "(no error.txt)"
    log(f"  {run_dir}: {error}")


def run_sweep(
    sweep_config: ml_collections.ConfigDict,
    sweep_dir: str | os.PathLike,
    *,
    jobs: int | None = None,
    runner: Runner | None = None,
    preparer: Preparer = prepare_dataset,
    log: Callable[[str], None] = print_now,
    heartbeat_seconds: float = 60.0,
) -> SweepOutcome:
    """Runs every unfinished run of the grid on this machine, `jobs` at a time.

    Args:
      sweep_config: see the module docstring.
      sweep_dir: root of the run dirs; sweep.json there records the grid.
      jobs: runs at once; None uses sweep_config.jobs, 0 picks from the cores.
      runner: trains one run (default: launch.py subprocesses); tests pass fakes.
      preparer: prepares each dataset of the unfinished runs first.
      log: progress sink.
      heartbeat_seconds: how often to print the epochs of running runs.

    Returns:
      Which runs were skipped (already finished, or busy elsewhere), finished
      and failed.
    """
    plan = plan_sweep(sweep_config, sweep_dir, preparer=preparer, log=log)
    sweep_dir, outcome = plan.sweep_dir, plan.outcome
    if jobs is None:
        jobs = sweep_config.get("jobs", 0)
    jobs = min(jobs or default_jobs(), len(plan.runs))
    runner = runner or subprocess_runner(plan.base_config_path)
    num_epochs = resolve_config(
        plan.base_config_path, plan.runs[0].overrides
    ).num_epochs
    log(f"  {jobs} at a time")
    progress = _SweepProgress(
        len(plan.runs),
        len(outcome.skipped) + len(outcome.busy),
        jobs,
        log,
        fraction_done=lambda rel_dir: epochs_done(sweep_dir / rel_dir) / num_epochs,
    )
    free_cores: queue.SimpleQueue[tuple[int, ...]] = queue.SimpleQueue()
    for cores in core_slices(jobs, available_cpus()):
        free_cores.put(cores)

    def execute(run: Run) -> tuple[Run, int]:
        run_dir = sweep_dir / run.rel_dir
        cores = free_cores.get()
        try:
            progress.start(run.rel_dir, epochs_done(run_dir))
            return run, run_once(run, run_dir, runner, cores)
        finally:
            free_cores.put(cores)

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(execute, run) for run in plan.pending}
        while futures:
            done, futures = concurrent.futures.wait(
                futures,
                timeout=heartbeat_seconds,
                return_when=concurrent.futures.FIRST_COMPLETED,
            )
            for future in done:
                run, code = future.result()
                if code == 0:
                    outcome.finished.append(run.rel_dir)
                    progress.end(run.rel_dir, "done")
                else:
                    outcome.failed.append(run.rel_dir)
                    progress.end(run.rel_dir, f"FAILED (exit code {code})")
                    log_failure(sweep_dir / run.rel_dir, log)
            if not done and progress.running:
                states = ", ".join(
                    f"{rel_dir} epoch {epochs_done(sweep_dir / rel_dir)}/{num_epochs}"
                    for rel_dir in sorted(progress.running)
                )
                log(f"  running: {states}; {progress.eta_text()}")
    if outcome.failed:
        log(f"{len(outcome.failed)} run(s) failed: " + ", ".join(outcome.failed))
    return outcome


@dataclasses.dataclass(frozen=True)
class RunStatus:
    """Where one run of a sweep stands.

    Attributes:
      rel_dir: the run dir, relative to the sweep dir.
      state: "finished", "running", "queued" (waiting in a cluster's queue),
        "failed" (an exit status was recorded, or the run stopped without one:
        killed, node lost, sweep interrupted) or "missing" (never started).
      detail: one line about it (progress, exit code, job id).
      log_tail: the last lines of a failed run's log.
    """

    rel_dir: str
    state: str
    detail: str = ""
    log_tail: str = ""


STATES = ("finished", "running", "queued", "failed", "missing")


def _progress_text(run_dir: pathlib.Path) -> str:
    try:
        num_epochs = json.loads((run_dir / CONFIG_FILE).read_text())["num_epochs"]
    except (FileNotFoundError, KeyError, json.JSONDecodeError):
        num_epochs = "?"
    return f"epoch {epochs_done(run_dir)}/{num_epochs}"


def run_status(
    sweep_dir: pathlib.Path, rel_dir: str, queued: Mapping[str, str]
) -> RunStatus:
    """The status of one run from its files (and the cluster's queue)."""
    run_dir = sweep_dir / rel_dir
    if is_finished(run_dir):
        return RunStatus(rel_dir, "finished")
    if is_running(run_dir):
        try:
            where = json.loads((run_dir / HEARTBEAT_FILE).read_text())
            host = f" on {where['host']} (pid {where['pid']})"
        except (FileNotFoundError, KeyError, json.JSONDecodeError):
            host = ""  # Rewritten or removed just now.
        return RunStatus(rel_dir, "running", _progress_text(run_dir) + host)
    if rel_dir in queued:
        return RunStatus(rel_dir, "queued", queued[rel_dir])
    if (run_dir / ERROR_FILE).exists():
        exit_line = (run_dir / ERROR_FILE).read_text().split("\n", 1)[0]
        detail = f"{exit_line}, after {_progress_text(run_dir)}"
    elif any(
        (run_dir / name).exists()
        for name in (LOG_FILE, run_files.METRICS_FILE, HEARTBEAT_FILE)
    ):
        detail = (
            f"stopped without an exit status after {_progress_text(run_dir)} "
            "(killed, node lost or sweep interrupted)"
        )
    else:
        return RunStatus(rel_dir, "missing", "not started")
    return RunStatus(rel_dir, "failed", detail, _log_tail(run_dir, _STATUS_TAIL_LINES))


def sweep_status(
    sweep_dir: str | os.PathLike, *, queued: Mapping[str, str] | None = None
) -> list[RunStatus]:
    """The status of every run of the grid recorded in the sweep dir's sweep.json.

    Args:
      sweep_dir: a sweep dir, of either executor.
      queued: {rel_dir: description} of runs waiting in a cluster's queue.

    Raises:
      FileNotFoundError: the directory holds no sweep.json.
    """
    sweep_dir = pathlib.Path(sweep_dir).resolve()
    info_path = sweep_dir / SWEEP_INFO_FILE
    if not info_path.exists():
        raise FileNotFoundError(f"{sweep_dir} has no {SWEEP_INFO_FILE}")
    rel_dirs = json.loads(info_path.read_text())["runs"]
    return [run_status(sweep_dir, rel_dir, queued or {}) for rel_dir in rel_dirs]


def format_status(statuses: Sequence[RunStatus]) -> str:
    """The status as text: a count per state, then one line per run."""
    counts = ", ".join(
        f"{sum(s.state == state for s in statuses)} {state}" for state in STATES
    )
    lines = [f"{len(statuses)} runs: {counts}"]
    width = max((len(s.rel_dir) for s in statuses), default=0)
    for status in sorted(statuses, key=lambda s: STATES.index(s.state)):
        lines.append(f"{status.state:<9} {status.rel_dir:<{width}}  {status.detail}")
        lines += [f"          | {line}" for line in status.log_tail.splitlines()]
    return "\n".join(line.rstrip() for line in lines)
