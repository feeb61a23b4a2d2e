"""python3 -m tce_jax.data.prepare_data: bad flags get one line and touch nothing;
two runs at once on a fresh data dir prepare the dataset once."""

import pathlib
import subprocess
import sys

import pytest

from tce_jax.data import fashion_mnist_debian

ROOT = pathlib.Path(__file__).resolve().parents[2]


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
        [sys.executable, "-m", "tce_jax.data.prepare_data"]
        + [arg.format(tmp=tmp_path) for arg in args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == status
    assert "Traceback" not in result.stderr
    assert expected.format(tmp=tmp_path) in result.stderr
    assert (tmp_path / "a_file").read_text() == "keep me"


@pytest.mark.slow
def test_two_runs_at_once_on_a_fresh_data_dir_prepare_it_once(tmp_path):
    if not fashion_mnist_debian.is_available():
        pytest.skip("Debian's Fashion-MNIST files are not installed")
    data_dir = tmp_path / "tfds"
    command = [
        sys.executable,
        "-m",
        "tce_jax.data.prepare_data",
        "--dataset=fashion_mnist",
        f"--data_dir={data_dir}",
    ]
    runs = [
        subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    for run, (stdout, stderr) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, stderr[-3000:]
        assert stdout.splitlines()[-1] == (
            f"fashion_mnist: tfds fashion_mnist_debian in "
            f"{data_dir}/fashion_mnist_debian/1.0.0 (train: 60000, test: 10000)"
        )
    # One waited for the other and reused what it built: one version, no
    # half-built leftovers.
    assert sum("Waiting for another process" in stderr for _, stderr in outputs) == 1
    assert sorted(p.name for p in (data_dir / "fashion_mnist_debian").iterdir()) == [
        "1.0.0"
    ]
