"""Which training labels are wrong? Ranked label-error candidates from runs.

    python3 -m tce_jax.analysis.label_errors \
        --run_dir=runs/demo/fashion_mnist/symmetric-0.4/tce-alpha0.1/seed0
    python3 -m tce_jax.analysis.label_errors --sweep_dir=runs/X --folds_dir=runs/X_folds

One run: writes ``label_errors.csv`` (final model) and, where the run saved
them, ``label_errors_best_val.csv`` (the epoch selected on noisy validation)
into the run dir: every training example, most suspicious first, with its
index, given label, predicted label and score, the model's probability of the
given label (lower is more suspicious; for TCE the same ranking as
``losses.tce_gradient_weight``). With synthetic noise it also prints how well
the ranking finds the corrupted labels.

A sweep: compares, per scenario and seed, those rankings with confident
learning (cleanlab) on out-of-sample probabilities from the cross-fitting runs
in ``--folds_dir`` (a sweep with ``holdout_folds``), and writes
``<sweep_dir>/label_errors/``: results.csv (one row per signal and seed),
results.md (mean ± std over seeds) and pr_<scenario>.png (precision-recall
curves). The metrics, with the corrupted labels as positives: AUROC, average
precision, precision at k = the number of corrupted labels, and for cleanlab's
``find_label_issues`` how many it flags and their precision and recall.
More, and the measured comparison: docs/results.md, "Finding the wrong labels".
"""

from __future__ import annotations

import collections
import csv
import io
import pathlib
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
from absl import app, flags
from matplotlib.figure import Figure
from sklearn import metrics as sk_metrics

from tce_jax import run_files
from tce_jax.analysis import report_plots, report_tables

OUTPUT_DIR = "label_errors"
CSV_FIELDS = ("rank", "index", "given_label", "predicted_label", "score")
POINTS = {False: "final", True: "best-val"}


class InputError(ValueError):
    """Bad input: the message names the flag and what is allowed."""


def load_predictions(run_dir: pathlib.Path, split: str, at_best_val: bool) -> dict:
    """A run's saved predictions on ``split`` ("train" or "heldout") as arrays.

    Raises:
      InputError: the run saved none; the message names the file.
    """
    predictions = run_files.read_predictions(run_dir, split, at_best_val=at_best_val)
    if predictions is None:
        path = run_dir / run_files.predictions_file(split, at_best_val=at_best_val)
        raise InputError(
            f"{path}: no such file; allowed: a run dir of a finished run "
            f"(train.py writes {run_files.predictions_file(split)} at its end)"
        )
    return predictions


