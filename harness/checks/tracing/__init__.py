"""Checks of the tracing kata, one module per level (see ``harness.toolchain.catalogue``).

Level 2 builds a small world (FastAPI: about half a second to import, once);
the other levels work on spans made by hand and need no world.
"""

from . import level1, level2, level3, level4, level5  # noqa: F401  (registers the checks)
