"""The tables of a sweep's report, computed from its run dirs: no plotting here.

One row per run (``load_run``: its place in the grid, state, final and
validation-selected accuracy, memorisation, CPU time), written as results.csv,
and per dataset and noise kind the Markdown tables of results.md (mean ± sample
std over seeds of the finished runs). What each table holds: ``report``.
``readme_block`` is what a results README includes: the accuracy table and
the paired difference of each loss to CE, from the unrounded accuracies.
"""

from __future__ import annotations

import collections
import csv
import json
import math
import pathlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from tce_jax import losses, run_files
from tce_jax.run_files import FINISHED
from tce_jax.selection import select_on_validation

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


def load_run(sweep_dir: pathlib.Path, rel_dir: str) -> dict[str, Any]:
    """One results.csv row (plus the per-epoch metrics under "metrics").

    Its status is the run's ``run_files.run_state``.
    """
    run_dir = sweep_dir / rel_dir
    row: dict[str, Any] = dict.fromkeys(CSV_FIELDS)
    row["run"] = rel_dir
    row["status"] = run_files.run_state(run_dir).state
    info = run_files.read_run_info(run_dir)
    if info is None:
        row["metrics"] = []
        return row
    for key in ("dataset", "noise_kind", "noise_rate", "loss", "loss_name", "seed"):
        row[key] = info.get(key)
    row["holdout_folds"] = info.get("holdout_folds", 0)
    row["loss_hparams"] = json.dumps(info.get("loss_hparams", {}), sort_keys=True)
    row["cpu_seconds"] = run_files.cpu_seconds(run_dir)
    metrics = run_files.read_metrics(run_dir)
    row["metrics"] = metrics
    row["epochs"] = len(metrics)
    summary = run_files.read_summary(run_dir)
    if summary is not None:
        for key in (
            "final_test_accuracy",
            "memorized_fraction",
            "train_clean_accuracy",
            "realised_noise_rate",
            "wall_seconds",
            "git_commit",
        ):
            row[key] = summary.get(key)
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


def collect(sweep_dir: str | pathlib.Path) -> list[dict[str, Any]]:
    """Rows of every run of the sweep, in grid order.

    Cross-fitting runs (trained without one fold, ``grid.Run.num_folds``) are
    left out: they are inputs to ``label_errors``, not results.
    """
    sweep_dir = pathlib.Path(sweep_dir)
    rows = [load_run(sweep_dir, rel_dir) for rel_dir in run_files.find_runs(sweep_dir)]
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


def group_by(rows, keys):
    """{values of `keys`: the rows with them}, in the rows' order."""
    groups = collections.defaultdict(list)
    for row in rows:
        groups[tuple(row[key] for key in keys)].append(row)
    return groups


def losses_in_order(rows) -> list[str]:
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
    settings = group_by(finished, ("dataset", "noise_kind"))
    for (dataset, kind), setting_rows in settings.items():
        rates = sorted({row["noise_rate"] for row in setting_rows})
        lines += [
            f"### {dataset}, {kind} noise",
            "",
            "Test accuracy (%) at the final epoch / at the epoch of best noisy-"
            "validation accuracy; mean ± std over n seeds. Columns: noise rate.",
            "",
            *_accuracy_table(setting_rows),
        ]
        cells = group_by(setting_rows, ("loss", "noise_rate"))
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
        lines += _alpha_table(setting_rows)
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


