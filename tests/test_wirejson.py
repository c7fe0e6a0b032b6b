"""harness.wirejson writes exactly the bytes and headers Starlette writes."""

from __future__ import annotations

import json

import pytest
from fastapi.responses import JSONResponse as StarletteJSONResponse

from harness.wirejson import JSONResponse, compact, compact_ascii

DOCUMENTS = [{"a": 1}, [1, 2.5, None, True], "héllo", 3, 2.5, None, {"ü": "ß", "n": [{}]}, {1: "an int key"}, []]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_the_encoders_write_what_json_dumps_writes(document):
    assert compact(document) == json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    assert compact_ascii(document) == json.dumps(document, separators=(",", ":"))


@pytest.mark.parametrize("bad, error", [({"x": float("nan")}, ValueError), ({"x": object()}, TypeError)])
def test_what_starlette_refuses_is_refused_alike(bad, error):
    with pytest.raises(error):
        StarletteJSONResponse(bad)
    with pytest.raises(error):
        JSONResponse(bad)


@pytest.mark.parametrize("kwargs", [
    {"content": {"a": 1}},
    {"content": [1], "status_code": 201},
    {"content": {"a": 1}, "headers": {}},
    {"content": {"a": 1}, "headers": {"Idempotent-Replayed": "true"}},
    {"content": {"a": 1}, "headers": {"Content-Type": "text/x-mine"}},
    {"content": None, "status_code": 204},
    {"content": 1, "status_code": 304},
    {"content": {"a": 1}, "status_code": 101},
    {"content": {"x": "é"}, "status_code": 503},
    {"content": {}, "media_type": "application/problem+json"},
])
def test_responses_have_starlettes_body_and_headers(kwargs):
    ours, theirs = JSONResponse(**kwargs), StarletteJSONResponse(**kwargs)
    assert (ours.status_code, ours.body, ours.raw_headers) == (theirs.status_code, theirs.body, theirs.raw_headers)
    assert ours.background is theirs.background is None
