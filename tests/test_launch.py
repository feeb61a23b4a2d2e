"""launch.py as a user runs it: config errors, kill -9 in the middle + relaunch,
a relaunch with another config (refused, or started over), a checkpoint that
cannot be read.

The subprocesses run launch.py on the synthetic data of tests/tiny_run.py (the
tfds loading is replaced before launch.main starts) and share a persistent
compilation cache with the in-process reference run (conftest.py), so each
launch costs its imports and little else.
"""

import json
import pathlib
import shutil
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
            "invalid config: config.loss.q: got 0.7; allowed: unset: not a "
            "hyperparameter of loss 'tce'",
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


def _files(directory):
    """Every file under the directory (but the TensorBoard events, which every
    launch appends to), with its content."""
    return {
        path.relative_to(directory): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file() and "tfevents" not in path.name
    }


def test_a_relaunch_with_another_model_is_refused_and_starting_over_keeps_the_old(
    compilation_cache, reference_run, tmp_path
):
    """The first-contact mistake: a finished run relaunched into its own
    workdir with another model."""
    workdir = tmp_path / "run"
    shutil.copytree(reference_run[0], workdir)
    before = _files(workdir)
    command = [
        sys.executable,
        "-c",
        tiny_run.LAUNCH_ON_FAKE_DATA,
        *tiny_run.TINY_OVERRIDES,
        "--config.model.name=resnet20",
        f"--workdir={workdir}",
    ]
    refused = subprocess.run(
        command,
        cwd=ROOT,
        env=_environment(compilation_cache),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert refused.returncode == 2, refused.stderr[-3000:]
    [line] = [x for x in refused.stderr.splitlines() if x.startswith("launch.py:")]
    assert line.startswith(
        f"launch.py: invalid config: {workdir} holds a run trained with another "
        "config: model.name (recorded 'resnet8', now 'resnet20'); "
    )
    assert "Traceback" not in refused.stderr
    assert _files(workdir) == before  # Nothing trained, nothing deleted.

    started_over = subprocess.run(
        [*command, "--config.num_epochs=1", "--start_over"],
        cwd=ROOT,
        env=_environment(compilation_cache),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert started_over.returncode == 0, started_over.stderr[-3000:]
    [moved] = tmp_path.glob("run.replaced-*")
    assert _files(moved) == before
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["config"]["model"]["name"] == "resnet20"
    assert summary["num_epochs"] == 1


def test_a_checkpoint_that_cannot_be_read_stops_with_one_line_and_stays(
    compilation_cache, reference_run, tmp_path
):
    """A run by older code (no record of its config) relaunched with another
    model: only the restore can tell, and it keeps every checkpoint."""
    workdir = tmp_path / "run"
    shutil.copytree(reference_run[0], workdir)
    (workdir / "effective_config.json").unlink()
    (workdir / "summary.json").unlink()
    before = _files(workdir / "checkpoints")
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            tiny_run.LAUNCH_ON_FAKE_DATA,
            *tiny_run.TINY_OVERRIDES,
            "--config.model.name=resnet20",
            f"--workdir={workdir}",
        ],
        cwd=ROOT,
        env=_environment(compilation_cache),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 5, result.stderr[-3000:]
    [line] = [x for x in result.stderr.splitlines() if x.startswith("launch.py:")]
    assert line.startswith(
        "launch.py: stopped: cannot restore the checkpoint of epoch 3 in "
        f"{workdir}/checkpoints (ValueError: "
    )
    assert "no checkpoint was changed" in line
    assert _files(workdir / "checkpoints") == before
    assert not (workdir / "checkpoints_damaged").exists()
