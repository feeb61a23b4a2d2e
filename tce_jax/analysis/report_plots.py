"""The plots of a sweep's report (PNG), drawn from report_tables' rows.

accuracy_vs_noise_*.png, curves_*.png, gradient_weights_*.png and, when
several TCE alphas were run, accuracy_vs_alpha_*.png; what each shows: its
function's docstring and ``report``. matplotlib is imported here only, so the
tables can be computed without it.
"""

from __future__ import annotations

import collections
import math
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from tce_jax import losses, run_files
from tce_jax.analysis.report_tables import (
    group_by,
    is_auto_alpha_tce,
    is_fixed_alpha_tce,
    losses_in_order,
    mean_std,
    tce_alpha,
)
from tce_jax.run_files import FINISHED


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
    for (dataset, kind), setting_rows in group_by(
        finished, ("dataset", "noise_kind")
    ).items():
        losses = losses_in_order(setting_rows)
        colors = loss_colors(losses)
        figure = Figure(figsize=(11, 4.2), layout="constrained")
        axes = figure.subplots(1, 2, sharey=True)
        for ax, key, title in (
            (axes[0], "final_test_accuracy", "final epoch"),
            (axes[1], "best_val_test_accuracy", "epoch of best noisy-val accuracy"),
        ):
            for loss in losses:
                by_rate = group_by(
                    [r for r in setting_rows if r["loss"] == loss], ("noise_rate",)
                )
                rates = sorted(rate for (rate,) in by_rate)
                stats = [mean_std([r[key] for r in by_rate[(rate,)]]) for rate in rates]
                means = np.array([100 * s[0] for s in stats])
                stds = np.nan_to_num(np.array([100 * s[1] for s in stats]))
                # The self-tuning TCE is drawn thick and on top of the others.
                on_top = any(
                    is_auto_alpha_tce(r) for r in setting_rows if r["loss"] == loss
                )
                ax.errorbar(
                    rates,
                    means,
                    yerr=stds,
                    marker="o",
                    capsize=3,
                    label=loss,
                    color=colors[loss],
                    linewidth=3 if on_top else 1.5,
                    zorder=4 if on_top else 2,
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


def seed_band(rows: Sequence[dict[str, Any]], key: str) -> tuple[np.ndarray, ...]:
    """A metric over the seeds of one loss, per epoch, in percent.

    Epochs without evaluation (eval_every_epochs > 1) have no point; an epoch
    counts the seeds that evaluated it (an unfinished run stops early).

    Returns:
      epochs, mean, minimum and maximum over seeds, each of shape [epochs].
    """
    by_epoch = collections.defaultdict(list)
    for row in rows:
        for record in row["metrics"]:
            if record.get(key) is not None:
                by_epoch[record["epoch"]].append(100 * record[key])
    epochs = sorted(by_epoch)
    values = [np.asarray(by_epoch[epoch]) for epoch in epochs]
    return (
        np.asarray(epochs),
        np.asarray([v.mean() for v in values]),
        np.asarray([v.min() for v in values]),
        np.asarray([v.max() for v in values]),
    )


def plot_curves(
    rows, out_dir: pathlib.Path, *, per_seed: bool = False
) -> list[pathlib.Path]:
    """Curves against epoch, one figure per (dataset, noise setting).

    Per loss, the mean over seeds with a band from the lowest to the highest
    seed, CE drawn on top of the others, and on the test panel a dot at each
    seed's selected epoch (best noisy-validation accuracy). ``per_seed`` adds
    one thin line per seed.
    """
    paths = []
    with_metrics = [row for row in rows if row["metrics"]]
    groups = group_by(with_metrics, ("dataset", "noise_kind", "noise_rate"))
    for (dataset, kind, rate), group_rows in sorted(groups.items()):
        losses = losses_in_order(group_rows)
        colors = loss_colors(losses)
        by_loss = group_by(group_rows, ("loss",))
        figure = Figure(figsize=(15, 4.2), layout="constrained")
        axes = figure.subplots(1, 3)
        panels = (
            (axes[0], "train_clean_accuracy", "train accuracy vs clean labels"),
            (axes[1], "memorized_fraction", "mislabelled examples fit (memorised)"),
            (axes[2], "test_accuracy", "test accuracy (dots: selected epochs)"),
        )
        legend_lines = {}
        # CE, the reference, last and above the rest: never hidden under them.
        for loss in sorted(
            losses, key=lambda loss: by_loss[(loss,)][0]["loss_name"] == "ce"
        ):
            loss_rows = by_loss[(loss,)]
            on_top = loss_rows[0]["loss_name"] == "ce"
            color = colors[loss]
            for ax, key, _ in panels:
                epochs, mean, low, high = seed_band(loss_rows, key)
                ax.fill_between(
                    epochs, low, high, color=color, alpha=0.15, linewidth=0, zorder=1
                )
                line = ax.plot(
                    epochs,
                    mean,
                    color=color,
                    linewidth=2.4 if on_top else 1.5,
                    zorder=4 if on_top else 2,
                )[0]
                if per_seed:
                    for row in loss_rows:
                        evaluated = [
                            m for m in row["metrics"] if m.get(key) is not None
                        ]
                        ax.plot(
                            [m["epoch"] for m in evaluated],
                            [100 * m[key] for m in evaluated],
                            color=color,
                            alpha=0.5,
                            linewidth=0.7,
                            zorder=3,
                        )
            legend_lines[loss] = line  # The test panel's, drawn last.
            selected = [row for row in loss_rows if row["best_val_epoch"] is not None]
            axes[2].scatter(
                [row["best_val_epoch"] for row in selected],
                [100 * row["best_val_test_accuracy"] for row in selected],
                color=color,
                edgecolors="white",
                linewidths=0.6,
                s=28,
                zorder=5,
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
        # Outside the panels: inside, it would cover the curves' ends.
        figure.legend(
            [legend_lines[loss] for loss in losses],
            [f"{loss} (n={len(by_loss[(loss,)])})" for loss in losses],
            loc="outside right upper",
            fontsize=8,
        )
        seeds = "; thin lines: one per seed" if per_seed else ""
        figure.suptitle(
            f"{dataset}, {kind} noise {rate:g}: mean over seeds (n), band from the "
            f"lowest to the highest seed{seeds}; CE drawn on top"
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


def _train_predictions(run_dir: pathlib.Path) -> dict[str, np.ndarray] | None:
    """The final training predictions, with log p_y (older runs saved only p_y)."""
    predictions = run_files.read_predictions(run_dir, "train")
    if predictions is not None and "log_prob_label" not in predictions:
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
    groups = group_by(finished, ("dataset", "noise_kind", "noise_rate"))
    for (dataset, kind, rate), group_rows in sorted(groups.items()):
        first_seed = {}
        for row in sorted(group_rows, key=lambda r: r["seed"]):
            first_seed.setdefault(row["loss"], row)
        panels = sorted(
            (
                (row, tce_alpha(row))
                for row in first_seed.values()
                if is_fixed_alpha_tce(row) and tce_alpha(row) > 0
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
            (row, alpha, _train_predictions(sweep_dir / row["run"]))
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
            if is_fixed_alpha_tce(row):
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
    for (dataset, kind), setting_rows in group_by(
        finished, ("dataset", "noise_kind")
    ).items():
        tce = [row for row in setting_rows if is_fixed_alpha_tce(row)]
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


def plot_alpha(rows, out_dir: pathlib.Path) -> list[pathlib.Path]:
    """Alpha against epoch for the runs whose alpha the rule set, one band per
    scenario (noise kind and rate): mean over seeds, min-max band."""
    auto = [
        row
        for row in rows
        if row["status"] == FINISHED and is_auto_alpha_tce(row) and row["metrics"]
    ]
    paths = []
    for (dataset,), dataset_rows in group_by(auto, ("dataset",)).items():
        figure = Figure(figsize=(7, 4.2), layout="constrained")
        ax = figure.subplots()
        scenarios = group_by(dataset_rows, ("noise_kind", "noise_rate", "loss"))
        for (kind, rate, loss), cell in sorted(scenarios.items()):
            epochs = [m["epoch"] for m in cell[0]["metrics"]]
            alphas = np.array([[m["alpha"] for m in row["metrics"]] for row in cell])
            label = f"{kind} {rate:g}" + ("" if loss == "tce-auto" else f" ({loss})")
            (line,) = ax.plot(
                epochs, alphas.mean(axis=0), label=f"{label} (n={len(cell)})"
            )
            ax.fill_between(
                epochs,
                alphas.min(axis=0),
                alphas.max(axis=0),
                alpha=0.2,
                color=line.get_color(),
            )
        ax.set_xlabel("epoch")
        ax.set_ylabel("alpha")
        ax.set_title(f"{dataset}: alpha set by the rule (mean, min-max over seeds)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        paths.append(_save(figure, out_dir / f"alpha_{_slug(dataset)}.png"))
    return paths
