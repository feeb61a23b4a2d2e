"""launch.py --multihost for real: two processes on this machine as one job.

Two launch.py processes with one CPU device each join through jax.distributed
over localhost (Gloo collectives), once told the coordinator by flags and once
as under srun (from SLURM's variables, which jax reads), and train
tests/tiny_run.py's tiny cpu_smoke run on the synthetic data; a single process with
two emulated devices trains the same run as the reference. Two processes with
two devices each, on a mesh that interleaves them as TPU pods do, build the
same global batches as one process. Process 1 runs
under an audit hook that fails it on any file write in the workdir outside
``checkpoints/``: only process 0 writes the run's files. Checkpoints are
orbax's joint work: process 0 writes the replicated train state and every
process adds its own array metadata.
"""

import functools
import json
import pathlib
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tiny_run

from tce_jax.data import fashion_mnist_debian

ROOT = tiny_run.ROOT

# Process 1 may read the workdir but not change it outside checkpoints/.
NO_WRITES_UNDER_WORKDIR = """
import os, sys
def _forbid_writes(workdir):
    workdir = os.path.realpath(workdir)
    checkpoints = os.path.join(workdir, "checkpoints")
    changing = {"os.mkdir", "os.rename", "os.replace", "os.remove", "os.rmdir",
                "os.symlink", "os.link", "os.truncate", "shutil.rmtree"}
    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            if not (set(mode or "") & set("wax+") or (flags or 0) & writing):
                return
        elif event not in changing:
            return
        for path in args[:2]:
            if not isinstance(path, (str, bytes, os.PathLike)):
                continue
            path = os.path.realpath(os.fsdecode(path))
            if path.startswith(workdir + os.sep) and not path.startswith(checkpoints):
                message = f"process 1 wrote to the workdir: {event} {args}"
                print(message, file=sys.stderr, flush=True)  # Even if caught.
                raise PermissionError(message)
    sys.addaudithook(hook)
_forbid_writes(sys.argv[-1].removeprefix("--workdir="))
"""

# A guard against hangs, not a speed limit: the machine may be shared.
TIMEOUT_SECONDS = 240

# Every test starts several launch.py processes joined over localhost.
pytestmark = pytest.mark.slow

_started: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_process_outlives_its_test():
    """Kills what a test started and left running (it failed half-way)."""
    yield
    while _started:
        process = _started.pop()
        if process.poll() is None:
            process.kill()  # Its supervised child dies with it.
            process.wait()


def _popen(*args, **kwargs):
    process = subprocess.Popen(*args, **kwargs)
    _started.append(process)
    return process


