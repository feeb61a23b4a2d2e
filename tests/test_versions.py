"""One JAX version: the lowest pyproject.toml allows, the locked one, the docs'.

CI tests the locked versions only, so the lowest JAX the project admits must
be the locked one, and the accelerator installs in docs/accelerators.md must
pin it too (an unpinned ``jax[cuda12]`` takes the newest JAX, untested here).
"""

import pathlib
import re
import tomllib

REPO = pathlib.Path(__file__).resolve().parents[1]


def _locked_jax():
    lock = (REPO / "requirements.lock").read_text()
    [version] = re.findall(r"^jax==(\S+)$", lock, flags=re.MULTILINE)
    return version


def test_the_lowest_jax_allowed_is_the_locked_one():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    [jax] = [d for d in project["dependencies"] if re.match(r"jax\b", d)]
    assert jax == f"jax>={_locked_jax()}"


def test_the_docs_install_the_locked_jax_for_accelerators():
    docs = (REPO / "docs" / "accelerators.md").read_text()
    pins = dict(re.findall(r'"jax\[(\w+)\]==([^"]+)"', docs))
    assert {"cuda12", "cuda13", "tpu"} <= set(pins)
    assert set(pins.values()) == {_locked_jax()}
    # No accelerator install without a version, in the README or any docs page.
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        assert not re.search(r'pip install[^\n`]*"jax\[\w+\]"', path.read_text())
