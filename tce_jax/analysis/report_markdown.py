"""The Markdown of a report: results.md, a README's block, the differences.

Runs of one seed share the training images, the noisy labels and the
validation split, so two losses are compared seed by seed: per seed the
difference of their test accuracies (unrounded), then a Student-t interval
over the seeds (``intervals.paired_difference``). A difference is
*established* (marked ✓) when its interval excludes 0.

- ``difference_tables``: per noise kind, each loss against CE and each pair
  a plan registers, per noise rate, at the final and at the selected epoch;
- ``noisy_mean_table``: the same averaged per seed over every noisy setting
  of a dataset;
- ``target_verdict``, ``target_lines``: a plan's registered targets, met or
  missed;
- ``results_markdown``: results.md, with the per-cell tables of
  ``report_tables`` (accuracy, memorisation, alpha, fall after the peak);
- ``readme_block``: what a results README includes (``report --update_readme``);
  ``replace_generated`` puts such a block in place.

No plotting here: tables need no matplotlib.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Any

from tce_jax.analysis import intervals, plan, report_tables
from tce_jax.analysis.report_tables import CHOSEN_ALPHA_ROW, FINISHED, group_by

EPOCHS = (
    ("final_test_accuracy", "final epoch"),
    ("best_val_test_accuracy", "epoch selected on noisy validation"),
)
# What a choice that may not look at test labels compares: the noisy
# validation split's accuracy at the final epoch.
VALIDATION = ("final_val_accuracy", "noisy validation, final epoch")
ESTABLISHED = "✓"


def label_rows(setting_rows: Sequence[dict[str, Any]]) -> dict[str, dict]:
    """{loss label: {(noise rate, seed): row}}, with the runs whose alpha noisy
    validation chose under ``plan.CHOSEN``."""
    labelled = {}
    for row in setting_rows:
        labelled.setdefault(row["loss"], {})[(row["noise_rate"], row["seed"])] = row
    chosen = report_tables.choose_tce_alpha_on_validation(setting_rows)
    if chosen:
        labelled[plan.CHOSEN] = {
            (row["noise_rate"], row["seed"]): row for row in chosen
        }
    return labelled


def display_name(label: str) -> str:
    return CHOSEN_ALPHA_ROW if label == plan.CHOSEN else label


def comparisons_for(
    rows: Sequence[dict[str, Any]], registered: Sequence[tuple[str, str]] = ()
) -> list[tuple[str, str]]:
    """Each loss against CE (in the report's loss order, the chosen-alpha TCE
    after the fixed alphas), then the registered pairs."""
    labels = [label for label in report_tables.losses_in_order(rows) if label != "ce"]
    if "ce" not in {row["loss"] for row in rows}:
        labels = []
    elif report_tables.choose_tce_alpha_on_validation(rows):
        fixed = [row["loss"] for row in rows if report_tables.is_fixed_alpha_tce(row)]
        labels.insert(max(labels.index(label) for label in fixed) + 1, plan.CHOSEN)
    pairs = [(label, "ce") for label in labels]
    return pairs + [pair for pair in registered if pair not in pairs]


def paired(
    labelled: dict[str, dict], a: str, b: str, rate: float, key: str
) -> intervals.PairedDifference | None:
    """A - B at one noise rate over the seeds both have, in points; None if none."""
    rows_a, rows_b = labelled.get(a, {}), labelled.get(b, {})
    seeds = sorted(
        seed
        for (row_rate, seed) in rows_a
        if row_rate == rate and (rate, seed) in rows_b
    )
    if not seeds:
        return None
    return intervals.paired_difference(
        [100 * rows_a[(rate, seed)][key] for seed in seeds],
        [100 * rows_b[(rate, seed)][key] for seed in seeds],
    )


def difference_cell(difference: intervals.PairedDifference | None) -> str:
    """'+7.35 [+6.12, +8.58] 10/10 ✓', or '+7.35 (n=1)', or a dash."""
    if difference is None:
        return "–"
    if difference.n < 2:
        return f"{difference.mean:+.2f} (n=1)"
    mark = f" {ESTABLISHED}" if difference.established else ""
    return (
        f"{difference.mean:+.2f} [{difference.low:+.2f}, {difference.high:+.2f}] "
        f"{difference.ahead}/{difference.n}{mark}"
    )


def difference_tables(
    setting_rows: Sequence[dict[str, Any]], registered: Sequence[tuple[str, str]] = ()
) -> list[str]:
    """One setting's (dataset and noise kind) paired-difference tables, one per
    epoch; empty without comparisons."""
    pairs = comparisons_for(setting_rows, registered)
    if not pairs:
        return []
    labelled = label_rows(setting_rows)
    rates = sorted({row["noise_rate"] for row in setting_rows})
    lines = []
    for key, epoch in EPOCHS:
        lines += [
            "",
            f"Difference in points, {epoch}: mean [95% interval] seeds ahead/seeds; "
            f"{ESTABLISHED} where the interval excludes 0.",
            "",
            "| difference | " + " | ".join(f"{rate:g}" for rate in rates) + " |",
            "|---|" + "---|" * len(rates),
        ]
        for a, b in pairs:
            cells = [
                difference_cell(paired(labelled, a, b, rate, key)) for rate in rates
            ]
            if set(cells) != {"–"}:
                name = f"{display_name(a)} − {display_name(b)}"
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def noisy_mean(
    dataset_rows: Sequence[dict[str, Any]], a: str, b: str, key: str
) -> intervals.PairedDifference | None:
    """A - B per seed averaged over every noisy setting of the rows, in points.

    Only seeds with both losses in every noisy setting count. None without
    noisy settings or such seeds.
    """
    per_kind = [
        (kind_rows, rate)
        for kind_rows in group_by(dataset_rows, ("noise_kind",)).values()
        for rate in sorted({row["noise_rate"] for row in kind_rows})
        if rate > 0
    ]
    if not per_kind:
        return None
    labelled = [label_rows(kind_rows) for kind_rows, _ in per_kind]
    seed_sets = [
        {
            seed
            for (rate_a, seed) in rows.get(a, {})
            if rate_a == rate and (rate, seed) in rows.get(b, {})
        }
        for rows, (_, rate) in zip(labelled, per_kind, strict=True)
    ]
    seeds = sorted(set.intersection(*seed_sets))
    if not seeds:
        return None
    means = {}
    for label in (a, b):
        means[label] = [
            100
            * sum(
                rows[label][(rate, seed)][key]
                for rows, (_, rate) in zip(labelled, per_kind, strict=True)
            )
            / len(per_kind)
            for seed in seeds
        ]
    return intervals.paired_difference(means[a], means[b])


def noisy_mean_table(
    dataset_rows: Sequence[dict[str, Any]], registered: Sequence[tuple[str, str]] = ()
) -> list[str]:
    """Each comparison averaged per seed over the dataset's noisy settings."""
    settings = sorted(
        {
            (row["noise_kind"], row["noise_rate"])
            for row in dataset_rows
            if row["noise_rate"] > 0
        }
    )
    pairs = comparisons_for(dataset_rows, registered)
    if len(settings) < 2 or not pairs:
        return []
    names = ", ".join(f"{kind} {rate:g}" for kind, rate in settings)
    lines = [
        "",
        f"Mean over the {len(settings)} noisy settings ({names}): per seed the "
        "mean of its differences, then the interval over seeds; points, mean "
        f"[95% interval] seeds ahead/seeds; {ESTABLISHED} where it excludes 0. "
        "Test accuracy at two epochs, and the noisy-validation accuracy (against "
        "the given labels) that a choice without clean labels can see.",
        "",
        "| difference | "
        + " | ".join(f"test, {epoch}" for _, epoch in EPOCHS)
        + f" | {VALIDATION[1]} |",
        "|---|---|---|---|",
    ]
    for a, b in pairs:
        cells = [
            difference_cell(noisy_mean(dataset_rows, a, b, key))
            for key, _ in (*EPOCHS, VALIDATION)
        ]
        if set(cells) != {"–"}:
            lines.append(
                f"| {display_name(a)} − {display_name(b)} | " + " | ".join(cells) + " |"
            )
    return lines


