r"""How a rerun compares with committed results: identical, or like another seed.

    python3 -m tce_jax.analysis.compare --rerun=runs/demo \
        --committed=results/fashion_mnist_benchmark [--strict]

For every finished run under ``--rerun`` (a sweep directory or one run
directory) it finds the committed runs of the same cell: the same effective
config (``summary.json``'s ``effective_config``: the training config with
every default resolved) but the seed. Per run, the verdict is **identical**
(every metric of every epoch in ``metrics.jsonl`` but the timings, and every
number of ``summary.json``, equal to the committed run of the same seed), or
each reported number (test accuracy at the final and the selected epoch, and
under noise the share of mislabelled examples memorised) is judged against
the committed seeds: **within** or **outside** the 95% prediction interval
for one further seed, ``mean ± t(0.975, n - 1) · sd · sqrt(1 + 1/n)``
(``intervals.prediction_interval``), on unrounded values. Fewer than three
committed seeds are too few to judge. It also says whether the machines match
(``run_environment.machine_signature``).

The footer counts the numbers outside their interval against the 5% that
chance puts there. The exit status is 0 whatever the verdicts, 2 on bad
input; with ``--strict``, 1 when more numbers fall outside than chance
explains: the probability of at least that many outside among N numbers, if
each lands outside with probability 0.05, is below 1%.

How to read the verdicts, and what a rerun on another machine type gives:
docs/results.md, "What a rerun reproduces".
"""

from __future__ import annotations

import dataclasses
import pathlib
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from absl import app, flags
from flax import traverse_util
from scipy import stats

from tce_jax import run_environment, run_files
from tce_jax.analysis import intervals, report_tables

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

# The summary numbers a rerun must reproduce to count as identical.
SUMMARY_NUMBERS = (
    "final_test_accuracy",
    "best_val_test_accuracy",
    "best_val_epoch",
    "memorized_fraction",
    "train_clean_accuracy",
    "realised_noise_rate",
    "num_epochs",
)
# The reported numbers set against the committed seeds: (row key, label).
REPORTED = (
    ("final_test_accuracy", "test accuracy, final epoch"),
    ("best_val_test_accuracy", "test accuracy, selected epoch"),
    ("memorized_fraction", "wrong labels memorised"),
)
# Config fields that name places or bookkeeping, not what is trained.
_NOT_THE_CELL = ("seed", "data.data_dir", "checkpoint_keep", "log_every_steps")
# Fewer committed seeds than this are too few to judge a further one by.
MIN_SEEDS = 3
# Share of further seeds expected outside their prediction interval.
CHANCE = 1 - intervals.CONFIDENCE
# --strict fails when so many numbers are outside that chance gives them
# less than this probability.
STRICT_LEVEL = 0.01


