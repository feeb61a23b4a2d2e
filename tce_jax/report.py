"""Tables and plots of a sweep: results.csv, results.md and PNG figures.

    python3 -m tce_jax.report --sweep_dir=runs/demo

Reads every run dir under the sweep dir (run.json from the sweep, metrics.jsonl
and summary.json from training, train_predictions.npz for the gradient
weights) and writes into <sweep_dir>/report:

- results.csv: one row per run, finished or not;
- results.md: per dataset and noise kind, a table with a row per loss and a
  column per noise rate; each cell is the test accuracy at the final epoch and
  at the epoch of best accuracy on the *noisy* validation split, mean ± sample
  std over the finished seeds (n). The epoch is never selected on test.
  Tables with TCE runs get a row "TCE, alpha chosen on noisy validation": per
  dataset, noise kind, rate and seed, the TCE run (any alpha present) with the
  best noisy-validation accuracy at its selected epoch, ties to the smaller
  alpha (`choose_tce_alpha_on_validation`); its cells also say which alphas
  were chosen.
  Two more tables show memorisation: the share of mislabelled training
  examples the model predicts as their wrong label at the end, and how far
  test accuracy fell from its highest evaluated epoch to the final one (a
  diagnostic of overfitting the noise, not a result: that peak is read off
  the test set);
- accuracy_vs_noise_*.png, curves_*.png (per-run clean-train accuracy,
  memorisation and test accuracy against epoch), gradient_weights_*.png (TCE's
  per-example gradient weight on clean against mislabelled examples) and, when
  several TCE alphas were run, accuracy_vs_alpha_*.png.
"""

from __future__ import annotations

import collections
import csv
import json
import math
import pathlib
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from absl import app, flags, logging
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from tce_jax import losses, run_files
from tce_jax.selection import select_on_validation

REPORT_DIR = "report"
PREDICTIONS_FILE = run_files.predictions_file("train")

CSV_FIELDS = (
    "run",
    "status",
    "dataset",
    "noise_kind",
    "noise_rate",
    "loss",
    "loss_name",
    "loss_hparams",
    "seed",
    "epochs",
    "final_test_accuracy",
    "best_val_epoch",
    "best_val_accuracy",
    "best_val_test_accuracy",
    "peak_test_accuracy",
    "memorized_fraction",
    "train_clean_accuracy",
    "realised_noise_rate",
    "wall_seconds",
    "cpu_seconds",
    "git_commit",
)

CHOSEN_ALPHA_ROW = "TCE, alpha chosen on noisy validation"

# Runs of the grid are finished (summary.json), failed (the sweep wrote
# error.txt), unfinished (started, no summary) or missing (no directory).
FINISHED, FAILED, UNFINISHED, MISSING = "finished", "failed", "unfinished", "missing"


def _run_info(run_dir: pathlib.Path) -> dict[str, Any] | None:
    """The run's place in the grid: run.json, else derived from summary's config."""
    info_path = run_dir / run_files.RUN_INFO_FILE
    if info_path.exists():
        return json.loads(info_path.read_text())
    summary = run_files.read_summary(run_dir)
    if summary is None:
        return None
    config = summary.get("config") or {}
    loss = dict(config.get("loss") or {})
    name = loss.pop("name", "?")
    hparams = {key: value for key, value in loss.items() if value is not None}
    return {
        "dataset": config.get("data", {}).get("dataset", "?"),
        "noise_kind": config.get("noise", {}).get("kind", "?"),
        "noise_rate": float(config.get("noise", {}).get("rate", math.nan)),
        "loss": run_files.loss_label(name, hparams),
        "loss_name": name,
        "loss_hparams": hparams,
        "seed": config.get("seed"),
        "holdout_folds": config.get("data", {}).get("holdout_folds", 0),
    }