def _statistic(difference: intervals.PairedDifference, stat: str) -> float:
    return {"low": difference.low, "mean": difference.mean, "high": difference.high}[
        stat
    ]


def target_verdict(
    finished: Sequence[dict[str, Any]], target: plan.Target
) -> tuple[str, str]:
    """(verdict, details) of one registered target on the finished runs (final
    epoch): "**met**", "**missed**", "**met in k of n**" (with "; m setting(s)
    without runs yet" when some are), or "no runs to judge it yet"."""
    key = EPOCHS[0][0]
    if target.scope == "mean-noisy":
        difference = noisy_mean(finished, target.a, target.b, key)
        verdicts = [("mean over the noisy settings", difference)]
    else:
        verdicts = []
        for (kind,), kind_rows in group_by(finished, ("noise_kind",)).items():
            labelled = label_rows(kind_rows)
            for rate in sorted({row["noise_rate"] for row in kind_rows}):
                if (rate == 0) == (target.scope == "clean"):
                    where = "clean labels" if rate == 0 else f"{kind} {rate:g}"
                    verdicts.append(
                        (where, paired(labelled, target.a, target.b, rate, key))
                    )
    known = [(where, d) for where, d in verdicts if d is not None and d.n >= 2]
    if not known:
        return "no runs to judge it yet", ""
    met = [where for where, d in known if target.holds(_statistic(d, target.stat))]
    details = "; ".join(
        f"{where}: {target.stat} {_statistic(d, target.stat):+.2f} "
        f"({difference_cell(d)})"
        for where, d in known
    )
    missing = len(verdicts) - len(known)
    pending = f"; {missing} setting(s) without runs yet" if missing else ""
    if len(known) == 1:
        verdict = "**met**" if met else "**missed**"
    else:
        verdict = f"**met in {len(met)} of {len(known)}**"
    return verdict + pending, details


