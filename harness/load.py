"""Open-loop load: requests arrive at a rate, whether or not earlier ones finished.

Real users do not wait for the previous user's request to finish, which is
why a slow dependency piles up work (closed-loop load would hide a cascade).

>>> from harness import World
>>> world = World(seed=2)
>>> _ = world.add_service("catalog")
>>> async def browse(i):
...     await world.client().get("catalog", "/products")
>>> _ = open_loop(world, rate=10, until=5.0, fire=browse)
>>> world.run(until=6.0)
>>> len(world.recorder.exchanges)
50
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from .world import World

__all__ = ["open_loop"]


def open_loop(
    world: World,
    rate: float,
    *,
    until: float,
    fire: Callable[[int], Awaitable[object] | None],
    start: float | None = None,
    arrivals: str = "constant",
    stream: str = "load",
) -> list[float]:
    """Schedule ``fire(i)`` at ``rate`` per virtual second from ``start`` to ``until``.

    ``fire`` is an async function (each arrival gets its own task) or a plain
    function that starts its work itself (such as ``world.net.fire``).

    ``arrivals="constant"`` spaces them evenly; ``"poisson"`` draws
    exponential gaps from the world's seed (stream ``stream``). Returns the
    arrival times. Each arrival runs as its own task, so slow answers
    never hold back the next arrival.
    """
    if rate <= 0:
        raise ValueError("rate must be positive")
    if arrivals not in ("constant", "poisson"):
        raise ValueError("arrivals must be 'constant' or 'poisson'")
    loop = world.loop
    t = loop.time() if start is None else start
    rng = world.rng(stream)
    times: list[float] = []
    i = 0
    while True:
        if arrivals == "constant":
            when = t + i / rate
        else:
            t += rng.expovariate(rate)
            when = t
        if when >= until:
            break
        times.append(when)
        i += 1
    loop.call_series(times, _launch, world, fire)
    return times


def _launch(i: int, world: World, fire: Callable[[int], Awaitable[object] | None]) -> None:
    started = fire(i)
    if started is not None:  # a coroutine: give it a task (a plain function has done its work)
        world.spawn(started)
