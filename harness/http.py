"""What travels on the simulated network: responses and the ways a call fails.

A call either returns a :class:`Response` (any status, 200 or 503 alike) or
raises a :class:`NetworkError`: the connection was refused, reset, or the
caller gave up waiting.

>>> r = Response(200, {"content-type": "application/json"}, b'{"ok": true}')
>>> r.ok, r.json()
(True, {'ok': True})
"""

from __future__ import annotations

from typing import Any

from .wirejson import loads

__all__ = [
    "ConnectError",
    "ConnectionReset",
    "MalformedResponse",
    "NetworkError",
    "RequestTimeout",
    "Response",
]


class Response:
    """An HTTP response as the caller sees it."""

    __slots__ = ("status", "_headers", "body", "_json", "instance", "error")

    def __init__(
        self,
        status: int,
        headers: dict[str, str] | list[tuple[bytes, bytes]] | None = None,
        body: bytes = b"",
        *,
        instance: str | None = None,
        error: str | None = None,
    ):
        self.status = status
        self._headers = headers if headers is not None else {}  # raw ASGI pairs decoded lazily
        self.body = body
        self.instance = instance  # which instance answered
        self.error = error  # server-side exception text, for debugging 500s
        self._json: Any = _UNSET

    @property
    def headers(self) -> dict[str, str]:
        """Response headers, lower-case names."""
        if isinstance(self._headers, list):
            self._headers = {k.decode().lower(): v.decode() for k, v in self._headers}
        return self._headers

    @property
    def ok(self) -> bool:
        """True for 2xx and 3xx."""
        return self.status < 400

    def json(self) -> Any:
        """The body parsed as JSON; raises :class:`MalformedResponse` if it is not."""
        if self._json is _UNSET:
            try:
                self._json = loads(self.body)
            except ValueError as exc:
                raise MalformedResponse(
                    f"response from {self.instance or 'service'} is not JSON: {self.body[:40]!r}"
                ) from exc
        return self._json

    def __repr__(self) -> str:
        return f"<Response {self.status} from {self.instance}>"


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


_UNSET = _Unset()


class NetworkError(Exception):
    """A call that produced no HTTP response at all."""

    outcome = "error"

    def __init__(self, message: str, *, target: str | None = None, at: float | None = None):
        super().__init__(message)
        self.target = target
        self.at = at


class ConnectError(NetworkError):
    """Connection refused: the instance is down or unknown."""

    outcome = "refused"


class ConnectionReset(NetworkError):
    """The instance crashed while handling the request."""

    outcome = "reset"


class RequestTimeout(NetworkError, TimeoutError):
    """The caller gave up waiting (its timeout expired)."""

    outcome = "timeout"


class MalformedResponse(ValueError):
    """A response whose body could not be parsed."""
