"""Tests of the report command: what it writes, and its one-line refusals."""

import csv
import pathlib
import subprocess
import sys

import pytest
from report_fakes import write_benchmark, write_run

from tce_jax import run_environment, run_files
from tce_jax.analysis import plan, report, report_markdown, report_tables


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
    assert not (out_dir / report.PREREGISTRATION_FILE).exists()

    # With a plan: its comparisons join the tables, and the pre-registration
    # check is written (here outside git: it says it cannot check).
    (sweep_dir / plan.PLAN_FILE).write_text(
        "```plan\nlosses: ce tce-alpha0.1\ncompare: tce-alpha0.1 tce-alpha0.001\n```\n"
    )
    report.write_report(sweep_dir)
    assert "| tce-alpha0.1 − tce-alpha0.001 |" in (out_dir / "results.md").read_text()
    check = (out_dir / report.PREREGISTRATION_FILE).read_text()
    assert check.startswith("pre-registration not checked: ")
    assert check in capsys.readouterr().out


def test_report_of_an_empty_sweep_says_so(tmp_path):
    out_dir = report.write_report(tmp_path)
    assert "No finished runs" in (out_dir / "results.md").read_text()


@pytest.mark.slow
def test_report_of_a_missing_directory_is_one_line_and_creates_nothing(tmp_path):
    missing = tmp_path / "no_sweep"
    result = subprocess.run(
        [sys.executable, "-m", "tce_jax.analysis.report", f"--sweep_dir={missing}"],
        cwd=pathlib.Path(__file__).resolve().parents[2],
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
    finished = [r for r in rows if r["status"] == "finished"]
    lines = report_markdown.difference_tables(finished)
    final = lines[lines.index("| difference | 0 | 0.4 |") :][:4]
    # Final: 0.9 - 0.9, 0.9 - 0.92 (mean -1, sd 1.414 points, t(0.975, 1)
    # = 12.706: ± 12.71); noise 0.4: 0.8 - 0.4, 0.8 - 0.6 (+30 ± 127.06).
    assert final == [
        "| difference | 0 | 0.4 |",
        "|---|---|---|",
        "| tce-alpha0.01 − ce | -1.00 [-13.71, +11.71] 0/2 "
        "| +30.00 [-97.06, +157.06] 2/2 |",
        "| TCE, alpha chosen on noisy validation − ce | -1.00 [-13.71, +11.71] 0/2 "
        "| +30.00 [-97.06, +157.06] 2/2 |",
    ]
    # Means 55.04 and 58.33 round to 55.0 and 58.3 (3.3 apart); the paired
    # difference of the unrounded values is 3.29, the same on both seeds, so
    # its interval has no width and excludes 0.
    for seed, (ce, tce) in enumerate([(0.5004, 0.5333), (0.6004, 0.6333)]):
        write_run(sweep_dir, rate=0.2, seed=seed, test=[ce], val=[0.5])
        write_run(sweep_dir, loss="gce", rate=0.2, seed=seed, test=[tce], val=[0.5])
    rows = [r for r in report_tables.collect(sweep_dir) if r["noise_rate"] == 0.2]
    (line, _) = [
        line for line in report_markdown.difference_tables(rows) if "gce" in line
    ]
    assert line == "| gce − ce | +3.29 [+3.29, +3.29] 2/2 ✓ |"


def test_noisy_mean_averages_each_seed_over_the_noisy_settings(tmp_path):
    rows = write_benchmark(tmp_path)
    tce = report_markdown.noisy_mean(rows, "tce-alpha0.1", "ce", "final_test_accuracy")
    assert tce.mean == pytest.approx(2.0) and tce.n == 3 and tce.ahead == 3
    assert tce.established
    gce = report_markdown.noisy_mean(rows, "gce", "ce", "final_test_accuracy")
    assert gce.mean == pytest.approx(1.0) and gce.ahead == 2
    assert not gce.established
    table = report_markdown.noisy_mean_table(rows, [("tce-alpha0.1", "gce")])
    assert "Mean over the 2 noisy settings (symmetric 0.2, symmetric 0.4)" in table[1]
    assert table[-1].startswith("| tce-alpha0.1 − gce | +1.00 [")
    # A seed that lacks a noisy setting of one loss is left out.
    (tmp_path / "fashion_mnist/symmetric-0.4/gce/seed2/summary.json").unlink()
    rows = [r for r in report_tables.collect(tmp_path) if r["status"] == "finished"]
    assert report_markdown.noisy_mean(rows, "gce", "ce", "final_test_accuracy").n == 2


def test_registered_targets_are_judged_met_or_missed_with_their_numbers(tmp_path):
    rows = write_benchmark(tmp_path)
    targets = plan.parse(
        "```plan\nlosses: ce\n"
        "target: each-noisy tce-alpha0.1 - ce low > 0\n"
        "target: clean tce-alpha0.1 - ce low > -1\n"
        "target: mean-noisy gce - ce low > 0\n"
        "target: each-noisy gce - ce mean >= 1\n"
        "target: clean sce - ce low > 0\n```\n"
    ).targets
    lines = report_markdown.target_lines(rows, targets)
    assert lines[0].startswith(
        "- `each-noisy tce-alpha0.1 - ce low > 0`: **met in 2 of 2**. "
        "symmetric 0.2: low +2.00"
    )
    assert lines[1].startswith(
        "- `clean tce-alpha0.1 - ce low > -1`: **met**. clean labels: low -0.50"
    )
    assert lines[2].startswith("- `mean-noisy gce - ce low > 0`: **missed**. ")
    assert lines[3].startswith("- `each-noisy gce - ce mean >= 1`: **met in 2 of 2**.")
    assert lines[4] == "- `clean sce - ce low > 0`: no runs to judge it yet"


def test_the_machines_behind_each_cell_are_listed_when_they_differ(tmp_path):
    rows = write_benchmark(tmp_path)
    assert report_tables.machines_table(rows)[-1] == (
        f"All {len(rows)} finished runs: machine A."
    )
    run_dir = tmp_path / "fashion_mnist/symmetric-0.4/ce/seed1"
    summary = run_files.read_summary(run_dir)
    summary[run_files.ENVIRONMENT_KEY] = run_environment.collect()
    run_files.write_summary(run_dir, summary)
    rows = [r for r in report_tables.collect(tmp_path) if r["status"] == "finished"]
    lines = report_tables.machines_table(rows)
    assert lines[0] == "- A: not recorded (made before runs recorded their machine)"
    assert lines[1].startswith("- B: ") and "signature" in lines[1]
    assert "| fashion_mnist symmetric 0.4 ce | A x2, B x1 |" in lines


def test_update_readme_rewrites_only_the_generated_block(sweep_dir):
    readme = sweep_dir / "README.md"
    readme.write_text("no block here\n")
    with pytest.raises(ValueError, match="no generated block"):
        report.update_readme(sweep_dir)
    readme.write_text(
        f"# Title\n\nbefore\n\n{report_markdown.README_BEGIN}\nstale\n"
        f"{report_markdown.README_END}\n\nafter\n"
    )
    report.update_readme(sweep_dir)
    block = report_markdown.readme_block(report_tables.collect(sweep_dir))
    assert readme.read_text() == f"# Title\n\nbefore\n\n{block}\n\nafter\n"
    assert "| tce-alpha0.01 − ce | -1.00 [-13.71, +11.71] 0/2 |" in block


COMMITTED_RESULTS = pathlib.Path(__file__).resolve().parents[2] / "results"


@pytest.mark.parametrize(
    "results_dir",
    sorted(
        path.parent
        for path in COMMITTED_RESULTS.glob("*/README.md")
        if report_markdown.README_BEGIN in path.read_text()
    ),
    ids=lambda path: path.name,
)
def test_results_readmes_include_the_tables_their_runs_give(results_dir):
    """The generated blocks match the committed runs: no table is retyped."""
    text = (results_dir / "README.md").read_text()
    begin = text.index(report_markdown.README_BEGIN)
    end = text.index(report_markdown.README_END) + len(report_markdown.README_END)
    assert text[begin:end] == report_markdown.readme_block(
        report_tables.collect(results_dir), report.registered_plan(results_dir)
    ), (
        "run: python3 -m tce_jax.analysis.report "
        f"--sweep_dir={results_dir} --update_readme"
    )


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
        tables = report_markdown.results_markdown(
            rows, report.registered_plan(sweep_dir)
        )
        assert committed == f"{expected}\n\n{tables}", sweep_dir


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
    tables = report_markdown.results_markdown(report_tables.collect(sweep_dir), None)
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
