"""Tests of the generated README headline: its numbers, its sentences, its block."""

import pathlib
import subprocess
import sys

import pytest
from report_fakes import write_benchmark, write_run

from tce_jax.analysis import headline, plan, report, report_markdown, report_tables

REPO = pathlib.Path(__file__).resolve().parents[2]
PLAN = (
    "```plan\nlosses: ce tce-alpha0.1 gce\n"
    "target: each-noisy tce-alpha0.1 - ce low > 0\n"
    "target: mean-noisy gce - ce low > 0\n```\n"
)


def test_the_headline_gives_accuracies_differences_and_what_is_established(
    tmp_path,
):
    rows = write_benchmark(tmp_path)
    block = headline.headline_block(rows, "results/x", plan.parse(PLAN))
    lines = block.split("\n")
    assert lines[0] == headline.begin_marker("results/x")
    assert lines[-1] == headline.END
    assert "| noise | seeds | ce | tce-alpha0.1 | TCE, chosen alpha | gce |" in lines
    # CE's seeds score 60, 62, 64: mean 62, half-width t(0.975, 2) * 2 / sqrt(3).
    assert "| clean | 3 | 62.0 ± 5.0 | 61.5 ± 5.0 | 61.5 ± 5.0 | 63.0 ± 5.0 |" in lines
    # TCE is CE - 0.5 points on clean labels and + 2 under noise on every seed
    # (an interval of no width: established); GCE + 1, + 3, - 1 (not).
    assert "| noise | tce-alpha0.1 | TCE, chosen alpha | gce |" in lines
    assert "| clean | -0.50 ± 0.00 ✓ | -0.50 ± 0.00 ✓ | +1.00 ± 4.97 |" in lines
    assert "| symmetric 0.4 | +2.00 ± 0.00 ✓ | +2.00 ± 0.00 ✓ | +1.00 ± 4.97 |" in lines
    assert (
        "| mean over the noisy settings | +2.00 ± 0.00 ✓ | +2.00 ± 0.00 ✓ "
        "| +1.00 ± 4.97 |"
    ) in lines
    assert (
        "- tce-alpha0.1: established ahead of CE at symmetric 0.2, symmetric 0.4, "
        "mean over the noisy settings; established behind CE at clean."
    ) in lines
    assert (
        "- gce: not established at clean, symmetric 0.2, symmetric 0.4, "
        "mean over the noisy settings."
    ) in lines
    assert "- `each-noisy tce-alpha0.1 - ce low > 0`: **met in 2 of 2**" in lines
    assert "- `mean-noisy gce - ce low > 0`: **missed**" in lines


def test_blocks_say_they_are_interim_while_a_run_is_not_finished(tmp_path):
    rows = write_benchmark(tmp_path)
    for block in (
        headline.headline_block(rows, "results/x"),
        report_markdown.readme_block(rows),
    ):
        assert "Interim" not in block
    write_run(
        tmp_path, loss="gce", rate=0.4, seed=3, test=[0.5], val=[0.5], finished=False
    )
    rows = report_tables.collect(tmp_path)
    line = (
        "**Interim: 27 of 28 runs finished.** Every number and verdict below "
        "comes from those runs and can change as the others finish."
    )
    assert headline.headline_block(rows, "results/x").split("\n")[2] == line
    assert report_markdown.readme_block(rows).split("\n")[2] == line


def test_a_setting_with_one_seed_is_marked_and_judged_nowhere(tmp_path):
    rows = [row for row in write_benchmark(tmp_path) if row["seed"] == 0]
    block = headline.headline_block(rows, "results/x")
    assert "| clean | -0.50 (n=1) | -0.50 (n=1) | +1.00 (n=1) |" in block
    assert "- gce: fewer than 2 seeds." in block
    assert "Targets" not in block


def test_update_headline_rewrites_only_the_block_and_refuses_a_file_without(
    tmp_path,
):
    sweep_dir = tmp_path / "sweep"
    rows = write_benchmark(sweep_dir)
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\nno block\n")
    with pytest.raises(ValueError, match="no generated headline; add the two"):
        report.update_headline(str(sweep_dir), readme)
    assert readme.read_text() == "# Title\n\nno block\n"
    readme.write_text(
        f"before\n{headline.BEGIN_PREFIX}stale -->\nold\n{headline.END}\n"
    )
    report.update_headline(str(sweep_dir), readme)
    expected = headline.headline_block(rows, str(sweep_dir))
    assert readme.read_text() == f"before\n{expected}\n"


@pytest.mark.slow
def test_the_headline_flag_on_a_file_without_a_block_is_one_line(tmp_path):
    write_benchmark(tmp_path / "sweep")
    readme = tmp_path / "README.md"
    readme.write_text("no block\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tce_jax.analysis.report",
            f"--sweep_dir={tmp_path / 'sweep'}",
            f"--headline={readme}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"report: {readme}: no generated headline")
    assert len(result.stderr.strip().splitlines()) == 1
    assert readme.read_text() == "no block\n"
