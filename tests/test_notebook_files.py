"""The saved notebooks travel: nothing in them names the machine they were run on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted([*ROOT.glob("chapters/*.ipynb"), *ROOT.glob("notebooks/*.ipynb")])


def _saved_text(notebook: Path) -> str:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return "\n".join("".join(output.get("text", "")) + json.dumps(output.get("data", {}).get("text/plain", ""))
                     for cell in cells for output in cell.get("outputs", []))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_saved_outputs_show_no_absolute_path_of_the_checkout(notebook: Path) -> None:
    text = _saved_text(notebook)
    for where in {str(ROOT), "/work/main", "/home/"}:
        assert where not in text, f"{notebook.name} shows {where!r} in a saved output: save it with relative paths"


def test_check_cells_in_a_chapter_print_the_kata_path_relative_to_the_chapter(monkeypatch) -> None:
    from harness.toolchain.loader import display_path

    monkeypatch.chdir(ROOT / "chapters")
    assert display_path(ROOT / "katas" / "breaker.py") == str(Path("..", "katas", "breaker.py"))
