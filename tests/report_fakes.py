"""Run dirs with known numbers, as a sweep and train.py write them, for the
report's tests."""

import json

import numpy as np

from tce_jax import run_files
from tce_jax.analysis import report_tables


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
            run_dir / run_files.predictions_file("train"),
            is_noisy=is_noisy,
            log_prob_label=log_p,
            prob_label=np.exp(log_p),
        )
    return rel_dir


def fill_sweep(tmp_path):
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


def write_benchmark(sweep_dir):
    """Three seeds of CE, TCE and GCE under clean labels and two noisy settings,
    with known differences: TCE is CE + 2 points under noise (exactly), GCE is
    CE + 1, 3, -1 points by seed (mean +1, not established)."""
    for seed, base in enumerate((0.60, 0.62, 0.64)):
        for rate in (0.0, 0.2, 0.4):
            write_run(sweep_dir, rate=rate, seed=seed, test=[base], val=[0.5])
            tce = base + (0.02 if rate else -0.005)
            write_run(
                sweep_dir,
                loss="tce",
                hparams={"alpha": 0.1},
                rate=rate,
                seed=seed,
                test=[tce],
                val=[0.5],
            )
            gce = base + (0.01, 0.03, -0.01)[seed]
            write_run(
                sweep_dir, loss="gce", rate=rate, seed=seed, test=[gce], val=[0.5]
            )
    return [r for r in report_tables.collect(sweep_dir) if r["status"] == "finished"]