def load_run(sweep_dir: pathlib.Path, rel_dir: str) -> dict[str, Any]:
    """One results.csv row (plus the per-epoch metrics under "metrics")."""
    run_dir = sweep_dir / rel_dir
    row: dict[str, Any] = dict.fromkeys(CSV_FIELDS)
    row["run"] = rel_dir
    info = _run_info(run_dir)
    if info is None:
        row["status"] = MISSING
        row["metrics"] = []
        return row
    for key in ("dataset", "noise_kind", "noise_rate", "loss", "loss_name", "seed"):
        row[key] = info.get(key)
    row["holdout_folds"] = info.get("holdout_folds", 0)
    row["loss_hparams"] = json.dumps(info.get("loss_hparams", {}), sort_keys=True)
    row["cpu_seconds"] = cpu_seconds(run_dir)
    metrics = run_files.read_metrics(run_dir)
    row["metrics"] = metrics
    row["epochs"] = len(metrics)
    summary = run_files.read_summary(run_dir)
    if summary is not None:
        row["status"] = FINISHED
        for key in (
            "final_test_accuracy",
            "memorized_fraction",
            "train_clean_accuracy",
            "realised_noise_rate",
            "wall_seconds",
            "git_commit",
        ):
            row[key] = summary.get(key)
    else:
        row["status"] = (
            FAILED if (run_dir / run_files.ERROR_FILE).exists() else UNFINISHED
        )
    if metrics:
        last = metrics[-1]
        if row["status"] != FINISHED:
            # Partial runs still show how far they got; the tables skip them.
            row["final_test_accuracy"] = last.get("test_accuracy")
            row["memorized_fraction"] = last.get("memorized_fraction")
            row["train_clean_accuracy"] = last.get("train_clean_accuracy")
        tests = [m["test_accuracy"] for m in metrics]
        row["peak_test_accuracy"] = max(
            (test for test in tests if test is not None), default=None
        )
        selected = select_on_validation(metrics)
        if selected is not None:
            row["best_val_epoch"] = selected["epoch"]
            row["best_val_accuracy"] = selected["val_accuracy"]
            row["best_val_test_accuracy"] = selected["test_accuracy"]
    return row


def cpu_seconds(run_dir: pathlib.Path) -> float | None:
    """CPU seconds of all attempts at a run (the sweep's timing.jsonl), if timed."""
    try:
        lines = (run_dir / run_files.TIMING_FILE).read_text().splitlines()
    except FileNotFoundError:
        return None
    return round(sum(json.loads(line)["cpu_seconds"] for line in lines if line), 1)


def _rel_dirs(sweep_dir: pathlib.Path) -> list[str]:
    """The grid's run dirs from sweep.json, then any other run dirs found."""
    rel_dirs = []
    info_path = sweep_dir / run_files.SWEEP_INFO_FILE
    if info_path.exists():
        rel_dirs = list(json.loads(info_path.read_text())["runs"])
    known = set(rel_dirs)
    found = set()
    for name in (run_files.RUN_INFO_FILE, run_files.SUMMARY_FILE):
        for path in sweep_dir.rglob(name):
            rel_dir = path.parent.relative_to(sweep_dir).as_posix()
            if not rel_dir.startswith(f"{REPORT_DIR}/"):
                found.add(rel_dir)
    return rel_dirs + sorted(found - known)


def collect(sweep_dir: str | pathlib.Path) -> list[dict[str, Any]]:
    """Rows of every run of the sweep, in grid order.

    Cross-fitting runs (trained without one fold, ``sweep.Run.num_folds``) are
    left out: they are inputs to ``label_errors``, not results.
    """
    sweep_dir = pathlib.Path(sweep_dir)
    rows = [load_run(sweep_dir, rel_dir) for rel_dir in _rel_dirs(sweep_dir)]
    return [row for row in rows if not row.get("holdout_folds")]


