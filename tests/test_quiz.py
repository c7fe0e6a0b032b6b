"""Self-check helpers: what they print and return, and what they do not give away."""

from __future__ import annotations

import pytest

from harness.quiz import check_answer, quiz


@pytest.mark.parametrize(("given", "expected", "ok"), [
    (5, 5, True),
    (0.1 + 0.2, 0.3, True),      # float noise is not a wrong answer
    (0.31, 0.3, False),
    (" Yellow ", "yellow", True),
    ("half  open", "half open", True),
    ("red", "yellow", False),
    (True, 1, False),            # a bool is not the number 1 here
    ([1, 2], [1, 2], True),
])
def test_check_answer_compares_like_a_person_would(given, expected, ok, capsys):
    assert check_answer(given, expected) is ok
    out = capsys.readouterr().out
    assert out.startswith("✔ correct" if ok else "✘ not quite")


def test_check_answer_with_tolerance_and_explanation(capsys):
    assert check_answer(0.171, 0.17, tolerance=0.01, explain="The slowest call, not the sum.")
    assert capsys.readouterr().out == "✔ correct: 0.171. The slowest call, not the sum.\n"
    assert not check_answer(0.37, 0.17)
    assert capsys.readouterr().out == "✘ not quite: you answered 0.37, expected 0.17.\n"


def test_an_unanswered_question_reveals_nothing(capsys):
    assert check_answer(..., "monolith") is False
    out = capsys.readouterr().out
    assert "not answered yet" in out and "monolith" not in out


def test_quiz_gives_feedback_on_each_choice():
    q = quiz("Which?", ["a", "b", "c"], 1, explain="b it is.", hints={"a": "Not a: too small."})
    assert q.answer == "b"
    assert q.feedback.value == ""
    assert q.choose("a") is False and "Not a: too small." in q.feedback.value
    assert q.choose(2) is False and "think again" in q.feedback.value
    assert q.choose("b") is True and "Right" in q.feedback.value and "b it is." in q.feedback.value


def test_quiz_text_fallback_lists_options_without_the_answer():
    q = quiz("Pick one", ["monolith", "microservices"], "monolith", explain="secret reason")
    text = q._repr_mimebundle_()["text/plain"]
    assert text == "Pick one\n  ( ) monolith\n  ( ) microservices"


def test_quiz_answer_must_be_an_option():
    with pytest.raises(ValueError, match="not one of the options"):
        quiz("?", ["a", "b"], "c")
