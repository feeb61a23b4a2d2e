"""Tests of the report's tables on synthetic run dirs with known numbers."""

import json
import math
import pathlib
import subprocess
import sys

import pytest
from report_fakes import write_run

from tce_jax import run_files
from tce_jax.analysis import report_markdown, report_tables


def test_rows_hold_final_and_validation_selected_accuracy(sweep_dir):
    rows = {row["run"]: row for row in report_tables.collect(sweep_dir)}
    ce = rows["fashion_mnist/symmetric-0.4/ce/seed0"]
    assert ce["status"] == run_files.FINISHED
    assert ce["final_test_accuracy"] == 0.40
    assert ce["best_val_epoch"] == 2 and ce["best_val_test_accuracy"] == 0.60
    assert ce["peak_test_accuracy"] == 0.90
    assert ce["cpu_seconds"] == 42.5
    tied = rows["fashion_mnist/symmetric-0.4/ce/seed1"]
    assert tied["best_val_epoch"] == 2 and tied["best_val_test_accuracy"] == 0.70


def test_mean_and_sample_std():
    mean, std, n = report_tables.mean_std([0.4, 0.6, None])
    assert (mean, n) == (0.5, 2) and std == pytest.approx(math.sqrt(0.02))
    mean, std, n = report_tables.mean_std([0.7])
    assert mean == 0.7 and math.isnan(std) and n == 1
    assert report_tables.mean_std([])[2] == 0


def test_markdown_table_cells(sweep_dir):
    tables = report_markdown.results_markdown(report_tables.collect(sweep_dir))
    lines = tables.splitlines()
    assert "| loss | 0 | 0.4 |" in lines
    ce_row = next(line for line in lines if line.startswith("| ce |"))
    # Cells are mean ± t(0.975, n - 1) sd / sqrt(n), t(0.975, 1) = 12.706:
    # noise 0: final 0.90, 0.92 (sd 0.0141 -> ± 12.7); selected the same.
    # noise 0.4: final 0.40, 0.60 (sd 0.141 -> ± 127.1); selected 0.60, 0.70.
    assert ce_row == (
        "| ce | 91.0 ± 12.7 / 91.0 ± 12.7 (n=2) | 50.0 ± 127.1 / 65.0 ± 63.5 (n=2) |"
    )
    tce_row = next(line for line in lines if line.startswith("| tce-alpha0.01 |"))
    assert "80.0 ± 0.0 / 80.0 ± 0.0 (n=2)" in tce_row
    # Memorisation table: noisy columns only.
    assert "| ce | 30.0 ± 0.0 |" in lines
    # Fall from the highest test accuracy to the final one, every rate:
    # noise 0: 0 and 0; noise 0.4: 0.90 -> 0.40 and 0.95 -> 0.60.
    assert "| ce | 0.0 ± 0.0 | 42.5 ± 95.3 |" in lines
    assert "| tce-alpha0.01 | 0.0 ± 0.0 | 0.0 ± 0.0 |" in lines


def test_one_seed_shows_the_value_alone():
    assert report_tables.percent_cell([0.812, None]) == "81.2"
    assert report_tables.percent_cell([None]) == "–"


def test_runs_not_finished_are_listed_by_state_not_averaged(sweep_dir):
    """The report names a run's state as sweep.py --status does (run_files)."""
    for seed, kwargs in enumerate(({"failed": True}, {}, {})):
        rel_dir = write_run(
            sweep_dir,
            loss="gce",
            hparams={"q": 0.7},
            seed=seed,
            test=[0.1],
            val=[0.1],
            finished=False,
            **kwargs,
        )
    (sweep_dir / rel_dir / run_files.HEARTBEAT_FILE).write_text("{}")  # Seed 2.
    prepared = sweep_dir / rel_dir.replace("seed2", "seed3")
    prepared.mkdir()
    (prepared / run_files.RUN_INFO_FILE).write_text(
        (sweep_dir / rel_dir / run_files.RUN_INFO_FILE).read_text()
    )
    runs = [row["run"] for row in report_tables.collect(sweep_dir)]
    never_prepared = "fashion_mnist/symmetric-0.4/gce-q0.7/seed4"
    (sweep_dir / run_files.SWEEP_INFO_FILE).write_text(
        json.dumps({"runs": [*runs, never_prepared]})
    )
    rows = report_tables.collect(sweep_dir)
    status = {row["run"]: row["status"] for row in rows if "gce" in row["run"]}
    assert list(status.values()) == [
        run_files.FAILED,  # error.txt
        run_files.FAILED,  # stopped without an exit status
        run_files.RUNNING,  # fresh heartbeat
        run_files.MISSING,  # prepared, never started
        run_files.MISSING,  # no directory
    ]
    tables = report_markdown.results_markdown(rows)
    assert "| gce-q0.7 |" not in tables
    assert "2 failed, 2 missing, 1 running run(s)" in tables