def ranking(scores: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Positions of the examples, lowest score first (ties: smaller index first)."""
    return np.lexsort((index, scores))


def detection_metrics(is_noisy: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """How well low scores find the corrupted labels (the positives).

    Returns auroc, average_precision and precision_at_k for k = the number of
    corrupted labels (equal to recall at k), and k. AUROC and AP are nan when
    there are no corrupted labels (or only corrupted ones).
    """
    is_noisy = np.asarray(is_noisy, dtype=bool)
    suspicion = -np.asarray(scores, dtype=np.float64)
    k = int(is_noisy.sum())
    both = 0 < k < is_noisy.size
    top = ranking(-suspicion, np.arange(is_noisy.size))[:k]
    return {
        "auroc": sk_metrics.roc_auc_score(is_noisy, suspicion) if both else np.nan,
        "average_precision": (
            sk_metrics.average_precision_score(is_noisy, suspicion) if both else np.nan
        ),
        "precision_at_k": float(is_noisy[top].mean()) if k else np.nan,
        "k": k,
    }


def _signal(is_noisy: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """detection_metrics plus the precision-recall curve (for the plot)."""
    is_noisy = np.asarray(is_noisy, dtype=bool)
    precision, recall, _ = sk_metrics.precision_recall_curve(is_noisy, -scores)
    return {**detection_metrics(is_noisy, scores), "pr_curve": (precision, recall)}


def write_ranking(path: pathlib.Path, predictions: dict[str, np.ndarray]) -> None:
    """The ranked CSV (``CSV_FIELDS``); predicted_label is empty for runs whose
    files hold only the given label's probability (before full probabilities
    were saved)."""
    order = ranking(predictions["prob_label"], predictions["index"])
    probs = predictions.get("probs")
    predicted = None if probs is None else np.argmax(probs, axis=-1)
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(CSV_FIELDS)
    for rank, i in enumerate(order, start=1):
        writer.writerow(
            (
                rank,
                int(predictions["index"][i]),
                int(predictions["label"][i]),
                "" if predicted is None else int(predicted[i]),
                f"{predictions['prob_label'][i]:.6g}",
            )
        )
    run_files.write_text_atomically(path, text.getvalue())


def rank_run(run_dir: str | pathlib.Path) -> list[str]:
    """Writes a run's ranked CSVs; returns one summary line per CSV."""
    run_dir = pathlib.Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(
            f"--run_dir={run_dir}: no such directory; allowed: the --workdir of "
            "a launch.py run (or a run dir of a sweep)"
        )
    lines = []
    for at_best_val in (False, True):
        try:
            predictions = load_predictions(run_dir, "train", at_best_val)
        except InputError:
            if at_best_val:  # Older runs and runs without validation.
                continue
            raise
        suffix = "_best_val" if at_best_val else ""
        path = run_dir / f"{OUTPUT_DIR}{suffix}.csv"
        write_ranking(path, predictions)
        line = f"{path}: {predictions['index'].size} examples ranked"
        if predictions["is_noisy"].any():
            m = detection_metrics(predictions["is_noisy"], predictions["prob_label"])
            line += (
                f"; against the {m['k']} corrupted labels: AUROC {m['auroc']:.3f}, "
                f"AP {m['average_precision']:.3f}, precision@{m['k']} "
                f"{m['precision_at_k']:.3f}"
            )
        lines.append(line)
    return lines


# ----------------------------------------------------------------------------
# Sweep comparison.


def _finished_runs(
    sweep_dir: pathlib.Path,
) -> list[tuple[pathlib.Path, dict[str, Any]]]:
    """(run dir, run info) of the sweep's finished runs, in directory order."""
    rel_dirs = sorted(
        run_files.find_runs(sweep_dir),
        key=lambda rel_dir: pathlib.PurePosixPath(rel_dir).parts,
    )
    return [
        (sweep_dir / rel_dir, run_files.read_run_info(sweep_dir / rel_dir))
        for rel_dir in rel_dirs
        if run_files.is_finished(sweep_dir / rel_dir)
    ]


def _scenario(info: dict[str, Any]) -> tuple[str, str, float]:
    return info["dataset"], info["noise_kind"], float(info["noise_rate"])


def cross_fitted(
    fold_dirs: Sequence[pathlib.Path], at_best_val: bool
) -> dict[str, np.ndarray]:
    """The held-out predictions of K cross-fitting runs, merged by example index.

    Raises:
      InputError: the folds overlap.
    """
    parts = [load_predictions(d, "heldout", at_best_val) for d in fold_dirs]
    merged = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    if np.unique(merged["index"]).size != merged["index"].size:
        raise InputError(
            f"the held-out folds of {[str(d) for d in fold_dirs]} overlap; allowed: "
            "the K runs of one cross-fitting grid point"
        )
    order = np.argsort(merged["index"], kind="stable")
    return {key: value[order] for key, value in merged.items()}


def cleanlab_signal(predictions: dict[str, np.ndarray]) -> dict[str, Any]:
    """Confident learning on out-of-sample probabilities: ranking and verdict."""
    from cleanlab import filter as cl_filter
    from cleanlab import rank as cl_rank

    labels = predictions["label"].astype(np.int64)
    probs = predictions["probs"].astype(np.float64)
    probs /= probs.sum(axis=1, keepdims=True)
    quality = cl_rank.get_label_quality_scores(labels, probs)
    # One process: cleanlab's default pool forks, and forking after JAX has
    # started its threads can deadlock. n_jobs changes its run time only.
    flagged = cl_filter.find_label_issues(labels, probs, n_jobs=1)
    is_noisy = predictions["is_noisy"].astype(bool)
    return {
        **_signal(is_noisy, quality),
        "flagged": int(flagged.sum()),
        "flagged_precision": (
            float(is_noisy[flagged].mean()) if flagged.any() else np.nan
        ),
        "flagged_recall": (
            float(flagged[is_noisy].mean()) if is_noisy.any() else np.nan
        ),
    }