class CompareError(ValueError):
    """Bad input; the message names the flag and what is allowed."""


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One reported number of a rerun against the committed seeds of its cell.

    Attributes:
      label: what the number is.
      value: the rerun's (unrounded).
      interval: the 95% prediction interval for one further committed seed
        (nan bounds below ``MIN_SEEDS`` seeds).
    """

    label: str
    value: float
    interval: intervals.Interval

    @property
    def judged(self) -> bool:
        return self.interval.n >= MIN_SEEDS

    @property
    def within(self) -> bool:
        """Inside the prediction interval (True when too few seeds to judge)."""
        return not self.judged or self.interval.low <= self.value <= self.interval.high


@dataclasses.dataclass(frozen=True)
class RunComparison:
    """One rerun against the committed results.

    Attributes:
      run: the rerun's directory relative to the rerun root.
      committed_seeds: the seeds of the committed runs of the same cell.
      identical: equal to the committed run of its seed in every number; None
        when there is no such run.
      difference: where the two first differ (``first_difference``), if they do.
      machine: "same", "different" or "unknown".
      machine_differences: the signature fields that differ ("different").
      rerun_machine, committed_machine: one-line descriptions (None: unknown).
      verdicts: the reported numbers against the committed seeds.
    """

    run: str
    committed_seeds: tuple[int, ...]
    identical: bool | None
    difference: str | None
    machine: str
    machine_differences: tuple[str, ...]
    rerun_machine: str | None
    committed_machine: str | None
    verdicts: tuple[Verdict, ...]


def resolve_results_dir(path: str | pathlib.Path, flag: str) -> pathlib.Path:
    """The directory as given, else under the repository root (results/NAME)."""
    for candidate in (pathlib.Path(path), REPO_ROOT / path):
        if candidate.is_dir():
            return candidate.resolve()
    raise CompareError(
        f"{flag}={path}: no such directory; allowed: a sweep directory or a run "
        "directory (relative paths may also be under the repository root)"
    )


class _FinishedRun(NamedTuple):
    path: pathlib.Path
    row: dict[str, Any]  # report_tables' row
    summary: dict[str, Any]
    cell: Cell


class Cell(NamedTuple):
    """What makes two runs seeds of one cell.

    Attributes:
      config: the flat training config without the seed and the bookkeeping
        fields: the effective config where the run recorded one, else the
        config as given.
      effective: whether ``config`` is the effective config.
      self_tuning: the run's alpha followed a rule whose defaults may have
        changed between commits.
    """

    config: dict[str, Any]
    effective: bool
    self_tuning: bool


def _finished_runs(root: pathlib.Path) -> list[_FinishedRun]:
    """The finished runs under root (a sweep dir or one run dir)."""
    if run_files.read_summary(root) is not None:
        base, rows = root.parent, [report_tables.load_run(root.parent, root.name)]
    else:
        base, rows = root, report_tables.collect(root)
    runs = []
    for row in rows:
        if row["status"] == run_files.FINISHED:
            summary = run_files.read_summary(base / row["run"])
            runs.append(_FinishedRun(base / row["run"], row, summary, cell_of(summary)))
    return runs


def cell_of(summary: Mapping[str, Any]) -> Cell:
    """The run's ``Cell`` from its summary.json."""
    effective = summary.get("effective_config")
    config = traverse_util.flatten_dict(
        effective or summary.get("config") or {}, sep="."
    )
    rule = config.get("loss.alpha_rule", "fixed")
    return Cell(
        {k: v for k, v in config.items() if k not in _NOT_THE_CELL},
        effective is not None,
        rule not in (None, "fixed"),
    )


def same_cell(cell: Cell, other: Cell) -> bool:
    """Whether two runs are seeds of one cell.

    Two effective configs must be equal. A run that predates effective
    configs is matched on the config as given, on the fields both have (a
    field added to the code later trains the same at its default), unless
    either run's alpha followed a self-tuning rule: those rules' defaults
    changed between commits, so such runs match only on effective configs.
    """
    if cell.effective and other.effective:
        return cell.config == other.config
    if cell.self_tuning or other.self_tuning:
        return False
    given = [_as_given(c) for c in (cell, other)]
    shared = given[0].keys() & given[1].keys()
    return all(given[0][key] == given[1][key] for key in shared)


def _as_given(cell: Cell) -> dict[str, Any]:
    """A cell's config without unset fields: a run that predates effective
    configs leaves every hyperparameter it did not set as None."""
    return {k: v for k, v in cell.config.items() if v is not None}


def _model_metrics(run_dir: pathlib.Path) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in record.items() if k not in run_files.TIMING_METRICS}
        for record in run_files.read_metrics(run_dir)
    ]


def first_difference(run_dir: pathlib.Path, other_dir: pathlib.Path) -> str | None:
    """Where two runs' numbers first differ, or None if they agree wherever both
    have one.

    Compared: every per-epoch metric but the timings, where both runs
    evaluated it (a run may test fewer epochs, ``test_eval_every_epochs``),
    then the summary numbers. ``best_test_accuracy`` is left out: it is the
    highest of the tested epochs, so it follows from the metrics and the test
    schedule.
    """
    metrics = [_model_metrics(d) for d in (run_dir, other_dir)]
    if len(metrics[0]) != len(metrics[1]):
        return f"{len(metrics[0])} epochs here, {len(metrics[1])} committed"
    for record, other in zip(*metrics, strict=True):
        for key in sorted(record.keys() | other.keys()):
            here, there = record.get(key), other.get(key)
            if here is not None and there is not None and here != there:
                return (
                    f"epoch {record['epoch']} {key}: {here!r} here, {there!r} committed"
                )
    summaries = [run_files.read_summary(d) for d in (run_dir, other_dir)]
    for key in SUMMARY_NUMBERS:
        here, there = summaries[0].get(key), summaries[1].get(key)
        if here != there:
            return f"summary {key}: {here!r} here, {there!r} committed"
    return None


