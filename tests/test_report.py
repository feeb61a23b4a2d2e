"""Tests of the report command: what it writes, and its one-line refusals."""

import csv
import pathlib
import subprocess
import sys

import pytest
from report_fakes import write_run

from tce_jax import report, report_tables, run_environment, run_files


@pytest.mark.slow
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


@pytest.mark.slow
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


def test_differences_to_ce_are_paired_by_seed_from_unrounded_values(sweep_dir):
    rows = report_tables.collect(sweep_dir)
    assert report_tables.difference_table(
        [r for r in rows if r["status"] == "finished"]
    ) == [
        "| loss | 0 | 0.4 |",
        "|---|---|---|",
        # Final: 0.9 - 0.9, 0.9 - 0.92; selected (noisy-val epochs) likewise.
        "| tce-alpha0.01 | -1.00 [+0.0 -2.0] / -1.00 [+0.0 -2.0] "
        # Final: 0.8 - 0.4, 0.8 - 0.6; selected: 0.8 - 0.6, 0.8 - 0.7.
        "| +30.00 [+40.0 +20.0] / +15.00 [+20.0 +10.0] |",
        "| TCE, alpha chosen on noisy validation | -1.00 [+0.0 -2.0] / -1.00 "
        "[+0.0 -2.0] | +30.00 [+40.0 +20.0] / +15.00 [+20.0 +10.0] |",
    ]
    # Means 55.04 and 58.33 round to 55.0 and 58.3 (3.3 apart); the paired
    # difference of the unrounded values is 3.29.
    for seed, (ce, tce) in enumerate([(0.5004, 0.5333), (0.6004, 0.6333)]):
        write_run(sweep_dir, rate=0.2, seed=seed, test=[ce], val=[0.5])
        write_run(sweep_dir, loss="gce", rate=0.2, seed=seed, test=[tce], val=[0.5])
    rows = [r for r in report_tables.collect(sweep_dir) if r["noise_rate"] == 0.2]
    (line,) = [line for line in report_tables.difference_table(rows) if "gce" in line]
    assert line == "| gce | +3.29 [+3.3 +3.3] / +3.29 [+3.3 +3.3] |"


def test_update_readme_rewrites_only_the_generated_block(sweep_dir):
    readme = sweep_dir / "README.md"
    readme.write_text("no block here\n")
    with pytest.raises(ValueError, match="no generated block"):
        report.update_readme(sweep_dir)
    readme.write_text(
        f"# Title\n\nbefore\n\n{report_tables.README_BEGIN}\nstale\n"
        f"{report_tables.README_END}\n\nafter\n"
    )
    report.update_readme(sweep_dir)
    block = report_tables.readme_block(report_tables.collect(sweep_dir))
    assert readme.read_text() == f"# Title\n\nbefore\n\n{block}\n\nafter\n"
    assert "| tce-alpha0.01 | -1.00 [+0.0 -2.0]" in block


COMMITTED_RESULTS = pathlib.Path(__file__).resolve().parents[1] / "results"


@pytest.mark.parametrize(
    "results_dir",
    sorted(
        path.parent
        for path in COMMITTED_RESULTS.glob("*/README.md")
        if report_tables.README_BEGIN in path.read_text()
    ),
    ids=lambda path: path.name,
)
def test_results_readmes_include_the_tables_their_runs_give(results_dir):
    """The generated blocks match the committed runs: no table is retyped."""
    text = (results_dir / "README.md").read_text()
    begin = text.index(report_tables.README_BEGIN)
    end = text.index(report_tables.README_END) + len(report_tables.README_END)
    assert text[begin:end] == report_tables.readme_block(
        report_tables.collect(results_dir)
    ), f"run: python3 -m tce_jax.report --sweep_dir={results_dir} --update_readme"


def test_committed_reports_regenerate_identically():
    # Every committed sweep dir (a grid, or one part of a grid in parts), with
    # the sweeps its report joined (--also, named in its first line).
    sweep_dirs = sorted(path.parent for path in COMMITTED_RESULTS.glob("*/sweep.json"))
    sweep_dirs += sorted(
        path.parent for path in COMMITTED_RESULTS.glob("*/*/sweep.json")
    )
    assert len(sweep_dirs) >= 13
    repo = COMMITTED_RESULTS.parent
    for sweep_dir in sweep_dirs:
        committed = (sweep_dir / report.REPORT_DIR / "results.md").read_text()
        title = committed.splitlines()[0]
        _, _, joined = title.partition(" with ")
        also = joined.split(", ") if joined else []
        rows = report_tables.collect_many(sweep_dir, [repo / path for path in also])
        relative = sweep_dir.relative_to(repo)
        expected = report.results_title(relative, also)
        assert committed == f"{expected}\n\n{report_tables.markdown_tables(rows)}"


@pytest.mark.slow
def test_report_warns_when_runs_come_from_several_machine_types(sweep_dir, caplog):
    # Every run has no record (one unknown machine): no warning.
    with caplog.at_level("WARNING"):
        report.write_report(sweep_dir)
    assert "machine types" not in caplog.text
    run_dir = sweep_dir / "fashion_mnist/symmetric-0.4/ce/seed1"
    summary = run_files.read_summary(run_dir)
    # A signature stored by older code is not trusted: it is derived anew.
    environment = dict(run_environment.collect(), machine_signature="stale")
    summary[run_files.ENVIRONMENT_KEY] = environment
    run_files.write_summary(run_dir, summary)
    with caplog.at_level("WARNING"):
        report.write_report(sweep_dir)
    assert "were made on 2 machine types or software stacks" in caplog.text
    signature = run_environment.machine_signature(environment)
    assert f"{signature}: 1 run(s), e.g. fashion_mnist/symmetric-0.4/ce/seed1" in (
        caplog.text
    )


@pytest.mark.slow
def test_report_names_the_platforms_of_accelerator_runs_and_cpu_fallbacks(
    sweep_dir, caplog
):
    """A CPU-only report stays title + tables; with GPU runs it says where the
    runs ran, and a run that fell back to the CPU gets a warning."""
    cpu = {"platform": "cpu", "device_count": 1, "device_kind": "cpu"}
    gpu = {"platform": "gpu", "device_count": 1, "device_kind": "NVIDIA A100"}
    finished = [row["run"] for row in report_tables.collect(sweep_dir)]

    def record(environments):
        for run, environment in zip(finished, environments, strict=True):
            summary = run_files.read_summary(sweep_dir / run)
            summary[run_files.ENVIRONMENT_KEY] = environment
            run_files.write_summary(sweep_dir / run, summary)

    record([cpu] * len(finished))
    out = report.write_report(sweep_dir)
    tables = report_tables.markdown_tables(report_tables.collect(sweep_dir))
    title = report.results_title(sweep_dir)
    assert (out / "results.md").read_text() == f"{title}\n\n{tables}"

    record([cpu] + [gpu] * (len(finished) - 1))
    with caplog.at_level("WARNING"):
        out = report.write_report(sweep_dir)
    lines = (out / "results.md").read_text().splitlines()
    assert lines[2] == (
        f"platforms: 1 run(s) on cpu (1 x cpu), {len(finished) - 1} run(s) on gpu "
        "(1 x NVIDIA A100)"
    )
    assert lines[4].startswith("1 run(s) ran on the CPU while the others had a GPU")
    assert f"e.g. {finished[0]}" in caplog.text
