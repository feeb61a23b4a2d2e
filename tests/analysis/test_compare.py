"""Tests of the rerun-against-committed comparison (tce_jax.analysis.compare)."""

import dataclasses
import json
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tce_jax import run_environment, run_files
from tce_jax.analysis import compare
from tce_jax.sweeps import grid

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIG = {
    "seed": 0,
    "num_epochs": 2,
    "optimizer": {"learning_rate": 0.05},
    "data": {"dataset": "fashion_mnist", "data_dir": None},
    "noise": {"kind": "symmetric", "rate": 0.4},
    "loss": {"name": "tce", "alpha": 0.1},
}
# Final and selected test accuracy, memorised fraction of the committed seeds.
COMMITTED = {0: (0.60, 0.66, 0.50), 1: (0.62, 0.67, 0.46), 2: (0.63, 0.70, 0.48)}


def write_run(
    root,
    seed,
    final,
    selected,
    memorized,
    *,
    environment=None,
    effective=False,
    **config,
):
    """A finished run dir of symmetric-0.4/tce-alpha0.1 with two evaluated epochs
    (recording its config as effective, as runs do now, or as given only)."""
    run_dir = root / f"fashion_mnist/symmetric-0.4/tce-alpha0.1/seed{seed}"
    run_dir.mkdir(parents=True)
    info = {
        "dataset": "fashion_mnist",
        "noise_kind": "symmetric",
        "noise_rate": 0.4,
        "loss": "tce-alpha0.1",
        "loss_name": "tce",
        "loss_hparams": {"alpha": 0.1},
        "seed": seed,
    }
    (run_dir / run_files.RUN_INFO_FILE).write_text(json.dumps(info))
    history = [
        {"epoch": 1, "val_accuracy": 0.5, "test_accuracy": selected,
         "memorized_fraction": 0.2, "train_clean_accuracy": 0.7,
         "elapsed_seconds": 10.0 + seed},
        {"epoch": 2, "val_accuracy": 0.4, "test_accuracy": final,
         "memorized_fraction": memorized, "train_clean_accuracy": 0.8,
         "elapsed_seconds": 20.0 + seed},
    ]  # fmt: skip
    run_files.write_metrics(run_dir, history)
    merged = json.loads(json.dumps(CONFIG))
    for key, value in config.items():
        merged[key] = value
    summary = {
        "final_test_accuracy": final,
        "best_val_test_accuracy": selected,
        "best_val_epoch": 1,
        "best_test_accuracy": max(final, selected),
        "memorized_fraction": memorized,
        "train_clean_accuracy": 0.8,
        "realised_noise_rate": 0.4,
        "num_epochs": 2,
        "config": dict(merged, seed=seed),
        "wall_seconds": 30.0 + seed,
    }
    if effective:
        summary["effective_config"] = dict(merged, seed=seed)
    if environment is not None:
        summary[run_files.ENVIRONMENT_KEY] = environment
    run_files.write_summary(run_dir, summary)
    return run_dir


def record_machine(root, environment):
    """Gives every run under root the environment record of a newer run."""
    for path in root.rglob(run_files.SUMMARY_FILE):
        summary = json.loads(path.read_text())
        summary[run_files.ENVIRONMENT_KEY] = environment
        run_files.write_summary(path.parent, summary)


@pytest.fixture
def committed(tmp_path):
    root = tmp_path / "committed"
    for seed, numbers in COMMITTED.items():
        write_run(root, seed, *numbers)
    return root


def test_a_copy_is_identical_and_the_unrecorded_machine_is_unknown(committed, tmp_path):
    rerun = tmp_path / "rerun"
    shutil.copytree(committed, rerun)
    # Timings differ between any two runs; they are not compared.
    history = run_files.read_metrics(
        rerun / "fashion_mnist/symmetric-0.4/tce-alpha0.1/seed1"
    )
    history[0]["elapsed_seconds"] = 99.0
    run_files.write_metrics(
        rerun / "fashion_mnist/symmetric-0.4/tce-alpha0.1/seed1", history
    )
    comparisons = compare.compare(rerun, committed)
    assert [c.identical for c in comparisons] == [True, True, True]
    assert {c.machine for c in comparisons} == {"unknown"}
    assert all(c.committed_seeds == (0, 1, 2) for c in comparisons)
    text = compare.format_comparison(comparisons, committed)
    assert text.count("identical to the committed run") == 3
    assert "3 of 3 run(s) identical" in text
    # One run directory compares alone.
    [alone] = compare.compare(
        rerun / "fashion_mnist/symmetric-0.4/tce-alpha0.1/seed1", committed
    )
    assert alone.identical and alone.committed_seeds == (0, 1, 2)


