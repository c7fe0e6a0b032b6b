"""Your katas: one module per kata, the only files you edit.

Each module keeps its real signatures and docstrings; replace every
``raise NotImplementedError`` under a ``# TODO (level N):`` with your code and
run ``kata check <kata>``. ``kata reset <kata>`` starts a kata over (your file
is backed up first, under ``.kata/backups/``).
"""
