"""The code base passes the project's ruff lint and format configuration."""

import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "args", [["check", "--no-fix"], ["format", "--check"]], ids=["lint", "format"]
)
def test_ruff(args):
    ruff = shutil.which("ruff")
    assert ruff, "ruff is missing: install the test extra (bash scripts/setup.sh test)"
    result = subprocess.run(
        [ruff, *args, "."], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
