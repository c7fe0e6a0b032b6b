"""Find and load the kata file under test, by path, with one-line reasons when it fails.

A submission is only ``<DIR>/<kata>.py``: it is loaded with
``importlib.util.spec_from_file_location`` under a private module name, so
``--against katas|solutions|DIR`` all work the same way and nothing else in
DIR (a conftest, tests of its own) is ever imported.

>>> module = load_kata("breaker", kata_dir("solutions"))
>>> module.CircuitBreaker.__name__
'CircuitBreaker'
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
from pathlib import Path
from types import CodeType, ModuleType

__all__ = ["KataLoadError", "compile_kata", "display_path", "kata_dir", "load_kata"]

PACKAGES = ("katas", "solutions")  # the names --against understands besides a folder


class KataLoadError(Exception):
    """The kata file is missing, or does not compile, or fails while importing.

    ``str(error)`` is one line for the learner, with file:line where there is one.
    """


def kata_dir(against: str) -> Path:
    """The folder named by ``--against``: ``katas``, ``solutions`` or a path."""
    if against in PACKAGES:
        spec = importlib.util.find_spec(against)
        if spec is not None and spec.submodule_search_locations:
            return Path(list(spec.submodule_search_locations)[0])
        # Not importable (an install made before the folder existed): the folder
        # beside the harness package, in a clone of the workbook.
        beside = Path(__file__).resolve().parents[2] / against
        if beside.is_dir():
            return beside
    path = Path(against).expanduser()
    if not path.is_dir():
        raise KataLoadError(f"no folder {against!r} (give katas, solutions or a folder of kata files)")
    return path


def display_path(path: Path) -> str:
    """The path as the learner would type it: relative to the working folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def compile_kata(kata: str, directory: Path) -> tuple[Path, CodeType]:
    """Read and compile ``<directory>/<kata>.py`` (compiled once, executed per check)."""
    path = directory / f"{kata}.py"
    if not path.is_file():
        raise KataLoadError(f"no file {display_path(path)}: the {kata} kata lives there "
                            f"(`kata reset {kata}` brings back the starting version)")
    try:
        source = path.read_bytes()
        return path, compile(source, str(path), "exec", dont_inherit=True)
    except SyntaxError as error:
        where = f"{display_path(path)}:{error.lineno}" if error.lineno else display_path(path)
        raise KataLoadError(f"{where}: {type(error).__name__}: {error.msg}") from None
    except (OSError, ValueError) as error:
        raise KataLoadError(f"cannot read {display_path(path)}: {error}") from None


def load_kata(kata: str, directory: Path, code: CodeType | None = None) -> ModuleType:
    """Execute the kata file as a fresh module (a new one each call: checks stay independent)."""
    path = directory / f"{kata}.py"
    if code is None:
        path, code = compile_kata(kata, directory)
    name = f"_kata_under_test_{kata}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None  # a .py path always has a spec
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and typing look their module up here
    try:
        exec(code, module.__dict__)
    except Exception as error:
        raise KataLoadError(f"{learner_frame(error, path)}importing it raised "
                            f"{type(error).__name__}: {error}") from None
    return module


def learner_frame(error: BaseException, path: Path) -> str:
    """``katas/breaker.py:12: `` for the innermost frame of the traceback in ``path``."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == str(path)]
    if not frames:
        return f"{display_path(path)}: "
    return f"{display_path(path)}:{frames[-1].lineno}: "
