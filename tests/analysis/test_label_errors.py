"""Tests of label-error ranking: exact rankings, metrics, cross-fitting, bad input."""

import csv
import json
import os
import pathlib
import subprocess
import sys

import ml_collections
import numpy as np
import pytest

from tce_jax import run_files
from tce_jax.analysis import label_errors
from tce_jax.sweeps import grid

REPO = pathlib.Path(__file__).resolve().parents[2]
NUM_CLASSES = 4


def _predictions(index, label, clean_label, probs):
    probs = np.asarray(probs, dtype=np.float32)
    label = np.asarray(label)
    prob_label = probs[np.arange(len(label)), label]
    return {
        "index": np.asarray(index),
        "label": label,
        "clean_label": np.asarray(clean_label),
        "is_noisy": label != np.asarray(clean_label),
        "prob_label": prob_label,
        "log_prob_label": np.log(prob_label),
        "probs": probs,
    }


def _save(run_dir, split, predictions, *, at_best_val=False):
    run_dir.mkdir(parents=True, exist_ok=True)
    np.savez(
        run_dir / run_files.predictions_file(split, at_best_val=at_best_val),
        **predictions,
    )


def _constructed_run(run_dir):
    """Five examples whose ranking is known: scores 0.9, 0.1, 0.5, 0.1, 0.3."""
    label = np.array([0, 1, 2, 3, 0])
    clean = np.array([0, 2, 2, 0, 0])  # Examples 1 and 3 are mislabelled.
    probs = np.full((5, NUM_CLASSES), 0.0)
    for i, (given, score) in enumerate(
        zip(label, (0.9, 0.1, 0.5, 0.1, 0.3), strict=True)
    ):
        probs[i, given] = score
        probs[i, (given + 1) % NUM_CLASSES] = 1.0 - score
    _save(run_dir, "train", _predictions(np.arange(5) * 7, label, clean, probs))


def test_run_ranking_is_exact_for_a_constructed_case(tmp_path):
    _constructed_run(tmp_path)
    (line,) = label_errors.rank_run(tmp_path)
    with (tmp_path / "label_errors.csv").open() as f:
        rows = list(csv.DictReader(f))
    # Lowest score first; the tie at 0.1 goes to the smaller example index.
    assert [int(r["index"]) for r in rows] == [7, 21, 28, 14, 0]
    assert [int(r["rank"]) for r in rows] == [1, 2, 3, 4, 5]
    assert [r["given_label"] for r in rows] == ["1", "3", "0", "2", "0"]
    assert [r["predicted_label"] for r in rows] == ["2", "0", "1", "2", "0"]
    assert [float(r["score"]) for r in rows] == pytest.approx([0.1, 0.1, 0.3, 0.5, 0.9])
    # Both corrupted labels rank above every clean one.
    assert "2 corrupted labels: AUROC 1.000, AP 1.000, precision@2 1.000" in line
    assert not (tmp_path / "label_errors_best_val.csv").exists()


def test_detection_metrics_match_their_definitions():
    rng = np.random.default_rng(0)
    is_noisy = rng.random(300) < 0.3
    scores = rng.random(300) - 0.3 * is_noisy
    got = label_errors.detection_metrics(is_noisy, scores)
    # AUROC: the chance that a corrupted label scores below a clean one.
    pairs = scores[is_noisy][:, None] < scores[~is_noisy][None, :]
    assert got["auroc"] == pytest.approx(pairs.mean(), abs=1e-12)
    # AP: mean over corrupted labels of the precision at their rank.
    order = np.argsort(scores)
    hits = is_noisy[order]
    precision = np.cumsum(hits) / np.arange(1, hits.size + 1)
    assert got["average_precision"] == pytest.approx(precision[hits].mean())
    k = int(is_noisy.sum())
    assert got["k"] == k
    assert got["precision_at_k"] == pytest.approx(hits[:k].mean())
    clean_only = label_errors.detection_metrics(np.zeros(4, bool), np.arange(4.0))
    assert np.isnan(clean_only["auroc"]) and clean_only["k"] == 0


def test_old_runs_without_full_probabilities_still_rank(tmp_path):
    predictions = _predictions([0, 1], [0, 1], [0, 0], [[0.8, 0.2], [0.6, 0.4]])
    del predictions["probs"]
    _save(tmp_path, "train", predictions)
    label_errors.rank_run(tmp_path)
    rows = list(csv.DictReader((tmp_path / "label_errors.csv").open()))
    assert [r["index"] for r in rows] == ["1", "0"]
    assert {r["predicted_label"] for r in rows} == {""}