def compare(sweep_dir: pathlib.Path, folds_dir: pathlib.Path | None) -> list[dict]:
    """One row per (scenario, seed, signal): the detection metrics and CPU cost."""
    rows = []
    for run_dir, info in _finished_runs(sweep_dir):
        if info.get("holdout_folds"):
            continue
        for at_best_val in (False, True):
            try:
                predictions = load_predictions(run_dir, "train", at_best_val)
            except InputError:
                continue
            rows.append(
                {
                    "scenario": _scenario(info),
                    "seed": info["seed"],
                    "signal": f"{info['loss']}, {POINTS[at_best_val]}",
                    "training_runs": 1,
                    "cpu_seconds": run_files.cpu_seconds(run_dir),
                    "train_index": predictions["index"],
                    **_signal(predictions["is_noisy"], predictions["prob_label"]),
                }
            )
    if folds_dir is not None:
        groups = collections.defaultdict(list)
        for run_dir, info in _finished_runs(folds_dir):
            if info.get("holdout_folds"):
                key = (_scenario(info), info["seed"], info["loss"])
                groups[key].append((run_dir, info))
        for (scenario, seed, loss), members in sorted(groups.items()):
            num_folds = members[0][1]["holdout_folds"]
            if len(members) != num_folds:
                continue  # Not every fold has finished.
            fold_dirs = [run_dir for run_dir, _ in members]
            cpu = [run_files.cpu_seconds(d) for d in fold_dirs]
            for at_best_val in (False, True):
                predictions = cross_fitted(fold_dirs, at_best_val)
                rows.append(
                    {
                        "scenario": scenario,
                        "seed": seed,
                        "signal": (
                            f"cleanlab on {num_folds}-fold {loss}, "
                            f"{POINTS[at_best_val]}"
                        ),
                        "training_runs": num_folds,
                        "cpu_seconds": None if None in cpu else sum(cpu),
                        "train_index": predictions["index"],
                        **cleanlab_signal(predictions),
                    }
                )
    _check_same_examples(rows)
    return rows


def _check_same_examples(rows: list[dict]) -> None:
    """Every signal of a scenario and seed must rank the same training examples."""
    first = {}
    for row in rows:
        key = (row["scenario"], row["seed"])
        index = first.setdefault(key, row["train_index"])
        if not np.array_equal(index, row["train_index"]):
            raise InputError(
                f"{row['signal']} ranks other training examples than the first "
                f"signal of {key}; allowed: runs and folds of the same protocol"
            )


METRIC_COLUMNS = (
    ("auroc", "AUROC"),
    ("average_precision", "AP"),
    ("precision_at_k", "precision@k"),
    ("flagged", "cleanlab flags"),
    ("flagged_precision", "flag precision"),
    ("flagged_recall", "flag recall"),
    ("cpu_seconds", "training CPU s"),
)


def _cell(values: Sequence[Any], key: str) -> str:
    mean, std, n = report_tables.mean_std([v for v in values if v is not None])
    if n == 0 or np.isnan(mean):
        return "-"
    if key in ("flagged", "cpu_seconds"):
        return f"{mean:.0f}"
    text = f"{mean:.3f}"
    return text + (f" ± {std:.3f}" if n > 1 else "")


