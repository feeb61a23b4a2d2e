"""Tables and plots of a sweep: results.csv, results.md and PNG figures.

    python3 -m tce_jax.analysis.report --sweep_dir=runs/demo [--curves_per_seed]
    python3 -m tce_jax.analysis.report --sweep_dir=results/NAME --update_readme

Reads every run dir under the sweep dir (``run_files``) and writes into
<sweep_dir>/report: results.csv (one row per run, whatever its state);
results.md (when any run used a GPU or TPU, the platforms the runs ran on,
with a line when some fell back to the CPU; per dataset and noise kind, test
accuracy at the final epoch and at the epoch of best *noisy-validation*
accuracy, mean and 95% interval over the finished seeds, never selected on
test; the row "TCE, alpha chosen on noisy validation"
(`choose_tce_alpha_on_validation`: per seed the TCE run with the best
noisy-validation accuracy, ties to the smaller alpha); each loss's
seed-paired difference to CE with its 95% interval, per setting and over the
noisy settings; memorisation, the fall after the test peak and the machines);
and the plots accuracy_vs_noise_*.png, curves_*.png, gradient_weights_*.png
and, when several TCE alphas were run, accuracy_vs_alpha_*.png. Tables:
``report_tables`` and ``report_markdown`` (no matplotlib); plots:
``report_plots``. What each table and plot shows: docs/results.md, "Reports".

With ``--update_readme`` it only rewrites the generated block of
<sweep_dir>/README.md (``report_markdown.readme_block``), so that a results
README quotes the tables its runs give, never retyped ones; with
``--headline=README.md`` the generated headline of the repository README
(``headline``) from the sweep's runs.

A sweep dir with a PLAN.md (a pre-registered plan, ``plan``) also gets the
plan's comparisons and targets in its tables, and
report/preregistration.txt: whether every run descends from the plan
commit that registers its loss (printed too).
"""

from __future__ import annotations

import collections
import pathlib
import sys
from collections.abc import Sequence

from absl import app, flags, logging

from tce_jax import run_environment, run_files
from tce_jax.analysis import (
    headline,
    plan,
    report_markdown,
    report_plots,
    report_tables,
)
from tce_jax.run_files import FINISHED

REPORT_DIR = "report"
PREREGISTRATION_FILE = "preregistration.txt"


def results_title(
    sweep_dir: str | pathlib.Path, also: Sequence[str | pathlib.Path] = ()
) -> str:
    """The first line of results.md: the sweep, and the sweeps joined with --also."""
    title = f"# Results of {sweep_dir}"
    return title + (f" with {', '.join(map(str, also))}" if also else "")


def write_report(
    sweep_dir: str | pathlib.Path,
    out_dir: str | pathlib.Path | None = None,
    *,
    curves_per_seed: bool = False,
    also: Sequence[str | pathlib.Path] = (),
) -> pathlib.Path:
    """Writes results.csv, results.md and the plots; prints the tables.

    Args:
      sweep_dir: the sweep's directory.
      out_dir: where to write (default <sweep_dir>/report).
      curves_per_seed: draw one line per seed in curves_*.png, besides the
        mean and band over seeds.
      also: other sweep dirs whose runs join the tables and plots (for
        example the committed CE runs a new loss is compared with).

    Returns:
      The report directory (default <sweep_dir>/report).
    """
    sweep_dir = pathlib.Path(sweep_dir)
    out_dir = pathlib.Path(out_dir) if out_dir else sweep_dir / REPORT_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = report_tables.collect_many(sweep_dir, also)
    _warn_on_summary_mismatch(rows, sweep_dir)
    environments = _finished_environments(rows, sweep_dir)
    _warn_on_mixed_machines(environments, sweep_dir)
    recorded = {run: env for run, env in environments.items() if env}
    platforms = run_environment.platform_lines(recorded)
    for line in platforms[1:]:  # Runs that fell back to the CPU.
        logging.warning("%s: %s", sweep_dir, line)
    report_tables.write_csv(rows, out_dir / "results.csv")
    registered = registered_plan(sweep_dir)
    tables = report_markdown.results_markdown(rows, registered)
    where = "".join(f"{line}\n\n" for line in platforms)
    # A report of CPU runs only stays as it was (the committed ones regenerate
    # identically); one with GPU or TPU runs names the platforms.
    on_accelerators = any(env.get("platform") != "cpu" for env in recorded.values())
    (out_dir / "results.md").write_text(
        f"{results_title(sweep_dir, also)}\n\n"
        f"{where if on_accelerators else ''}{tables}"
    )
    if registered:
        descent = check_preregistration(sweep_dir, rows)
        text = "\n".join([descent.summary(), *descent.problems]) + "\n"
        (out_dir / PREREGISTRATION_FILE).write_text(text)
        print(text, end="")
    plots = (
        report_plots.plot_accuracy_vs_noise(rows, out_dir)
        + report_plots.plot_curves(rows, out_dir, per_seed=curves_per_seed)
        + report_plots.plot_gradient_weights(rows, sweep_dir, out_dir)
        + report_plots.plot_accuracy_vs_alpha(rows, out_dir)
        + report_plots.plot_alpha(rows, out_dir)
    )
    print(where + tables)
    print(f"Report in {out_dir}/: results.csv, results.md and {len(plots)} plots:")
    for path in plots:
        print(f"  {path}")
    return out_dir