def write_csv(rows: Iterable[dict[str, Any]], path: pathlib.Path) -> None:
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean, sample standard deviation (nan for one value) and count, of non-None."""
    values = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if values.size == 0:
        return math.nan, math.nan, 0
    std = float(values.std(ddof=1)) if values.size > 1 else math.nan
    return float(values.mean()), std, int(values.size)


def _group(rows, keys):
    groups = collections.defaultdict(list)
    for row in rows:
        groups[tuple(row[key] for key in keys)].append(row)
    return groups


def _loss_order(rows) -> list[str]:
    """CE first, then TCE by alpha, then the other losses as the grid lists them."""
    labels = list(dict.fromkeys(row["loss"] for row in rows))
    first_row = {row["loss"]: row for row in reversed(rows)}

    def key(label):
        row = first_row[label]
        rank = {"ce": 0, "tce": 1}.get(row["loss_name"], 2)
        alpha = tce_alpha(row) if row["loss_name"] == "tce" else 0.0
        return rank, alpha, labels.index(label)

    return sorted(labels, key=key)


def _percent(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "–"
    if math.isnan(std):
        return f"{100 * mean:.1f}"
    return f"{100 * mean:.1f} ± {100 * std:.1f}"


def markdown_tables(rows: Sequence[dict[str, Any]]) -> str:
    """The Markdown tables of the finished runs, plus a line on the others."""
    finished = [row for row in rows if row["status"] == FINISHED]
    lines = []
    settings = _group(finished, ("dataset", "noise_kind"))
    for (dataset, kind), setting_rows in settings.items():
        rates = sorted({row["noise_rate"] for row in setting_rows})
        cells = _group(setting_rows, ("loss", "noise_rate"))
        header = "| loss | " + " | ".join(f"{rate:g}" for rate in rates) + " |"
        rule = "|---|" + "---|" * len(rates)
        lines += [
            f"### {dataset}, {kind} noise",
            "",
            "Test accuracy (%) at the final epoch / at the epoch of best noisy-"
            "validation accuracy; mean ± std over n seeds. Columns: noise rate.",
            "",
            header,
            rule,
        ]
        loss_order = _loss_order(setting_rows)
        table = [
            f"| {loss} | "
            + " | ".join(_accuracy_cell(cells.get((loss, rate), [])) for rate in rates)
            + " |"
            for loss in loss_order
        ]
        chosen = _group(choose_tce_alpha_on_validation(setting_rows), ("noise_rate",))
        if chosen:
            entries = []
            for rate in rates:
                cell = chosen.get((rate,), [])
                alphas = collections.Counter(tce_alpha(row) for row in cell)
                counts = ", ".join(f"{a:g} x{n}" for a, n in sorted(alphas.items()))
                entries.append(_accuracy_cell(cell, f"; alpha {counts}"))
            # Right below the TCE rows, which _loss_order puts after CE's.
            loss_names = {row["loss"]: row["loss_name"] for row in setting_rows}
            last_tce = max(
                i for i, loss in enumerate(loss_order) if loss_names[loss] == "tce"
            )
            table.insert(
                last_tce + 1, f"| {CHOSEN_ALPHA_ROW} | " + " | ".join(entries) + " |"
            )
        lines += table
        noisy_rates = [rate for rate in rates if rate > 0]
        if noisy_rates:
            lines += _rate_table(
                "Mislabelled training examples predicted as their wrong label at "
                "the final epoch (memorisation, %); mean ± std over seeds.",
                setting_rows,
                cells,
                noisy_rates,
                lambda row: row["memorized_fraction"],
            )
        lines += _rate_table(
            "Fall of test accuracy from its highest evaluated epoch to the final "
            "epoch (points; mean ± std over seeds): what fitting the noise cost. "
            "A diagnostic only, since the highest epoch is read off the test set.",
            setting_rows,
            cells,
            rates,
            lambda row: row["peak_test_accuracy"] - row["final_test_accuracy"],
        )
        lines.append("")
    others = [row for row in rows if row["status"] != FINISHED]
    if others:
        counts = collections.Counter(row["status"] for row in others)
        lines.append(
            "Not in the tables: "
            + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
            + " run(s): "
            + ", ".join(row["run"] for row in others)
        )
    if not finished:
        lines.insert(
            0,
            "No finished runs to tabulate (cross-fitting runs are not tabulated: "
            "`python3 -m tce_jax.label_errors` reads them).\n",
        )
    return "\n".join(lines).rstrip() + "\n"


def _accuracy_cell(cell: Sequence[dict[str, Any]], note: str = "") -> str:
    """'final / at best noisy-val epoch (n=seeds<note>)' in %, or a dash."""
    if not cell:
        return "–"
    final = mean_std([row["final_test_accuracy"] for row in cell])
    selected = mean_std([row["best_val_test_accuracy"] for row in cell])
    return f"{_percent(*final[:2])} / {_percent(*selected[:2])} (n={final[2]}{note})"


def choose_tce_alpha_on_validation(
    rows: Sequence[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Per (dataset, noise kind, rate, seed), the TCE run whose alpha validation picks.

    Among the finished TCE runs of that setting and seed, whatever alphas are
    present, the one with the highest noisy-validation accuracy at its own
    selected epoch (``best_val_accuracy``, from ``selection.select_on_validation``);
    ties go to the smaller alpha, the one closer to CE. Test accuracy takes no
    part. Runs without validation accuracy are not candidates.

    Returns:
      The chosen rows, one per (dataset, noise kind, rate, seed) with candidates.
    """
    candidates = [
        row
        for row in rows
        if row["status"] == FINISHED
        and row["loss_name"] == "tce"
        and row["best_val_accuracy"] is not None
    ]
    groups = _group(candidates, ("dataset", "noise_kind", "noise_rate", "seed"))
    return [
        max(group, key=lambda row: (row["best_val_accuracy"], -tce_alpha(row)))
        for group in groups.values()
    ]