def _machine(
    rerun: Mapping[str, Any] | None, committed: Sequence[Mapping[str, Any] | None]
) -> tuple[str, tuple[str, ...]]:
    """('same' | 'different' | 'unknown', differing fields) of rerun and committed."""
    if rerun is None or any(env is None for env in committed) or not committed:
        return "unknown", ()
    differing = sorted(
        {
            field
            for env in committed
            for field in run_environment.differences(rerun, env)
        }
    )
    return ("same", ()) if not differing else ("different", tuple(differing))


def compare(
    rerun_dir: pathlib.Path, committed_dir: pathlib.Path
) -> list[RunComparison]:
    """Every finished rerun against the committed runs of its cell."""
    committed = _finished_runs(committed_dir)
    comparisons = []
    for run_dir, row, summary, cell_key in _finished_runs(rerun_dir):
        cell = [c for c in committed if same_cell(cell_key, c.cell)]
        twins = [c for c in cell if c.row["seed"] == row["seed"]]
        difference = first_difference(run_dir, twins[0].path) if twins else None
        environment = summary.get(run_files.ENVIRONMENT_KEY)
        # The machine of the twin decides whether a difference is expected;
        # without one, those of the seeds it is set against.
        committed_envs = [
            c.summary.get(run_files.ENVIRONMENT_KEY) for c in twins or cell
        ]
        machine, differing = _machine(environment, committed_envs)
        known = [env for env in committed_envs if env is not None]
        verdicts = []
        for key, label in REPORTED:
            values = [c.row[key] for c in cell if c.row[key] is not None]
            if (
                row[key] is None
                or not values
                or (key == "memorized_fraction" and not row["noise_rate"])
            ):
                continue
            verdicts.append(
                Verdict(label, row[key], intervals.prediction_interval(values))
            )
        comparisons.append(
            RunComparison(
                run=row["run"],
                committed_seeds=tuple(sorted(c.row["seed"] for c in cell)),
                identical=(difference is None) if twins else None,
                difference=difference,
                machine=machine,
                machine_differences=differing,
                rerun_machine=environment and run_environment.describe(environment),
                committed_machine=(
                    run_environment.describe(known[0]) if known else None
                ),
                verdicts=tuple(verdicts),
            )
        )
    return comparisons


def _points(fraction: float) -> str:
    return f"{100 * fraction:.2f}"


def _verdict_line(verdict: Verdict) -> str:
    interval = verdict.interval
    head = f"    {verdict.label}: {_points(verdict.value)}%; "
    if not verdict.judged:
        return (
            head + f"committed mean {_points(interval.mean)} (n={interval.n}): too "
            f"few committed seeds to judge (at least {MIN_SEEDS})"
        )
    where = "within" if verdict.within else "OUTSIDE"
    return (
        head + f"committed mean {_points(interval.mean)}, 95% prediction interval "
        f"for a further seed {_points(interval.low)}-{_points(interval.high)} "
        f"(n={interval.n}): {where}"
    )


def strict_failure(comparisons: Sequence[RunComparison]) -> bool:
    """More numbers outside their interval than chance explains (``--strict``).

    Judged numbers of runs that are not identical to their committed twin; the
    chance of as many outside or more, each outside with probability
    ``CHANCE``, must not be below ``STRICT_LEVEL``.
    """
    judged = [v for c in comparisons if not c.identical for v in c.verdicts if v.judged]
    outside = sum(not v.within for v in judged)
    if not outside:
        return False
    return float(stats.binom.sf(outside - 1, len(judged), CHANCE)) < STRICT_LEVEL


def _machine_text(comparison: RunComparison) -> str:
    if comparison.machine == "same":
        return "the same machine type and software"
    if comparison.machine == "different":
        return (
            "another machine type or software (differs in "
            + ", ".join(comparison.machine_differences)
            + ")"
        )
    if comparison.identical:
        return "the committed runs do not record their machine"
    return (
        "unknown machine: the committed runs do not record theirs (most likely "
        "another machine type)"
    )