def write_comparison(rows: list[dict], output_dir: pathlib.Path) -> None:
    """results.csv, results.md and one precision-recall plot per scenario."""
    output_dir.mkdir(parents=True, exist_ok=True)
    fields = ["dataset", "noise_kind", "noise_rate", "seed", "signal", "k"]
    fields += ["training_runs", *(key for key, _ in METRIC_COLUMNS)]
    with (output_dir / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fields, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            dataset, kind, rate = row["scenario"]
            writer.writerow(
                {**row, "dataset": dataset, "noise_kind": kind, "noise_rate": rate}
            )
    lines = [
        "# Finding the wrong labels",
        "",
        "Corrupted training labels are the positives; every signal ranks the "
        "same training examples by the probability a model gives their label. "
        "Mean ± std over seeds (n = seeds). k = the number of corrupted labels, "
        "so precision@k is also recall@k. Written by "
        "`python3 -m tce_jax.analysis.label_errors`.",
    ]
    by_scenario = collections.defaultdict(list)
    for row in rows:
        by_scenario[row["scenario"]].append(row)
    for scenario, group in sorted(by_scenario.items()):
        dataset, kind, rate = scenario
        seeds = sorted({row["seed"] for row in group})
        ks = sorted({row["k"] for row in group})
        lines += [
            "",
            f"## {dataset}, {kind} noise {rate:g} (seeds {seeds}, k = {ks})",
            "",
            "| signal | n | " + " | ".join(title for _, title in METRIC_COLUMNS) + " |",
            "|---|---:|" + "---:|" * len(METRIC_COLUMNS),
        ]
        signals = collections.defaultdict(list)
        for row in group:
            signals[row["signal"]].append(row)
        for signal, members in signals.items():
            cells = [
                _cell([m.get(key) for m in members], key) for key, _ in METRIC_COLUMNS
            ]
            lines.append(f"| {signal} | {len(members)} | " + " | ".join(cells) + " |")
        _plot_pr(scenario, signals, output_dir)
    (output_dir / "results.md").write_text("\n".join(lines) + "\n")


def _plot_pr(scenario, signals, output_dir: pathlib.Path) -> None:
    """Precision-recall curves of every signal, one thin line per seed."""
    dataset, kind, rate = scenario
    figure = Figure(figsize=(6.5, 4.8), layout="constrained")
    ax = figure.subplots()
    colors = report_plots.loss_colors(list(signals))
    for signal, members in signals.items():
        for i, row in enumerate(members):
            precision, recall = row["pr_curve"]
            ax.plot(
                recall,
                precision,
                color=colors[signal],
                linewidth=1.0,
                alpha=0.8,
                label=signal if i == 0 else None,
            )
    ax.set_xlabel("recall (share of corrupted labels found)")
    ax.set_ylabel("precision")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{dataset}, {kind} {rate:g}: precision-recall per seed")
    ax.legend(fontsize=7)
    figure.savefig(output_dir / f"pr_{dataset}_{kind}-{rate:g}.png", dpi=110)


_RUN_DIR = flags.DEFINE_string("run_dir", None, "A run dir: rank its training labels.")
_SWEEP_DIR = flags.DEFINE_string(
    "sweep_dir", None, "A sweep dir: compare the rankings of its runs."
)
_FOLDS_DIR = flags.DEFINE_string(
    "folds_dir",
    None,
    "With --sweep_dir: the sweep dir of its cross-fitting runs, for cleanlab.",
)


def main(argv: Sequence[str]) -> int:
    del argv
    try:
        if (_RUN_DIR.value is None) == (_SWEEP_DIR.value is None):
            raise InputError(
                "label_errors: give exactly one of --run_dir (rank one run's "
                "labels) or --sweep_dir (compare the signals of a sweep)"
            )
        if _RUN_DIR.value is not None:
            for line in rank_run(_RUN_DIR.value):
                print(line)
            return 0
        for name, value in (
            ("sweep_dir", _SWEEP_DIR.value),
            ("folds_dir", _FOLDS_DIR.value),
        ):
            if value is not None and not pathlib.Path(value).is_dir():
                raise InputError(
                    f"--{name}={value}: no such directory; allowed: the --workdir "
                    "of a sweep.py run"
                )
        sweep_dir = pathlib.Path(_SWEEP_DIR.value)
        rows = compare(
            sweep_dir,
            None if _FOLDS_DIR.value is None else pathlib.Path(_FOLDS_DIR.value),
        )
        if not rows:
            raise InputError(
                f"--sweep_dir={sweep_dir}: no finished run with saved predictions"
            )
        write_comparison(rows, sweep_dir / OUTPUT_DIR)
        print(f"label_errors: {len(rows)} rows in {sweep_dir / OUTPUT_DIR}")
        return 0
    except InputError as error:
        print(f"label_errors: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    app.run(main)