def _accuracy_table(setting_rows: Sequence[dict[str, Any]]) -> list[str]:
    """Loss x noise-rate table of final / selected test accuracy (one setting),
    with the chosen-alpha row right below the TCE rows."""
    rates = sorted({row["noise_rate"] for row in setting_rows})
    cells = group_by(setting_rows, ("loss", "noise_rate"))
    loss_order = losses_in_order(setting_rows)
    table = [
        f"| {loss} | "
        + " | ".join(_accuracy_cell(cells.get((loss, rate), [])) for rate in rates)
        + " |"
        for loss in loss_order
    ]
    chosen = group_by(choose_tce_alpha_on_validation(setting_rows), ("noise_rate",))
    if chosen:
        entries = []
        for rate in rates:
            cell = chosen.get((rate,), [])
            alphas = collections.Counter(tce_alpha(row) for row in cell)
            counts = ", ".join(f"{a:g} x{n}" for a, n in sorted(alphas.items()))
            entries.append(_accuracy_cell(cell, f"; alpha {counts}"))
        table.insert(
            _last_tce_index(setting_rows, loss_order) + 1,
            f"| {CHOSEN_ALPHA_ROW} | " + " | ".join(entries) + " |",
        )
    header = "| loss | " + " | ".join(f"{rate:g}" for rate in rates) + " |"
    return [header, "|---|" + "---|" * len(rates), *table]


def _last_tce_index(setting_rows, loss_order: Sequence[str]) -> int:
    """Where the TCE rows end in loss_order (which puts them right after CE's)."""
    loss_names = {row["loss"]: row["loss_name"] for row in setting_rows}
    return max(i for i, loss in enumerate(loss_order) if loss_names[loss] == "tce")


def _signed_points(fractions: Sequence[float], digits: int) -> str:
    return " ".join(f"{100 * value:+.{digits}f}" for value in fractions)


def difference_table(setting_rows: Sequence[dict[str, Any]]) -> list[str]:
    """Each loss minus CE, paired by seed, in points: final / selected epoch.

    Runs of one seed share data, noise and validation split across losses, so
    the difference is taken seed by seed, from the unrounded accuracies; each
    cell is the mean difference (two decimals) and, in brackets, every seed's.
    Empty without CE runs.
    """
    rates = sorted({row["noise_rate"] for row in setting_rows})
    by_seed = {
        (row["loss"], row["noise_rate"], row["seed"]): row for row in setting_rows
    }
    for row in choose_tce_alpha_on_validation(setting_rows):
        by_seed[(CHOSEN_ALPHA_ROW, row["noise_rate"], row["seed"])] = row
    reference = {
        key[1:]: row for key, row in by_seed.items() if row["loss_name"] == "ce"
    }
    if not reference:
        return []
    loss_names = {row["loss"]: row["loss_name"] for row in setting_rows}
    loss_order = [
        loss for loss in losses_in_order(setting_rows) if loss_names[loss] != "ce"
    ]
    if any(key[0] == CHOSEN_ALPHA_ROW for key in by_seed):
        loss_order.insert(
            _last_tce_index(setting_rows, loss_order) + 1, CHOSEN_ALPHA_ROW
        )
    lines = [
        "| loss | " + " | ".join(f"{rate:g}" for rate in rates) + " |",
        "|---|" + "---|" * len(rates),
    ]
    for loss in loss_order:
        entries = []
        for rate in rates:
            pairs = [
                (row, reference[(rate, seed)])
                for (name, row_rate, seed), row in sorted(by_seed.items())
                if name == loss and row_rate == rate and (rate, seed) in reference
            ]
            if not pairs:
                entries.append("–")
                continue
            texts = []
            for key in ("final_test_accuracy", "best_val_test_accuracy"):
                differences = [row[key] - ref[key] for row, ref in pairs]
                texts.append(
                    f"{_signed_points([float(np.mean(differences))], 2)} "
                    f"[{_signed_points(differences, 1)}]"
                )
            entries.append(" / ".join(texts))
        lines.append(f"| {loss} | " + " | ".join(entries) + " |")
    return lines


README_BEGIN = (
    "<!-- generated by `python3 -m tce_jax.report --sweep_dir=DIR "
    "--update_readme`; edit the report code, not this block -->"
)
README_END = "<!-- end of generated block -->"


