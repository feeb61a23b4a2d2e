"""python3 -m tce_jax.prepare_data: bad flags get one line and touch nothing."""

import pathlib
import subprocess
import sys

import pytest


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "expected", "status"),
    [
        (
            ["--data_dir={tmp}/a_file"],
            "prepare_data: --data_dir={tmp}/a_file: is a file; allowed: a directory",
            2,
        ),
        (
            ["--dataset=imagenet"],
            "flag --dataset=imagenet: value should be one of <cifar10|cifar100|",
            1,
        ),
    ],
)
def test_prepare_data_rejects_bad_flags_with_one_line(tmp_path, args, expected, status):
    (tmp_path / "a_file").write_text("keep me")
    result = subprocess.run(
        [sys.executable, "-m", "tce_jax.prepare_data"]
        + [arg.format(tmp=tmp_path) for arg in args],
        cwd=pathlib.Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == status
    assert "Traceback" not in result.stderr
    assert expected.format(tmp=tmp_path) in result.stderr
    assert (tmp_path / "a_file").read_text() == "keep me"
