r"""The registered choice among the candidate rules, computed from the runs.

  python3 results/fashion_mnist_alpha_rule_v2_dev/choose.py step cosine

Reads each part's finished runs (unrounded, as the report does) and prints, per
candidate: the mean over the parts of the report's noisy-setting mean of
(candidate - CE) in final noisy-validation accuracy (``noisy_mean``: per seed
the mean over the noisy settings, then the mean over seeds), and the mean over
the parts of (candidate - TCE 0.1) in final noisy-validation accuracy on clean
labels; then the choice by the rule in README.md. Test accuracy is printed
beside it and chooses nothing. Where the best candidate is more than
CLEAN_MARGIN behind TCE 0.1 on clean labels, the other candidate may win.
"""

import pathlib
import statistics
import sys

from tce_jax.analysis import report_markdown, report_tables

HERE = pathlib.Path(__file__).parent
CANDIDATES = ("tce-val_peak", "tce-val_track")
BASELINE = "tce-auto"
CLEAN_MARGIN = 1.0  # points below TCE 0.1 on clean labels that disqualify
VAL, TEST = "final_val_accuracy", "final_test_accuracy"


def finished_rows(part: str) -> list[dict]:
    return [
        row
        for row in report_tables.collect(HERE / part)
        if row["status"] == report_tables.FINISHED
    ]


def clean_difference(rows, loss: str, reference: str, key: str) -> float:
    """Mean over seeds of loss - reference on clean labels, in points."""
    clean = [row for row in rows if row["noise_rate"] == 0]
    labelled = report_markdown.label_rows(clean)
    return report_markdown.paired(labelled, loss, reference, 0.0, key).mean


def main(parts: list[str]) -> None:
    parts_rows = [finished_rows(part) for part in parts]
    scores = {}
    print(f"parts: {', '.join(parts)}; points, unrounded until printed")
    for loss in (BASELINE, *CANDIDATES):
        noisy_val, noisy_test = (
            statistics.mean(
                report_markdown.noisy_mean(rows, loss, "ce", key).mean
                for rows in parts_rows
            )
            for key in (VAL, TEST)
        )
        clean_val = statistics.mean(
            clean_difference(rows, loss, "tce-alpha0.1", VAL) for rows in parts_rows
        )
        scores[loss] = (noisy_val, clean_val)
        print(
            f"{loss}: noisy mean - CE, final noisy-val {noisy_val:+.2f} "
            f"(test {noisy_test:+.2f}); "
            f"clean - TCE 0.1, final noisy-val {clean_val:+.2f}"
        )
    eligible = [c for c in CANDIDATES if scores[c][1] >= -CLEAN_MARGIN]
    best = max(eligible, key=lambda c: scores[c][0], default=None)
    chosen = best if best and scores[best][0] > scores[BASELINE][0] else BASELINE
    print(f"chosen: {chosen}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["step"])
