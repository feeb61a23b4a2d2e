"""One process of a multi-process job, run under a parent that reports how it ended.

When the job's coordination service fails (the coordinator, process 0, died
or cannot be reached; or the service lost another process), JAX's distributed
runtime ends the process at once: it prints its own message and a C++ stack
trace and aborts (SIGABRT). No Python code of that process runs after that,
and jaxlib offers no hook to run any (its ``missed_heartbeat_callback`` cannot
be given a Python function: the status it passes does not convert). So
``launch.py --multihost`` runs the job's work in a child process, the same
command, and waits: a child that JAX aborted makes the parent print one line,
saying what happened and what to do, and exit with status 3, as for every
other way the job breaks.

The parent passes the signals a user or a scheduler sends it (SIGINT, SIGTERM,
SIGHUP, SIGUSR1, SIGUSR2) on to the child, which runs in its own process group
so that a terminal's Ctrl-C reaches it once; on Linux the child dies with the
parent (``PR_SET_PDEATHSIG``), so that killing the parent, even with SIGKILL,
ends the process the job sees.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
from collections.abc import Callable

# Set in the child's environment to the parent's pid.
CHILD_ENV = "TCE_JAX_JOB_SUPERVISOR_PID"
FORWARDED_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
_PR_SET_PDEATHSIG = 1  # From <sys/prctl.h>.


def is_child() -> bool:
    """Whether this process is a supervised child (it does the job's work)."""
    return CHILD_ENV in os.environ


def die_with_supervisor() -> None:
    """In the child: asks Linux to kill this process when its parent dies.

    Elsewhere (no prctl) the child outlives a parent killed with SIGKILL.
    """
    libc_name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(libc_name, use_errno=True) if libc_name else None
    if libc is None or not hasattr(libc, "prctl"):
        return
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    # The parent may have died before the request: then this was reparented.
    if str(os.getppid()) != os.environ.get(CHILD_ENV):
        os.kill(os.getpid(), signal.SIGKILL)


def supervise(
    command: list[str] | None = None,
    *,
    on_abort: Callable[[], int],
) -> int:
    """Runs ``command`` (default: this process's own command line) as the
    supervised child and returns the exit status this process should have.

    Args:
      command: the child's command line; default ``sys.orig_argv`` with this
        interpreter, i.e. the same command again.
      on_abort: called when the child was aborted (SIGABRT, as JAX's runtime
        does); prints the line and returns the exit status.

    Returns:
      The child's exit status; ``on_abort()``'s for an abort; 128 + the
      signal's number for another signal that ended it.
    """
    if command is None:
        command = [sys.executable, *sys.orig_argv[1:]]
    child = subprocess.Popen(
        command,
        env={**os.environ, CHILD_ENV: str(os.getpid())},
        process_group=0,
    )
    previous = {
        number: signal.signal(number, lambda number, _: child.send_signal(number))
        for number in FORWARDED_SIGNALS
    }
    try:
        status = child.wait()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if status == -signal.SIGABRT:
        return on_abort()
    return status if status >= 0 else 128 - status