def target_lines(
    rows: Sequence[dict[str, Any]], targets: Sequence[plan.Target]
) -> list[str]:
    """Each registered target, met or missed, with its numbers (final epoch)."""
    finished = [row for row in rows if row["status"] == FINISHED]
    lines = []
    for target in targets:
        verdict, details = target_verdict(finished, target)
        lines.append(f"- `{target}`: {verdict}" + (f". {details}." if details else ""))
    return lines


def results_markdown(
    rows: Sequence[dict[str, Any]], registered: plan.Plan | None = None
) -> str:
    """results.md's tables of the finished runs, plus a line on the others."""
    finished = [row for row in rows if row["status"] == FINISHED]
    pairs = registered.comparisons if registered else ()
    lines = []
    for (dataset, kind), setting_rows in group_by(
        finished, ("dataset", "noise_kind")
    ).items():
        rates = sorted({row["noise_rate"] for row in setting_rows})
        lines += [
            f"### {dataset}, {kind} noise",
            "",
            "Test accuracy (%) at the final epoch / at the epoch of best noisy-"
            "validation accuracy; mean ± half-width of its 95% interval over n "
            "seeds. Columns: noise rate.",
            "",
            *report_tables.accuracy_table(setting_rows),
            *difference_tables(setting_rows, pairs),
        ]
        cells = group_by(setting_rows, ("loss", "noise_rate"))
        if any(row["final_val_accuracy"] is not None for row in setting_rows):
            lines += report_tables.rate_table(
                "Noisy-validation accuracy (%) at the final epoch, against the "
                "given (noisy) labels: what a choice without clean labels can "
                "see; mean ± half-width of its 95% interval over seeds.",
                setting_rows,
                cells,
                rates,
                lambda row: row["final_val_accuracy"],
            )
        noisy_rates = [rate for rate in rates if rate > 0]
        if noisy_rates:
            lines += report_tables.rate_table(
                "Mislabelled training examples predicted as their wrong label at "
                "the final epoch (memorisation, %); mean ± half-width of its 95% "
                "interval over seeds.",
                setting_rows,
                cells,
                noisy_rates,
                lambda row: row["memorized_fraction"],
            )
        lines += report_tables.alpha_table(setting_rows)
        lines += report_tables.rate_table(
            "Fall of test accuracy from its highest evaluated epoch to the final "
            "epoch (points; mean ± half-width of its 95% interval over seeds): "
            "what fitting the noise cost. A diagnostic only, since the highest "
            "epoch is read off the test set.",
            setting_rows,
            cells,
            rates,
            lambda row: row["peak_test_accuracy"] - row["final_test_accuracy"],
        )
        lines.append("")
    for (dataset,), dataset_rows in group_by(finished, ("dataset",)).items():
        mean_lines = noisy_mean_table(dataset_rows, pairs)
        if mean_lines:
            lines += [f"### {dataset}, all noisy settings", *mean_lines, ""]
    if registered and registered.targets:
        lines += [
            "### Targets registered in PLAN.md (final epoch, points)",
            "",
            *target_lines(finished, registered.targets),
            "",
        ]
    machines = report_tables.machines_table(finished)
    if machines:
        lines += ["### Machines", "", *machines, ""]
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
            "`python3 -m tce_jax.analysis.label_errors` reads them).\n",
        )
    return "\n".join(lines).rstrip() + "\n"


