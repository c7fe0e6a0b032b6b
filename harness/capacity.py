"""Bounded workers and a bounded queue per instance; overflow is a 503.

This is what makes a cascade emerge rather than be scripted: when a
dependency hangs, the callers' workers stay busy waiting on it, their queues
fill, and new requests are turned away, even the ones that never touch the
broken dependency.

>>> import asyncio
>>> pool = Capacity(workers=1, queue=1)
>>> async def demo():
...     await pool.acquire()            # takes the only worker
...     waiter = asyncio.ensure_future(pool.acquire())  # queues
...     await asyncio.sleep(0)
...     try:
...         await pool.acquire()        # no worker, queue full
...     except Overloaded:
...         print("503")
...     pool.release()                  # hands the worker to the waiter
...     await waiter
...     return pool.busy, pool.queued
>>> asyncio.run(demo())
503
(1, 0)
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["Capacity", "Overloaded"]


class Overloaded(Exception):
    """No free worker and the queue is full."""


class Capacity:
    """A worker pool with a FIFO wait queue."""

    def __init__(self, workers: int = 16, queue: int = 32):
        if workers < 1 or queue < 0:
            raise ValueError("workers must be >= 1 and queue >= 0")
        self.workers = workers
        self.queue = queue
        self.busy = 0
        self._waiting: deque[asyncio.Future] = deque()
        self.rejected = 0

    @property
    def queued(self) -> int:
        return len(self._waiting)

    def try_acquire(self) -> bool:
        """Take a free worker without waiting, if there is one (the common, fast case)."""
        if self.busy < self.workers and not self._waiting:
            self.busy += 1
            return True
        return False

    async def acquire(self) -> None:
        """Take a worker, wait in the queue, or raise :class:`Overloaded`."""
        if self.busy < self.workers and not self._waiting:
            self.busy += 1
            return
        if len(self._waiting) >= self.queue:
            self.rejected += 1
            raise Overloaded(f"{self.busy} workers busy and {len(self._waiting)} queued")
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            await waiter  # release() hands its worker over by resolving this
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # we were handed a worker but left: pass it on
            elif waiter in self._waiting:  # release() may have skipped it already
                self._waiting.remove(waiter)
            raise

    def release(self) -> None:
        """Give the worker back, or hand it straight to the first waiter."""
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.busy -= 1

    def resize(self, workers: int | None = None, queue: int | None = None) -> None:
        """Change the limits (capacity-exhaustion faults shrink them)."""
        if workers is not None:
            self.workers = max(1, workers)
        if queue is not None:
            self.queue = max(0, queue)
        while self._waiting and self.busy < self.workers:
            waiter = self._waiting.popleft()
            if not waiter.done():
                self.busy += 1
                waiter.set_result(None)
