"""katas/ and solutions/ expose the same public API, and the stubs' examples are true.

Like rustlings' mirrored ``exercises/`` and ``solutions/`` trees: for every
kata present in both folders, the same public names (``__all__``), the same
signatures (``inspect.signature``), and the same public members on classes.
The stubs' docstring examples are run against the solutions, so a learner
never reads an example that the reference does not honour.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KATAS = sorted(p.stem for p in (ROOT / "katas").glob("*.py") if not p.stem.startswith("_")
               if (ROOT / "solutions" / p.name).exists())


def public_api(module) -> dict[str, str]:
    """Every public name with a description of its shape: signatures, and class members."""
    api = {}
    for name in module.__all__:
        value = getattr(module, name)
        if inspect.isclass(value):
            for member, attr in vars(value).items():
                if member.startswith("_") and member not in ("__init__", "__call__"):
                    continue
                api[f"{name}.{member}"] = _shape(attr)
            api[name] = f"class({', '.join(b.__name__ for b in value.__bases__)})"
        else:
            api[name] = _shape(value)
    return api


def _shape(value) -> str:
    if isinstance(value, property):
        return "property"
    if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
    if callable(value):
        kind = "async " if inspect.iscoroutinefunction(value) else ""
        try:
            return f"{kind}def{inspect.signature(value)}"
        except (TypeError, ValueError):
            return "callable"
    return f"value {value!r}"


def test_there_is_a_kata_to_compare():
    assert "breaker" in KATAS


@pytest.mark.parametrize("kata", KATAS)
def test_same_public_names_and_signatures(kata: str):
    stub = importlib.import_module(f"katas.{kata}")
    reference = importlib.import_module(f"solutions.{kata}")
    assert sorted(stub.__all__) == sorted(reference.__all__)
    assert public_api(stub) == public_api(reference)


@pytest.mark.parametrize("kata", KATAS)
def test_the_stubs_examples_hold_for_the_solution(kata: str):
    stub = importlib.import_module(f"katas.{kata}")
    reference = importlib.import_module(f"solutions.{kata}")
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = [t for t in finder.find(stub) if t.examples]
    assert tests, f"katas/{kata}.py has no examples in its docstrings"
    for test in tests:
        test.globs = dict(vars(reference))  # the stub's example, the reference's code
        runner.run(test)
    assert runner.failures == 0, f"{runner.failures} example(s) in katas/{kata}.py do not hold for the solution"
