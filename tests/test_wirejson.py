"""harness.wirejson writes the documents and headers Starlette writes, and reads JSON as json.loads does."""

from __future__ import annotations

import json

import pytest
from fastapi.responses import JSONResponse as StarletteJSONResponse

from harness.wirejson import JSONResponse, compact, dumps, loads

DOCUMENTS = [{"a": 1}, [1, 2.5, None, True], "héllo", 3, 2.5, None, {"ü": "ß", "n": [{}]}, {1: "an int key"}, []]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_the_encoders_write_what_json_dumps_writes(document):
    expected = json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    assert compact(document) == expected
    assert dumps(document) == expected.encode()


class Tag(str):
    pass


@pytest.mark.parametrize("document", [
    {"big": 2**70}, {"tag": Tag("x")}, {"n": None, "x": 1.5}, {(1): [True, 1]}, [0.1 + 0.2, -0.0, 1e300],
])
def test_what_orjson_would_write_differently_is_written_by_the_standard_library(document):
    assert json.loads(dumps(document)) == json.loads(json.dumps(document))
    assert dumps(document) == json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


@pytest.mark.parametrize("body", [
    b'{"a": [1, 2.5, null, true]}', b'{"big": 123456789012345678901234567890}', "[1, \"\u00e9\"]",
    b'[NaN, Infinity]', b'"\\ud800"', b'[18446744073709551615, -9223372036854775808]',
])
def test_loads_reads_what_json_loads_reads(body):
    ours, theirs = loads(body), json.loads(body)
    assert repr(ours) == repr(theirs)  # repr: NaN != NaN, and ints must stay ints


@pytest.mark.parametrize("body", [b"", b"{", b"not json", b'{"a": 1} x'])
def test_loads_refuses_what_json_loads_refuses(body):
    with pytest.raises(ValueError):
        json.loads(body)
    with pytest.raises(ValueError):
        loads(body)


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
