"""Chapter 02's "your breaker in the outage" cell, on the paths nbval never takes.

The stored chapter runs against the stub in katas/, so nbval only ever sees the
"implement level 1 first" message. Here the same cell code (read from the
notebook, so it cannot drift) runs against the solution, a half-done breaker,
a buggy one and a file that does not compile.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from matplotlib.figure import Figure

from harness.toolchain.reset import ResetError, starting_version

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "chapters" / "02-circuit-breakers.ipynb"


def code_cells() -> list[str]:
    notebook = json.loads(CHAPTER.read_text(encoding="utf-8"))
    return ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]


@pytest.fixture(scope="module")
def chapter() -> dict[str, Any]:
    """The namespace after the chapter's imports cell and its learner_cascade cell."""
    cells = code_cells()
    imports = next(c for c in cells if c.startswith("%matplotlib inline"))
    plug_in = next(c for c in cells if "def learner_cascade(" in c)
    namespace: dict[str, Any] = {}
    without_magics = "\n".join(line for line in imports.splitlines() if not line.startswith("%"))
    exec(compile(without_magics, "chapter02-imports", "exec"), namespace)
    exec(compile(plug_in, "chapter02-learner-cascade", "exec"), namespace)
    return namespace


def cascade_of(chapter: dict[str, Any], folder: Path | str) -> tuple[Any, str]:
    """Run the chapter's learner_cascade (20 virtual seconds: the breakers open at t ≈ 11 s)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        figure = chapter["learner_cascade"](str(folder), duration=20)
    return figure, printed.getvalue()


def breaker_file(folder: Path, body: str) -> Path:
    """folder/breaker.py: the reference solution with ``body`` as a subclass (like the kata's tests)."""
    source = ("from solutions.breaker import *  # noqa: F403\n"
              "from solutions.breaker import CircuitBreaker as Reference\n\n\n"
              "class CircuitBreaker(Reference):\n" + body)
    (folder / "breaker.py").write_text(source)
    return folder


def test_the_solution_plugs_in_and_opens_when_the_scenarios_breaker_does(chapter: dict[str, Any]) -> None:
    figure, printed = cascade_of(chapter, "solutions")
    assert isinstance(figure, Figure) and len(figure.axes) == 2
    theirs, yours = printed.splitlines()
    assert theirs.startswith("the scenario's breaker") and yours.startswith("your breaker")
    assert "first open at t = 11.086 s" in theirs and "first open at t = 11.086 s" in yours
    assert "browsing available 100.0%" in yours
    assert "Careful" not in printed and "never called" not in printed


def test_the_stub_says_implement_level_1_first(chapter: dict[str, Any], tmp_path: Path) -> None:
    stub = ROOT / "katas" / "breaker.py"
    try:
        source, _ = starting_version(stub)
    except ResetError:  # not committed yet: the working copy is the stub
        source = stub.read_bytes()
    (tmp_path / "breaker.py").write_bytes(source)
    figure, printed = cascade_of(chapter, tmp_path)
    assert figure is None
    assert "still the stub (level 1). Implement level 1 first" in printed


def test_a_breaker_without_call_async_is_sent_to_level_3(chapter: dict[str, Any], tmp_path: Path) -> None:
    breaker_file(tmp_path, "    async def call_async(self, fn, /, *args, **kwargs):\n"
                           "        raise NotImplementedError\n")
    figure, printed = cascade_of(chapter, tmp_path)
    assert figure is None
    assert "CircuitBreaker.call_async is still the stub (level 3). Implement level 3 first" in printed


def test_a_guard_that_raises_something_else_is_flagged(chapter: dict[str, Any], tmp_path: Path) -> None:
    breaker_file(tmp_path, "    async def guard(self, call):\n"
                           "        raise RuntimeError('oops')\n")
    figure, printed = cascade_of(chapter, tmp_path)
    assert isinstance(figure, Figure)  # it runs: orders takes every refusal for an open breaker...
    assert "Careful: your guard raised errors other than CircuitBreakerError" in printed  # ...so we say so
    assert "RuntimeError: oops" in printed


def test_silent_listeners_are_pointed_out(chapter: dict[str, Any], tmp_path: Path) -> None:
    breaker_file(tmp_path, "    def __init__(self, *args, listeners=(), **kwargs):\n"
                           "        super().__init__(*args, **kwargs)  # forgets the listeners\n")
    figure, printed = cascade_of(chapter, tmp_path)
    assert isinstance(figure, Figure)
    assert "Your listeners were never called (level 5)" in printed


def test_a_file_that_does_not_compile_is_one_line(chapter: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "breaker.py").write_text("class CircuitBreaker(:\n")
    figure, printed = cascade_of(chapter, tmp_path)
    assert figure is None
    assert printed.startswith("Could not load your breaker:") and printed.count("\n") == 1