def format_comparison(
    comparisons: Sequence[RunComparison], committed_name: str | pathlib.Path
) -> str:
    """The comparison as a few lines per run, then the totals and the machines."""
    lines = [f"Compared with the committed runs in {committed_name}:"]
    if not comparisons:
        lines.append("  no finished runs to compare")
    for comparison in comparisons:
        head = f"  {comparison.run}: "
        if not comparison.committed_seeds:
            lines.append(head + "no committed run has this config; nothing to compare")
            continue
        machine = _machine_text(comparison)
        if comparison.identical:
            lines.append(head + f"identical to the committed run ({machine})")
            continue
        if comparison.identical is None:
            verdict = "no committed run of this seed"
        elif comparison.machine == "same":
            verdict = (
                "DIFFERS from the committed run on the same machine type and "
                "software: the code or config changed (compare git_commit)"
            )
        else:
            verdict = f"not identical; {machine}"
        lines.append(head + verdict)
        if comparison.difference:
            lines.append(f"    first difference: {comparison.difference}")
        lines += [_verdict_line(verdict) for verdict in comparison.verdicts]
    identical = sum(bool(c.identical) for c in comparisons)
    others = [v for c in comparisons if not c.identical for v in c.verdicts]
    judged = [v for v in others if v.judged]
    total = f"{identical} of {len(comparisons)} run(s) identical to the committed ones"
    if judged:
        outside = sum(not v.within for v in judged)
        total += (
            f"; of the others' {len(judged)} judged numbers, {outside} outside their "
            f"95% prediction interval ({CHANCE * len(judged):.1f} expected by chance)"
        )
    if len(judged) < len(others):
        total += (
            f"; {len(others) - len(judged)} number(s) with too few committed seeds "
            "to judge"
        )
    machines = {c.rerun_machine for c in comparisons if c.rerun_machine}
    lines.append(total + ".")
    if machines:
        lines.append("This machine: " + "; ".join(sorted(machines)) + ".")
    committed = {c.committed_machine for c in comparisons if c.committed_machine}
    if committed:
        lines.append("Committed runs' machine: " + "; ".join(sorted(committed)) + ".")
    return "\n".join(lines) + "\n"


def print_comparison(
    rerun: str | pathlib.Path,
    committed: str | pathlib.Path,
    *,
    committed_flag: str = "--committed",
) -> list[RunComparison]:
    """Compares and prints; what sweep.py calls for a sweep config with compare_with.

    Returns:
      The comparisons (``strict_failure`` tells whether --strict would fail).

    Raises:
      CompareError: a directory is missing, or the committed one has no
        finished runs; the message names ``--rerun`` or ``committed_flag``.
    """
    rerun_dir = resolve_results_dir(rerun, "--rerun")
    committed_dir = resolve_results_dir(committed, committed_flag)
    if not _finished_runs(committed_dir):
        raise CompareError(
            f"{committed_flag}={committed}: no finished runs there; allowed: a "
            "sweep or run directory with summary.json files"
        )
    comparisons = compare(rerun_dir, committed_dir)
    print(format_comparison(comparisons, committed), end="")
    return comparisons


def main(argv: Sequence[str]) -> int:
    if len(argv) > 1:
        print(
            f"compare: unexpected argument {argv[1]!r}; allowed: --rerun=DIR "
            "--committed=DIR [--strict]",
            file=sys.stderr,
        )
        return 2
    try:
        for name in ("rerun", "committed"):
            if not flags.FLAGS[name].value:
                raise CompareError(f"--{name}: required ({flags.FLAGS[name].help})")
        comparisons = print_comparison(flags.FLAGS.rerun, flags.FLAGS.committed)
    except CompareError as error:
        print(f"compare: {error}", file=sys.stderr)
        return 2
    if flags.FLAGS.strict and strict_failure(comparisons):
        print(
            "compare: --strict: more numbers outside their prediction interval "
            f"than chance explains (probability below {STRICT_LEVEL:g})",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    # Defined here, not at import: sweep.py imports this module.
    flags.DEFINE_string(
        "rerun", None, "the rerun: a sweep directory or one run directory"
    )
    flags.DEFINE_string(
        "committed",
        None,
        "the committed results, e.g. results/fashion_mnist_benchmark",
    )
    flags.DEFINE_bool(
        "strict",
        False,
        "exit 1 when more numbers fall outside their 95% prediction interval "
        f"than chance explains (probability below {STRICT_LEVEL:g})",
    )
    app.run(main)
