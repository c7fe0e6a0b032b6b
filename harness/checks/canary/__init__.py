"""Checks of the canary kata, one module per level (see ``harness.toolchain.catalogue``).

Levels 1, 3 and 4 check pure logic with made-up requests and a manual or
virtual clock; the shop (``scene.Shop``, FastAPI and all) is built only by
the checks that route real requests through the learner's split.
"""

from . import level1, level2, level3, level4, level5  # noqa: F401  (registers the checks)
