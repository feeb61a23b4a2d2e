"""Sweeps on a SLURM cluster through submitit: one job-array task per run.

``submit_sweep`` readies the grid like the local executor
(``sweep_plan.plan_sweep``: finished runs skipped, run dirs and datasets
prepared) and submits the runs left as one submitit job array. Each task is a
``RunJob``: it trains its run with the same ``launch.py`` command and log files
as the local executor (``sweep_plan.run_once``), on the CPUs and GPUs SLURM
gave it. ``RunJob`` is a
``submitit.helpers.Checkpointable``: on preemption or at the time limit SLURM
signals the task, submitit requeues the same RunJob, and launch.py resumes from
the run's last checkpoint (at most the epoch in progress is lost). Requeues
after a time limit stop after ``MAX_TIMEOUT_REQUEUES``; preempted tasks are
always requeued.

Each submitted run records its job in ``job.json``; submitting again skips
finished runs, runs running anywhere (fresh heartbeat) and runs whose SLURM job
has not ended (queued, requeued, starting), so a resubmission never runs a run
twice. The same
code runs on submitit's local executor (``cluster="local"``: every run at once,
on this machine), which is how the tests exercise it without a cluster.

What each task asks for (``resources_from``): on a partition with GPUs (its
nodes' GRES, from ``sinfo``, name GPUs; without sinfo, its name does) a run
gets one GPU unless told otherwise (``--slurm_gpus_per_task=0``: CPUs only, on
purpose), and ``CPUS_PER_GPU`` CPUs per GPU for the host side. Before
submitting, ``check_submission_host`` makes sure this is a SLURM machine and
that the checkout, the Python environment, the data dirs and the sweep dir are
not node-local (the tasks run on other nodes, at the same paths).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ml_collections
import submitit
from submitit.core.utils import FailedJobError, FailedSubmissionError

from tce_jax import run_files
from tce_jax.sweeps import grid, sweep_plan

# Requeues after hitting the time limit (submitit's max_num_timeout); a run
# that needs more should ask for more time.
MAX_TIMEOUT_REQUEUES = 3
# SLURM job states of a job that has not ended: its run must not be submitted
# again. (A running run also has a fresh heartbeat, except while it starts.)
_ACTIVE_STATES = frozenset(
    {
        "PENDING",
        "REQUEUED",
        "REQUEUE_FED",
        "REQUEUE_HOLD",
        "CONFIGURING",
        "RESIZING",
        "RUNNING",
        "COMPLETING",
        "SUSPENDED",
    }
)


# CPUs a run's task gets per GPU unless told otherwise: the input pipeline's
# thread, the training loop and XLA's host threads (a CPU-only task gets one).
CPUS_PER_GPU = 4
# sbatch options (as --slurm_parameter keys, "-" or "_") that ask for GPUs.
_GPU_OPTIONS = ("gpus", "gpus_per_node", "gpus_per_task", "gres")
# Where paths are local to a node: its temporary directories.
NODE_LOCAL_ROOTS = ("/tmp", "/var/tmp", "/dev/shm", "/run")


class ResourceError(ValueError):
    """A SLURM setting is missing or invalid; the message names the flag."""


class SubmissionError(RuntimeError):
    """This machine cannot submit the sweep, or sbatch refused it; one line."""


@dataclasses.dataclass(frozen=True)
class Resources:
    """What each run's task asks SLURM for.

    Attributes:
      partition: SLURM partition (required on SLURM).
      time_min: time limit of each task, minutes; a run that needs longer is
        requeued and resumes from its checkpoint.
      cpus_per_task: CPUs of each run (launch.py's threads are sized to them).
      gpus_per_task: GPUs of each run.
      array_parallelism: runs of the array running at once (None: no limit
        but SLURM's).
      parameters: further ``#SBATCH --key=value`` lines (account, qos, mem...);
        a GPU request among them (gres=gpu:a100:2, gpus-per-node=2) stands
        for ``gpus_per_task``.
    """

    partition: str | None = None
    time_min: int | None = None
    cpus_per_task: int = 1
    gpus_per_task: int = 0
    array_parallelism: int | None = None
    parameters: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def describe(self) -> str:
        """One line: what each run's task asks for."""
        where = f"partition {self.partition}, " if self.partition else ""
        return (
            f"each run asks for: {where}{self.gpus_per_task} GPU(s), "
            f"{self.cpus_per_task} CPU(s), {self.time_min} min"
        )


def requested_gpus(parameters: Mapping[str, str]) -> int | None:
    """The GPUs a --slurm_parameter asks for (gres=gpu:a100:2 -> 2, gres=gpu ->
    1), or None when none does."""
    for key, value in parameters.items():
        key = key.replace("-", "_")
        if key in _GPU_OPTIONS and (key != "gres" or "gpu" in value):
            count = re.search(r"(\d+)$", value)
            return int(count.group(1)) if count else 1
    return None


def partition_has_gpus(partition: str) -> bool:
    """Whether the partition's nodes have GPUs: their GRES as sinfo lists them
    (e.g. gpu:a100:4), or without sinfo's answer, the partition's name."""
    if shutil.which("sinfo"):
        result = subprocess.run(
            ["sinfo", "--noheader", f"--partition={partition}", "--format=%G"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if result.returncode == 0 and result.stdout.strip():
            return "gpu" in result.stdout.lower()
    return "gpu" in partition.lower()


# Resources field -> the sweep.py flag that sets it (sweep config key: the field).
FLAG_NAMES = {
    "partition": "slurm_partition",
    "time_min": "slurm_time_min",
    "cpus_per_task": "slurm_cpus_per_task",
    "gpus_per_task": "slurm_gpus_per_task",
    "array_parallelism": "slurm_array_parallelism",
    "parameters": "slurm_parameter",
}


def resources_from(
    sweep_settings: Mapping[str, Any] | None,
    flag_settings: Mapping[str, Any],
    *,
    cluster: str,
    has_gpus: Callable[[str], bool] = partition_has_gpus,
) -> Resources:
    """Resources from the sweep config's ``slurm`` dict, overridden by flags.

    GPUs, unless given: a GPU request among the parameters, else one on a
    partition with GPUs, else none. CPUs, unless given: ``CPUS_PER_GPU`` per
    GPU, else one.

    Args:
      sweep_settings: the sweep config's optional ``slurm`` field.
      flag_settings: {Resources field: value} of the flags that were given.
      cluster: "slurm" or "local".
      has_gpus: whether a partition's nodes have GPUs.

    Raises:
      ResourceError: an unknown key, a value out of range, GPUs asked for
        twice, or a setting SLURM needs that is missing; the message names the
        flag.
    """
    settings = dict(sweep_settings or {})
    for key in settings:
        if key not in FLAG_NAMES:
            raise ResourceError(
                f"slurm.{key} in the sweep config: unknown; allowed: "
                + ", ".join(FLAG_NAMES)
            )
    settings.update(flag_settings)
    settings["parameters"] = dict(settings.get("parameters") or {})
    in_parameters = requested_gpus(settings["parameters"])
    if in_parameters is not None and "gpus_per_task" in settings:
        raise ResourceError(
            "--slurm_gpus_per_task: not allowed with a GPU request in "
            "--slurm_parameter (gres, gpus...); ask for the GPUs once"
        )
    if "gpus_per_task" not in settings:
        if in_parameters is not None:
            settings["gpus_per_task"] = in_parameters
        elif cluster == "slurm" and settings.get("partition"):
            settings["gpus_per_task"] = int(has_gpus(settings["partition"]))
    if "cpus_per_task" not in settings:
        gpus = settings.get("gpus_per_task") or 0
        settings["cpus_per_task"] = CPUS_PER_GPU * gpus if gpus > 0 else 1
    resources = Resources(**settings)
    required = ("partition", "time_min") if cluster == "slurm" else ("time_min",)
    for name in required:
        if getattr(resources, name) is None:
            raise ResourceError(
                f"--{FLAG_NAMES[name]}: required with --executor="
                f"{'slurm' if cluster == 'slurm' else 'submitit_local'} (or "
                f"slurm.{name} in the sweep config)"
            )
    for name in ("time_min", "cpus_per_task", "array_parallelism"):
        value = getattr(resources, name)
        if value is not None and value < 1:
            raise ResourceError(f"--{FLAG_NAMES[name]}: got {value}; allowed: >= 1")
    if resources.gpus_per_task < 0:
        raise ResourceError(
            f"--slurm_gpus_per_task: got {resources.gpus_per_task}; allowed: >= 0"
        )
    return resources


def make_executor(
    folder: pathlib.Path, *, cluster: str, resources: Resources, name: str
) -> submitit.AutoExecutor:
    """A submitit executor for one-task, one-node jobs with these resources."""
    executor = submitit.AutoExecutor(
        folder=folder, cluster=cluster, slurm_max_num_timeout=MAX_TIMEOUT_REQUEUES
    )
    in_parameters = requested_gpus(resources.parameters) is not None
    executor.update_parameters(
        name=name,
        timeout_min=resources.time_min,
        nodes=1,
        tasks_per_node=1,
        cpus_per_task=resources.cpus_per_task,
        # None leaves --gpus-per-node out of CPU jobs (None values are dropped),
        # and out of jobs whose parameters ask for GPUs already.
        gpus_per_node=None if in_parameters else resources.gpus_per_task or None,
        slurm_partition=resources.partition,
        slurm_array_parallelism=resources.array_parallelism,
        slurm_additional_parameters=dict(resources.parameters),
    )
    return executor


class RunFailedError(RuntimeError):
    """A run's launch.py failed; the message names its error.txt."""


class RunJob(submitit.helpers.Checkpointable):
    """One run of the grid as a submitit job, requeued as is when interrupted.

    submitit's default ``checkpoint`` resubmits this same object: launch.py
    keeps the run's state in its checkpoints, so the requeued job resumes it.
    """

    def __init__(self, run: grid.Run, run_dir: pathlib.Path, runner: sweep_plan.Runner):
        self.run = run
        self.run_dir = run_dir
        self.runner = runner

    def __call__(self) -> str:
        # SLURM's allocation: the CPUs as the CPU affinity, the GPUs as
        # CUDA_VISIBLE_DEVICES, which the run inherits.
        slot = sweep_plan.Slot(cores=tuple(sweep_plan.available_cpus()))
        code = sweep_plan.run_once(self.run, self.run_dir, self.runner, slot)
        if code != 0:
            raise RunFailedError(
                f"{self.run.rel_dir}: exit code {code}; see "
                f"{self.run_dir / run_files.ERROR_FILE}"
            )
        return self.run.rel_dir


def _node_local_root(path: str | os.PathLike) -> str | None:
    """The node-local directory ``path`` lies in (/tmp, $TMPDIR...), or None."""
    real = os.path.realpath(path)
    home = os.path.realpath(os.path.expanduser("~"))
    roots = list(NODE_LOCAL_ROOTS)
    tmpdir = os.environ.get("TMPDIR")
    # A TMPDIR that holds the home directory is no sign of a node-local path.
    if tmpdir and not (home + os.sep).startswith(os.path.realpath(tmpdir) + os.sep):
        roots.append(os.path.realpath(tmpdir))
    for root in roots:
        if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
            return root
    return None


def _tfds_data_dir(data_dir: str | None) -> str:
    """Where tfds reads a config's data_dir (None: TFDS_DATA_DIR or its default)."""
    if data_dir:
        return data_dir
    return os.environ.get("TFDS_DATA_DIR") or os.path.expanduser(
        "~/tensorflow_datasets"
    )


def check_submission_host(
    sweep_config: ml_collections.ConfigDict,
    sweep_dir: str | os.PathLike,
    *,
    allow_local_paths: bool = False,
) -> None:
    """Checks, before any work, that this machine can submit the sweep to SLURM.

    Args:
      sweep_config: see ``grid``.
      sweep_dir: the sweep dir.
      allow_local_paths: accept node-local paths (a cluster of one machine).

    Raises:
      SubmissionError: no sbatch or srun here, or a path the nodes would not
        see (one line naming each and what to do).
    """
    missing = [command for command in ("sbatch", "srun") if not shutil.which(command)]
    if missing:
        raise SubmissionError(
            f"--executor=slurm: {' and '.join(missing)} not found on this machine, "
            "so it cannot submit SLURM jobs; run sweep.py on the cluster's login "
            "node, or use --executor=local"
        )
    if allow_local_paths:
        return
    base = sweep_config.base_config
    data_dirs = {
        _tfds_data_dir(grid.resolve_config(base, run.overrides).data.data_dir)
        for run in grid.expand_grid(sweep_config)
    }
    paths = {
        "the checkout": grid.REPO_ROOT,
        "the Python environment": sys.prefix,
        **{f"the data dir {data_dir}": data_dir for data_dir in sorted(data_dirs)},
        "the sweep dir": sweep_dir,
    }
    local = [
        f"{what} ({os.path.abspath(path)}, under {root})"
        for what, path in paths.items()
        if (root := _node_local_root(path))
    ]
    if local:
        raise SubmissionError(
            "--executor=slurm: node-local paths, which the nodes running the tasks "
            f"would not see: {'; '.join(local)}. Put the checkout, the Python "
            "environment, the data dir and the sweep dir on a filesystem every "
            "node mounts at the same path (or pass --slurm_allow_local_paths if "
            "this cluster is this one machine)"
        )


def queued_runs(sweep_dir: str | os.PathLike) -> dict[str, str]:
    """{rel_dir: "slurm job <id> <STATE>"} of the runs whose SLURM job has not ended.

    One ``sacct`` call covers every recorded job (submitit's watcher batches
    the jobs created before the first query). Jobs of submitit's local executor
    never wait, so only SLURM jobs are asked about.
    """
    sweep_dir = pathlib.Path(sweep_dir).resolve()
    jobs = {}
    for rel_dir in run_files.find_runs(sweep_dir):
        record = run_files.read_job(sweep_dir / rel_dir)
        if record is not None and record["cluster"] == "slurm":
            jobs[rel_dir] = submitit.SlurmJob(record["folder"], record["job_id"])
    queued = {}
    for rel_dir, job in jobs.items():
        state = job.state.upper()
        if state in _ACTIVE_STATES:
            queued[rel_dir] = f"slurm job {job.job_id} {state}"
    return queued


def submit_sweep(
    sweep_config: ml_collections.ConfigDict,
    sweep_dir: str | os.PathLike,
    *,
    cluster: str,
    resources: Resources,
    wait: bool,
    allow_local_paths: bool = False,
    runner: sweep_plan.Runner | None = None,
    preparer: sweep_plan.Preparer = sweep_plan.prepare_dataset,
    log: Callable[[str], None] = sweep_plan.print_now,
) -> sweep_plan.SweepOutcome:
    """Submits every run left to do as one job array; optionally waits for them.

    On SLURM, ``check_submission_host`` comes first, before any work.

    Args:
      sweep_config: see ``grid``.
      sweep_dir: root of the run dirs, on a filesystem the nodes share.
      cluster: "slurm", or "local" for submitit's local executor.
      resources: what each task asks for.
      wait: wait for every job and fill in finished/failed; else return once
        submitted (follow with ``sweep.py --status``).
      allow_local_paths: see ``check_submission_host``.
      runner: trains one run inside its job (default: launch.py); tests pass
        fakes.
      preparer: prepares each dataset of the pending runs, before submitting.
      log: progress sink.

    Returns:
      Runs skipped (finished), busy (running or queued), submitted and, when
      waiting, finished and failed.

    Raises:
      SubmissionError: this machine cannot submit the sweep, or sbatch refused
        it (one line).
      sweep_plan.DatasetUnavailableError: a dataset could not be prepared.
    """
    sweep_root = pathlib.Path(sweep_dir).resolve()
    if cluster == "slurm":
        check_submission_host(
            sweep_config, sweep_root, allow_local_paths=allow_local_paths
        )
    queued = queued_runs(sweep_root)

    def busy(run_dir: pathlib.Path) -> bool:
        rel_dir = run_dir.relative_to(sweep_root).as_posix()
        return run_files.is_running(run_dir) or rel_dir in queued

    plan = sweep_plan.plan_sweep(
        sweep_config, sweep_dir, busy=busy, preparer=preparer, log=log
    )
    outcome = plan.outcome
    if not plan.pending:
        return outcome
    # One folder for every job: submitit names its files by job id.
    folder = plan.sweep_dir / run_files.SUBMITIT_DIR
    executor = make_executor(
        folder, cluster=cluster, resources=resources, name=f"tce_{plan.sweep_dir.name}"
    )
    runner = runner or sweep_plan.subprocess_runner(plan.base_config_path)
    run_dirs = [plan.sweep_dir / run.rel_dir for run in plan.pending]
    try:
        jobs = executor.submit_array(
            [
                RunJob(run, run_dir, runner)
                for run, run_dir in zip(plan.pending, run_dirs, strict=True)
            ]
        )
    except (FailedJobError, FailedSubmissionError) as error:
        # submitit has printed sbatch's whole answer; its last line says why.
        reason = (str(error).strip().splitlines() or ["no answer"])[-1]
        raise SubmissionError(
            f"sbatch refused the job array ({reason}); no run was submitted: check "
            "the --slurm_* flags (partition, time, GPUs, account)"
        ) from None
    for job, run_dir in zip(jobs, run_dirs, strict=True):
        run_files.write_job(
            run_dir, cluster=cluster, job_id=job.job_id, folder=str(folder)
        )
    outcome.submitted = [run.rel_dir for run in plan.pending]
    log(
        f"submitted {len(jobs)} run(s) to {cluster}: jobs "
        f"{_job_ids_text(jobs)}; submitit logs in {folder}"
    )
    if not wait:
        return outcome
    rel_dirs = {
        job.job_id: run.rel_dir for job, run in zip(jobs, plan.pending, strict=True)
    }
    done = len(outcome.skipped)
    for job in submitit.helpers.as_completed(jobs, poll_frequency=1):
        rel_dir = rel_dirs[job.job_id]
        done += 1
        if job.exception() is None:
            outcome.finished.append(rel_dir)
            log(f"[{done}/{len(plan.runs)}] done {rel_dir}")
        else:
            outcome.failed.append(rel_dir)
            log(f"[{done}/{len(plan.runs)}] FAILED {rel_dir}")
            sweep_plan.log_failure(plan.sweep_dir / rel_dir, log)
    return outcome


def _job_ids_text(jobs: Sequence[submitit.Job]) -> str:
    """'1234_[0-9]' for a SLURM array, the ids one by one otherwise."""
    arrays = {job.job_id.split("_")[0] for job in jobs}
    if len(arrays) == 1 and "_" in jobs[0].job_id:
        return f"{arrays.pop()}_[0-{len(jobs) - 1}]"
    return ", ".join(job.job_id for job in jobs)
