"""Tests of the report on synthetic run dirs with known numbers."""

import csv
import json
import math
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from tce_jax import losses, report, run_files, selection


def write_run(
    sweep_dir,
    *,
    loss="ce",
    hparams=None,
    rate=0.4,
    seed=0,
    test,
    val,
    finished=True,
    failed=False,
    predictions=True,
):
    """A run dir as the sweep and train.py write it; test/val are per-epoch lists."""
    hparams = hparams or {}
    label = run_files.loss_label(loss, hparams)
    rel_dir = f"fashion_mnist/symmetric-{rate:g}/{label}/seed{seed}"
    run_dir = sweep_dir / rel_dir
    run_dir.mkdir(parents=True)
    info = {
        "dataset": "fashion_mnist",
        "noise_kind": "symmetric",
        "noise_rate": rate,
        "loss": label,
        "loss_name": loss,
        "loss_hparams": hparams,
        "seed": seed,
    }
    (run_dir / run_files.RUN_INFO_FILE).write_text(json.dumps(info))
    # Two attempts (stopped, then resumed): the report sums their CPU time.
    (run_dir / run_files.TIMING_FILE).write_text(
        '{"cpu_seconds": 30.5}\n{"cpu_seconds": 12.0}\n'
    )
    with open(run_dir / run_files.METRICS_FILE, "w") as metrics:
        for epoch, (test_acc, val_acc) in enumerate(zip(test, val, strict=True), 1):
            record = {
                "epoch": epoch,
                "test_accuracy": test_acc,
                "val_accuracy": val_acc,
                "train_clean_accuracy": 0.8,
                "memorized_fraction": 0.1 * epoch,
            }
            metrics.write(json.dumps(record) + "\n")
    if finished:
        summary = {
            "final_test_accuracy": test[-1],
            "memorized_fraction": 0.3,
            "train_clean_accuracy": 0.8,
            "realised_noise_rate": rate,
            "wall_seconds": 10.0,
            "git_commit": "abc",
        }
        (run_dir / run_files.SUMMARY_FILE).write_text(json.dumps(summary))
    if failed:
        (run_dir / run_files.ERROR_FILE).write_text("exit code 1\n")
    if predictions and finished:
        rng = np.random.default_rng(seed)
        is_noisy = rng.random(500) < rate
        # Clean examples fit (p_y near 1), mislabelled ones contradicted.
        log_p = np.where(is_noisy, rng.uniform(-8, -1, 500), rng.uniform(-0.2, 0, 500))
        np.savez(
            run_dir / report.PREDICTIONS_FILE,
            is_noisy=is_noisy,
            log_prob_label=log_p,
            prob_label=np.exp(log_p),
        )
    return rel_dir


@pytest.fixture
def sweep_dir(tmp_path):
    """CE and TCE at noise 0 and 0.4, 2 seeds; numbers chosen to be checkable."""
    # CE at 0.4: val peaks at epoch 2 while test peaks at epoch 3 -> selection
    # must take epoch 2's test accuracy, not the test maximum.
    write_run(
        tmp_path,
        rate=0.4,
        seed=0,
        test=[0.50, 0.60, 0.90, 0.40],
        val=[0.3, 0.7, 0.5, 0.2],
    )
    write_run(
        tmp_path,
        rate=0.4,
        seed=1,
        test=[0.50, 0.70, 0.95, 0.60],
        val=[0.3, 0.7, 0.5, 0.7],
    )  # Tie: epochs 2 and 4.
    write_run(tmp_path, rate=0.0, seed=0, test=[0.8, 0.9], val=[0.8, 0.9])
    write_run(tmp_path, rate=0.0, seed=1, test=[0.8, 0.92], val=[0.8, 0.9])
    for seed in (0, 1):
        write_run(
            tmp_path,
            loss="tce",
            hparams={"alpha": 0.01},
            rate=0.4,
            seed=seed,
            test=[0.6, 0.8],
            val=[0.5, 0.6],
        )
        write_run(
            tmp_path,
            loss="tce",
            hparams={"alpha": 0.01},
            rate=0.0,
            seed=seed,
            test=[0.8, 0.9],
            val=[0.8, 0.9],
        )
    return tmp_path


def test_selection_uses_noisy_validation_never_test():
    metrics = [
        {"epoch": 1, "val_accuracy": 0.5, "test_accuracy": 0.99},
        {"epoch": 2, "val_accuracy": 0.6, "test_accuracy": 0.10},
        {"epoch": 3, "val_accuracy": 0.6, "test_accuracy": 0.50},
    ]
    assert selection.select_on_validation(metrics)["epoch"] == 2
    assert selection.select_on_validation([{"epoch": 1, "val_accuracy": None}]) is None


def test_rows_hold_final_and_validation_selected_accuracy(sweep_dir):
    rows = {row["run"]: row for row in report.collect(sweep_dir)}
    ce = rows["fashion_mnist/symmetric-0.4/ce/seed0"]
    assert ce["status"] == report.FINISHED
    assert ce["final_test_accuracy"] == 0.40
    assert ce["best_val_epoch"] == 2 and ce["best_val_test_accuracy"] == 0.60
    assert ce["peak_test_accuracy"] == 0.90
    assert ce["cpu_seconds"] == 42.5
    tied = rows["fashion_mnist/symmetric-0.4/ce/seed1"]
    assert tied["best_val_epoch"] == 2 and tied["best_val_test_accuracy"] == 0.70


