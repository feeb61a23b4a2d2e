"""launch.py as a user runs it: config errors, and kill -9 in the middle + relaunch.

The subprocesses run launch.py on the synthetic data of tests/tiny_run.py (the
tfds loading is replaced before launch.main starts) and share a persistent
compilation cache with the in-process reference run (conftest.py), so each
launch costs its imports and little else.
"""

import json
import pathlib
import signal
import subprocess
import sys
import time

import pytest
import tiny_run

ROOT = tiny_run.ROOT
_environment = tiny_run.launch_environment

# Every test starts launch.py in a subprocess (TensorFlow and JAX import each time).
pytestmark = pytest.mark.slow


def _launch_rejects(*args):
    """Runs launch.py expecting exit status 2 and no traceback; its launch.py: lines."""
    result = subprocess.run(
        [sys.executable, "launch.py", *args],
        cwd=ROOT,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    return [
        line for line in result.stderr.splitlines() if line.startswith("launch.py:")
    ]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "--config.loss.q=0.7",
            "invalid config: config.loss.q: not a hyperparameter of loss 'tce'",
        ),
        (
            "--config.batch_size=30",
            "invalid config: config.batch_size: got 30; allowed: a positive",
        ),
        ("--num_processes=2", "--num_processes: only allowed with --multihost"),
        (
            "--config.loss.gamma_typo=3",
            "--config.loss.gamma_typo: config.loss has no field 'gamma_typo'; "
            "nearest: config.loss.gamma",
        ),
    ],
)
def test_invalid_config_or_flag_exits_with_one_line_and_no_traceback(
    override, expected
):
    messages = _launch_rejects(
        "--config=configs/cpu_smoke.py",
        "--workdir=/nonexistent/never_created",
        override,
    )
    assert len(messages) == 1 and messages[0].startswith(f"launch.py: {expected}")
    assert not pathlib.Path("/nonexistent/never_created").exists()


@pytest.mark.parametrize(
    ("config", "workdir", "expected"),
    [
        (
            "configs/nope.py",
            "{tmp}/w",
            "launch.py: --config=configs/nope.py: cannot load it ([Errno 2] No such "
            "file or directory: 'configs/nope.py'); allowed: a config file defining "
            "get_config()",
        ),
        (
            "configs/cpu_smoke.py",
            "{tmp}/a_file",
            "launch.py: --workdir={tmp}/a_file: is a file; allowed: a directory "
            "(created if missing; an existing one resumes its run)",
        ),
    ],
)
def test_bad_config_file_or_workdir_exits_with_one_line(
    config, workdir, expected, tmp_path
):
    (tmp_path / "a_file").write_text("keep me")
    messages = _launch_rejects(
        f"--config={config}", f"--workdir={workdir.format(tmp=tmp_path)}"
    )
    assert messages == [expected.format(tmp=tmp_path)]
    assert (tmp_path / "a_file").read_text() == "keep me"
    assert not (tmp_path / "w").exists()


def _launch(workdir, cache_dir):
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            tiny_run.LAUNCH_ON_FAKE_DATA,
            *tiny_run.TINY_OVERRIDES,
            f"--workdir={workdir}",
        ],
        cwd=ROOT,
        env=_environment(cache_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_kill_9_mid_run_then_relaunch_gives_the_uninterrupted_summary(
    compilation_cache, reference_run, tmp_path
):
    reference_dir, reference = reference_run

    workdir = tmp_path / "killed"
    process = _launch(workdir, compilation_cache)
    first_checkpoint = workdir / "checkpoints" / "1"
    deadline = time.monotonic() + 120
    while not first_checkpoint.exists() and process.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint after 120 s"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL, stderr
    assert not (workdir / "summary.json").exists(), "the run ended before the kill"

    relaunch = _launch(workdir, compilation_cache)
    _, stderr = relaunch.communicate(timeout=300)
    assert relaunch.returncode == 0, stderr
    assert "Resumed from the checkpoint of epoch" in stderr

    summary = json.loads((workdir / "summary.json").read_text())
    assert tiny_run.comparable_summary(summary) == tiny_run.comparable_summary(
        json.loads(json.dumps(reference))
    )
    assert tiny_run.without_timing(
        tiny_run.read_history(workdir)
    ) == tiny_run.without_timing(tiny_run.read_history(reference_dir))
