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

from tce_jax import losses, run_environment, run_files
from tce_jax.analysis import intervals
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
    "final_val_accuracy",
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
    "machine",
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
        environment = summary.get(run_files.ENVIRONMENT_KEY)
        if environment:
            # Derived, not read: a signature stored by older code is not trusted.
            row["machine"] = run_environment.machine_signature(environment)
            row["machine_description"] = run_environment.describe(environment)
    if metrics:
        last = metrics[-1]
        if row["status"] != FINISHED:
            # Partial runs still show how far they got; the tables skip them.
            row["final_test_accuracy"] = last.get("test_accuracy")
            row["memorized_fraction"] = last.get("memorized_fraction")
            row["train_clean_accuracy"] = last.get("train_clean_accuracy")
        row["final_val_accuracy"] = last.get("val_accuracy")
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
    """CE first, then TCE by alpha, the self-tuning TCE runs, then the other
    losses as the grid lists them."""
    labels = list(dict.fromkeys(row["loss"] for row in rows))
    first_row = {row["loss"]: row for row in reversed(rows)}

    def key(label):
        row = first_row[label]
        if row["loss_name"] == "ce":
            return 0, 0.0, labels.index(label)
        if is_fixed_alpha_tce(row):
            return 1, tce_alpha(row), labels.index(label)
        return (2 if is_auto_alpha_tce(row) else 3), 0.0, labels.index(label)

    return sorted(labels, key=key)


def percent_cell(values: Sequence[float | None]) -> str:
    """'mean ± half-width of the 95% interval' in percent of the values that
    are not None; the mean alone for one value; a dash for none."""
    values = [value for value in values if value is not None]
    if not values:
        return "–"
    interval = intervals.mean_interval(values)
    if interval.n < 2:
        return f"{100 * interval.mean:.1f}"
    return f"{100 * interval.mean:.1f} ± {100 * interval.half_width:.1f}"


def accuracy_table(setting_rows: Sequence[dict[str, Any]]) -> list[str]:
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
    """Where the fixed-alpha TCE rows end in loss_order (right after CE's)."""
    fixed = {row["loss"] for row in setting_rows if is_fixed_alpha_tce(row)}
    return max(i for i, loss in enumerate(loss_order) if loss in fixed)


def _accuracy_cell(cell: Sequence[dict[str, Any]], note: str = "") -> str:
    """'final / at best noisy-val epoch (n=seeds<note>)' in %, or a dash."""
    if not cell:
        return "–"
    final = percent_cell([row["final_test_accuracy"] for row in cell])
    selected = percent_cell([row["best_val_test_accuracy"] for row in cell])
    return f"{final} / {selected} (n={len(cell)}{note})"


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


def rate_table(title, setting_rows, cells, rates, value) -> list[str]:
    """A loss x noise-rate table of `value(row)` in percent, mean ± half-width
    of the 95% interval over seeds."""
    lines = [
        "",
        title,
        "",
        "| loss | " + " | ".join(f"{rate:g}" for rate in rates) + " |",
        "|---|" + "---|" * len(rates),
    ]
    for loss in losses_in_order(setting_rows):
        entries = [
            percent_cell([value(row) for row in cells.get((loss, rate), [])])
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


def alpha_table(setting_rows: Sequence[dict[str, Any]]) -> list[str]:
    """The alpha the auto rule set (its final epoch's), per rate: mean and seeds."""
    auto = [row for row in setting_rows if is_auto_alpha_tce(row) and row["metrics"]]
    if not auto:
        return []
    lines = [
        "",
        "Alpha the self-tuning rule ended the run with: mean [each seed].",
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


def machines_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The machine types behind the finished runs, and, when there are several,
    which types made each cell.

    XLA's numbers depend on the processor, so runs of one cell made on two
    machine types differ like seeds; runs that record no machine count as one
    unknown type.
    """
    finished = [row for row in rows if row["status"] == FINISHED]
    if not finished:
        return []
    names = {}
    for row in finished:
        if row.get("machine") not in names:
            names[row.get("machine")] = chr(ord("A") + len(names))
    described = {
        row.get("machine"): (
            f"{row['machine_description']} (signature {row['machine']})"
            if row.get("machine")
            else "not recorded (made before runs recorded their machine)"
        )
        for row in finished
    }
    lines = [f"- {names[machine]}: {described[machine]}" for machine in names]
    if len(names) == 1:
        return [*lines, "", f"All {len(finished)} finished runs: machine A."]
    lines += ["", "| cell | machines |", "|---|---|"]
    for (dataset, kind, rate, loss), cell in group_by(
        finished, ("dataset", "noise_kind", "noise_rate", "loss")
    ).items():
        counts = collections.Counter(names[row.get("machine")] for row in cell)
        text = ", ".join(f"{name} x{n}" for name, n in sorted(counts.items()))
        lines.append(f"| {dataset} {kind} {rate:g} {loss} | {text} |")
    return lines
