"""Per-dataset baseline settings: one table, the configs that use it, the docs.

The table is the loss registry's (``losses.published_settings``,
``losses.defaults(name, dataset)``); a run takes it through
``run_config.loss_hparams`` for ``config.data.dataset``, values set in
the config win, and docs/losses.md shows it (checked equal here).
"""

import json
import pathlib

import ml_collections
import pytest

from tce_jax import losses
from tce_jax.data.dataset_info import DATASETS
from tce_jax.sweeps import grid
from tce_jax.training import config as run_config
from tce_jax.training import config_validation

REPO = pathlib.Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "losses.md"
BEGIN = "<!-- settings per dataset: generated from tce_jax/losses.py -->"
END = "<!-- end of settings per dataset -->"
DATASET_TITLES = {
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "mnist": "MNIST",
    "svhn_cropped": "SVHN",
    "fashion_mnist": "Fashion-MNIST",
}
# The dataset configs and the CPU configs derived from them.
DATASET_CONFIGS = {
    "configs/cifar10.py": "cifar10",
    "configs/cifar100.py": "cifar100",
    "configs/mnist.py": "mnist",
    "configs/svhn.py": "svhn_cropped",
    "configs/fashion_mnist.py": "fashion_mnist",
    "configs/default.py": "fashion_mnist",
    "configs/cpu_cifar10.py": "cifar10",
    "configs/cpu_mnist.py": "mnist",
    "configs/cpu_fashion_mnist.py": "fashion_mnist",
}


def _number(value):
    return f"{value:g}"