def test_run_without_predictions_names_the_file(tmp_path):
    with pytest.raises(
        label_errors.InputError, match=r"train_predictions\.npz: no such"
    ):
        label_errors.rank_run(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--run_dir={missing}"], "--run_dir={missing}: no such directory"),
        (["--run_dir=a", "--sweep_dir=b"], "give exactly one of --run_dir"),
        (["--sweep_dir={missing}"], "--sweep_dir={missing}: no such directory"),
    ],
)
def test_bad_flags_get_one_line_and_exit_2(args, message, tmp_path):
    missing = tmp_path / "missing"
    result = subprocess.run(
        [sys.executable, "-m", "tce_jax.analysis.label_errors"]
        + [arg.format(missing=missing) for arg in args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    message = message.format(missing=missing)
    assert message in result.stderr


# ----------------------------------------------------------------------------
# Sweep comparison on fake runs.

TRAIN_INDEX = np.arange(0, 120, 2)  # 60 training examples; odd ones are val.


def _truth(seed):
    rng = np.random.default_rng(seed)
    clean = rng.integers(0, NUM_CLASSES, TRAIN_INDEX.size)
    is_noisy = rng.random(TRAIN_INDEX.size) < 0.4
    label = np.where(is_noisy, (clean + 1) % NUM_CLASSES, clean)
    return clean, label


def _probs(clean, label, confidence_in_clean):
    """Mass `confidence_in_clean` on the clean class, the rest spread evenly."""
    probs = np.full((clean.size, NUM_CLASSES), (1 - confidence_in_clean) / 3)
    probs[np.arange(clean.size), clean] = confidence_in_clean
    del label
    return probs


def _write_run(sweep_dir, run, files):
    run_dir = sweep_dir / run.rel_dir
    run_dir.mkdir(parents=True)
    (run_dir / run_files.RUN_INFO_FILE).write_text(json.dumps(run.info()))
    (run_dir / run_files.SUMMARY_FILE).write_text("{}")
    for (split, at_best_val), predictions in files.items():
        _save(run_dir, split, predictions, at_best_val=at_best_val)


def _grid(holdout_folds=0):
    config = ml_collections.ConfigDict()
    config.datasets = ("fashion_mnist",)
    config.noise_kinds = ("symmetric",)
    config.noise_rates = (0.4,)
    config.losses = ({"name": "ce"}, {"name": "tce", "alpha": 0.1})
    config.seeds = (0, 1)
    config.holdout_folds = holdout_folds
    return grid.expand_grid(config)


@pytest.fixture
def fake_sweep(tmp_path):
    sweep_dir, folds_dir = tmp_path / "sweep", tmp_path / "folds"
    for run in _grid():
        clean, label = _truth(run.seed)
        files = {
            ("train", at_best_val): _predictions(
                TRAIN_INDEX, label, clean, _probs(clean, label, confidence)
            )
            for at_best_val, confidence in ((False, 0.3), (True, 0.9))
        }
        _write_run(sweep_dir, run, files)
    for run in _grid(holdout_folds=2):
        if run.loss_name != "ce":
            continue
        clean, label = _truth(run.seed)
        part = slice(run.fold, None, 2)
        files = {
            ("heldout", at_best_val): _predictions(
                TRAIN_INDEX[part],
                label[part],
                clean[part],
                _probs(clean[part], label[part], 0.8),
            )
            for at_best_val in (False, True)
        }
        _write_run(folds_dir, run, files)
    return sweep_dir, folds_dir


def test_sweep_comparison_scores_every_signal_and_cleanlab(fake_sweep):
    sweep_dir, folds_dir = fake_sweep
    rows = label_errors.compare(sweep_dir, folds_dir)
    signals = {(row["signal"], row["seed"]): row for row in rows}
    expected = {
        "ce, final",
        "ce, best-val",
        "tce-alpha0.1, final",
        "tce-alpha0.1, best-val",
        "cleanlab on 2-fold ce, final",
        "cleanlab on 2-fold ce, best-val",
    }
    assert {signal for signal, _ in signals} == expected
    assert len(rows) == 2 * len(expected)
    for seed in (0, 1):
        _, label = _truth(seed)
        k = int(np.sum(label != _truth(seed)[0]))
        for signal in expected:
            row = signals[(signal, seed)]
            assert row["k"] == k
            # Every model puts its mass on the clean class: perfect separation.
            assert row["auroc"] == 1.0 and row["precision_at_k"] == 1.0
        cleanlab = signals[("cleanlab on 2-fold ce, final", seed)]
        assert cleanlab["training_runs"] == 2
        assert cleanlab["flagged"] == k
        assert cleanlab["flagged_precision"] == cleanlab["flagged_recall"] == 1.0
    label_errors.write_comparison(rows, sweep_dir / "label_errors")
    table = (sweep_dir / "label_errors" / "results.md").read_text()
    assert "| cleanlab on 2-fold ce, best-val | 2 | 1.000 ± 0.000 |" in table
    assert (sweep_dir / "label_errors" / "pr_fashion_mnist_symmetric-0.4.png").exists()


def test_incomplete_folds_are_skipped_and_mismatched_examples_refused(fake_sweep):
    sweep_dir, folds_dir = fake_sweep
    (folds_dir / _grid(holdout_folds=2)[0].rel_dir / run_files.SUMMARY_FILE).unlink()
    signals = {row["signal"] for row in label_errors.compare(sweep_dir, folds_dir)}
    assert "cleanlab on 2-fold ce, final" in signals  # Seed 1 is complete.
    run = _grid()[0]
    predictions = dict(np.load(sweep_dir / run.rel_dir / "train_predictions.npz"))
    predictions["index"] = predictions["index"] + 1
    _save(sweep_dir / run.rel_dir, "train", predictions)
    with pytest.raises(label_errors.InputError, match="ranks other training examples"):
        label_errors.compare(sweep_dir, folds_dir)


def test_cleanlab_runs_in_this_process_without_forking(monkeypatch):
    # Forking after JAX has started its threads can deadlock (JAX warns "os.fork()
    # was called ... will likely lead to a deadlock"); cleanlab's default process
    # pool forks, n_jobs=1 does not.
    def no_fork():
        raise AssertionError("cleanlab forked a process")

    monkeypatch.setattr(os, "fork", no_fork)
    clean, label = _truth(0)
    predictions = _predictions(
        np.arange(len(label)), label, clean, _probs(clean, label, 0.8)
    )
    signal = label_errors.cleanlab_signal(predictions)
    assert signal["flagged"] == int(np.sum(label != clean))
