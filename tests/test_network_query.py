"""Query strings are written exactly as ``urlencode(params, doseq=True)`` writes them."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from harness.network import _query


@pytest.mark.parametrize("params", [
    {"user_id": "user-1", "limit": 5},
    {"q": "a b&c=d/é", "x": 2.5},
    {"k": ["a", "b"]},
    {"flag": True, "none": None},
    {"ü ": -3},
])
def test_query_strings_match_urlencode(params):
    assert _query(params) == urlencode(params, doseq=True)
