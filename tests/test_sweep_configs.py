"""Shipped configs: sweeps list valid runs; TCE configs follow alpha = 1/K; a
cell of the accelerator-sized CIFAR-10 sweep trains on the CPU."""

import pathlib

import pytest
import tensorflow_datasets as tfds

from tce_jax import losses
from tce_jax.data import input_pipeline
from tce_jax.sweeps import grid
from tce_jax.training import config as run_config
from tce_jax.training import config_validation, loop

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SWEEP_CONFIGS = sorted((REPO_ROOT / "configs" / "sweeps").glob("[!_]*.py"))
RUN_CONFIGS = sorted((REPO_ROOT / "configs").glob("[!_]*.py"))
# Runs per sweep (config file, or file:argument for those with parts), so
# that a grid cannot silently grow or shrink.
EXPECTED_RUNS = {
    "alpha_study": 36,
    "cifar10_noise": 96,
    "demo": 4,
    "fashion_mnist_alpha_rule:symmetric": 12,
    "fashion_mnist_alpha_rule:class_instance": 12,
    "fashion_mnist_alpha_rule:baselines": 24,
    "fashion_mnist_alpha_rule_dev:uniform": 12,
    "fashion_mnist_alpha_rule_dev:symmetric": 6,
    "fashion_mnist_alpha_rule_dev:uniform-auto": 8,
    "fashion_mnist_alpha_rule_dev:symmetric-auto": 4,
    "fashion_mnist_alpha_rule_v2_dev:step": 60,
    "fashion_mnist_alpha_rule_v2_dev:cosine": 60,
    "fashion_mnist_alpha_rule_v2_dev:large": 60,
    "fashion_mnist_benchmark": 480,
    "fashion_mnist_class_instance": 72,
    "fashion_mnist_label_errors": 18,
    "fashion_mnist_label_errors_folds": 27,
    "fashion_mnist_large": 12,
    "fashion_mnist_noise": 75,
    "fashion_mnist_sce_log_zero": 18,
    "fashion_mnist_symmetric_selection": 36,
}


def test_every_sweep_config_is_counted():
    counted = {name.partition(":")[0] for name in EXPECTED_RUNS}
    assert sorted(path.stem for path in SWEEP_CONFIGS) == sorted(counted)


@pytest.mark.parametrize("name", sorted(EXPECTED_RUNS))
def test_sweep_config_lists_valid_runs(name):
    """What `sweep.py --dry_run` does, plus validating each run's resolved config."""
    stem, _, arg = name.partition(":")
    path = REPO_ROOT / "configs" / "sweeps" / f"{stem}.py"
    sweep_config = grid.load_config_file(f"{path}:{arg}" if arg else path)
    runs = grid.expand_grid(sweep_config)
    assert len(runs) == EXPECTED_RUNS[name]
    for run in runs:
        config = grid.resolve_config(sweep_config.base_config, run.overrides)
        config_validation.validate(config, num_devices=1)
        command = grid.launch_command(sweep_config.base_config, run, run.rel_dir)
        assert f"--workdir={run.rel_dir}" in command
    assert f"--config=configs/sweeps/{path.name}" in path.read_text()


@pytest.mark.parametrize(
    ("part", "training_images"), [("step", 900), ("cosine", 900), ("large", 3000)]
)
def test_alpha_rule_v2_dev_parts_train_on_the_images_their_readme_says(
    part, training_images
):
    """The training subset holds the noisy validation split as well."""
    path = REPO_ROOT / "configs" / "sweeps" / "fashion_mnist_alpha_rule_v2_dev.py"
    sweep_config = grid.load_config_file(f"{path}:{part}")
    for run in grid.expand_grid(sweep_config):
        data = grid.resolve_config(sweep_config.base_config, run.overrides).data
        assert data.train_subset - data.validation_examples == training_images


def test_instance_noise_is_a_valid_config_and_typos_say_what_is_allowed():
    config = grid.load_config_file("configs/cpu_smoke.py")
    config.noise.kind = "instance"
    config_validation.validate(config, num_devices=1)
    config.noise.kind = "instanse"
    with pytest.raises(config_validation.ConfigError, match=r"allowed: .*\binstance\b"):
        config_validation.validate(config, num_devices=1)


def test_default_tce_alpha_is_one_over_k():
    assert losses.DEFAULT_TCE_ALPHA == losses.default_tce_alpha(10) == 0.1
    assert losses.default_tce_alpha(100) == 0.01
    for bad in (1, 2.0, True):
        with pytest.raises(ValueError, match="num_classes must be an int >= 2"):
            losses.default_tce_alpha(bad)


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=lambda path: path.stem)
def test_tce_run_configs_follow_the_alpha_rule(path):
    config = grid.load_config_file(path)
    num_classes = input_pipeline.DATASETS[config.data.dataset].num_classes
    config.loss.name = "tce"
    # The alpha the run resolves to (a config may leave it unset).
    alpha = run_config.loss_hparams(config)["alpha"]
    assert alpha == losses.default_tce_alpha(num_classes)


@pytest.mark.slow
def test_a_cell_of_the_cifar10_sweep_trains_one_step_on_the_cpu(
    compilation_cache, tmp_path
):
    """One step of the first cell as the sweep would launch it (ResNet-34, batch
    128, SGD at the published rate, crop + flip, symmetric noise, noisy
    validation) on tfds' mock CIFAR-10 (no internet here): 144 images, of which
    10% are noisy validation, leave one batch of 128."""
    sweep_config = grid.load_config_file("configs/sweeps/cifar10_noise.py")
    run = grid.expand_grid(sweep_config)[0]
    config = grid.resolve_config(sweep_config.base_config, run.overrides)
    assert (config.model.name, config.batch_size, config.num_epochs) == (
        "resnet34",
        128,
        120,
    )
    config.data.data_dir = str(tmp_path / "tfds")
    config.data.train_subset = 144
    config.num_epochs = 1
    config.schedule.decay_epochs = ()  # Its decays come at epochs 40 and 80.
    config.eval_batch_size = 128
    with tfds.testing.mock_data(
        num_examples=144, policy=tfds.testing.MockPolicy.USE_CODE
    ):
        summary = loop.train_and_evaluate(config, str(tmp_path / "run"))
    assert summary["num_epochs"] == 1
    assert summary["effective_config"]["noise"]["kind"] == run.noise_kind
    assert 0.0 <= summary["final_test_accuracy"] <= 1.0
    history = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(history) == 1 and '"step": 1,' in history[0]
