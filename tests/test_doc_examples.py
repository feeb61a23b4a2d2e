"""The examples in the library's docstrings run and print what they say."""

import doctest

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
