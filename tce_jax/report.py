"""Tables and plots of a sweep: results.csv, results.md and PNG figures.

    python3 -m tce_jax.report --sweep_dir=runs/demo [--curves_per_seed]

Reads every run dir under the sweep dir (``run_files``: run.json from the
sweep, metrics.jsonl and summary.json from training, the training predictions
for the gradient weights) and writes into <sweep_dir>/report:

- results.csv: one row per run, whatever its state (``run_files.run_state``);
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
- accuracy_vs_noise_*.png, curves_*.png (clean-train accuracy, memorisation
  and test accuracy against epoch: per loss the mean over seeds with a band
  from the lowest to the highest seed, CE on top, each seed's selected epoch
  marked; one line per seed too with --curves_per_seed), gradient_weights_*.png (TCE's
  per-example gradient weight on clean against mislabelled examples) and, when
  several TCE alphas were run, accuracy_vs_alpha_*.png.

Tables: ``report_tables`` (no matplotlib); plots: ``report_plots``.
"""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Sequence

from absl import app, flags, logging

from tce_jax import report_plots, report_tables, run_files
from tce_jax.run_files import FINISHED

REPORT_DIR = "report"


def write_report(
    sweep_dir: str | pathlib.Path,
    out_dir: str | pathlib.Path | None = None,
    *,
    curves_per_seed: bool = False,
) -> pathlib.Path:
    """Writes results.csv, results.md and the plots; prints the tables.

    Args:
      sweep_dir: the sweep's directory.
      out_dir: where to write (default <sweep_dir>/report).
      curves_per_seed: draw one line per seed in curves_*.png, besides the
        mean and band over seeds.

    Returns:
      The report directory (default <sweep_dir>/report).
    """
    sweep_dir = pathlib.Path(sweep_dir)
    out_dir = pathlib.Path(out_dir) if out_dir else sweep_dir / REPORT_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = report_tables.collect(sweep_dir)
    _warn_on_summary_mismatch(rows, sweep_dir)
    report_tables.write_csv(rows, out_dir / "results.csv")
    tables = report_tables.markdown_tables(rows)
    (out_dir / "results.md").write_text(f"# Results of {sweep_dir}\n\n{tables}")
    plots = (
        report_plots.plot_accuracy_vs_noise(rows, out_dir)
        + report_plots.plot_curves(rows, out_dir, per_seed=curves_per_seed)
        + report_plots.plot_gradient_weights(rows, sweep_dir, out_dir)
        + report_plots.plot_accuracy_vs_alpha(rows, out_dir)
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
    write_report(sweep_dir, curves_per_seed=flags.FLAGS.curves_per_seed)
    return 0


if __name__ == "__main__":
    # Defined here, not at import: sweep.py imports this module and has no
    # --sweep_dir.
    flags.DEFINE_string(
        "sweep_dir", None, "Sweep directory to report on.", required=True
    )
    flags.DEFINE_bool(
        "curves_per_seed",
        False,
        "curves_*.png: one line per seed too, besides the mean and band over seeds.",
    )
    app.run(main)
