r"""Trains one classifier under label noise: flags in, loop.train_and_evaluate out.

  python3 launch.py --config=configs/cpu_smoke.py --workdir=/tmp/tce_smoke
  python3 launch.py --config=configs/cifar10.py --workdir=runs/c10_gce_40 \
      --config.loss.name=gce --config.loss.q=0.7 --config.noise.rate=0.4

Any config field can be overridden with ``--config.<path>=<value>``; the whole
config is checked first. Relaunching with the same ``--workdir`` resumes from
the latest checkpoint, if the config would train the same model (else the
relaunch is refused; ``--start_over`` moves the old run aside). The dataset is
prepared first, once per data dir (``tfds_data.prepare``). Exit status: 2 for
an invalid config or flag (one line naming the field and what is allowed), 1
for a NaN/inf loss (the last good checkpoint is kept), 3 when the
multi-process job broke (another process failed or was lost), 4 when the
dataset could not be prepared (the line says how to get it), 5 when a
checkpoint could not be read (every checkpoint is kept).

With ``--multihost`` every process runs the same command with a ``--workdir``
they all see, prepares the dataset, then joins the job through
``jax.distributed.initialize()`` before any other JAX call (processes read
from SLURM, Open MPI or Cloud TPU, else from ``--coordinator_address``,
``--num_processes`` and ``--process_id``); the work runs in a child process
under ``job_supervisor``, so that a process JAX's runtime aborts still ends
with one line and status 3.

Configs, the run folder and resuming: docs/training.md; multi-process runs and
SLURM: docs/accelerators.md.
"""

import logging as std_logging
import os
import sys
from typing import NoReturn

# TensorFlow only feeds data: keep its C++ start-up chatter off stderr.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# XLA:CPU's default YNNPACK filter-gradient convolutions are up to 7x slower than
# Eigen's at these ResNet shapes; routing convolutions to Eigen makes the whole
# step 1.3-1.5x faster (benchmarks/train_bench.py). CPU-only: other backends
# ignore it. Set in every launch, so a resumed run computes like the first one.
os.environ["XLA_FLAGS"] = " ".join(
    dict.fromkeys(
        [
            *os.environ.get("XLA_FLAGS", "").split(),
            "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution",
        ]
    )
)

import jax
import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

from tce_jax import run_files
from tce_jax.training import (
    command_line,
    compilation_cache,
    config_validation,
    job_supervisor,
    relaunch,
)
from tce_jax.training.config import ConfigError

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config file in configs/.", lock_config=True
)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Directory for checkpoints, metrics and summaries."
)
_MULTIHOST = flags.DEFINE_bool(
    "multihost",
    False,
    "Join a multi-process job (jax.distributed.initialize()) first; every process "
    "runs this same command.",
)
_COORDINATOR_ADDRESS = flags.DEFINE_string(
    "coordinator_address",
    None,
    "With --multihost: HOST:PORT where process 0 serves the coordinator, reachable "
    "from every process. Default: from the environment (SLURM, Open MPI, Cloud "
    "TPU, or JAX_COORDINATOR_ADDRESS).",
)
_NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes",
    None,
    "With --multihost: number of processes in the job. Default: from the environment.",
    lower_bound=1,
)
_PROCESS_ID = flags.DEFINE_integer(
    "process_id",
    None,
    "With --multihost: this process's index, 0 .. num_processes - 1 (0 serves the "
    "coordinator and writes the files). Default: from the environment.",
    lower_bound=0,
)
_HEARTBEAT_TIMEOUT = flags.DEFINE_integer(
    "heartbeat_timeout_seconds",
    100,
    "With --multihost: a process silent for this long (killed, preempted, node "
    "lost) stops the whole job instead of leaving the others waiting.",
    lower_bound=1,
)
_INITIALIZATION_TIMEOUT = flags.DEFINE_integer(
    "initialization_timeout_seconds",
    300,
    "With --multihost: how long the processes wait for each other to join the "
    "job (each prepares its dataset first); after that the job stops.",
    lower_bound=1,
)
_START_OVER = flags.DEFINE_bool(
    "start_over",
    False,
    "Move a run already in --workdir aside, whole, to <workdir>.replaced-<time>, "
    "and train afresh. Without it a relaunch continues the run in --workdir, or "
    "is refused if its config would train another model.",
)
_COMPILATION_CACHE_DIR = flags.DEFINE_string(
    "compilation_cache_dir",
    None,
    "JAX's persistent compilation cache. Default: $JAX_COMPILATION_CACHE_DIR if "
    f"set, else {compilation_cache.DEFAULT_DIR} on GPU and TPU and none on the CPU; "
    "empty: off.",
)
flags.mark_flags_as_required(["config", "workdir"])