def readme_block(rows: Sequence[dict[str, Any]]) -> str:
    """The headline tables a results README includes: per setting, test
    accuracy and the paired difference to CE, both from the finished runs."""
    finished = [row for row in rows if row["status"] == FINISHED]
    lines = [README_BEGIN]
    for (dataset, kind), setting_rows in group_by(
        finished, ("dataset", "noise_kind")
    ).items():
        lines += [
            "",
            f"**{dataset}, {kind} noise.** Test accuracy (%) at the final epoch / "
            "at the epoch of best noisy-validation accuracy; mean ± std over n "
            "seeds. Columns: noise rate.",
            "",
            *_accuracy_table(setting_rows),
        ]
        differences = difference_table(setting_rows)
        if differences:
            lines += [
                "",
                "Difference to CE in points, paired by seed (same data, noise and "
                "validation split), final epoch / selected epoch: mean of the "
                "unrounded differences [each seed's].",
                "",
                *differences,
            ]
    return "\n".join([*lines, "", README_END])


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
        and is_fixed_alpha_tce(row)
        and row["best_val_accuracy"] is not None
    ]
    groups = group_by(candidates, ("dataset", "noise_kind", "noise_rate", "seed"))
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
    for loss in losses_in_order(setting_rows):
        entries = [
            _percent(*mean_std([value(row) for row in cells.get((loss, rate), [])])[:2])
            for rate in rates
        ]
        lines.append(f"| {loss} | " + " | ".join(entries) + " |")
    return lines


def tce_alpha(row: dict[str, Any]) -> float:
    """The alpha of a TCE run (the registry's default if the run did not set it)."""
    return json.loads(row["loss_hparams"]).get("alpha", losses.DEFAULT_TCE_ALPHA)


def is_fixed_alpha_tce(row: dict[str, Any]) -> bool:
    """A TCE run with one alpha throughout (not ``alpha_rule = "auto"``)."""
    hparams = json.loads(row["loss_hparams"])
    return row["loss_name"] == "tce" and hparams.get("alpha_rule", "fixed") == "fixed"


def is_auto_alpha_tce(row: dict[str, Any]) -> bool:
    """A TCE run whose alpha the training labels set (``alpha_rule = "auto"``)."""
    return row["loss_name"] == "tce" and not is_fixed_alpha_tce(row)


def collect_many(
    sweep_dir: str | pathlib.Path, also: Sequence[str | pathlib.Path] = ()
) -> list[dict[str, Any]]:
    """``collect(sweep_dir)`` plus the runs of other sweep dirs, for one table.

    Runs from ``also`` keep their absolute path in ``run``. A cell (dataset,
    noise kind, rate, loss, seed) finished in two dirs is refused: the tables
    would silently average two runs of one seed.

    Raises:
      ValueError: naming the duplicated cell and both runs.
    """
    rows = collect(sweep_dir)
    for other in also:
        for row in collect(other):
            row["run"] = str((pathlib.Path(other) / row["run"]).resolve())
            rows.append(row)
    seen = {}
    for row in rows:
        if row["status"] != FINISHED:
            continue
        cell = tuple(
            row[key] for key in ("dataset", "noise_kind", "noise_rate", "loss", "seed")
        )
        if cell in seen:
            raise ValueError(f"{seen[cell]} and {row['run']} are the same cell {cell}")
        seen[cell] = row["run"]
    return rows


def _alpha_table(setting_rows: Sequence[dict[str, Any]]) -> list[str]:
    """The alpha the auto rule set (its final epoch's), per rate: mean and seeds."""
    auto = [row for row in setting_rows if is_auto_alpha_tce(row) and row["metrics"]]
    if not auto:
        return []
    lines = [
        "",
        "Alpha the rule set (alpha_rule = auto; held from the half to the end): "
        "mean [each seed].",
        "",
        "| loss | noise rate | alpha |",
        "|---|---|---|",
    ]
    for (loss, rate), cell in sorted(group_by(auto, ("loss", "noise_rate")).items()):
        alphas = [row["metrics"][-1]["alpha"] for row in sorted(cell, key=_seed)]
        seeds = ", ".join(f"{alpha:.3f}" for alpha in alphas)
        lines.append(f"| {loss} | {rate:g} | {np.mean(alphas):.3f} [{seeds}] |")
    return lines


def _seed(row: dict[str, Any]) -> int:
    return row["seed"]
