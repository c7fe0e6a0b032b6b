"""Run a kata's level checks in-process against one kata file, and report.

We run the checks with a minimal runner of our own instead of ``pytest.main``:
the checks are plain functions registered with their level (see
:mod:`harness.checks`), so there is nothing to collect. Measured on the
breaker kata (36 checks, against the solution, this machine): this runner
takes 0.06 s; ``pytest.main`` in-process on the same checks takes 0.23 s with
plugin autoloading off and 2.7 to 4.4 s with the installed plugins (nbval,
hypothesis, ...) autoloaded, plus 0.08 s to import pytest. The whole
``kata check breaker`` then starts and finishes within the start-up time of
``python -c "import pytest"``.

>>> report = check_kata("breaker", "solutions", seed=3)
>>> report.status, report.score, report.max_score
('pass', 5, 5)
"""

from __future__ import annotations

import contextlib
import gc
import io
import shlex
import signal
import threading
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import CodeType

from harness.checks import Check, CheckFailed, Context, checks_for

from . import catalogue
from .loader import KataLoadError, compile_kata, display_path, kata_dir, load_kata
from .reports import KataReport, LevelResult, TestResult

__all__ = ["TIME_LIMIT", "CheckTimeout", "check_kata", "replay_command"]

# Real seconds per check. The checks take milliseconds; the margin is for a loaded
# machine (CI, a class on one server). After one timeout the rest of that level is
# not run, so an endless loop costs one limit per level, not one per check.
TIME_LIMIT = 6.0


class CheckTimeout(BaseException):
    """Raised inside a check that ran past the time limit (a BaseException, so that
    a learner's ``except Exception`` cannot swallow it)."""


def replay_command(kata: str, against: str, level: int, seed: int) -> str:
    """The command that runs one level again, with the same seed."""
    command = f"kata check {kata} --level {level} --seed {seed}"
    return command if against == "katas" else f"{command} --against {shlex.quote(against)}"


def check_kata(name: str, against: str = "katas", *, level: int | None = None, seed: int = 0,
               time_limit: float = TIME_LIMIT) -> KataReport:
    """Check ``<against>/<name>.py`` level by level (only ``level`` when given).

    Raises :class:`~harness.toolchain.catalogue.UnknownKata`, ``ValueError``
    (no such level, or a kata without levels) and :class:`KataLoadError` for a
    folder that does not exist; a kata file that is missing or does not load
    gives a report with status ``error`` instead.
    """
    kata = catalogue.kata(name)
    if kata.coming:
        raise ValueError(f"the {name} kata has no levels yet (coming soon)")
    levels = [kata.level(level)] if level is not None else list(kata.levels)
    directory = kata_dir(against)
    path = directory / kata.filename
    results = [LevelResult(lv.number, lv.title) for lv in levels]
    report = KataReport(name, against, seed, results, path=display_path(path))
    try:
        path, code = compile_kata(name, directory)
        load_kata(name, directory, code)  # once up front: a broken import is one error, not 41
    except KataLoadError as error:
        report.load_error = str(error)
        for result in results:
            result.error = True
            result.tests.append(TestResult(f"load {report.path}", "error", message=str(error),
                                           replay=replay_command(name, against, result.level, seed)))
        return report
    by_level = {lv.number: (lv, result) for lv, result in zip(levels, results, strict=True)}
    gc.freeze()  # what is loaded now lives on: keep it out of the collector's way while checks run
    timed_out: set[int] = set()
    for check in checks_for(name):
        if check.level in by_level:
            lv, result = by_level[check.level]
            if check.level in timed_out:
                test = TestResult(check.name, "timeout", "not run: an earlier check of this level ran out of time",
                                  summary=check.summary)
            else:
                test = _run_one(check, directory, code, seed=seed, time_limit=time_limit)
                if test.status == "timeout":
                    timed_out.add(check.level)
            test.replay = replay_command(name, against, check.level, seed)
            if test.status != "pass":
                test.hint = lv.hint
            result.tests.append(test)
    return report


def _run_one(check: Check, directory: Path, code: CodeType, *, seed: int, time_limit: float) -> TestResult:
    """Run one check on a fresh copy of the module; classify how it ended."""
    printed = io.StringIO()
    path = directory / f"{check.kata}.py"
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed), \
                warnings.catch_warnings(), _time_limit(time_limit):
            warnings.simplefilter("ignore")  # e.g. "coroutine was never awaited" from a learner's wrapper
            module = load_kata(check.kata, directory, code)
            check.run(Context(module, seed=seed, level=check.level))
        status, message = "pass", None
    except CheckFailed as failed:
        status, message = "fail", str(failed)
        exhausted = _memory_error(failed)
        if exhausted is not None or "MemoryError" in message:  # the transcripts name what calls raised
            # Not the learner's logic being judged: the job hit its memory limit.
            where = _learner_line(exhausted, path) if exhausted is not None else ""
            status, message = "error", (f"MemoryError: the code ran out of memory{where} (grading caps each "
                                        f"job's memory: does something keep allocating?)\n{message}")
    except NotImplementedError as error:
        status, message = "fail", f"not implemented yet: {_raised_in(error, path)} (level {check.level})"
    except CheckTimeout:
        status, message = "timeout", (f"the check took more than {time_limit:g} s of real time; the checks run in "
                                      "virtual time and take milliseconds: is there an endless loop?")
    except KataLoadError as error:
        status, message = "error", str(error)
    except Exception as error:
        status, message = "error", f"{type(error).__name__}: {error}{_learner_line(error, path)}"
    return TestResult(check.name, status, message, summary=check.summary, output=printed.getvalue())


def _memory_error(error: BaseException) -> MemoryError | None:
    """A MemoryError behind ``error`` (its cause or context chain), if any."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, MemoryError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _frames_in(error: BaseException, path: Path) -> list:
    return [(frame, line) for frame, line in traceback.walk_tb(error.__traceback__)
            if frame.f_code.co_filename == str(path)]


def _raised_in(error: BaseException, path: Path) -> str:
    """``CircuitBreaker.call``: the learner's function that raised (co_qualname, Python 3.11+)."""
    frames = _frames_in(error, path)
    if not frames:
        return "a function of the kata"
    code = frames[-1][0].f_code
    return getattr(code, "co_qualname", code.co_name)


def _learner_line(error: BaseException, path: Path) -> str:
    frames = _frames_in(error, path)
    if not frames:
        return ""
    frame, line = frames[-1]
    return f" (at {display_path(path)}:{line}, in {getattr(frame.f_code, 'co_qualname', frame.f_code.co_name)})"


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Interrupt a check after ``seconds`` of real time (main thread with SIGALRM only)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable or seconds <= 0:
        yield
        return

    def expire(signum, frame):  # noqa: ARG001  (signal handler signature)
        raise CheckTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