def test_tables_need_no_matplotlib(sweep_dir):
    """Tables can be computed where matplotlib is not installed."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'matplotlib':\n"
        "            raise ImportError('matplotlib is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from tce_jax.analysis import report_markdown, report_tables\n"
        f"rows = report_tables.collect({str(sweep_dir)!r})\n"
        "print(report_markdown.results_markdown(rows).splitlines()[0])\n"
        "assert 'matplotlib' not in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=pathlib.Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("### fashion_mnist, symmetric noise")


def test_tce_alpha_is_chosen_on_noisy_validation_never_on_test(tmp_path):
    """Per seed, the alpha with the best noisy-val accuracy; ties to the smaller."""
    runs = {
        # seed: {alpha: (test per epoch, val per epoch)}
        # Seed 0: alpha 0.3 validates better (0.60 > 0.55) -> final 0.66, sel 0.70.
        0: {0.1: ([0.60, 0.62], [0.50, 0.55]), 0.3: ([0.70, 0.66], [0.60, 0.58])},
        # Seed 1: alpha 0.3 tests far better but validates worse -> alpha 0.1,
        # final 0.68, selected (epoch 1) 0.64.
        1: {0.1: ([0.64, 0.68], [0.62, 0.61]), 0.3: ([0.90, 0.95], [0.50, 0.61])},
        # Seed 2: both validate at 0.57 -> the smaller alpha, final 0.60, sel 0.58.
        2: {0.1: ([0.58, 0.60], [0.57, 0.57]), 0.3: ([0.80, 0.81], [0.50, 0.57])},
    }
    for seed, by_alpha in runs.items():
        for alpha, (test, val) in by_alpha.items():
            write_run(
                tmp_path,
                loss="tce",
                hparams={"alpha": alpha},
                seed=seed,
                test=test,
                val=val,
                predictions=False,
            )
    # Not candidates: an unfinished TCE run and a CE run, whatever they validate at.
    write_run(
        tmp_path,
        loss="tce",
        hparams={"alpha": 0.001},
        seed=2,
        test=[0.99],
        val=[0.99],
        finished=False,
    )
    write_run(tmp_path, seed=0, test=[0.99, 0.99], val=[0.99, 0.99])
    rows = report_tables.collect(tmp_path)

    chosen = report_tables.choose_tce_alpha_on_validation(rows)
    assert sorted((row["seed"], report_tables.tce_alpha(row)) for row in chosen) == [
        (0, 0.3),
        (1, 0.1),
        (2, 0.1),
    ]
    lines = report_markdown.results_markdown(rows).splitlines()
    row = next(
        line for line in lines if line.startswith(f"| {report_tables.CHOSEN_ALPHA_ROW}")
    )
    # Final 0.66, 0.68, 0.60 (sd 4.16 points, t(0.975, 2) = 4.303: ± 10.3);
    # selected 0.70, 0.64, 0.58 (sd 6.0: ± 14.9).
    assert row == (
        f"| {report_tables.CHOSEN_ALPHA_ROW} | "
        "64.7 ± 10.3 / 64.0 ± 14.9 (n=3; alpha 0.1 x2, 0.3 x1) |"
    )
    # It sits right below the TCE rows.
    table = [line for line in lines if line.startswith("| ")][:5]
    assert [line.split(" | ")[0] for line in table] == [
        "| loss",
        "| ce",
        "| tce-alpha0.1",
        "| tce-alpha0.3",
        f"| {report_tables.CHOSEN_ALPHA_ROW}",
    ]


def test_no_chosen_alpha_row_without_tce_runs(tmp_path):
    write_run(tmp_path, test=[0.5], val=[0.5])
    assert report_tables.CHOSEN_ALPHA_ROW not in report_markdown.results_markdown(
        report_tables.collect(tmp_path)
    )


def test_collect_many_joins_other_sweeps_and_refuses_a_cell_found_twice(
    sweep_dir, tmp_path_factory
):
    import shutil

    other = tmp_path_factory.mktemp("other") / "sweep"
    shutil.copytree(sweep_dir, other)
    with pytest.raises(ValueError, match="are the same cell"):
        report_tables.collect_many(sweep_dir, [other])
    rows = report_tables.collect_many(sweep_dir, [])
    assert rows == report_tables.collect(sweep_dir)