def settings_table() -> str:
    """The markdown table docs/losses.md shows, rendered from the registry."""
    header = ["loss", *DATASET_TITLES.values(), "on every dataset"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in losses.names():
        if name == "tce" or not losses.hparam_names(name):
            continue
        published = losses.published_settings(name)
        varying = sorted({key for hparams in published.values() for key in hparams})
        cells = []
        for dataset in DATASET_TITLES:
            if not varying:
                cells.append("–")
                continue
            values = losses.defaults(name, dataset, num_classes=10)
            text = ", ".join(f"{key} {_number(values[key])}" for key in varying)
            cells.append(text if dataset in published else f"{text} †")
        fixed = {
            key: value
            for key, value in losses.defaults(name).items()
            if key not in varying
        }
        cells.append(", ".join(f"{k} {_number(v)}" for k, v in fixed.items()) or "–")
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def test_docs_show_the_registry_table():
    text = DOCS.read_text()
    assert BEGIN in text and END in text, f"docs/losses.md needs {BEGIN!r}"
    shown = text[text.index(BEGIN) + len(BEGIN) : text.index(END)].strip()
    want = settings_table()
    assert shown == want, f"docs/losses.md should show:\n{BEGIN}\n{want}\n{END}"


def test_the_table_covers_every_dataset_and_only_registered_losses():
    assert set(losses.DATASET_NAMES) == set(DATASETS) == set(DATASET_TITLES)
    for name in losses.names():
        for dataset, hparams in losses.published_settings(name).items():
            assert dataset in losses.DATASET_NAMES
            assert set(hparams) <= set(losses.hparam_names(name))
            losses.get(name, **hparams)  # in range


def test_registry_defaults_are_the_cifar10_settings():
    for name in losses.names():
        published = losses.published_settings(name)
        if published:
            cifar10 = published[losses.FALLBACK_DATASET]
            assert {k: losses.defaults(name)[k] for k in cifar10} == cifar10, name


def test_published_settings():
    assert losses.defaults("sce", "cifar100") == {
        "alpha": 6.0,
        "beta": 0.1,
        "log_zero": -4.0,
    }
    assert losses.defaults("sce_code", "cifar100") == {
        "alpha": 6.0,
        "beta": 0.1,
        "log_zero": losses.CODE_LOG_ZERO,
    }
    assert losses.defaults("sce", "mnist")["alpha"] == 0.01
    assert losses.defaults("nce_rce", "cifar100") | {} == {
        "alpha": 10.0,
        "beta": 0.1,
        "log_zero": -4.0,
    }
    assert losses.defaults("nce_mae", "cifar100") == {"alpha": 10.0, "beta": 1.0}
    assert losses.defaults("nce_rce", "mnist")["beta"] == 10.0
    assert losses.defaults("phuber_ce", "mnist") == {"tau": 10.0}
    # No published SVHN or Fashion-MNIST setting: CIFAR-10's (docs say why);
    # GCE's Fashion-MNIST setting was published.
    for dataset in ("svhn_cropped", "fashion_mnist"):
        assert losses.defaults("sce", dataset) == losses.defaults("sce")
        assert losses.defaults("phuber_ce", dataset) == {"tau": 2.0}
    assert "fashion_mnist" in losses.published_settings("gce")
    assert losses.defaults("tce", "cifar100", num_classes=100) == {"alpha": 0.01}
    with pytest.raises(ValueError, match="needs num_classes"):
        losses.defaults("tce", "cifar100")
    with pytest.raises(ValueError, match="known: cifar10"):
        losses.defaults("sce", "imagenet")


@pytest.mark.parametrize("path", sorted(DATASET_CONFIGS))
def test_dataset_configs_give_their_runs_the_dataset_settings(path):
    dataset = DATASET_CONFIGS[path]
    num_classes = DATASETS[dataset].num_classes
    for name in losses.names():
        config = grid.resolve_config(path, {"loss.name": name})
        assert config.data.dataset == dataset
        config_validation.validate(config, num_devices=1)
        want = losses.defaults(name, dataset, num_classes=num_classes)
        assert run_config.loss_hparams(config) == want, (path, name)
        effective = run_config.effective_config(config)["loss"]
        assert effective == {"name": name, **want, "alpha_rule": "fixed"}


def test_cifar100_sce_runs_at_its_published_setting_and_set_values_win():
    # python3 launch.py --config=configs/cifar100.py --config.loss.name=sce
    config = grid.resolve_config("configs/cifar100.py", {"loss.name": "sce"})
    assert run_config.effective_config(config)["loss"] == {
        "name": "sce",
        "alpha": 6.0,
        "beta": 0.1,
        "log_zero": -4.0,
        "alpha_rule": "fixed",
    }
    # TCE's alpha (0.01 here) is not carried over into SCE's alpha.
    config = grid.resolve_config(
        "configs/cifar100.py", {"loss.name": "sce", "loss.beta": 1.0}
    )
    assert run_config.loss_hparams(config) == {
        "alpha": 6.0,
        "beta": 1.0,
        "log_zero": -4.0,
    }
    config = grid.load_config_file("configs/cifar100.py:nce_mae")
    assert run_config.loss_hparams(config) == {"alpha": 10.0, "beta": 1.0}
    config = grid.load_config_file("configs/cifar100.py")
    assert run_config.loss_hparams(config) == {"alpha": 0.01}
    # A value set for another loss's hyperparameter is still refused.
    config = grid.resolve_config("configs/cifar100.py", {"loss.name": "sce"})
    config.loss.q = 0.7
    with pytest.raises(config_validation.ConfigError, match=r"config\.loss\.q"):
        config_validation.validate(config, num_devices=1)


def _old_loss_hparams(config: ml_collections.ConfigDict) -> dict:
    """The rule before per-dataset settings: registry defaults, then set values."""
    loss = config.loss
    given = {
        key: value
        for key, value in loss.items()
        if key not in ("name", "alpha_rule", "alpha_max", "alpha_offset")
        and value is not None
    }
    hparams = losses.defaults(loss.name) | given
    if loss.get("alpha_rule", "fixed") != "fixed":
        hparams.pop("alpha", None)
    return hparams


def test_every_committed_run_builds_the_same_loss_as_when_it_ran():
    """Each committed run's config (config.json) resolves to the loss it ran."""
    paths = sorted(REPO.glob("results/**/config.json"))
    assert len(paths) > 300
    for path in paths:
        config = ml_collections.ConfigDict(json.loads(path.read_text()))
        assert run_config.loss_hparams(config) == _old_loss_hparams(config), path


@pytest.mark.parametrize(
    "stem", sorted(p.stem for p in (REPO / "configs" / "sweeps").glob("[!_]*.py"))
)
def test_committed_sweeps_resolve_as_before(stem):
    """Every run of every sweep: the loss it gets is its explicit values over the
    registry defaults, as before the per-dataset settings (all are Fashion-MNIST
    sweeps, whose settings are the registry defaults)."""
    path = REPO / "configs" / "sweeps" / f"{stem}.py"
    parts = {
        "fashion_mnist_alpha_rule": ("symmetric", "class_instance", "baselines"),
        "fashion_mnist_alpha_rule_dev": (
            "uniform",
            "symmetric",
            "uniform-auto",
            "symmetric-auto",
        ),
    }.get(stem, ("",))
    for part in parts:
        sweep = grid.load_config_file(f"{path}:{part}" if part else path)
        for run in grid.expand_grid(sweep):
            config = grid.resolve_config(sweep.base_config, run.overrides)
            assert run_config.loss_hparams(config) == _old_loss_hparams(config), (
                run.rel_dir
            )
