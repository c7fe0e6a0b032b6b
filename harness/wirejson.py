"""JSON on the wire: the bytes Starlette's ``JSONResponse`` writes, for less.

``json.dumps`` with keyword arguments builds a new encoder on every call, and
``JSONEncoder.encode`` builds its C encoder on every call too; the shop sends
tens of thousands of small JSON documents per scenario, so the encoders are
built once here. The output is byte for byte what Starlette (and, for request
bodies, the harness's client) always wrote.

>>> compact({"user_id": "ada", "amount": 25.0})
'{"user_id":"ada","amount":25.0}'
>>> JSONResponse({"ok": True}).body
b'{"ok":true}'
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from json.encoder import c_make_encoder, encode_basestring, encode_basestring_ascii
from typing import Any

from starlette.background import BackgroundTask
from starlette.responses import JSONResponse as _StarletteJSONResponse

__all__ = ["JSON_CONTENT_TYPE", "JSONResponse", "compact", "compact_ascii"]


def _encoder(*, ensure_ascii: bool, allow_nan: bool) -> Callable[[Any], str]:
    """``json.dumps(o, separators=(",", ":"), ...)`` with the encoder built once.

    No circular-reference check (a cycle raises RecursionError, not ValueError;
    either way the service answers 500).
    """
    slow = json.JSONEncoder(ensure_ascii=ensure_ascii, allow_nan=allow_nan, separators=(",", ":"))
    if c_make_encoder is None:  # an interpreter without the C accelerator
        return slow.encode
    fast = c_make_encoder(None, slow.default, encode_basestring_ascii if ensure_ascii else encode_basestring,
                          None, ":", ",", False, False, allow_nan)

    def encode(o: Any) -> str:
        return "".join(fast(o, 0))

    return encode


# Starlette's JSONResponse.render settings, and httpx-like request bodies.
compact = _encoder(ensure_ascii=False, allow_nan=False)
compact_ascii = _encoder(ensure_ascii=True, allow_nan=True)


JSON_CONTENT_TYPE = (b"content-type", b"application/json")  # as a raw ASGI header


class JSONResponse(_StarletteJSONResponse):
    """FastAPI's ``JSONResponse``, rendered by an encoder built once (same bytes,
    same headers)."""

    def __init__(self, content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None,
                 media_type: str | None = None, background: BackgroundTask | None = None) -> None:
        if headers or media_type is not None or background is not None or status_code < 200 \
                or status_code in (204, 304):
            super().__init__(content, status_code, headers, media_type, background)
            return
        # The common case, with Starlette's headers written out: one call instead of four.
        self.status_code = status_code
        self.background = None
        self.body = body = compact(content).encode("utf-8")
        self.raw_headers = [(b"content-length", str(len(body)).encode("latin-1")), JSON_CONTENT_TYPE]

    def render(self, content: Any) -> bytes:
        return compact(content).encode("utf-8")
