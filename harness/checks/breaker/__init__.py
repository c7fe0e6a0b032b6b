"""Checks of the breaker kata, one module per level (see ``harness.toolchain.catalogue``).

Only the clock is imported here, never ``harness.World``: FastAPI would cost
half a second of start-up and these checks do not need a shop.
"""

from . import level1, level2, level3, level4, level5  # noqa: F401  (registers the checks)
