"""Checks of the composer kata, one module per level (see ``harness.toolchain.catalogue``).

They drive the shop's real services (users, orders, payments, catalog) in
virtual time, with the seed's latencies and injected faults; see
:mod:`.scene`.
"""

from . import level1, level2, level3, level4, level5  # noqa: F401  (registers the checks)
