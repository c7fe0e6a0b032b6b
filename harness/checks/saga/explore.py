"""Property checks: many generated cases (fault schedules, orders), the smallest failing one reported.

Each level's property check hands :func:`explore` a hypothesis strategy and
a function that runs one case and raises :class:`CheckFailed` when something
is wrong. Hypothesis generates ``EXAMPLES`` cases from the check's seed (so
``kata check saga --level N --seed S`` replays the same search), and when
one fails it *shrinks* it: fewer faults, shorter windows, smaller orders,
until nothing smaller fails. The message then shows that smallest case as
a plain harness fault schedule, and the seed.

>>> from hypothesis import strategies as st
>>> from harness.checks import Context
>>> def case(n):
...     if n >= 7:
...         raise CheckFailed(f"{n} is too big")
>>> try:
...     explore(Context(None, seed=1), st.integers(0, 1000), case, describe=lambda n: f"n = {n}")
... except CheckFailed as failure:
...     print(str(failure).splitlines()[0])
The smallest failing case of those generated (seed 1): n = 7
>>> LAST_RUN["examples"] >= 1
True
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, Verbosity, example, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky, HypothesisException

from .. import CheckFailed, Context

__all__ = ["EXAMPLES", "LAST_RUN", "RUNS", "explore"]

T = TypeVar("T")

EXAMPLES = 200  # generated cases per property check (the bar: at least 200 per level)
PROPERTY_TIME_LIMIT = 20.0  # real seconds for one property check (see _room_to_run)

# How many cases the last explore() ran, and in how many a fault did touch the sagas ("bitten"):
# read by the project's tests, so that the bar is checked, not assumed.
LAST_RUN: dict[str, Any] = {"examples": 0, "failed": False, "bitten": 0}
RUNS: dict[str, dict[str, Any]] = {}  # the same, per property check (by its case function's name)


def explore(ctx: Context, strategy: st.SearchStrategy[T], case: Callable[[T], None], *,
            describe: Callable[[T], str], first: T | None = None, examples: int | None = None) -> None:
    """Run ``case`` on ``examples`` values drawn from ``strategy``; raise the smallest failure, described.

    ``first``: a simple case (no fault) tried before any other, so that code that fails everywhere
    (an unfinished kata) fails at once, without a search.
    """
    LAST_RUN.update(examples=0, failed=False, bitten=0)
    last: dict[str, Any] = {}

    @settings(max_examples=examples or EXAMPLES, deadline=None, database=None, derandomize=False,
              phases=(Phase.explicit, Phase.generate, Phase.shrink), report_multiple_bugs=False,
              suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet, print_blob=False)
    @seed(ctx.seed)
    @given(strategy)
    def prop(value):  # noqa: ANN001, ANN202  (hypothesis reads this signature on every example: keep it bare)
        LAST_RUN["examples"] += 1
        last["value"] = value
        case(value)

    if first is not None:
        prop = example(first)(prop)
    _room_to_run(PROPERTY_TIME_LIMIT)
    try:
        prop()
    except CheckFailed as failure:
        LAST_RUN["failed"] = True
        header = (f"The smallest failing case of those generated (seed {ctx.seed}): "
                  f"{describe(last['value'])}")
        raise CheckFailed(f"{header}\n{failure}") from None
    except Flaky:
        LAST_RUN["failed"] = True
        raise CheckFailed(
            "The same case passed once and failed once: your code behaves differently on the same input. "
            "Do you keep state between sagas in module-level variables, or read the wall clock?") from None
    except HypothesisException as error:  # a check of ours that hypothesis refused: say so plainly
        raise CheckFailed(f"the property check could not run: {type(error).__name__}: {error}") from None
    finally:
        RUNS[f"level {ctx.level}: {describe.__name__}"] = dict(LAST_RUN)


def _room_to_run(seconds: float) -> None:
    """Give a property check ``seconds`` of real time instead of the runner's per-check limit.

    The runner stops any check after 2 s of real time (an endless loop, it assumes); 200 cases take
    0.4 to 0.8 s of CPU here, which a busy machine can stretch past 2 s. Until the runner lets a
    check declare its own limit, move its alarm (set with ``signal.setitimer``) further out; the
    runner disarms it when the check ends, however it ends.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "getitimer"):
        return
    remaining, interval = signal.getitimer(signal.ITIMER_REAL)
    if 0 < remaining < seconds:
        signal.setitimer(signal.ITIMER_REAL, seconds, interval)
