"""Tests of the grid: expansion, run dirs, resolved configs and launch commands."""

import json

import pytest
from sweep_fakes import make_sweep_config

from tce_jax import run_files
from tce_jax.analysis import report_tables
from tce_jax.sweeps import grid


def test_grid_expansion_and_run_dirs(base_config_path):
    runs = grid.expand_grid(make_sweep_config(base_config_path))
    assert len(runs) == 2 * 2 * 2
    assert [run.rel_dir for run in runs[:4]] == [
        "fashion_mnist/symmetric-0/ce/seed0",
        "fashion_mnist/symmetric-0/tce-alpha0.01/seed0",
        "fashion_mnist/symmetric-0.4/ce/seed0",
        "fashion_mnist/symmetric-0.4/tce-alpha0.01/seed0",
    ]
    assert runs[-1].rel_dir == "fashion_mnist/symmetric-0.4/tce-alpha0.01/seed1"
    assert runs[3].overrides == {
        "num_epochs": 2,
        "data.train_subset": 100,
        "seed": 0,
        "data.dataset": "fashion_mnist",
        "noise.kind": "symmetric",
        "noise.rate": 0.4,
        "loss.name": "tce",
        "loss.alpha": 0.01,
    }


def test_cross_fitting_grid_makes_one_run_per_fold(base_config_path, tmp_path):
    config = make_sweep_config(base_config_path, noise_rates=(0.4,), holdout_folds=3)
    runs = grid.expand_grid(config)
    assert len(runs) == 2 * 2 * 3
    assert [run.rel_dir for run in runs[:3]] == [
        f"fashion_mnist/symmetric-0.4/ce/seed0-fold{fold}of3" for fold in range(3)
    ]
    assert runs[2].overrides["data.holdout_folds"] == 3
    assert runs[2].overrides["data.holdout_fold"] == 2
    assert runs[2].info()["holdout_folds"] == 3
    # The report leaves cross-fitting runs out of its tables.
    for run in (runs[0], *grid.expand_grid(make_sweep_config(base_config_path))[:1]):
        run_dir = tmp_path / "sweep" / run.rel_dir
        run_dir.mkdir(parents=True)
        (run_dir / run_files.RUN_INFO_FILE).write_text(json.dumps(run.info()))
    rows = report_tables.collect(tmp_path / "sweep")
    assert [row["run"] for row in rows] == ["fashion_mnist/symmetric-0/ce/seed0"]
    for bad in (1, -1, 2.0):
        with pytest.raises(ValueError, match="holdout_folds must be 0"):
            grid.expand_grid(make_sweep_config(base_config_path, holdout_folds=bad))


def test_grid_rejects_duplicates_and_empty_axes(base_config_path):
    with pytest.raises(ValueError, match="twice"):
        grid.expand_grid(make_sweep_config(base_config_path, seeds=(0, 0)))
    with pytest.raises(ValueError, match="empty"):
        grid.expand_grid(make_sweep_config(base_config_path, noise_rates=()))


def make_scenario_config(base_config_path, scenarios):
    config = make_sweep_config(base_config_path, seeds=(0,))
    del config["noise_kinds"], config["noise_rates"]
    config.scenarios = scenarios
    return config


def test_scenarios_give_noise_settings_that_are_not_a_product(base_config_path):
    config = make_scenario_config(
        base_config_path, (("symmetric", 0.0), ("pair", 0.2), ("instance", 0.4))
    )
    runs = grid.expand_grid(config)
    assert [run.rel_dir for run in runs[::2]] == [
        "fashion_mnist/symmetric-0/ce/seed0",
        "fashion_mnist/pair-0.2/ce/seed0",
        "fashion_mnist/instance-0.4/ce/seed0",
    ]
    assert runs[-1].overrides["noise.kind"] == "instance"
    assert runs[-1].overrides["noise.rate"] == 0.4
    # The product form expands to the same runs as its scenarios.
    product = make_sweep_config(base_config_path, seeds=(0,))
    pairs = make_scenario_config(
        base_config_path, (("symmetric", 0), ("symmetric", 0.4))
    )
    assert grid.expand_grid(product) == grid.expand_grid(pairs)


def test_scenarios_reject_mixed_forms_and_bad_pairs(base_config_path):
    both = make_sweep_config(base_config_path, scenarios=(("symmetric", 0.2),))
    with pytest.raises(ValueError, match="not both"):
        grid.expand_grid(both)
    with pytest.raises(ValueError, match="pair"):
        grid.expand_grid(make_scenario_config(base_config_path, (("symmetric",),)))
    with pytest.raises(ValueError, match=r"scenarios.*empty"):
        grid.expand_grid(make_scenario_config(base_config_path, ()))


def test_resolve_config_applies_overrides_and_catches_typos(base_config_path):
    run = grid.expand_grid(make_sweep_config(base_config_path))[3]
    config = grid.resolve_config(base_config_path, run.overrides)
    assert config.loss.alpha == 0.01
    assert config.data.train_subset == 100
    assert config.noise.rate == 0.4
    with pytest.raises(KeyError, match="num_epoch"):
        grid.resolve_config(base_config_path, {"num_epoch": 3})
    with pytest.raises(KeyError, match="nosie"):
        grid.resolve_config(base_config_path, {"nosie.rate": 0.2})


def test_launch_command_passes_every_override(base_config_path, tmp_path):
    run = grid.expand_grid(make_sweep_config(base_config_path))[3]
    # A workdir outside the repository stays absolute (tmp_path, not a fixed
    # path, which a clone could sit at).
    command = grid.launch_command(base_config_path, run, tmp_path / "x")
    assert command[1].endswith("launch.py")
    assert "--config.loss.alpha=0.01" in command
    assert "--config.noise.rate=0.4" in command
    assert "--config.data.train_subset=100" in command
    assert command[-1] == f"--workdir={tmp_path / 'x'}"
    assert grid._flag_value((1, 2)) == "(1, 2)"
    assert grid._flag_value(True) == "true"


def test_command_script_is_relative_to_the_repository_root(tmp_path):
    run = grid.expand_grid(make_sweep_config("configs/cpu_smoke.py"))[3]
    run_dir = grid.REPO_ROOT / "runs/some_sweep" / run.rel_dir
    script = grid.command_script("configs/cpu_smoke.py", run, run_dir)
    lines = script.splitlines()
    assert lines[2] == 'cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"'
    assert lines[3].startswith("python3 launch.py --config=configs/cpu_smoke.py ")
    assert lines[3].endswith(f"--workdir=runs/some_sweep/{run.rel_dir}")
    assert str(grid.REPO_ROOT) not in script
    # Outside the repository the work dir stays absolute.
    outside = grid.command_script("configs/cpu_smoke.py", run, tmp_path / "r")
    assert outside.splitlines()[3].endswith(f"--workdir={tmp_path / 'r'}")


def test_committed_commands_hold_no_machine_paths():
    scripts = list((grid.REPO_ROOT / "results").glob("**/command.sh"))
    assert scripts
    for script in scripts:
        command = script.read_text().splitlines()[-1]
        assert command.startswith("python3 launch.py --config=configs/"), script
        assert " /" not in command and "=/" not in command, script