def _rate_table(title, setting_rows, cells, rates, value) -> list[str]:
    """A loss x noise-rate table of mean ± std of `value(row)`, in percent."""
    lines = [
        "",
        title,
        "",
        "| loss | " + " | ".join(f"{rate:g}" for rate in rates) + " |",
        "|---|" + "---|" * len(rates),
    ]
    for loss in _loss_order(setting_rows):
        entries = [
            _percent(*mean_std([value(row) for row in cells.get((loss, rate), [])])[:2])
            for rate in rates
        ]
        lines.append(f"| {loss} | " + " | ".join(entries) + " |")
    return lines


def loss_colors(labels: Sequence[str]) -> dict[str, Any]:
    palette = [
        "#1f77b4",
        "#d62728",
        "#2ca02c",
        "#ff7f0e",
        "#9467bd",
        "#8c564b",
        "#e377c2",
        "#7f7f7f",
        "#bcbd22",
        "#17becf",
    ]
    return {label: palette[i % len(palette)] for i, label in enumerate(labels)}


def _save(figure: Figure, path: pathlib.Path) -> pathlib.Path:
    figure.savefig(path, dpi=110, bbox_inches="tight")
    return path


def _slug(*parts: Any) -> str:
    return "_".join(str(part) for part in parts).replace("/", "-")


def plot_accuracy_vs_noise(rows, out_dir: pathlib.Path) -> list[pathlib.Path]:
    """Test accuracy against noise rate, a line per loss, mean ± std over seeds."""
    paths = []
    finished = [row for row in rows if row["status"] == FINISHED]
    for (dataset, kind), setting_rows in _group(
        finished, ("dataset", "noise_kind")
    ).items():
        losses = _loss_order(setting_rows)
        colors = loss_colors(losses)
        figure = Figure(figsize=(11, 4.2), layout="constrained")
        axes = figure.subplots(1, 2, sharey=True)
        for ax, key, title in (
            (axes[0], "final_test_accuracy", "final epoch"),
            (axes[1], "best_val_test_accuracy", "epoch of best noisy-val accuracy"),
        ):
            for loss in losses:
                by_rate = _group(
                    [r for r in setting_rows if r["loss"] == loss], ("noise_rate",)
                )
                rates = sorted(rate for (rate,) in by_rate)
                stats = [mean_std([r[key] for r in by_rate[(rate,)]]) for rate in rates]
                means = np.array([100 * s[0] for s in stats])
                stds = np.nan_to_num(np.array([100 * s[1] for s in stats]))
                ax.errorbar(
                    rates,
                    means,
                    yerr=stds,
                    marker="o",
                    capsize=3,
                    label=loss,
                    color=colors[loss],
                )
            ax.set_title(f"Test accuracy at the {title}")
            ax.set_xlabel(f"{kind} noise rate")
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("test accuracy (%)")
        axes[1].legend(fontsize=8)
        figure.suptitle(f"{dataset}: mean ± std over seeds")
        paths.append(
            _save(figure, out_dir / f"accuracy_vs_noise_{_slug(dataset, kind)}.png")
        )
    return paths


