r"""Runs a grid of training runs, here or on a SLURM cluster, then writes its report.

    python3 sweep.py --config=configs/sweeps/demo.py --workdir=runs/demo
    python3 sweep.py --config=configs/sweeps/cifar10_noise.py \
        --workdir=/shared/runs/cifar10_noise --executor=slurm \
        --slurm_partition=gpu --slurm_time_min=240
    python3 sweep.py --workdir=runs/demo --status

Started again with the same --workdir, a sweep skips finished runs, resumes
unfinished ones from their checkpoints and leaves alone runs running (or
queued) elsewhere. Executors: `local` (default: --jobs runs at a time on this
machine, one GPU each on a GPU machine, then the report), `slurm` (one
submitit job array, returns once submitted; --wait waits and reports) and
`submitit_local` (the slurm path on this machine, for tests). A sweep config
with `compare_with` ends by comparing its runs with those committed results
(`tce_jax.analysis.compare`).

On a partition with GPUs each run asks for one GPU and 4 CPUs unless the
--slurm_* flags say otherwise. Exit status: 0 when every run finished (or
was submitted), 1 when a run failed, 2 for bad input (one line naming the
flag), 4 when a dataset could not be prepared (no run was started).

Sweeps, sweep configs and reports: docs/results.md; GPUs and the --slurm_*
flags: docs/accelerators.md.
"""

import pathlib
import shlex
import sys

from absl import app, flags
from ml_collections import config_flags

from tce_jax import run_files
from tce_jax.analysis import compare, report
from tce_jax.sweeps import grid, local_executor, slurm, sweep_plan, sweep_status
from tce_jax.training import command_line
from tce_jax.training.config import ConfigError

EXECUTORS = {"local": None, "slurm": "slurm", "submitit_local": "local"}

_CONFIG = config_flags.DEFINE_config_file("config", None, "Sweep config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Sweep directory (one dir per run).")
_JOBS = flags.DEFINE_integer(
    "jobs",
    None,
    "Local executor: runs at once; default: the config's `jobs`; 0 = one per "
    "core, or on GPUs one per GPU (times --runs_per_gpu).",
)
_RUNS_PER_GPU = flags.DEFINE_integer(
    "runs_per_gpu",
    1,
    "Local executor on GPUs: runs sharing each GPU (above 1: no preallocation, "
    "and each run may use 1/N of the GPU's memory).",
)
_ALL_GPUS_PER_RUN = flags.DEFINE_bool(
    "all_gpus_per_run",
    False,
    "Local executor on GPUs: each run uses every GPU, one run at a time.",
)
_DRY_RUN = flags.DEFINE_bool(
    "dry_run", False, "Only list the runs and their launch commands."
)
_STATUS = flags.DEFINE_bool(
    "status",
    False,
    "Only print which runs of --workdir are finished, running, queued, failed "
    "(with the end of their logs) or missing; needs no --config.",
)
_EXECUTOR = flags.DEFINE_string(
    "executor", "local", "Where runs run: " + ", ".join(EXECUTORS) + "."
)
_WAIT = flags.DEFINE_bool(
    "wait",
    False,
    "slurm/submitit_local: wait for the jobs, then write the report.",
)
_SLURM_PARTITION = flags.DEFINE_string(
    "slurm_partition", None, "SLURM partition (required with --executor=slurm)."
)
_SLURM_TIME_MIN = flags.DEFINE_integer(
    "slurm_time_min",
    None,
    "Time limit of each run's task in minutes (required with slurm and "
    "submitit_local); a run that needs longer is requeued and resumes.",
)
_SLURM_CPUS = flags.DEFINE_integer(
    "slurm_cpus_per_task",
    None,
    f"CPUs of each run (default: {slurm.CPUS_PER_GPU} per GPU, else 1).",
)
_SLURM_GPUS = flags.DEFINE_integer(
    "slurm_gpus_per_task",
    None,
    "GPUs of each run (default: 1 on a partition with GPUs, else 0; 0 on a GPU "
    "partition: CPUs only, on purpose).",
)
_SLURM_PARALLELISM = flags.DEFINE_integer(
    "slurm_array_parallelism",
    None,
    "Runs of the job array running at once (default: SLURM's limit).",
)
_SLURM_ALLOW_LOCAL_PATHS = flags.DEFINE_bool(
    "slurm_allow_local_paths",
    False,
    "slurm: submit even though the checkout, the Python environment, a data dir "
    "or the sweep dir is node-local (under /tmp...): for a cluster of one machine.",
)
_SLURM_PARAMETER = flags.DEFINE_multi_string(
    "slurm_parameter",
    [],
    "Further sbatch option as KEY=VALUE (e.g. account=abc, qos=high, mem=16G); "
    "repeat the flag for several.",
)

EXIT_USAGE = 2
EXIT_NO_DATA = 4


class _UsageError(Exception):
    """Bad command-line input; the message names the flag and what is allowed."""


def _slurm_flag_settings() -> dict:
    """{Resources field: value} of the --slurm_* flags that were given."""
    holders = {
        "partition": _SLURM_PARTITION,
        "time_min": _SLURM_TIME_MIN,
        "cpus_per_task": _SLURM_CPUS,
        "gpus_per_task": _SLURM_GPUS,
        "array_parallelism": _SLURM_PARALLELISM,
    }
    settings = {name: flag.value for name, flag in holders.items() if flag.present}
    if _SLURM_PARAMETER.present:
        parameters = {}
        for item in _SLURM_PARAMETER.value:
            key, equals, value = item.partition("=")
            if not (key and equals):
                raise _UsageError(
                    f"--slurm_parameter={item}: allowed: KEY=VALUE, e.g. account=abc"
                )
            parameters[key] = value
        settings["parameters"] = parameters
    return settings