def test_mean_and_sample_std():
    mean, std, n = report.mean_std([0.4, 0.6, None])
    assert (mean, n) == (0.5, 2) and std == pytest.approx(math.sqrt(0.02))
    mean, std, n = report.mean_std([0.7])
    assert mean == 0.7 and math.isnan(std) and n == 1
    assert report.mean_std([])[2] == 0


def test_markdown_table_cells(sweep_dir):
    tables = report.markdown_tables(report.collect(sweep_dir))
    lines = tables.splitlines()
    assert "| loss | 0 | 0.4 |" in lines
    ce_row = next(line for line in lines if line.startswith("| ce |"))
    # noise 0: final 0.90, 0.92; selected (val 0.9 at epoch 2) the same.
    # noise 0.4: final 0.40, 0.60 -> 50.0 ± 14.1; selected 0.60, 0.70 -> 65.0 ± 7.1.
    assert ce_row == (
        "| ce | 91.0 ± 1.4 / 91.0 ± 1.4 (n=2) | 50.0 ± 14.1 / 65.0 ± 7.1 (n=2) |"
    )
    tce_row = next(line for line in lines if line.startswith("| tce-alpha0.01 |"))
    assert "80.0 ± 0.0 / 80.0 ± 0.0 (n=2)" in tce_row
    # Memorisation table: noisy columns only.
    assert "| ce | 30.0 ± 0.0 |" in lines
    # Fall from the highest test accuracy to the final one, every rate:
    # noise 0: 0 and 0; noise 0.4: 0.90 -> 0.40 and 0.95 -> 0.60.
    assert "| ce | 0.0 ± 0.0 | 42.5 ± 10.6 |" in lines
    assert "| tce-alpha0.01 | 0.0 ± 0.0 | 0.0 ± 0.0 |" in lines


def test_missing_failed_and_unfinished_runs_are_listed_not_averaged(sweep_dir):
    write_run(
        sweep_dir,
        loss="gce",
        hparams={"q": 0.7},
        rate=0.4,
        seed=0,
        test=[0.1],
        val=[0.1],
        finished=False,
        failed=True,
    )
    write_run(
        sweep_dir,
        loss="gce",
        hparams={"q": 0.7},
        rate=0.4,
        seed=1,
        test=[0.2],
        val=[0.2],
        finished=False,
    )
    runs = [row["run"] for row in report.collect(sweep_dir)]
    missing = "fashion_mnist/symmetric-0.4/gce-q0.7/seed2"
    (sweep_dir / run_files.SWEEP_INFO_FILE).write_text(
        json.dumps({"runs": [*runs, missing]})
    )
    rows = report.collect(sweep_dir)
    status = {row["run"]: row["status"] for row in rows}
    assert status[missing] == report.MISSING
    assert status["fashion_mnist/symmetric-0.4/gce-q0.7/seed0"] == report.FAILED
    assert status["fashion_mnist/symmetric-0.4/gce-q0.7/seed1"] == report.UNFINISHED
    tables = report.markdown_tables(rows)
    assert "| gce-q0.7 |" not in tables
    assert "1 failed, 1 missing, 1 unfinished run(s)" in tables


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
    assert len(rows) == 12 and set(rows[0]) == set(report.CSV_FIELDS)
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


def test_gradient_weight_from_saved_log_probs_is_the_library_weight():
    """The report's weight from log p_y alone equals losses.tce_gradient_weight
    on the full logits, from examples the model fits to ones it contradicts."""
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=6.0, size=(64, 10)).astype(np.float32)
    logits[0] = [40.0] + [0.0] * 9  # p_y rounds to 1 in float32.
    labels = rng.integers(0, 10, 64).astype(np.int32)
    labels[0] = 0
    log_p = np.take_along_axis(
        np.asarray(jax.nn.log_softmax(logits)), labels[:, None], axis=-1
    )[:, 0]
    for alpha in (0.0, 0.01, 0.1, 0.3):
        expected = np.asarray(losses.tce_gradient_weight(logits, labels, alpha=alpha))
        got = report.tce_gradient_weight_from_log_prob(log_p, alpha)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-30)
        assert expected.min() < 0.1 < 0.9 < expected.max() or alpha == 0


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
    rows = report.collect(tmp_path)

    chosen = report.choose_tce_alpha_on_validation(rows)
    assert sorted((row["seed"], report.tce_alpha(row)) for row in chosen) == [
        (0, 0.3),
        (1, 0.1),
        (2, 0.1),
    ]
    lines = report.markdown_tables(rows).splitlines()
    row = next(
        line for line in lines if line.startswith(f"| {report.CHOSEN_ALPHA_ROW}")
    )
    # Final 0.66, 0.68, 0.60: 64.7 ± 4.2; selected 0.70, 0.64, 0.58: 64.0 ± 6.0.
    assert row == (
        f"| {report.CHOSEN_ALPHA_ROW} | "
        "64.7 ± 4.2 / 64.0 ± 6.0 (n=3; alpha 0.1 x2, 0.3 x1) |"
    )
    # It sits right below the TCE rows.
    table = [line for line in lines if line.startswith("| ")][:5]
    assert [line.split(" | ")[0] for line in table] == [
        "| loss",
        "| ce",
        "| tce-alpha0.1",
        "| tce-alpha0.3",
        f"| {report.CHOSEN_ALPHA_ROW}",
    ]


def test_no_chosen_alpha_row_without_tce_runs(tmp_path):
    write_run(tmp_path, test=[0.5], val=[0.5])
    assert report.CHOSEN_ALPHA_ROW not in report.markdown_tables(
        report.collect(tmp_path)
    )


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