def plot_curves(rows, out_dir: pathlib.Path) -> list[pathlib.Path]:
    """Per-run curves against epoch, one figure per (dataset, noise setting)."""
    paths = []
    with_metrics = [row for row in rows if row["metrics"]]
    groups = _group(with_metrics, ("dataset", "noise_kind", "noise_rate"))
    for (dataset, kind, rate), group_rows in sorted(groups.items()):
        losses = _loss_order(group_rows)
        colors = loss_colors(losses)
        figure = Figure(figsize=(15, 4.2), layout="constrained")
        axes = figure.subplots(1, 3)
        panels = (
            (axes[0], "train_clean_accuracy", "train accuracy vs clean labels"),
            (axes[1], "memorized_fraction", "mislabelled examples fit (memorised)"),
            (axes[2], "test_accuracy", "test accuracy (dot: best noisy-val epoch)"),
        )
        labelled = set()
        for row in group_rows:
            for ax, key, _ in panels:
                # Epochs without evaluation (eval_every_epochs > 1) have no point.
                evaluated = [m for m in row["metrics"] if m.get(key) is not None]
                epochs = [m["epoch"] for m in evaluated]
                values = [100 * m[key] for m in evaluated]
                label = (
                    row["loss"]
                    if row["loss"] not in labelled and ax is axes[2]
                    else None
                )
                ax.plot(
                    epochs,
                    values,
                    color=colors[row["loss"]],
                    alpha=0.8,
                    linewidth=1.3,
                    label=label,
                )
            labelled.add(row["loss"])
            if row["best_val_epoch"] is not None:
                axes[2].plot(
                    row["best_val_epoch"],
                    100 * row["best_val_test_accuracy"],
                    "o",
                    color=colors[row["loss"]],
                    markersize=5,
                )
        for ax, _, title in panels:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_title(title)
            ax.set_xlabel("epoch")
            ax.set_ylabel("%")
            ax.grid(alpha=0.3)
        if rate == 0:
            axes[1].set_xticks([])
            axes[1].set_yticks([])
            axes[1].text(
                0.5,
                0.5,
                "no mislabelled examples at noise 0",
                ha="center",
                va="center",
                transform=axes[1].transAxes,
            )
        axes[2].legend(fontsize=8)
        figure.suptitle(
            f"{dataset}, {kind} noise {rate:g}: one line per run (seed), colour = loss"
        )
        paths.append(
            _save(figure, out_dir / f"curves_{_slug(dataset, kind)}-{rate:g}.png")
        )
    return paths


def tce_gradient_weight_from_log_prob(
    log_prob_label: np.ndarray, alpha: float
) -> np.ndarray:
    """TCE's gradient weight w = p_y / (alpha + (1 - alpha) p_y) per example.

    ``losses.tce_gradient_weight`` on the saved log p_y: log-probabilities are
    valid logits, and the two classes (y, not y) with log-probabilities
    (log p_y, log(1 - p_y)) give the label y the probability p_y.
    """
    log_p = np.asarray(log_prob_label, dtype=np.float32)
    with np.errstate(divide="ignore"):  # log(1 - p_y) = -inf where p_y = 1.
        log_not_p = np.log(-np.expm1(log_p))
    logits = np.stack([log_p, log_not_p], axis=-1)
    labels = np.zeros(log_p.shape, dtype=np.int32)
    return np.asarray(losses.tce_gradient_weight(logits, labels, alpha=alpha))


def tce_alpha(row: dict[str, Any]) -> float:
    """The alpha of a TCE run (the registry's default if the run did not set it)."""
    return json.loads(row["loss_hparams"]).get("alpha", losses.DEFAULT_TCE_ALPHA)


