"""Tests of sweep.py, the command: flags, bad input, one line per mistake."""

import os
import shlex
import sys

import pytest
from sweep_fakes import sweep_py
from test_sweep_configs import EXPECTED_RUNS


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--executor=foo"],
            "sweep.py: --executor=foo: allowed: local, slurm, submitit_local",
        ),
        (
            ["--executor=slurm", "--slurm_time_min=60"],
            "sweep.py: --slurm_partition: required with --executor=slurm (or "
            "slurm.partition in the sweep config)",
        ),
        (["--runs_per_gpu=0"], "sweep.py: --runs_per_gpu=0: allowed: >= 1"),
        (
            ["--config.seedz=(0,)"],
            "sweep.py: --config.seedz: config has no field 'seedz'; nearest: "
            "config.seeds",
        ),
        (
            ["--runs_per_gpu=2", "--all_gpus_per_run"],
            "sweep.py: --runs_per_gpu: not allowed with --all_gpus_per_run (one "
            "run on every GPU)",
        ),
        (
            ["--executor=slurm", "--all_gpus_per_run"],
            "sweep.py: --all_gpus_per_run: only allowed with --executor=local",
        ),
        (
            ["--slurm_allow_local_paths"],
            "sweep.py: --slurm_allow_local_paths: only allowed with --executor=slurm",
        ),
    ],
)
def test_bad_input_gets_one_line_and_no_traceback(args, expected, tmp_path):
    result = sweep_py(
        "--config=configs/sweeps/demo.py", f"--workdir={tmp_path / 'sweep'}", *args
    )
    assert result.returncode == 2
    assert result.stderr.strip() == expected
    assert not (tmp_path / "sweep").exists()


@pytest.mark.slow
def test_missing_config_file_or_a_file_as_workdir_get_one_line(tmp_path):
    missing = sweep_py("--config=configs/sweeps/nope.py", f"--workdir={tmp_path}/s")
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        "sweep.py: --config=configs/sweeps/nope.py: cannot load it ([Errno 2] No "
        "such file or directory: 'configs/sweeps/nope.py'); allowed: a config file "
        "defining get_config()"
    )
    (tmp_path / "a_file").write_text("keep me")
    on_file = sweep_py(
        "--config=configs/sweeps/demo.py", f"--workdir={tmp_path}/a_file"
    )
    assert on_file.returncode == 2
    assert on_file.stderr.strip() == (
        f"sweep.py: --workdir={tmp_path}/a_file: is a file; allowed: a directory "
        "(the sweep directory, created if missing)"
    )
    assert (tmp_path / "a_file").read_text() == "keep me"
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
@pytest.mark.parametrize("config", ["demo", "cifar10_noise"])
def test_dry_run_commands_write_into_the_sweep_dir(config, tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = sweep_py(
        f"--config=configs/sweeps/{config}.py", f"--workdir={sweep_dir}", "--dry_run"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    rel_dirs, commands = lines[0::2], lines[1::2]
    assert len(rel_dirs) == EXPECTED_RUNS[config]
    for rel_dir, command in zip(rel_dirs, commands, strict=True):
        # Copied and run from the repository root, it writes where the sweep would.
        assert shlex.split(command)[-1] == f"--workdir={sweep_dir / rel_dir}"
    assert not sweep_dir.exists()


@pytest.mark.slow
def test_a_dataset_that_cannot_be_prepared_stops_the_sweep_before_any_run(tmp_path):
    (tmp_path / "a_file").write_text("not a data dir")
    config = tmp_path / "sweep_config.py"
    config.write_text(
        "from configs.sweeps import demo\n\n\n"
        "def get_config():\n"
        "    config = demo.get_config()\n"
        f"    config.overrides['data']['data_dir'] = {str(tmp_path / 'a_file')!r}\n"
        "    return config\n"
    )
    sweep_dir = tmp_path / "sweep"
    result = sweep_py(f"--config={config}", f"--workdir={sweep_dir}")
    assert result.returncode == 4, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    # prepare_data's line, then the sweep's.
    last_two = result.stderr.strip().splitlines()[-2:]
    assert last_two[0].startswith(f"prepare_data: --data_dir={tmp_path / 'a_file'}: ")
    assert last_two[1].startswith(
        "sweep.py: stopped: dataset fashion_mnist could not be prepared (see above), "
        "so no run was started"
    )
    assert not list(sweep_dir.rglob("log.txt"))


@pytest.mark.slow
def test_the_slurm_executor_without_slurm_gets_one_line(tmp_path):
    result = sweep_py(
        "--config=configs/sweeps/demo.py",
        f"--workdir={tmp_path / 'sweep'}",
        "--executor=slurm",
        "--slurm_partition=gpu",
        "--slurm_time_min=60",
        env={**os.environ, "PATH": os.path.dirname(sys.executable)},  # No SLURM.
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "sweep.py: --executor=slurm: sbatch and srun not found on this machine, so "
        "it cannot submit SLURM jobs; run sweep.py on the cluster's login node, or "
        "use --executor=local"
    )
    assert not (tmp_path / "sweep").exists()
