"""The graded job: check one kata file of one submission, level by level.

Runs in a forked child of the grader's forkserver (the harness is already
imported there, so a job starts in milliseconds). Each level's result is
sent as soon as it is known, signed with a per-job key, so a job that dies
or hangs half-way still gets the levels it passed, and a line printed by
the learner's code can never pass for a result.

>>> line = sign(b"key", '{"level": 1}') + ' {"level": 1}'
>>> verify(b"key", line), verify(b"another key", line)
({'level': 1}, None)
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

__all__ = ["run_job", "sign", "verify"]

# Import what every check needs before any learner code runs (and, in the
# forkserver, once for all jobs).
PRELOAD = ["harness.toolchain.runner", "harness.checks", "harness.world", "harness.grading.sandbox"]


def sign(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def verify(key: bytes, line: str) -> dict[str, Any] | None:
    """The payload of a signed line, or None if it was not signed with ``key``."""
    signature, _, text = line.partition(" ")
    if not hmac.compare_digest(signature, sign(key, text)):
        return None
    return json.loads(text)


def run_job(kata: str, workdir: str, seed: int, levels: list[int], key: bytes, conn, memory_mb: int) -> None:
    """Child side: confine, then check each level and send its result."""
    from .sandbox import confine

    send = conn.send  # keep our own reference: the learner's code may poke at the connection
    confine(memory_mb, workdir)
    from harness.toolchain.runner import check_kata

    for level in levels:
        report = check_kata(kata, workdir, level=level, seed=seed)
        data = report.to_json()["levels"][0]
        text = json.dumps(data)
        send(f"{sign(key, text)} {text}")
    text = json.dumps({"done": True})
    send(f"{sign(key, text)} {text}")
    conn.close()