def _free_port(candidates=(0,)):
    """A free localhost port, the first free one of `candidates` (0: any)."""
    for port in candidates:
        with socket.socket() as sock:
            try:
                sock.bind(("localhost", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError("no free port")


def _slurm_environment(job_id, process_id):
    """What `srun --ntasks=2` sets up for each task; jax.distributed reads it."""
    return {
        "SLURM_JOB_ID": str(job_id),
        "SLURM_STEP_NODELIST": "localhost",
        "SLURM_NTASKS": "2",
        "SLURM_PROCID": str(process_id),
        "SLURM_LOCALID": str(process_id),
    }


def _environment(cache_dir, num_devices):
    env = tiny_run.launch_environment(cache_dir)
    # conftest.py's four emulated devices are for the in-process tests.
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={num_devices}"
    env["JAX_PLATFORMS"] = "cpu"
    return env


def _start(workdir, cache_dir, *, process_id=None, port=None, slurm_env=None):
    """One launch.py on the synthetic data; a process of a 2-process job if given.

    The job's processes find each other through the flags, or under
    `slurm_env` from the environment as under srun.

    Its stderr goes to a file next to the workdir: two processes writing to
    pipes read one after the other could block each other.
    """
    script = tiny_run.LAUNCH_ON_FAKE_DATA
    flags = [*tiny_run.TINY_OVERRIDES]
    if process_id is not None:
        if process_id == 1:
            script = NO_WRITES_UNDER_WORKDIR + script
        flags += ["--multihost", "--heartbeat_timeout_seconds=10"]
        if slurm_env is None:
            flags += [
                f"--coordinator_address=localhost:{port}",
                "--num_processes=2",
                f"--process_id={process_id}",
            ]
    suffix = "" if process_id is None else f".process{process_id}"
    log = pathlib.Path(f"{workdir}{suffix}.log")
    with open(log, "a") as stderr:
        process = _popen(
            [sys.executable, "-c", script, *flags, f"--workdir={workdir}"],
            cwd=ROOT,
            env=_environment(cache_dir, 1 if process_id is not None else 2)
            | (slurm_env or {}),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    process.log = log
    return process


def _start_job(workdir, cache_dir, *, as_srun=False):
    """The job's two processes, told the coordinator by flags or (as_srun) by SLURM."""
    if not as_srun:
        port = _free_port()
        return [_start(workdir, cache_dir, process_id=i, port=port) for i in (0, 1)]
    # jax derives the coordinator's port from the job id (61440 + id mod 4096).
    job_id = _free_port(range(61440, 65536)) - 61440
    return [
        _start(
            workdir, cache_dir, process_id=i, slurm_env=_slurm_environment(job_id, i)
        )
        for i in (0, 1)
    ]


def _wait(process, timeout=TIMEOUT_SECONDS):
    """Waits for the process to end; returns its stderr so far."""
    try:
        process.wait(timeout=timeout)
    finally:
        process.kill()  # No-op if it ended; no stray process if it hangs.
    return process.log.read_text()


def _finish(processes):
    """Waits for every process; returns their stderr, checking they succeeded."""
    errors = [_wait(process) for process in processes]
    for process, stderr in zip(processes, errors, strict=True):
        assert process.returncode == 0, stderr[-3000:]
    return errors


def _assert_same_run(workdir, reference):
    assert tiny_run.without_timing(
        tiny_run.read_history(workdir)
    ) == tiny_run.without_timing(tiny_run.read_history(reference))
    summaries = [
        json.loads((d / "summary.json").read_text()) for d in (workdir, reference)
    ]
    assert tiny_run.comparable_summary(summaries[0]) == tiny_run.comparable_summary(
        summaries[1]
    )
    for name in ("train_predictions.npz", "labels.npz"):
        with np.load(workdir / name) as got, np.load(reference / name) as want:
            assert sorted(got) == sorted(want)
            for key in want:
                np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_two_processes_train_like_one_process_on_two_devices_and_survive_a_kill(
    compilation_cache, tmp_path
):
    # The reference starts with the job: its imports overlap the job's.
    reference = _start(tmp_path / "one_process_two_devices", compilation_cache)
    workdir = tmp_path / "two_processes"
    processes = _start_job(workdir, compilation_cache)
    # Killed once epoch 2 trains and epoch 1's checkpoint is committed (it is
    # written asynchronously, while epoch 2 trains), while the survivor is in the
    # step's collectives: they fail at once and it stops with one line. Killed
    # while the survivor waits in a barrier instead, JAX's runtime aborts it
    # (at the latest after the heartbeat timeout, 10 s here).
    first_checkpoint = workdir / "checkpoints" / "1"
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not (
        first_checkpoint.exists() and "epoch 2 step" in processes[0].log.read_text()
    ):
        assert processes[0].poll() is None, processes[0].log.read_text()[-3000:]
        assert time.monotonic() < deadline, "no epoch 2 with epoch 1 checkpointed"
        time.sleep(0.01)
    processes[1].send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    stderr = _wait(processes[0], timeout=60)
    stopped_after = time.monotonic() - killed_at
    _wait(processes[1])
    assert first_checkpoint.exists()
    assert not (workdir / "summary.json").exists(), "the run ended before the kill"
    # One line and status 3 either way: the survivor names the lost process
    # when the step's collectives fail first; when JAX's runtime sees the loss
    # first, it aborts the survivor, and the survivor's supervisor says so.
    assert processes[0].returncode == 3, stderr[-3000:]
    assert (
        "launch.py: stopped: process 1 of 2 was lost (killed, preempted or its "
        "node lost); process 0 saw "
        in stderr
        or "launch.py: stopped: JAX ended this process of the job" in stderr
    ), stderr[-3000:]
    assert "relaunch every process with the same command" in stderr.lower()
    assert stopped_after < 30, stopped_after
    _finish([reference])

    # The newest checkpoint damaged meanwhile: the processes agree on it, and
    # process 0 moves it aside.
    newest = max(
        int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()
    )
    for path in (workdir / "checkpoints" / str(newest) / "state").rglob("*"):
        if path.is_file():
            path.write_bytes(b"")
    # Both relaunched, this time as srun starts them (the processes read the
    # job from SLURM's variables): the job resumes from its last usable
    # checkpoint (or from the start, when the damaged one was the only one).
    errors = _finish(_start_job(workdir, compilation_cache, as_srun=True))
    assert "2 process(es), 2 device(s)" in errors[0]
    assert f"Checkpoint of epoch {newest} is damaged" in errors[0]
    assert (workdir / "checkpoints_damaged" / str(newest) / "state").is_dir()
    if newest > 1:
        for stderr in errors:
            assert "Resumed from the checkpoint of epoch" in stderr
    assert "process 1 wrote to the workdir" not in errors[1]
    # The same global batches as one process (each process built its own rows
    # of every batch, every example once per epoch), hence exactly the same
    # metrics, summary and predictions.
    _assert_same_run(workdir, tmp_path / "one_process_two_devices")
    assert sorted(int(p.name) for p in (workdir / "checkpoints").iterdir()) == [2, 3]


def test_a_lost_peer_is_named_when_it_can_be_and_an_own_failure_is_told_apart():
    """The survivor's line for the errors a collective raises (the Gloo text is
    what a killed peer gave on this machine), also when a cleanup fails after
    it, without starting a job."""
    script = (
        "import launch\n"
        "lost = ValueError('UNKNOWN: Gloo all-reduce failed: [pair.cc:538] Read "
        "error [127.0.0.1]:48365: Connection reset by peer')\n"
        "own = RuntimeError('RESOURCE_EXHAUSTED: out of memory')\n"
        "for error, process, count in ((lost, 0, 2), (lost, 1, 2), (lost, 2, 4),"
        " (own, 0, 2)):\n"
        "    print(launch._job_failure_message(error, process, count))\n"
        "try:\n"
        "    try:\n"
        "        raise lost\n"
        "    except ValueError:\n"
        "        raise RuntimeError('INTERNAL: Barrier failed (cleanup)')\n"
        "except RuntimeError as masked:\n"
        "    print(launch._job_failure_message(masked, 0, 2))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert lines[0].startswith(
        "stopped: process 1 of 2 was lost (killed, preempted or its node lost); "
        "process 0 saw ValueError: UNKNOWN: Gloo all-reduce failed"
    )
    assert lines[1].startswith("stopped: process 0 of 2 was lost")
    assert lines[2].startswith(
        "stopped: a peer of process 2 of 4 was lost (which one, this process "
        "cannot tell)"
    )
    assert lines[3].startswith(
        "stopped: process 0 of 2 failed (RuntimeError: RESOURCE_EXHAUSTED"
    )
    # A cleanup that fails after the loss (a checkpoint barrier) does not hide it.
    assert lines[4].startswith(
        "stopped: process 1 of 2 was lost (killed, preempted or its node lost); "
        "process 0 saw RuntimeError: INTERNAL: Barrier failed (cleanup)"
    )
    assert all("relaunch every process with the same command" in x for x in lines)


# Each of two processes with two CPU devices builds its rows of global batches
# sharded over a mesh that alternates the processes' devices (as jax.make_mesh
# does on TPU pods), and checks the assembled batches against the whole batch.
INTERLEAVED_MESH_BATCHES = f"""
import sys
sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / "tests")!r}]
import jax
import numpy as np
from jax.experimental import multihost_utils
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(
    coordinator_address=sys.argv[1], num_processes=2, process_id=int(sys.argv[2])
)
import tiny_run
from tce_jax.data import input_pipeline
by_process = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
mesh = jax.sharding.Mesh(np.array(by_process).reshape(2, 2).T.ravel(), ("data",))
rows = input_pipeline.process_rows(mesh, 8, jax.process_index())
assert rows.tolist() == [[0, 1, 4, 5], [2, 3, 6, 7]][jax.process_index()], rows
config = tiny_run.tiny_config()
info = input_pipeline.DATASETS[config.data.dataset]
train_images, train_labels = tiny_run.fake_load_split(info, "train")
test_images, test_labels = tiny_run.fake_load_split(info, "test")
datasets = input_pipeline.build_datasets(
    config, mesh=mesh, train_images=train_images, train_labels=train_labels,
    test_images=test_images, test_labels=test_labels,
)
whole = np.arange(8)
pairs = [
    (datasets.train_batches(1, 8), datasets.local_train_batches(1, 8, rows=whole)),
    (
        datasets.eval_batches("test", 8),
        datasets.local_eval_batches("test", 8, rows=whole),
    ),
]
for global_batches, whole_batches in pairs:
    for got, want in zip(global_batches, whole_batches, strict=True):
        got = multihost_utils.process_allgather(got, tiled=True)
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
print("same batches")
"""


def test_processes_feed_a_mesh_that_interleaves_their_devices(
    compilation_cache, tmp_path
):
    port = _free_port()
    processes = []
    for process_id in (0, 1):
        log = tmp_path / f"process{process_id}.log"
        with open(log, "w") as output:
            process = _popen(
                [
                    sys.executable,
                    "-c",
                    INTERLEAVED_MESH_BATCHES,
                    f"localhost:{port}",
                    str(process_id),
                ],
                cwd=ROOT,
                env=_environment(compilation_cache, 2),
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        process.log = log
        processes.append(process)
    for output in _finish(processes):
        assert "same batches" in output


# A small cpu_smoke run on the real Fashion-MNIST of a fresh data dir.
REAL_DATA_OVERRIDES = (
    "--config=configs/cpu_smoke.py",
    "--config.data.train_subset=320",
    "--config.model.width_multiplier=0.25",
    "--config.batch_size=32",
    "--config.eval_batch_size=1000",
    "--config.num_epochs=1",
)


def _start_on_real_data(workdir, data_dir, cache_dir, *, process_id, port, flags=()):
    """launch.py as a user runs it, process `process_id` of a 2-process job; its
    stdout (where tfds says it builds a dataset) and stderr go to one log."""
    log = pathlib.Path(f"{workdir}.process{process_id}.log")
    with open(log, "a") as output:
        process = _popen(
            [
                sys.executable,
                "launch.py",
                *REAL_DATA_OVERRIDES,
                f"--config.data.data_dir={data_dir}",
                "--multihost",
                f"--coordinator_address=localhost:{port}",
                "--num_processes=2",
                f"--process_id={process_id}",
                *flags,
                f"--workdir={workdir}",
            ],
            cwd=ROOT,
            env=_environment(cache_dir, 1),
            stdout=output,
            stderr=output,
        )
    process.log = log
    return process


def _wait_while_running(process, condition, what, timeout=TIMEOUT_SECONDS):
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, process.log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_two_processes_on_a_fresh_data_dir_prepare_it_once_and_train(
    compilation_cache, tmp_path
):
    if not fashion_mnist_debian.is_available():
        pytest.skip("Debian's Fashion-MNIST files are not installed")
    port, data_dir = _free_port(), tmp_path / "tfds"
    processes = [
        _start_on_real_data(
            tmp_path / "run", data_dir, compilation_cache, process_id=i, port=port
        )
        for i in (0, 1)
    ]
    logs = _finish(processes)
    # One built it; the other waited for the data dir's lock, then reused it.
    assert sum(log.count("Downloading and preparing dataset") for log in logs) == 1
    assert any("Waiting for another process that prepares" in log for log in logs)
    assert sorted(p.name for p in (data_dir / "fashion_mnist_debian").iterdir()) == [
        "1.0.0"
    ]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["environment"]["process_count"] == 2


def test_a_coordinator_killed_while_preparing_the_data_leaves_the_peer_one_line(
    compilation_cache, tmp_path, lock_holder
):
    if not fashion_mnist_debian.is_available():
        pytest.skip("Debian's Fashion-MNIST files are not installed")
    port, data_dir = _free_port(), tmp_path / "tfds"
    start = functools.partial(
        _start_on_real_data,
        tmp_path / "run",
        data_dir,
        compilation_cache,
        port=port,
        flags=("--initialization_timeout_seconds=5",),
    )
    # Both processes queue for the data dir's lock, which another process
    # holds, so neither can have prepared the data before the kill.
    data_dir.mkdir()
    holder = lock_holder(data_dir / ".fashion_mnist.prepare.lock")
    processes = [start(process_id=i) for i in (0, 1)]
    for process in processes:
        _wait_while_running(
            process,
            lambda p=process: (
                "Waiting for another process that prepares" in p.log.read_text()
            ),
            "each process to wait for the data dir's lock",
        )
    coordinator, peer = processes
    holder.kill()
    building = data_dir / "fashion_mnist_debian"
    _wait_while_running(
        peer,
        lambda: any(path.name.startswith("incomplete") for path in building.glob("*")),
        "one of them to build the dataset",
    )
    # Killed while it builds the dataset or while it waits for the other to:
    # either way before joining. Its supervised child dies with it.
    coordinator.send_signal(signal.SIGKILL)
    stderr = _wait(peer)
    _wait(coordinator)
    # The peer prepared the dataset (or took over from the coordinator), then
    # found no coordinator to join: JAX's runtime aborted it, and its
    # supervisor said so in one line.
    assert (data_dir / "fashion_mnist_debian" / "1.0.0").is_dir()
    assert peer.returncode == 3, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.startswith("launch.py:")]
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        "launch.py: stopped: JAX ended this process of the job (its message is "
        "above): the job's coordination service failed, because process 0 (the "
        "coordinator) died or could not be reached"
    )
