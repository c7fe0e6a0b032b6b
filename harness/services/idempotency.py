"""Idempotency-Key semantics shared by payments, inventory and orders (Stripe's rules).

- a new key: run the operation, store its status and body under the key;
- the same key and the same payload: replay the stored answer, even an error,
  without running the operation again;
- the same key with another payload: 422, the client has a bug.

>>> store = {}
>>> calls = []
>>> def op():
...     calls.append(1)
...     return 201, {"id": "ch-1"}
>>> replay(store, "k1", {"amount": 5}, op), replay(store, "k1", {"amount": 5}, op)
((201, {'id': 'ch-1'}, False), (201, {'id': 'ch-1'}, True))
>>> replay(store, "k1", {"amount": 6}, op)[0], len(calls)
(422, 1)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..wirejson import JSONResponse


def replay(store: dict, key: str | None, payload: Any,
           operation: Callable[[], tuple[int, Any]], *, scope: str = "") -> tuple[int, Any, bool]:
    """Run ``operation`` once per key; returns ``(status, body, replayed)``.

    ``scope`` keeps two operations sharing one store apart (a charge and a
    refund sent with the same key are different requests).
    """
    if key is None:
        status, body = operation()
        return status, body, False
    fingerprint = json.dumps(payload, sort_keys=True)
    slot = f"{scope}:{key}" if scope else key
    stored = store.get(slot)
    if stored is not None:
        if stored["fingerprint"] != fingerprint:
            return 422, {"detail": f"Idempotency-Key {key!r} was used with another payload"}, False
        return stored["status"], stored["body"], True
    status, body = operation()
    store[slot] = {"fingerprint": fingerprint, "status": status, "body": body}
    return status, body, False


def answer(status: int, body: Any, replayed: bool) -> JSONResponse:
    """The HTTP answer of :func:`replay`'s result: a replay says so in ``Idempotent-Replayed``."""
    return JSONResponse(body, status_code=status, headers={"Idempotent-Replayed": "true"} if replayed else {})
