"""The supervisor of a job's process: how the child ended becomes the parent's
exit status (an abort by JAX's runtime: one line and status 3), signals reach
the child, and the child dies with the parent. Parent and child are small
Python processes standing in for launch.py."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

# A parent supervising argv[1:], as launch.py --multihost does.
PARENT = """
import sys
from tce_jax.training import job_supervisor

def on_abort():
    print("launch.py: stopped: aborted", file=sys.stderr, flush=True)
    return 3

sys.exit(job_supervisor.supervise(sys.argv[1:], on_abort=on_abort))
"""

# A child that says it started, records the signals it gets, and ends as told.
CHILD = """
import os, pathlib, signal, sys, time
from tce_jax.training import job_supervisor
job_supervisor.die_with_supervisor()
log = pathlib.Path(sys.argv[1])
def record(number, frame):
    with open(log, "a") as f:
        f.write(signal.Signals(number).name + "\\n")
    if number == signal.SIGTERM:
        sys.exit(0)
for number in (signal.SIGTERM, signal.SIGUSR2, signal.SIGINT):
    signal.signal(number, record)
with open(log, "a") as f:
    f.write(f"started {os.getpid()} group {os.getpgid(0)}\\n")
ending = sys.argv[2]
if ending == "abort":
    os.abort()  # What JAX's runtime does when the job's service fails.
if ending.startswith("exit"):
    sys.exit(int(ending.removeprefix("exit")))
time.sleep(120)
"""

pytestmark = pytest.mark.slow  # Every test starts processes.


def _start(tmp_path, ending):
    log = tmp_path / "child.log"
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, sys.executable, "-c", CHILD, str(log), ending],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (log.exists() and "started" in log.read_text()):
        assert parent.poll() is None or ending != "sleep", parent.stderr.read()
        assert time.monotonic() < deadline, "the child never started"
        time.sleep(0.02)
    started = log.read_text().split()
    return parent, log, int(started[1]), int(started[3])


@pytest.mark.parametrize(("ending", "status"), [("exit0", 0), ("exit4", 4)])
def test_the_childs_exit_status_is_the_parents(tmp_path, ending, status):
    parent, _, _, _ = _start(tmp_path, ending)
    _, stderr = parent.communicate(timeout=60)
    assert parent.returncode == status
    assert "stopped" not in stderr


def test_an_aborted_child_gets_one_line_and_status_3(tmp_path):
    parent, _, _, _ = _start(tmp_path, "abort")
    _, stderr = parent.communicate(timeout=60)
    assert parent.returncode == 3
    assert stderr.strip() == "launch.py: stopped: aborted"


def test_signals_to_the_parent_reach_the_child_once(tmp_path):
    parent, log, child, group = _start(tmp_path, "sleep")
    assert group == child != parent.pid  # Its own group: Ctrl-C reaches it once.
    for number in (signal.SIGUSR2, signal.SIGINT, signal.SIGTERM):
        parent.send_signal(number)
        time.sleep(0.3)
    parent.communicate(timeout=60)
    assert parent.returncode == 0  # The child's handler ended it with 0.
    assert log.read_text().splitlines()[1:] == ["SIGUSR2", "SIGINT", "SIGTERM"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl: Linux")
def test_the_child_dies_with_a_parent_killed_outright(tmp_path):
    parent, _, child, _ = _start(tmp_path, "sleep")
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 30
    while _alive(child):
        assert time.monotonic() < deadline, "the child outlived its parent"
        time.sleep(0.05)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie awaiting its reaper counts as dead.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"
