"""Every docstring example in the harness runs (they are the tiny examples of STYLE.md)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import harness

SKIP = {"harness.__main__", "harness.cli.__main__"}
MODULES = sorted(
    m.name for m in pkgutil.walk_packages(harness.__path__, "harness.")
    if m.name not in SKIP and not m.name.startswith("harness.checks")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} failing example(s) in {name}"