EXIT_INVALID_CONFIG = 2
EXIT_NON_FINITE_LOSS = 1
EXIT_JOB_BROKEN = 3
EXIT_NO_DATA = 4
EXIT_CHECKPOINT_UNREADABLE = 5
# Flags that only mean something with --multihost.
_DISTRIBUTED_FLAGS = (
    _COORDINATOR_ADDRESS,
    _NUM_PROCESSES,
    _PROCESS_ID,
    _HEARTBEAT_TIMEOUT,
    _INITIALIZATION_TIMEOUT,
)


class _QuietOrbaxInfo(std_logging.Filter):
    """Drops orbax's per-save INFO lines (dozens per checkpoint); keeps warnings."""

    def filter(self, record: std_logging.LogRecord) -> bool:
        return record.levelno >= std_logging.WARNING or "/orbax/" not in record.pathname


def _fail(message: str, status: int) -> int:
    print(f"launch.py: {message}", file=sys.stderr, flush=True)
    return status


def _initialize_distributed() -> None:
    """Joins the multi-process job (raises ValueError on an unusable setup)."""
    # Cross-process collectives on CPU go through Gloo over TCP. It is jax 0.10's
    # default; set explicitly so that a jax whose default is "none" does not
    # start CPU processes that cannot reduce across each other.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=_COORDINATOR_ADDRESS.value,
        num_processes=_NUM_PROCESSES.value,
        process_id=_PROCESS_ID.value,
        initialization_timeout=_INITIALIZATION_TIMEOUT.value,
        heartbeat_timeout_seconds=_HEARTBEAT_TIMEOUT.value,
    )


# How a collective reports a peer that went away (Gloo's TCP transport, on CPU
# and across hosts); matched case-insensitively in the error's text.
_PEER_LOST_SIGNS = (
    "connection reset by peer",
    "connection closed by peer",
    "broken pipe",
    "socket closed",
    "connection refused",
    # The coordination service, when a barrier outlives a lost peer.
    "heartbeat timeout",
)


def _chain(error: BaseException) -> list[BaseException]:
    """The error and those it was raised from or while handling: a cleanup
    that fails in a barrier after a peer is lost must not hide the loss."""
    chain: list[BaseException] = []
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


def _job_failure_message(error: Exception, process: int, num_processes: int) -> str:
    """Why this process of the job stops: a lost peer, named when it can be, or
    its own failure."""
    first_line = (str(error).strip().splitlines() or [""])[0]
    seen = f"{type(error).__name__}: {first_line}"
    relaunch = (
        "relaunch every process with the same command: the run resumes from its "
        "last checkpoint."
    )
    if any(
        sign in str(link).lower() for link in _chain(error) for sign in _PEER_LOST_SIGNS
    ):
        # The transport names the peer's address, not its process; with two
        # processes the lost one can only be the other.
        lost = (
            f"process {1 - process} of {num_processes} was lost"
            if num_processes == 2
            else f"a peer of process {process} of {num_processes} was lost (which "
            "one, this process cannot tell)"
        )
        return (
            f"stopped: {lost} (killed, preempted or its node lost); process "
            f"{process} saw {seen}. When its node is back, {relaunch}"
        )
    return (
        f"stopped: process {process} of {num_processes} failed ({seen}). If "
        f"another process died (killed, preempted, node lost), {relaunch}"
    )


def _stop_job(error: Exception) -> NoReturn:
    """Ends this process of a multi-process job after an error, at once.

    The others are blocked in a collective with this process (or it with them);
    exiting now closes its connections, so they fail fast too instead of waiting
    for the heartbeat timeout. os._exit skips jax.distributed's shutdown barrier,
    which cannot complete with a process gone and would abort after a timeout.
    """
    logging.exception("This process of the job failed.")
    _fail(
        _job_failure_message(error, jax.process_index(), jax.process_count()),
        EXIT_JOB_BROKEN,
    )
    logging.flush()
    os._exit(EXIT_JOB_BROKEN)


