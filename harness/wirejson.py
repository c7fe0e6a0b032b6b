"""JSON on the wire: the bytes Starlette's ``JSONResponse`` writes, for less.

The shop sends tens of thousands of small JSON documents per scenario, so the
common case goes through orjson (Rust, about five times faster than the
standard library here; ``kata bench`` and the cascade scenario show it), and
everything orjson would write differently goes through the standard library's
encoder, built once (``json.dumps`` with keyword arguments builds a new one on
every call):

- non-string keys, integers beyond 64 bits, str/int/float subclasses,
  dataclasses and dates: orjson refuses them (on purpose), the standard
  library decides, as Starlette does;
- NaN and infinities: orjson writes ``null``, Starlette refuses them; so a
  document in which orjson wrote a ``null`` is written again by the standard
  library, which refuses what Starlette refuses.

The one difference left is spelling, not value: orjson writes floats below
1e-4 without an exponent (``0.00001``, where ``json.dumps`` writes ``1e-05``).

>>> dumps({"user_id": "ada", "amount": 25.0})
b'{"user_id":"ada","amount":25.0}'
>>> JSONResponse({"ok": True}).body
b'{"ok":true}'
>>> loads(b'{"n": 12345678901234567890123}')["n"]  # beyond orjson: the standard library reads it
12345678901234567890123
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from json.encoder import c_make_encoder, encode_basestring
from typing import Any

import orjson
from starlette.background import BackgroundTask
from starlette.responses import JSONResponse as _StarletteJSONResponse

__all__ = ["JSON_CONTENT_TYPE", "JSONResponse", "compact", "dumps", "loads"]


def _compact_encoder() -> Callable[[Any], str]:
    """``json.dumps(o, ensure_ascii=False, allow_nan=False, separators=(",", ":"))``, Starlette's
    ``JSONResponse.render`` settings (and httpx's for request bodies), with the encoder built once.

    No circular-reference check (a cycle raises RecursionError, not ValueError;
    either way the service answers 500).
    """
    slow = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    if c_make_encoder is None:  # an interpreter without the C accelerator
        return slow.encode
    fast = c_make_encoder(None, slow.default, encode_basestring, None, ":", ",", False, False, False)

    def encode(o: Any) -> str:
        return "".join(fast(o, 0))

    return encode


compact = _compact_encoder()


JSON_CONTENT_TYPE = (b"content-type", b"application/json")  # as a raw ASGI header

# Subclasses, dataclasses and dates: refused by orjson here, so the standard
# library (and FastAPI's encoder behind it) decides how they are written.
_STRICT = orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
_orjson_dumps = orjson.dumps
_orjson_loads = orjson.loads


def dumps(content: Any) -> bytes:
    """``compact(content).encode()``, through orjson when it writes the same document.

    Raises TypeError or ValueError for what Starlette's encoder refuses.

    >>> dumps([1, 2.5, None, "é"]).decode()
    '[1,2.5,null,"é"]'
    """
    try:
        body = _orjson_dumps(content, option=_STRICT)
    except TypeError:
        return compact(content).encode("utf-8")
    if b"null" in body:  # None, or a NaN orjson wrote as null: the standard library decides
        return compact(content).encode("utf-8")
    return body


def loads(body: bytes | str) -> Any:
    """``json.loads(body)``, through orjson when it can read the document alike.

    Raises ValueError for what is not JSON.

    >>> loads(b'{"a": [1, 2.5]}')
    {'a': [1, 2.5]}
    """
    # orjson reads integers beyond 64 bits as floats, json.loads keeps them
    # exact: a run of 20 digits sends the document to the standard library.
    if (_LONG_DIGITS if isinstance(body, bytes | bytearray) else _LONG_DIGITS_STR).search(body):
        return json.loads(body)
    try:
        return _orjson_loads(body)
    except orjson.JSONDecodeError:  # NaN literals, lone surrogates...: the standard library decides
        return json.loads(body)


_LONG_DIGITS = re.compile(rb"\d{20}")
_LONG_DIGITS_STR = re.compile(r"\d{20}")


class JSONResponse(_StarletteJSONResponse):
    """FastAPI's ``JSONResponse``, rendered by :func:`dumps` (the same document,
    the same headers)."""

    def __init__(self, content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None,
                 media_type: str | None = None, background: BackgroundTask | None = None) -> None:
        if headers or media_type is not None or background is not None or status_code < 200 \
                or status_code in (204, 304):
            super().__init__(content, status_code, headers, media_type, background)
            return
        # The common case, with Starlette's headers written out: one call instead of four.
        self.status_code = status_code
        self.background = None
        self.body = body = dumps(content)
        self.raw_headers = [(b"content-length", str(len(body)).encode("latin-1")), JSON_CONTENT_TYPE]

    def render(self, content: Any) -> bytes:
        return dumps(content)
