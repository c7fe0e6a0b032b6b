"""A learner finds what they may use in one place: ``harness/__init__.py``."""

from __future__ import annotations

import harness


def test_every_public_name_resolves():
    for name in harness.__all__:
        assert getattr(harness, name) is not None, name


def test_all_matches_the_lazy_table():
    assert sorted(harness.__all__) == sorted(harness._WHERE)


def test_unknown_name_is_an_attribute_error():
    try:
        harness.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
