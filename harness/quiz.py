"""Self-check questions for the chapters, with instant feedback.

Two shapes, both usable headless (tests, nbval) and in a browser:

- :func:`check_answer` for a value the learner types into a cell;
- :func:`quiz` for a multiple-choice question that answers as soon as an
  option is picked.

>>> check_answer(0.05 * 100, 5, explain="5 % of 100 requests.")
✔ correct: 5.0. 5 % of 100 requests.
True
>>> check_answer(..., 5)
… not answered yet: replace the ... with your answer and run the cell again.
False
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from numbers import Real
from typing import Any

import ipywidgets as w

__all__ = ["MultipleChoice", "check_answer", "quiz"]


def _same(given: Any, expected: Any, tolerance: float | None) -> bool:
    if isinstance(given, bool) != isinstance(expected, bool):
        return False  # True is not "1" to a learner, even if it is to Python
    if isinstance(expected, Real) and isinstance(given, Real) and not isinstance(given, bool):
        # Floats from a simulation rarely match to the last bit; 1e-9 relative is "equal".
        return math.isclose(float(given), float(expected), rel_tol=tolerance or 1e-9, abs_tol=1e-12)
    if isinstance(expected, str) and isinstance(given, str):
        # Answers are words like "yellow" or "half-open": case and spacing do not matter.
        return " ".join(given.lower().split()) == " ".join(expected.lower().split())
    return given == expected


def check_answer(given: Any, expected: Any, *, explain: str = "", tolerance: float | None = None) -> bool:
    """Print whether ``given`` matches ``expected`` (and why); return True when it does.

    Numbers match within a relative ``tolerance`` (default 1e-9), strings
    ignoring case and extra spaces. ``...`` means "not answered yet" and
    reveals nothing.

    >>> check_answer("Yellow", "yellow")
    ✔ correct: 'Yellow'.
    True
    """
    if given is Ellipsis:
        print("… not answered yet: replace the ... with your answer and run the cell again.")
        return False
    ok = _same(given, expected, tolerance)
    tail = f" {explain}" if explain else ""
    if ok:
        print(f"✔ correct: {given!r}.{tail}")
    else:
        print(f"✘ not quite: you answered {given!r}, expected {expected!r}.{tail}")
    return ok


class MultipleChoice:
    """A question, its options, and feedback the moment one is picked. Made by :func:`quiz`.

    ``choose(option)`` does from code what a click does in the browser and
    returns whether it was right.
    """

    def __init__(self, prompt: str, options: Sequence[str], answer: str | int, *, explain: str = "",
                 hints: Mapping[str, str] | None = None):
        self.prompt = prompt
        self.options = list(options)
        if isinstance(answer, int) and not isinstance(answer, bool):
            answer = self.options[answer]
        if answer not in self.options:
            raise ValueError(f"the answer {answer!r} is not one of the options {self.options}")
        self.answer = answer
        self.explain = explain
        self.hints = dict(hints or {})
        self.buttons = w.RadioButtons(options=self.options, value=None, layout=w.Layout(width="auto"))
        self.feedback = w.HTML()
        self.widget = w.VBox([w.HTML(f"<b>{html.escape(prompt)}</b>"), self.buttons, self.feedback])
        self.buttons.observe(lambda _change: self.check(), names="value")

    @property
    def correct(self) -> bool:
        return self.buttons.value == self.answer

    def choose(self, option: str | int) -> bool:
        """Pick an option (by text or position) and return whether it is the answer."""
        if isinstance(option, int) and not isinstance(option, bool):
            option = self.options[option]
        self.buttons.value = option
        return self.correct

    def check(self) -> bool:
        """Show feedback for the current choice."""
        choice = self.buttons.value
        if choice is None:
            self.feedback.value = ""
        elif self.correct:
            tail = f" {html.escape(self.explain)}" if self.explain else ""
            self.feedback.value = f"<span style='color:#1b5e20'>✔ Right.</span>{tail}"
        else:
            hint = self.hints.get(choice, "Not this one: think again, then pick another.")
            self.feedback.value = f"<span style='color:#b00020'>✘</span> {html.escape(hint)}"
        return self.correct

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        bundle = dict(self.widget._repr_mimebundle_(**kwargs) or {})
        # Readable without a kernel too: the question and its options, not the answer.
        lines = [self.prompt] + [f"  ( ) {option}" for option in self.options]
        bundle["text/plain"] = "\n".join(lines)
        return bundle


def quiz(prompt: str, options: Sequence[str], answer: str | int, *, explain: str = "",
         hints: Mapping[str, str] | None = None) -> MultipleChoice:
    """A multiple-choice question with instant feedback.

    ``answer`` is the right option (its text or its position); ``explain`` is
    shown when it is picked; ``hints`` maps a wrong option to a nudge.

    >>> q = quiz("Exactly 5 % errors on the service map is…", ["green", "yellow", "red"], "yellow",
    ...          explain="Yellow covers 1 % to 5 %, both ends included.")
    >>> q.choose("red"), q.choose("yellow")
    (False, True)
    """
    return MultipleChoice(prompt, options, answer, explain=explain, hints=hints)