def registered_plan(sweep_dir: str | pathlib.Path) -> plan.Plan | None:
    """The plan of <sweep_dir>/PLAN.md as it reads now, or None without one.

    Raises:
      plan.PlanError: the plan's block cannot be read.
    """
    path = pathlib.Path(sweep_dir) / plan.PLAN_FILE
    return plan.parse(path.read_text()) if path.is_file() else None


def check_preregistration(sweep_dir: str | pathlib.Path, rows) -> plan.Descent:
    """Whether every finished run descends from the plan commit that registers
    its loss (``plan.check_descent``)."""
    return plan.check_descent(
        pathlib.Path(sweep_dir) / plan.PLAN_FILE,
        [
            (row["run"], row["loss"], row["git_commit"])
            for row in rows
            if row["status"] == FINISHED
        ],
    )


def _finished_environments(rows, sweep_dir: pathlib.Path) -> dict[str, dict | None]:
    """{run: where it ran} of the finished runs (None: runs that predate the
    record)."""
    return {
        row["run"]: run_files.read_summary(sweep_dir / row["run"]).get(
            run_files.ENVIRONMENT_KEY
        )
        for row in rows
        if row["status"] == FINISHED
    }


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


def update_headline(sweep_dir: str, path: str | pathlib.Path) -> pathlib.Path:
    """Rewrites the generated headline of the Markdown file ``path`` (the
    repository README) from the runs of ``sweep_dir`` (``headline``).

    Raises:
      ValueError: the file has no (or a broken) generated headline.
    """
    path = pathlib.Path(path)
    block = headline.headline_block(
        report_tables.collect(sweep_dir), sweep_dir, registered_plan(sweep_dir)
    )
    try:
        path.write_text(headline.replace_block(path.read_text(), block))
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    return path


def update_readme(sweep_dir: str | pathlib.Path) -> pathlib.Path:
    """Rewrites the generated block of <sweep_dir>/README.md (between markers).

    Raises:
      ValueError: the README has no (or a broken) generated block.
    """
    path = pathlib.Path(sweep_dir) / "README.md"
    block = report_markdown.readme_block(
        report_tables.collect(sweep_dir), registered_plan(sweep_dir)
    )
    text = report_markdown.replace_generated(
        path.read_text(),
        report_markdown.README_BEGIN,
        report_markdown.README_END,
        block,
    )
    if text is None:
        raise ValueError(
            f"{path}: no generated block; add the two marker lines "
            f"{report_markdown.README_BEGIN!r} and {report_markdown.README_END!r} "
            "where it belongs"
        )
    path.write_text(text)
    return path


def _warn_on_mixed_machines(environments, sweep_dir: pathlib.Path) -> None:
    """Flags a sweep whose finished runs were made on several machine types:
    their numbers differ like seeds', so no table cell compares them digit by
    digit (runs that predate the record count as one unknown machine).

    Args:
      environments: ``_finished_environments``.
      sweep_dir: the sweep dir, named in the warning.
    """
    runs_by_machine = collections.defaultdict(list)
    for run, environment in environments.items():
        # Derived from the record, not read from it: a signature stored by
        # older code would split one machine in two.
        signature = environment and run_environment.machine_signature(environment)
        runs_by_machine[signature].append(run)
    if len(runs_by_machine) > 1:
        logging.warning(
            "%s: the runs were made on %d machine types or software stacks (%s); "
            "compare them as seeds, not digit by digit",
            sweep_dir,
            len(runs_by_machine),
            "; ".join(
                f"{signature or 'not recorded'}: {len(runs)} run(s), e.g. {runs[0]}"
                for signature, runs in runs_by_machine.items()
            ),
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
    if flags.FLAGS.update_readme or flags.FLAGS.headline:
        try:
            if flags.FLAGS.update_readme:
                print(f"rewrote the generated block of {update_readme(sweep_dir)}")
            if flags.FLAGS.headline:
                path = update_headline(sweep_dir, flags.FLAGS.headline)
                print(f"rewrote the generated headline of {path}")
        except (ValueError, OSError) as error:
            print(f"report: {error}", file=sys.stderr)
            return 2
        return 0
    also = [path for path in flags.FLAGS.also if path]
    for path in also:
        if not pathlib.Path(path).is_dir():
            print(
                f"report: --also={path}: no such directory; allowed: sweep directories",
                file=sys.stderr,
            )
            return 2
    try:
        write_report(sweep_dir, curves_per_seed=flags.FLAGS.curves_per_seed, also=also)
    except plan.PlanError as error:
        print(f"report: {sweep_dir}/{plan.PLAN_FILE}: {error}", file=sys.stderr)
        return 2
    except ValueError as error:
        print(f"report: --also: {error}", file=sys.stderr)
        return 2
    return 0


def define_flags() -> None:
    """Defines the report's command-line flags.

    Not at import: sweep.py imports this module and has no --sweep_dir.
    """
    flags.DEFINE_string(
        "sweep_dir", None, "Sweep directory to report on.", required=True
    )
    flags.DEFINE_bool(
        "curves_per_seed",
        False,
        "curves_*.png: one line per seed too, besides the mean and band over seeds.",
    )
    flags.DEFINE_list(
        "also",
        [],
        "Other sweep directories whose runs join this report (comma-separated).",
    )
    flags.DEFINE_bool(
        "update_readme",
        False,
        "Only rewrite the generated headline tables of <sweep_dir>/README.md.",
    )
    flags.DEFINE_string(
        "headline",
        None,
        "Only rewrite the generated headline block of this Markdown file (the "
        "repository README) from the sweep's runs; with --update_readme, both.",
    )


if __name__ == "__main__":
    define_flags()
    app.run(main)
