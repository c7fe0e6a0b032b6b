"""Checks of the registry kata, one module per level (see ``harness.toolchain.catalogue``).

Levels 1 and 2 need only a manual clock; levels 3 to 5 build a small world of
real services (``harness.World`` is imported inside the scenes that need it).
"""

from . import level1, level2, level3, level4, level5  # noqa: F401  (registers the checks)