def test_another_machine_is_set_against_the_committed_seeds(committed, tmp_path):
    here = run_environment.collect()
    record_machine(
        committed, dict(here, cpu_model="Other CPU", isa_features=["avx", "avx2"])
    )
    # Final accuracy inside its prediction interval, selected above it.
    write_run(tmp_path / "rerun", 0, 0.615, 0.80, 0.47, environment=here)
    (comparison,) = compare.compare(tmp_path / "rerun", committed)
    assert comparison.identical is False
    assert comparison.difference == ("epoch 1 test_accuracy: 0.8 here, 0.66 committed")
    assert comparison.machine == "different"
    assert comparison.machine_differences == ("cpu_model", "isa_features")
    final, selected, memorized = comparison.verdicts
    values = np.array([numbers[0] for numbers in COMMITTED.values()])
    # mean ± t(0.975, 2) sd sqrt(1 + 1/3), t(0.975, 2) = 4.3027.
    half = 4.302652729911275 * values.std(ddof=1) * np.sqrt(4 / 3)
    assert final.interval.mean == pytest.approx(values.mean())
    assert final.interval.low == pytest.approx(values.mean() - half)
    assert final.interval.high == pytest.approx(values.mean() + half)
    assert final.within and not selected.within and memorized.within
    text = compare.format_comparison([comparison], committed)
    assert (
        "another machine type or software (differs in cpu_model, isa_features)" in text
    )
    assert (
        "test accuracy, final epoch: 61.50%; committed mean 61.67, 95% prediction "
        "interval for a further seed 54.08-69.26 (n=3): within"
    ) in text
    assert "test accuracy, selected epoch: 80.00%" in text and ": OUTSIDE" in text
    assert (
        "of the others' 3 judged numbers, 1 outside their 95% prediction interval "
        "(0.2 expected by chance)"
    ) in text
    assert not compare.strict_failure([comparison])


def test_too_few_committed_seeds_are_not_judged(committed, tmp_path):
    for seed in (1, 2):
        shutil.rmtree(
            committed / f"fashion_mnist/symmetric-0.4/tce-alpha0.1/seed{seed}"
        )
    write_run(tmp_path / "rerun", 3, 0.10, 0.10, 0.99)
    (comparison,) = compare.compare(tmp_path / "rerun", committed)
    assert not any(verdict.judged for verdict in comparison.verdicts)
    assert all(verdict.within for verdict in comparison.verdicts)
    text = compare.format_comparison([comparison], committed)
    assert "committed mean 60.00 (n=1): too few committed seeds to judge" in text
    assert "nan" not in text
    assert "3 number(s) with too few committed seeds to judge" in text
    assert not compare.strict_failure([comparison])


def test_strict_fails_a_doctored_rerun_and_passes_a_seed_like_one(committed, tmp_path):
    for seed, numbers in COMMITTED.items():
        write_run(tmp_path / "like", seed, *(x + 0.004 for x in numbers))
        write_run(tmp_path / "doctored", seed, 0.95, 0.95, 0.01)
    like = compare.compare(tmp_path / "like", committed)
    assert not any(c.identical for c in like)
    assert all(v.within for c in like for v in c.verdicts)
    assert not compare.strict_failure(like)
    doctored = compare.compare(tmp_path / "doctored", committed)
    assert not any(v.within for c in doctored for v in c.verdicts)
    assert compare.strict_failure(doctored)
    # One number outside among nine is what chance gives now and then.
    off = dataclasses.replace(like[2].verdicts[0], value=0.0)
    one_off = [
        *like[:2],
        dataclasses.replace(like[2], verdicts=(off, *like[2].verdicts[1:])),
    ]
    assert not compare.strict_failure(one_off)


def test_self_tuning_runs_match_only_on_effective_configs(tmp_path):
    """A rule's default changed between commits (the first rule's offset):
    runs that recorded no effective config cannot be placed in its cell."""
    auto = {"name": "tce", "alpha_rule": "auto", "alpha_max": 0.5}
    for seed in range(3):
        write_run(tmp_path / "old", seed, 0.6, 0.6, 0.5, loss=dict(auto))
        write_run(
            tmp_path / "new",
            seed,
            0.6,
            0.6,
            0.5,
            effective=True,
            loss=dict(auto, alpha_offset=0.0),
        )
    write_run(
        tmp_path / "rerun",
        0,
        0.6,
        0.6,
        0.5,
        effective=True,
        loss=dict(auto, alpha_offset=0.0),
    )
    (against_old,) = compare.compare(tmp_path / "rerun", tmp_path / "old")
    assert against_old.committed_seeds == ()
    (against_new,) = compare.compare(tmp_path / "rerun", tmp_path / "new")
    assert against_new.committed_seeds == (0, 1, 2) and against_new.identical
    write_run(
        tmp_path / "offset",
        0,
        0.6,
        0.6,
        0.5,
        effective=True,
        loss=dict(auto, alpha_offset=0.1),
    )
    (other_rule,) = compare.compare(tmp_path / "offset", tmp_path / "new")
    assert other_rule.committed_seeds == ()


