"""The grid of a sweep: its runs, their resolved configs and launch commands.

A sweep config (``configs/sweeps/*.py``, each with ``get_config()``) names a base
run config and the axes of the grid::

    base_config: path of a run config (e.g. "configs/cpu_fashion_mnist.py")
    overrides:   nested dict applied to every run (e.g. {"num_epochs": 8})
    datasets, noise_kinds, noise_rates, seeds: tuples
    scenarios:   optional, instead of noise_kinds x noise_rates: a tuple of
                 (noise kind, rate) pairs, for grids that are not a product
                 (e.g. symmetric 0-0.6 but pair noise only at 0.2 and 0.4)
    losses:      tuple of dicts, each {"name": <registry name>, <hparam>: value}
    jobs:        runs at once on this machine (0 = one per core, or per GPU)
    holdout_folds: optional; K >= 2 makes every grid point K cross-fitting
                 runs (``seed0-fold1of3``: trains on all folds of the training
                 examples but fold 1 and predicts it; config.data.holdout_fold)

Every point of dataset x noise kind x noise rate x loss x seed is one run in its
own readable directory under the sweep dir, e.g.
``fashion_mnist/symmetric-0.4/tce-alpha0.01/seed0``, trained by
``python3 launch.py --config=<base> --config.<key>=<value> ... --workdir=<dir>``.
How a sweep is readied and run: ``sweep_plan``; sweep.py is the command.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import os
import pathlib
import shlex
import sys
from collections.abc import Mapping
from typing import Any

import ml_collections
from flax import traverse_util

from tce_jax import run_files

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
LAUNCH_SCRIPT = REPO_ROOT / "launch.py"


@dataclasses.dataclass(frozen=True)
class Run:
    """One point of the grid.

    Attributes:
      dataset: input_pipeline.DATASETS name.
      noise_kind: noise.KINDS name.
      noise_rate: nominal noise rate.
      loss_name: losses registry name.
      loss_hparams: sorted (name, value) pairs passed to the loss.
      seed: config seed.
      fold, num_folds: the held-out fold of a cross-fitting run (num_folds 0:
        an ordinary run).
      overrides: flat {"dotted.key": value} applied to the base config, holding
        the sweep-wide overrides and this run's axis values.
    """

    dataset: str
    noise_kind: str
    noise_rate: float
    loss_name: str
    loss_hparams: tuple[tuple[str, Any], ...]
    seed: int
    overrides: Mapping[str, Any]
    fold: int = 0
    num_folds: int = 0

    @property
    def loss_label(self) -> str:
        return run_files.loss_label(self.loss_name, dict(self.loss_hparams))

    @property
    def rel_dir(self) -> str:
        """Work dir relative to the sweep dir; readable and deterministic."""
        return "/".join(
            (
                self.dataset,
                f"{self.noise_kind}-{run_files.format_number(self.noise_rate)}",
                self.loss_label,
                f"seed{self.seed}"
                + (f"-fold{self.fold}of{self.num_folds}" if self.num_folds else ""),
            )
        )

    def info(self) -> dict[str, Any]:
        """What the report needs to place the run in its tables (run.json)."""
        return {
            "dataset": self.dataset,
            "noise_kind": self.noise_kind,
            "noise_rate": self.noise_rate,
            "loss": self.loss_label,
            "loss_name": self.loss_name,
            "loss_hparams": dict(self.loss_hparams),
            "seed": self.seed,
            "holdout_fold": self.fold,
            "holdout_folds": self.num_folds,
            "rel_dir": self.rel_dir,
            "overrides": dict(self.overrides),
        }


def flatten(nested: Mapping[str, Any] | ml_collections.ConfigDict) -> dict[str, Any]:
    """{"data": {"train_subset": 5}} -> {"data.train_subset": 5}."""
    if isinstance(nested, ml_collections.ConfigDict):
        nested = nested.to_dict()
    return traverse_util.flatten_dict(dict(nested), sep=".")


def noise_scenarios(
    sweep_config: ml_collections.ConfigDict,
) -> tuple[tuple[str, float], ...]:
    """The sweep's (noise kind, rate) pairs: ``scenarios``, or the product of
    ``noise_kinds`` and ``noise_rates``.

    Raises:
      ValueError: both forms given, or neither, or a scenario that is not a
        (kind, rate) pair.
    """
    has_product = "noise_kinds" in sweep_config or "noise_rates" in sweep_config
    if "scenarios" in sweep_config:
        if has_product:
            raise ValueError(
                "sweep config: give either scenarios or noise_kinds and "
                "noise_rates, not both"
            )
        scenarios = tuple(tuple(pair) for pair in sweep_config.scenarios)
        for pair in scenarios:
            if len(pair) != 2 or not isinstance(pair[0], str):
                raise ValueError(
                    f"sweep scenario {pair!r}: allowed: a (noise kind, rate) pair"
                )
        return tuple((kind, float(rate)) for kind, rate in scenarios)
    for name in ("noise_kinds", "noise_rates"):
        if not tuple(sweep_config.get(name) or ()):
            raise ValueError(f"sweep axis {name!r} is empty")
    return tuple(
        (kind, float(rate))
        for kind, rate in itertools.product(
            sweep_config.noise_kinds, sweep_config.noise_rates
        )
    )


def expand_grid(sweep_config: ml_collections.ConfigDict) -> list[Run]:
    """All runs of a sweep config, in a stable order (seed varies slowest).

    Seeds vary slowest so that a sweep stopped half-way has complete tables for
    its first seeds rather than some cells with every seed and others empty.

    Raises:
      ValueError: on an empty axis, a loss without a name or duplicated runs.
    """
    axes = {name: tuple(sweep_config[name]) for name in ("datasets", "losses", "seeds")}
    axes["scenarios"] = noise_scenarios(sweep_config)
    for name, values in axes.items():
        if not values:
            raise ValueError(f"sweep axis {name!r} is empty")
    shared = flatten(sweep_config.get("overrides") or {})
    num_folds = sweep_config.get("holdout_folds", 0)
    if not isinstance(num_folds, int) or num_folds < 0 or num_folds == 1:
        raise ValueError(
            f"sweep holdout_folds must be 0 (ordinary runs) or an int >= 2, got "
            f"{num_folds!r}"
        )
    runs = []
    for seed, dataset, (kind, rate), loss, fold in itertools.product(
        axes["seeds"],
        axes["datasets"],
        axes["scenarios"],
        axes["losses"],
        range(max(num_folds, 1)),
    ):
        loss = dict(loss)
        if "name" not in loss:
            raise ValueError(f"loss entry {loss} has no 'name'")
        name = loss.pop("name")
        hparams = tuple(sorted(loss.items()))
        overrides = {
            **shared,
            "seed": int(seed),
            "data.dataset": dataset,
            "noise.kind": kind,
            "noise.rate": float(rate),
            "loss.name": name,
            **{f"loss.{key}": value for key, value in hparams},
        }
        if num_folds:
            overrides |= {"data.holdout_folds": num_folds, "data.holdout_fold": fold}
        runs.append(
            Run(
                dataset=dataset,
                noise_kind=kind,
                noise_rate=float(rate),
                loss_name=name,
                loss_hparams=hparams,
                seed=int(seed),
                overrides=overrides,
                fold=fold,
                num_folds=num_folds,
            )
        )
    seen = set()
    for run in runs:
        if run.rel_dir in seen:
            raise ValueError(f"run {run.rel_dir} appears twice in the grid")
        seen.add(run.rel_dir)
    return runs


def resolve_path(path: str | os.PathLike) -> pathlib.Path:
    """A config path as given, else relative to the repository root."""
    candidate = pathlib.Path(path)
    if candidate.exists():
        return candidate.resolve()
    in_repo = REPO_ROOT / candidate
    if in_repo.exists():
        return in_repo
    raise FileNotFoundError(f"config file {path} not found (nor under {REPO_ROOT})")


def load_config_file(path: str | os.PathLike) -> ml_collections.ConfigDict:
    """Calls get_config() of a config file, as config_flags would.

    ``"file.py:arg"`` calls ``get_config("arg")``, as ``--config=file.py:arg`` does.
    """
    path, separator, arg = str(path).partition(".py:")
    path = resolve_path(path + ".py" if separator else path)
    if str(REPO_ROOT) not in sys.path:
        # Config files import each other as `configs.<name>`, as under launch.py.
        sys.path.insert(0, str(REPO_ROOT))
    spec = importlib.util.spec_from_file_location(f"_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg) if separator else module.get_config()


def resolve_config(
    base_config_path: str | os.PathLike, overrides: Mapping[str, Any]
) -> ml_collections.ConfigDict:
    """The run config launch.py will build from the base config and overrides.

    Raises:
      KeyError: if an override names a field the base config does not have (a
        typo in a sweep config fails here, before any run starts).
    """
    config = load_config_file(base_config_path)
    was_locked = config.is_locked
    # Locked, an update cannot add a field: a typo raises KeyError naming it.
    config.lock()
    try:
        # Setting through the ConfigDict keeps FieldReference links and
        # placeholder types, exactly like a --config.<key> flag does.
        config.update_from_flattened_dict(
            {
                dotted: tuple(value) if isinstance(value, list) else value
                for dotted, value in overrides.items()
            }
        )
    finally:
        if not was_locked:
            config.unlock()
    return config


def _flag_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return repr(tuple(value))
    return str(value)


def _repo_relative(path: str | os.PathLike) -> str:
    """The path relative to the repository root when it lies inside it.

    Launches run with the repository root as working directory, so commands
    written this way are the same on every machine and in every clone.
    """
    path = pathlib.Path(path).absolute()
    return str(path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path)


def launch_command(
    base_config_path: str | os.PathLike,
    run: Run,
    workdir: str | os.PathLike,
    *,
    python: str = sys.executable,
) -> list[str]:
    """The launch.py command line of one run, to be run from the repository root."""
    command = [
        python,
        _repo_relative(LAUNCH_SCRIPT),
        f"--config={_repo_relative(resolve_path(base_config_path))}",
    ]
    command += [f"--config.{key}={_flag_value(v)}" for key, v in run.overrides.items()]
    command.append(f"--workdir={_repo_relative(workdir)}")
    return command


def command_script(
    base_config_path: str | os.PathLike, run: Run, run_dir: str | os.PathLike
) -> str:
    """The text of a run's command.sh: its launch command, portable across clones.

    Inside the repository the script first moves to the repository root, found
    from the script's own place, so it still works after the run directory is
    moved within the repository (e.g. into results/).
    """
    command = shlex.join(
        launch_command(base_config_path, run, run_dir, python="python3")
    )
    if pathlib.Path(run_dir).absolute().is_relative_to(REPO_ROOT):
        to_root = 'cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"'
    else:
        to_root = f"cd {shlex.quote(str(REPO_ROOT))}"
    return f"#!/usr/bin/env bash\nset -e\n{to_root}\n{command}\n"