def _report_abort() -> int:
    """The supervised child was aborted by JAX's runtime (job_supervisor)."""
    return _fail(
        "stopped: JAX ended this process of the job (its message is above): the "
        "job's coordination service failed, because process 0 (the coordinator) "
        "died or could not be reached, or another process was lost (killed, "
        "preempted, node lost). Relaunch every process with the same command: the "
        "run resumes from its last checkpoint",
        EXIT_JOB_BROKEN,
    )


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    logging.get_absl_handler().addFilter(_QuietOrbaxInfo())
    if not _MULTIHOST.value:
        for flag in _DISTRIBUTED_FLAGS:
            if flag.present:
                return _fail(
                    f"--{flag.name}: only allowed with --multihost",
                    EXIT_INVALID_CONFIG,
                )
    try:
        config = command_line.config_from_flag(_CONFIG)
    except ConfigError as error:
        return _fail(str(error), EXIT_INVALID_CONFIG)
    problem = run_files.not_a_directory(
        "workdir",
        _WORKDIR.value,
        "a directory (created if missing; an existing one resumes its run)",
    )
    if problem:
        return _fail(problem, EXIT_INVALID_CONFIG)
    try:
        # Before any work, every rule but the device count (known once the job
        # is joined; the run reads the config with it), and the run already in
        # the workdir.
        checked = config_validation.read(config, num_devices=1)
        if not _START_OVER.value:
            relaunch.check(checked, _WORKDIR.value)
    except ConfigError as error:
        return _fail(f"invalid config: {error}", EXIT_INVALID_CONFIG)
    if _MULTIHOST.value and not job_supervisor.is_child():
        return job_supervisor.supervise(on_abort=_report_abort)
    if job_supervisor.is_child():
        job_supervisor.die_with_supervisor()
    return _run(config)


def _run(config: ml_collections.ConfigDict) -> int:
    """Prepares the dataset, joins the job (--multihost) and trains."""
    # TensorFlow comes with these; the supervising parent needs none of it.
    from tce_jax.data import input_pipeline
    from tce_jax.training import checkpointing, loop, progress

    try:
        # Before joining: a process waiting for the data dir's lock, or failing
        # to get the data, is no process of a job yet, which JAX would abort
        # when another one fails.
        input_pipeline.prepare(config.data.dataset, config.data.data_dir)
    except RuntimeError as error:  # Says how to get the data.
        return _fail(f"stopped: {error}", EXIT_NO_DATA)
    if _MULTIHOST.value:
        try:
            _initialize_distributed()
        except ValueError as error:
            return _fail(
                f"--multihost: cannot join the job: {str(error).rstrip('.')}. Outside "
                "SLURM, Open MPI and Cloud TPU, pass --coordinator_address, "
                "--num_processes and --process_id",
                EXIT_INVALID_CONFIG,
            )
    compilation_cache.configure(_COMPILATION_CACHE_DIR.value)
    try:
        # Reads the config first (config_validation.read), once, with the
        # job's device count, and logs the JAX version and devices after that.
        loop.train_and_evaluate(config, _WORKDIR.value, start_over=_START_OVER.value)
    except (ConfigError, input_pipeline.DataSizeError) as error:
        return _fail(f"invalid config: {error}", EXIT_INVALID_CONFIG)
    except progress.NonFiniteLossError as error:
        return _fail(f"stopped: {error}", EXIT_NON_FINITE_LOSS)
    except checkpointing.RestoreError as error:  # Every process of a job agrees.
        return _fail(f"stopped: {error}", EXIT_CHECKPOINT_UNREADABLE)
    except Exception as error:
        if jax.process_count() == 1:
            raise
        _stop_job(error)
    return 0


if __name__ == "__main__":
    app.run(
        main,
        flags_parser=command_line.parser_exiting_with(
            _CONFIG, "launch.py", EXIT_INVALID_CONFIG
        ),
    )