def test_a_difference_on_the_same_machine_points_at_the_code(committed, tmp_path):
    here = run_environment.collect()
    # The twin (seed 1) was made here, the other seeds elsewhere: the twin's
    # machine is what makes a difference unexpected.
    record_machine(committed, dict(here, cpu_model="Other CPU"))
    record_machine(committed / "fashion_mnist/symmetric-0.4/tce-alpha0.1/seed1", here)
    write_run(tmp_path / "rerun", 1, 0.62, 0.67, 0.47, environment=here)
    (comparison,) = compare.compare(tmp_path / "rerun", committed)
    assert (comparison.identical, comparison.machine) == (False, "same")
    assert "DIFFERS from the committed run on the same machine type" in (
        compare.format_comparison([comparison], committed)
    )


def test_cells_are_matched_on_the_training_config(committed, tmp_path):
    # Another learning rate is another cell, whatever the directory name says.
    write_run(tmp_path / "other", 0, *COMMITTED[0], optimizer={"learning_rate": 0.1})
    (comparison,) = compare.compare(tmp_path / "other", committed)
    assert comparison.committed_seeds == () and comparison.identical is None
    assert "no committed run has this config" in compare.format_comparison(
        [comparison], committed
    )
    # A field added to the code later (absent from the committed configs) and
    # another data_dir do not make another cell; a new seed is compared with
    # the spread only.
    write_run(tmp_path / "newer", 7, *COMMITTED[0], new_field=3, data={
        "dataset": "fashion_mnist", "data_dir": "/elsewhere"})  # fmt: skip
    (comparison,) = compare.compare(tmp_path / "newer", committed)
    assert comparison.committed_seeds == (0, 1, 2) and comparison.identical is None
    assert len(comparison.verdicts) == 3
    # A run recording its effective config (the defaults it used resolved)
    # is a seed of the same cell as runs that recorded the config as given.
    write_run(tmp_path / "effective", 8, *COMMITTED[0], effective=True)
    (comparison,) = compare.compare(tmp_path / "effective", committed)
    assert comparison.committed_seeds == (0, 1, 2)


def test_epochs_tested_by_one_run_only_are_not_differences(committed, tmp_path):
    """A run testing fewer epochs (test_eval_every_epochs) has the same numbers
    where both tested; its best_test_accuracy is the peak of fewer epochs."""
    rerun = tmp_path / "rerun"
    shutil.copytree(committed, rerun)
    run_dir = rerun / "fashion_mnist/symmetric-0.4/tce-alpha0.1/seed2"
    history = run_files.read_metrics(run_dir)
    history[0]["test_accuracy"] = None
    run_files.write_metrics(run_dir, history)
    summary = run_files.read_summary(run_dir)
    summary["best_test_accuracy"] = 0.1
    run_files.write_summary(run_dir, summary)
    twin = committed / run_dir.relative_to(rerun)
    assert compare.first_difference(run_dir, twin) is None
    history[1]["train_clean_accuracy"] = 0.81
    run_files.write_metrics(run_dir, history)
    assert compare.first_difference(run_dir, twin) == (
        "epoch 2 train_clean_accuracy: 0.81 here, 0.8 committed"
    )


def _compare_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "tce_jax.analysis.compare", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.slow
def test_cli_prints_the_comparison_and_exits_0_unless_strict(committed, tmp_path):
    for seed in COMMITTED:
        write_run(tmp_path / "rerun", seed, 0.2, 0.2, 0.99)
    args = (f"--rerun={tmp_path / 'rerun'}", f"--committed={committed}")
    result = _compare_cli(*args)
    assert result.returncode == 0, result.stderr
    assert "not identical; unknown machine" in result.stdout
    strict = _compare_cli(*args, "--strict")
    assert strict.returncode == 1
    assert strict.stdout == result.stdout
    assert strict.stderr.startswith("compare: --strict: more numbers outside")


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, expected",
    [
        (["--committed=results/fashion_mnist_noise"], "compare: --rerun: required"),
        (["--rerun=/nonexistent", "--committed=results/fashion_mnist_noise"],
         "compare: --rerun=/nonexistent: no such directory; allowed: a sweep "
         "directory or a run directory"),
        (["--rerun=results/fashion_mnist_noise", "--committed=configs"],
         "compare: --committed=configs: no finished runs there"),
    ],
)  # fmt: skip
def test_bad_input_gets_one_line(args, expected):
    result = _compare_cli(*args)
    assert result.returncode == 2
    assert result.stderr.startswith(expected), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_the_demo_runs_are_cells_of_the_grid_it_compares_with():
    """Same config as committed runs, so on their machine type bit-identical."""
    demo = grid.load_config_file(REPO_ROOT / "configs/sweeps/demo.py")
    committed = REPO_ROOT / demo.compare_with
    for run in grid.expand_grid(demo):
        # As summary.json keeps it (JSON: tuples become lists).
        config = json.loads(
            grid.resolve_config(demo.base_config, run.overrides).to_json()
        )
        committed_config = run_files.read_summary(committed / run.rel_dir)["config"]
        assert compare.same_cell(
            compare.cell_of({"config": config}),
            compare.cell_of({"config": committed_config}),
        ), run.rel_dir
        assert config["seed"] == committed_config["seed"]
