"""The repository stands on its own: every path its docs point to exists."""

import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
DOCS = sorted(
    path
    for path in REPO.glob("**/*.md")
    if not {".git", "runs", ".pytest_cache"} & set(path.relative_to(REPO).parts)
)
# Repository paths written in backticks, e.g. `tce_jax/losses.py`.
_CODE_PATH = re.compile(
    r"`((?:tce_jax|configs|tests|benchmarks|scripts|results|docs)/[\w./-]+)`"
)
_LINK = re.compile(r"\]\(([^)#\s]+)")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_referenced_path_exists(doc):
    text = doc.read_text()
    links = [link for link in _LINK.findall(text) if "://" not in link]
    missing = [link for link in links if not (doc.parent / link).exists()]
    missing += [
        path
        for path in _CODE_PATH.findall(text)
        if "NAME" not in path and not (REPO / path).exists()
    ]
    assert not missing, f"{doc.relative_to(REPO)} points to missing files: {missing}"


def test_docs_were_found():
    assert {"README.md", "docs/losses.md"} <= {
        str(doc.relative_to(REPO)) for doc in DOCS
    }
