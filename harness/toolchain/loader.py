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

import functools
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
    """The path as the learner would type it: relative to the working folder when inside it
    or next to it (a notebook in ``chapters/`` sees ``../katas/breaker.py``), else as given.

    >>> import os; here = Path.cwd()
    >>> display_path(here / "katas" / "breaker.py") == os.path.join("katas", "breaker.py")
    True
    >>> display_path(here.parent / "katas" / "breaker.py") == os.path.join("..", "katas", "breaker.py")
    True
    """
    resolved, here = Path(path).resolve(), Path.cwd().resolve()
    bases = [(here, "")] if here.parent == here.parent.parent else [(here, ""), (here.parent, "..")]
    for base, prefix in bases:  # (no "../etc/..." from a folder next to the root)
        if resolved.is_relative_to(base):
            return str(Path(prefix, resolved.relative_to(base)))
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
    if "__getattr__" not in module.__dict__:
        module.__getattr__ = _missing_name(kata, path)
    return module


def _missing_name(kata: str, path: Path):
    """A module ``__getattr__`` for the learner's file: a name the checks need and the file lacks
    is reported as the file's, not as the toolchain's internal module name."""
    def __getattr__(name: str):
        if name.startswith("__"):  # dunder probes (copy, pickle, typing): the usual answer
            raise AttributeError(name)
        if name in _stub_names(kata):
            raise AttributeError(f"{display_path(path)} defines no {name} (the starting version has it: "
                                 f"`kata reset {kata}` backs your file up and brings it back)")
        raise AttributeError(f"{display_path(path)} defines no {name}")
    return __getattr__


@functools.cache
def _stub_names(kata: str) -> frozenset[str]:
    """Top-level names of the project's starting version of ``kata`` (empty if it cannot be read);
    read once per process, however many missing names the checks probe."""
    import ast

    # Read as a file next to the harness package, never imported: the grader blocks `katas`.
    stub = Path(__file__).resolve().parents[2] / "katas" / f"{kata}.py"
    try:
        tree = ast.parse(stub.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return frozenset()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return frozenset(names)


def learner_frame(error: BaseException, path: Path) -> str:
    """``katas/breaker.py:12: `` for the innermost frame of the traceback in ``path``."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == str(path)]
    if not frames:
        return f"{display_path(path)}: "
    return f"{display_path(path)}:{frames[-1].lineno}: "
