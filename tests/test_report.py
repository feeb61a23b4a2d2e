"""Tests of the report command: what it writes, and its one-line refusals."""

import csv
import pathlib
import subprocess
import sys

from report_fakes import write_run

from tce_jax import report, report_tables


def test_write_report_writes_csv_markdown_and_plots(sweep_dir, capsys):
    for alpha in (0.001, 0.1):  # Several alphas -> the alpha plot.
        for rate in (0.0, 0.4):
            write_run(
                sweep_dir,
                loss="tce",
                hparams={"alpha": alpha},
                rate=rate,
                test=[0.7, 0.75],
                val=[0.6, 0.7],
            )
    out_dir = report.write_report(sweep_dir)
    with open(out_dir / "results.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 12 and set(rows[0]) == set(report_tables.CSV_FIELDS)
    assert "| ce |" in (out_dir / "results.md").read_text()
    names = sorted(path.name for path in out_dir.glob("*.png"))
    assert names == [
        "accuracy_vs_alpha_fashion_mnist_symmetric.png",
        "accuracy_vs_noise_fashion_mnist_symmetric.png",
        "curves_fashion_mnist_symmetric-0.4.png",
        "curves_fashion_mnist_symmetric-0.png",
        "gradient_weights_fashion_mnist_symmetric-0.4.png",
    ]
    assert all(path.stat().st_size > 10_000 for path in out_dir.glob("*.png"))
    assert "Report in" in capsys.readouterr().out


def test_report_of_an_empty_sweep_says_so(tmp_path):
    out_dir = report.write_report(tmp_path)
    assert "No finished runs" in (out_dir / "results.md").read_text()


def test_report_of_a_missing_directory_is_one_line_and_creates_nothing(tmp_path):
    missing = tmp_path / "no_sweep"
    result = subprocess.run(
        [sys.executable, "-m", "tce_jax.report", f"--sweep_dir={missing}"],
        cwd=pathlib.Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"report: --sweep_dir={missing}: no such directory; allowed: a sweep "
        "directory (the --workdir of sweep.py)"
    )
    assert not missing.exists()
