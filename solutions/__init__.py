"""Reference solutions: the same public API as ``katas/``, with comments that
explain the reasoning. ``kata check <kata> --against solutions`` passes every
level."""