README_BEGIN = (
    "<!-- generated by `python3 -m tce_jax.analysis.report --sweep_dir=DIR "
    "--update_readme`; edit the report code, not this block -->"
)
README_END = "<!-- end of generated block -->"


def replace_generated(text: str, begin: str, end: str, block: str) -> str | None:
    """``text`` with its generated block (from the first ``begin``, a marker or
    its start, through ``end``) replaced by ``block``; None unless both markers
    are there in that order."""
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        return None
    return text[:start] + block + text[stop + len(end) :]


def interim_line(rows: Sequence[dict[str, Any]]) -> str | None:
    """A generated block's first line while some of the sweep's runs are not
    finished (None once all are): how many are in, and that the numbers below
    are interim."""
    finished = sum(row["status"] == FINISHED for row in rows)
    if finished == len(rows):
        return None
    return (
        f"**Interim: {finished} of {len(rows)} runs finished.** Every number and "
        "verdict below comes from those runs and can change as the others finish."
    )


def readme_block(
    rows: Sequence[dict[str, Any]], registered: plan.Plan | None = None
) -> str:
    """The headline tables a results README includes: per setting, test
    accuracy and the paired differences, then the mean over the noisy settings
    and the plan's targets, all from the finished runs."""
    finished = [row for row in rows if row["status"] == FINISHED]
    pairs = registered.comparisons if registered else ()
    lines = [README_BEGIN]
    if interim := interim_line(rows):
        lines += ["", interim]
    for (dataset, kind), setting_rows in group_by(
        finished, ("dataset", "noise_kind")
    ).items():
        lines += [
            "",
            f"**{dataset}, {kind} noise.** Test accuracy (%) at the final epoch / "
            "at the epoch of best noisy-validation accuracy; mean ± half-width of "
            "its 95% interval over n seeds. Columns: noise rate.",
            "",
            *report_tables.accuracy_table(setting_rows),
            *difference_tables(setting_rows, pairs),
        ]
    for (dataset,), dataset_rows in group_by(finished, ("dataset",)).items():
        mean_lines = noisy_mean_table(dataset_rows, pairs)
        if mean_lines:
            lines += ["", f"**{dataset}, all noisy settings.**", *mean_lines]
    if registered and registered.targets:
        lines += [
            "",
            "**Targets registered in PLAN.md** (final epoch, points):",
            "",
            *target_lines(finished, registered.targets),
        ]
    return "\n".join([*lines, "", README_END])