def _load_predictions(run_dir: pathlib.Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(run_dir / PREDICTIONS_FILE) as data:
            predictions = dict(data)
    except FileNotFoundError:
        return None
    if "log_prob_label" not in predictions:
        predictions["log_prob_label"] = np.log(predictions["prob_label"])
    return predictions


def plot_gradient_weights(rows, sweep_dir: pathlib.Path, out_dir: pathlib.Path):
    """Histograms of TCE's gradient weight w on clean vs mislabelled examples.

    One figure per noisy setting (first finished seed): a panel per TCE alpha > 0,
    and, for contrast, a panel for the CE-trained model showing the weight TCE
    (at the default alpha if it was run) would give at its final state; CE
    itself weighs every example 1, which is how it comes to fit the wrong labels.
    """
    paths = []
    finished = [
        row for row in rows if row["status"] == FINISHED and row["noise_rate"] > 0
    ]
    groups = _group(finished, ("dataset", "noise_kind", "noise_rate"))
    for (dataset, kind, rate), group_rows in sorted(groups.items()):
        first_seed = {}
        for row in sorted(group_rows, key=lambda r: r["seed"]):
            first_seed.setdefault(row["loss"], row)
        panels = sorted(
            (
                (row, tce_alpha(row))
                for row in first_seed.values()
                if row["loss_name"] == "tce" and tce_alpha(row) > 0
            ),
            key=lambda panel: panel[1],
        )
        if not panels:
            continue
        alphas = [alpha for _, alpha in panels]
        default = losses.DEFAULT_TCE_ALPHA
        contrast_alpha = default if default in alphas else alphas[0]
        panels += [
            (row, contrast_alpha)
            for row in first_seed.values()
            if row["loss_name"] == "ce"
        ]
        panels = [
            (row, alpha, _load_predictions(sweep_dir / row["run"]))
            for row, alpha in panels
        ]
        panels = [panel for panel in panels if panel[2] is not None]
        if not panels:
            continue
        figure = Figure(figsize=(4.6 * len(panels), 4.2), layout="constrained")
        axes = np.atleast_1d(figure.subplots(1, len(panels), sharey=True))
        bins = np.linspace(0, 1, 41)
        for ax, (row, alpha, predictions) in zip(axes, panels, strict=True):
            weight = tce_gradient_weight_from_log_prob(
                predictions["log_prob_label"], alpha
            )
            is_noisy = predictions["is_noisy"].astype(bool)
            for mask, name, color in (
                (~is_noisy, "clean", "#1f77b4"),
                (is_noisy, "mislabelled", "#d62728"),
            ):
                mean = weight[mask].mean() if mask.any() else math.nan
                ax.hist(
                    weight[mask],
                    bins=bins,
                    histtype="stepfilled",
                    alpha=0.45,
                    color=color,
                    label=f"{name} (n={mask.sum()}, mean w={mean:.2f})",
                )
            noisy_share = weight[is_noisy].sum() / max(weight.sum(), 1e-12)
            ax.set_yscale("log")
            ax.set_xlabel(f"w = p_y / (α + (1-α) p_y), α={alpha:g}")
            if row["loss_name"] == "tce":
                title = f"TCE α={alpha:g}: its gradient weight"
            else:
                title = f"{row['loss']} model (own weight ≡ 1): TCE's w there"
            ax.set_title(
                f"{title}\nmislabelled share of total weight: {noisy_share:.0%}",
                fontsize=10,
            )
            ax.legend(fontsize=8, loc="upper left")
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("training examples (log scale)")
        figure.suptitle(
            f"{dataset}, {kind} noise {rate:g}: per-example gradient weight at the "
            f"final epoch (seed {panels[0][0]['seed']})"
        )
        paths.append(
            _save(
                figure,
                out_dir / f"gradient_weights_{_slug(dataset, kind)}-{rate:g}.png",
            )
        )
    return paths


def plot_accuracy_vs_alpha(rows, out_dir: pathlib.Path) -> list[pathlib.Path]:
    """Test accuracy against TCE's alpha per noise rate, CE as a dashed line.

    Drawn when a setting has TCE at two or more alphas. alpha = 0 is CE computed
    through TCE's code path; the x axis is linear below 1e-3 to show it.
    """
    paths = []
    finished = [row for row in rows if row["status"] == FINISHED]
    for (dataset, kind), setting_rows in _group(
        finished, ("dataset", "noise_kind")
    ).items():
        tce = [row for row in setting_rows if row["loss_name"] == "tce"]
        alpha_of = {id(row): tce_alpha(row) for row in tce}
        if len(set(alpha_of.values())) < 2:
            continue
        rates = sorted({row["noise_rate"] for row in setting_rows})
        colors = loss_colors([f"{rate:g}" for rate in rates])
        figure = Figure(figsize=(11, 4.2), layout="constrained")
        axes = figure.subplots(1, 2, sharey=True)
        for ax, key, title in (
            (axes[0], "final_test_accuracy", "final epoch"),
            (axes[1], "best_val_test_accuracy", "epoch of best noisy-val accuracy"),
        ):
            for rate in rates:
                color = colors[f"{rate:g}"]
                by_alpha = collections.defaultdict(list)
                for row in tce:
                    if row["noise_rate"] == rate:
                        by_alpha[alpha_of[id(row)]].append(row[key])
                alphas = sorted(by_alpha)
                stats = [mean_std(by_alpha[a]) for a in alphas]
                ax.errorbar(
                    alphas,
                    [100 * s[0] for s in stats],
                    yerr=np.nan_to_num([100 * s[1] for s in stats]),
                    marker="o",
                    capsize=3,
                    color=color,
                    label=f"TCE, noise {rate:g}",
                )
                ce = [
                    r[key]
                    for r in setting_rows
                    if r["loss_name"] == "ce" and r["noise_rate"] == rate
                ]
                if ce:
                    ax.axhline(
                        100 * mean_std(ce)[0],
                        color=color,
                        linestyle="--",
                        linewidth=1,
                        label=f"CE, noise {rate:g}",
                    )
            ax.set_xscale("symlog", linthresh=1e-3, linscale=0.5)
            ticks = sorted(set(alpha_of.values()))
            ax.set_xticks(ticks, [f"{alpha:g}" for alpha in ticks])
            ax.set_xlim(-2e-4 if ticks[0] == 0 else ticks[0] / 2, 1.3 * ticks[-1])
            ax.set_xlabel("TCE alpha")
            ax.set_title(f"Test accuracy at the {title}")
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("test accuracy (%)")
        axes[1].legend(fontsize=8)
        figure.suptitle(f"{dataset}, {kind} noise: TCE's alpha (mean ± std over seeds)")
        paths.append(
            _save(figure, out_dir / f"accuracy_vs_alpha_{_slug(dataset, kind)}.png")
        )
    return paths


def write_report(
    sweep_dir: str | pathlib.Path, out_dir: str | pathlib.Path | None = None
) -> pathlib.Path:
    """Writes results.csv, results.md and the plots; prints the tables.

    Returns:
      The report directory (default <sweep_dir>/report).
    """
    sweep_dir = pathlib.Path(sweep_dir)
    out_dir = pathlib.Path(out_dir) if out_dir else sweep_dir / REPORT_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = collect(sweep_dir)
    _warn_on_summary_mismatch(rows, sweep_dir)
    write_csv(rows, out_dir / "results.csv")
    tables = markdown_tables(rows)
    (out_dir / "results.md").write_text(f"# Results of {sweep_dir}\n\n{tables}")
    plots = (
        plot_accuracy_vs_noise(rows, out_dir)
        + plot_curves(rows, out_dir)
        + plot_gradient_weights(rows, sweep_dir, out_dir)
        + plot_accuracy_vs_alpha(rows, out_dir)
    )
    print(tables)
    print(f"Report in {out_dir}/: results.csv, results.md and {len(plots)} plots:")
    for path in plots:
        print(f"  {path}")
    return out_dir


def _warn_on_summary_mismatch(rows, sweep_dir: pathlib.Path) -> None:
    """Flags runs whose summary.json selected another epoch than metrics.jsonl."""
    for row in rows:
        if row["status"] != FINISHED:
            continue
        summary = run_files.read_summary(sweep_dir / row["run"])
        if summary.get("best_val_epoch") not in (None, row["best_val_epoch"]):
            logging.warning(
                "%s: summary.json selected epoch %s, metrics.jsonl gives %s",
                row["run"],
                summary.get("best_val_epoch"),
                row["best_val_epoch"],
            )


def main(argv: Sequence[str]) -> int:
    del argv
    sweep_dir = flags.FLAGS.sweep_dir
    if not pathlib.Path(sweep_dir).is_dir():
        print(
            f"report: --sweep_dir={sweep_dir}: no such directory; allowed: "
            "a sweep directory (the --workdir of sweep.py)",
            file=sys.stderr,
        )
        return 2
    write_report(sweep_dir)
    return 0


if __name__ == "__main__":
    # Defined here, not at import: label_errors imports this module and has its
    # own --sweep_dir.
    flags.DEFINE_string(
        "sweep_dir", None, "Sweep directory to report on.", required=True
    )
    app.run(main)
