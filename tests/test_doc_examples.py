"""The examples in the library's docstrings run and print what they say."""

import doctest
import pathlib
import re

import pytest

from tce_jax import alpha_rules, losses, noise


@pytest.mark.parametrize(
    "module",
    [alpha_rules, pytest.param(losses, marks=pytest.mark.slow), noise],
    ids=lambda m: m.__name__,
)
def test_docstring_examples_run(module):
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    assert result.attempted > 0
    assert result.failed == 0


REPO = pathlib.Path(__file__).resolve().parents[1]
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
_PRINTED = re.compile(r"^print\((.*)\)\s+#\s*([^:\s]+)", re.MULTILINE)


@pytest.mark.parametrize("doc", ["README.md", "docs/losses.md"])
def test_python_blocks_in_the_docs_run_and_print_what_they_say(doc, capsys):
    blocks = _BLOCK.findall((REPO / doc).read_text())
    assert blocks
    for block in blocks:
        exec(compile(block, doc, "exec"), {})
        printed = capsys.readouterr().out.split()
        said = [value for _, value in _PRINTED.findall(block)]
        assert printed[: len(said)] == said
