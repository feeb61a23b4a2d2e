r"""The registered choice among the candidate rules, computed from the reports.

  python3 results/fashion_mnist_alpha_rule_v2_dev/choose.py step cosine

Reads each part's report/results.csv (unrounded) and prints, per candidate:
the mean over the parts of (mean over seeds of the mean over the noisy
settings of candidate - CE in final noisy-validation accuracy), and the mean
over parts and seeds of candidate - TCE 0.1 in final noisy-validation accuracy
on clean labels; then the choice by the rule in README.md. Test accuracy is
printed beside it and chooses nothing. Where the best candidate is more than
CLEAN_MARGIN behind TCE 0.1 on clean labels, the other candidate may win.
"""

import csv
import pathlib
import statistics
import sys

HERE = pathlib.Path(__file__).parent
CANDIDATES = ("tce-val_peak", "tce-val_track")
BASELINE = "tce-auto"
CLEAN_MARGIN = 1.0  # points below TCE 0.1 on clean labels that disqualify


def rows(part: str) -> dict[tuple[str, float, str, int], dict[str, str]]:
    with open(HERE / part / "report" / "results.csv") as file:
        return {
            (r["noise_kind"], float(r["noise_rate"]), r["loss"], int(r["seed"])): r
            for r in csv.DictReader(file)
            if r["status"] == "finished"
        }


def noisy_mean_difference(table, loss: str, reference: str, metric: str) -> float:
    """Mean over seeds of the per-seed mean over noisy settings of loss - reference."""
    settings = sorted({(k, r) for k, r, _, _ in table if r > 0})
    seeds = sorted({s for *_, s in table})
    per_seed = [
        statistics.mean(
            _points(table, k, r, loss, reference, s, metric) for k, r in settings
        )
        for s in seeds
    ]
    return statistics.mean(per_seed)


def _points(table, kind, rate, loss, reference, seed, metric) -> float:
    a, b = table[kind, rate, loss, seed], table[kind, rate, reference, seed]
    return 100 * (float(a[metric]) - float(b[metric]))


def clean_difference(table, loss: str, reference: str, metric: str) -> float:
    seeds = sorted({s for k, r, _, s in table if r == 0})
    return statistics.mean(
        _points(table, "symmetric", 0.0, loss, reference, s, metric) for s in seeds
    )


def main(parts: list[str]) -> None:
    tables = {part: rows(part) for part in parts}
    scores = {}
    print(f"parts: {', '.join(parts)}; points, unrounded until printed")
    for loss in (BASELINE, *CANDIDATES):
        noisy_val, noisy_test = (
            statistics.mean(
                noisy_mean_difference(t, loss, "ce", m) for t in tables.values()
            )
            for m in ("final_val_accuracy", "final_test_accuracy")
        )
        clean_val = statistics.mean(
            clean_difference(t, loss, "tce-alpha0.1", "final_val_accuracy")
            for t in tables.values()
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
