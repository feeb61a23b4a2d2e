"""tce_jax's layers: each imports only the layers below it (docs/development.md,
"Layout"), so the library installs alone and analysis never needs training code.
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "tce_jax"
LIBRARY = {"losses", "noise", "alpha_rules", "seeding"}
RUN_FOLDER = {"run_files", "run_environment", "selection"}
# What each layer may import, besides itself.
MAY_IMPORT = {
    "library": {"library"},
    "run folder": {"library", "run folder"},
    "data": {"library", "run folder", "data"},
    "training": {"library", "run folder", "data", "training"},
    "sweeps": {"library", "run folder", "sweeps"},
    "analysis": {"library", "run folder", "analysis"},
}
# Entry points that only hand over to a layer.
ENTRY_POINTS = {"__init__", "report"}


def _layer(module: str) -> str:
    """The layer of a dotted module name under tce_jax ("data.splits")."""
    parts = module.split(".")
    if parts[0] in ("data", "training", "sweeps", "analysis"):
        return parts[0]
    if parts[0] in LIBRARY:
        return "library"
    if parts[0] in RUN_FOLDER:
        return "run folder"
    raise AssertionError(f"tce_jax.{module} belongs to no layer")


def _imported(path: pathlib.Path) -> set[str]:
    """The tce_jax modules a file imports (anywhere in it), without the prefix."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "tce_jax":
                found.update(alias.name for alias in node.names)
            elif node.module.startswith("tce_jax."):
                found.add(node.module.removeprefix("tce_jax."))
        elif isinstance(node, ast.Import):
            found.update(
                alias.name.removeprefix("tce_jax.")
                for alias in node.names
                if alias.name.startswith("tce_jax.")
            )
    return found


MODULES = sorted(
    path
    for path in PACKAGE.rglob("*.py")
    if not (path.parent == PACKAGE and path.stem in ENTRY_POINTS)
)


@pytest.mark.parametrize(
    "path", MODULES, ids=lambda path: str(path.relative_to(PACKAGE))
)
def test_a_module_imports_only_its_layer_and_the_ones_below(path):
    relative = path.relative_to(PACKAGE).with_suffix("")
    layer = _layer(".".join(relative.parts))
    wrong = {
        module for module in _imported(path) if _layer(module) not in MAY_IMPORT[layer]
    }
    assert not wrong, f"{relative} ({layer}) imports {sorted(wrong)}"


def test_no_module_but_the_loss_library_is_over_500_lines():
    long = {
        str(path.relative_to(PACKAGE)): len(path.read_text().splitlines())
        for path in PACKAGE.rglob("*.py")
        if path.name != "losses.py"
    }
    assert {name: n for name, n in long.items() if n > 500} == {}
