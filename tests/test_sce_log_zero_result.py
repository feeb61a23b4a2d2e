"""results/fashion_mnist_sce_log_zero: its README quotes what the runs give.

The accuracy table is the report's generated block; the paired differences
(A = ln 1e-4 minus A = -4, same seed, same data and noise) are computed here
from the unrounded accuracies of report/results.csv and must be the README's.
"""

import csv
import pathlib

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
RESULTS = REPO / "results" / "fashion_mnist_sce_log_zero"
SCENARIOS = (("symmetric", "0.4"), ("pair", "0.4"), ("instance", "0.4"))
PAPER, CODE = "sce-alpha0.1-beta1", "sce_code-alpha0.1-beta1"
COLUMNS = {
    "final epoch": "final_test_accuracy",
    "epoch selected on noisy validation": "best_val_test_accuracy",
}


def _signed(values, digits):
    return " ".join(f"{100 * v:+.{digits}f}" for v in values)


def difference_table() -> str:
    """Markdown: per scenario, code minus paper in points, mean [each seed]."""
    with open(RESULTS / "report" / "results.csv", newline="") as f:
        rows = [row for row in csv.DictReader(f) if row["status"] == "finished"]
    runs = {
        (row["noise_kind"], row["noise_rate"], row["loss"], int(row["seed"])): row
        for row in rows
    }
    lines = [
        "| scenario | " + " | ".join(COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    for kind, rate in SCENARIOS:
        seeds = sorted(
            seed
            for (k, r, loss, seed) in runs
            if (k, r, loss) == (kind, rate, PAPER) and (kind, rate, CODE, seed) in runs
        )
        cells = []
        for key in COLUMNS.values():
            differences = [
                float(runs[(kind, rate, CODE, seed)][key])
                - float(runs[(kind, rate, PAPER, seed)][key])
                for seed in seeds
            ]
            cells.append(
                f"{_signed([np.mean(differences)], 2)} [{_signed(differences, 1)}]"
            )
        lines.append(f"| {kind} {rate} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def test_all_18_runs_finished_at_one_clean_commit():
    with open(RESULTS / "report" / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 18
    assert {row["status"] for row in rows} == {"finished"}
    commits = {row["git_commit"] for row in rows}
    assert len(commits) == 1 and not commits.pop().endswith("-dirty")
    assert not list(RESULTS.glob("**/*.npz")), "prediction files are not committed"


def test_readme_quotes_the_paired_differences():
    readme = (RESULTS / "README.md").read_text()
    table = difference_table()
    assert table in readme, f"README.md should hold:\n{table}"


if __name__ == "__main__":
    print(difference_table())