def _check_flags() -> None:
    if _EXECUTOR.value not in EXECUTORS:
        raise _UsageError(
            f"--executor={_EXECUTOR.value}: allowed: " + ", ".join(EXECUTORS)
        )
    if _WORKDIR.value is None:
        raise _UsageError("--workdir: required (the sweep directory)")
    if not _STATUS.value and _CONFIG.value is None:
        raise _UsageError("--config: required (a sweep config in configs/sweeps/)")
    submits = EXECUTORS[_EXECUTOR.value] is not None
    slurm_flags = (
        _SLURM_PARTITION,
        _SLURM_TIME_MIN,
        _SLURM_CPUS,
        _SLURM_GPUS,
        _SLURM_PARALLELISM,
        _SLURM_PARAMETER,
    )
    for flag in slurm_flags:
        if flag.present and not submits:
            raise _UsageError(
                f"--{flag.name}: only allowed with --executor=slurm or submitit_local"
            )
    for flag in (_JOBS, _RUNS_PER_GPU, _ALL_GPUS_PER_RUN):
        if flag.present and submits:
            raise _UsageError(f"--{flag.name}: only allowed with --executor=local")
    if _RUNS_PER_GPU.value < 1:
        raise _UsageError(f"--runs_per_gpu={_RUNS_PER_GPU.value}: allowed: >= 1")
    if _RUNS_PER_GPU.present and _ALL_GPUS_PER_RUN.value:
        raise _UsageError(
            "--runs_per_gpu: not allowed with --all_gpus_per_run (one run on every GPU)"
        )
    if _SLURM_ALLOW_LOCAL_PATHS.present and _EXECUTOR.value != "slurm":
        raise _UsageError(
            "--slurm_allow_local_paths: only allowed with --executor=slurm"
        )
    if _WAIT.present and not submits:
        raise _UsageError(
            "--wait: only allowed with --executor=slurm or submitit_local"
        )


def _print_status() -> int:
    try:
        states = sweep_status.sweep_status(
            _WORKDIR.value, queued=slurm.queued_runs(_WORKDIR.value)
        )
    except FileNotFoundError:
        raise _UsageError(
            f"--workdir={_WORKDIR.value}: not a sweep dir (it has no sweep.json)"
        ) from None
    environments = sweep_status.run_environments(_WORKDIR.value, states)
    print(f"sweep {_WORKDIR.value}: {sweep_status.format_status(states, environments)}")
    return 0


def _run(config) -> int:
    cluster = EXECUTORS[_EXECUTOR.value]
    if cluster is None:
        outcome = local_executor.run_sweep(
            config,
            _WORKDIR.value,
            jobs=_JOBS.value,
            runs_per_gpu=_RUNS_PER_GPU.value,
            all_gpus_per_run=_ALL_GPUS_PER_RUN.value,
        )
    else:
        try:
            resources = slurm.resources_from(
                config.get("slurm"), _slurm_flag_settings(), cluster=cluster
            )
            print(resources.describe(), flush=True)
            outcome = slurm.submit_sweep(
                config,
                _WORKDIR.value,
                cluster=cluster,
                resources=resources,
                wait=_WAIT.value,
                allow_local_paths=_SLURM_ALLOW_LOCAL_PATHS.value,
            )
        except (slurm.ResourceError, slurm.SubmissionError) as error:
            raise _UsageError(str(error)) from None
        if (outcome.submitted or outcome.busy) and not _WAIT.value:
            # Runs are still to come: the report is for when they are done.
            here = shlex.quote(_WORKDIR.value)
            print(
                f"follow with: python3 sweep.py --workdir={here} --status\n"
                f"when done:   python3 -m tce_jax.analysis.report --sweep_dir={here}",
                flush=True,
            )
            return 0
    report.write_report(_WORKDIR.value)
    if config.get("compare_with"):  # e.g. the demo: how it compares with results/
        try:
            compare.print_comparison(
                _WORKDIR.value, config.compare_with, committed_flag="compare_with"
            )
        except compare.CompareError as error:
            raise _UsageError(str(error)) from None
    return 0 if outcome.ok else 1


def main(argv):
    del argv
    try:
        _check_flags()
        if _STATUS.value:
            return _print_status()
        try:
            config = command_line.config_from_flag(_CONFIG)
        except ConfigError as error:
            raise _UsageError(str(error)) from None
        problem = run_files.not_a_directory(
            "workdir",
            _WORKDIR.value,
            "a directory (the sweep directory, created if missing)",
        )
        if problem:
            raise _UsageError(problem)
        if _DRY_RUN.value:
            # Each command as the sweep would run it (from the repository root),
            # its --workdir in the sweep dir: safe to copy and run by hand.
            sweep_dir = pathlib.Path(_WORKDIR.value).absolute()
            for run in grid.expand_grid(config):
                print(run.rel_dir)
                command = grid.launch_command(
                    config.base_config, run, sweep_dir / run.rel_dir
                )
                print("  " + shlex.join(command))
            return 0
        return _run(config)
    except _UsageError as error:
        print(f"sweep.py: {error}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    except sweep_plan.DatasetUnavailableError as error:
        print(f"sweep.py: stopped: {error}", file=sys.stderr, flush=True)
        return EXIT_NO_DATA


if __name__ == "__main__":
    app.run(
        main,
        flags_parser=command_line.parser_exiting_with(_CONFIG, "sweep.py", EXIT_USAGE),
    )
