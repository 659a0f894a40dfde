"""Where the run room imports jax: ``jax_counting()`` gives ``comparator.count.fasttrace``
imported (with jax) while Python's cyclic garbage collector is paused (``gc_paused``),
which the room also uses while the limits build each model (Flax is imported then).
Nothing here imports jax at import time."""
from __future__ import annotations

import gc
from contextlib import contextmanager


@contextmanager
def gc_paused():
    """Python's cyclic garbage collector paused: importing jax and Flax (and building a
    model) makes many objects and no garbage, and collections during it cost about a
    tenth of its time."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def jax_counting():
    """``comparator.count.fasttrace``, imported (with jax) while the collector is paused."""
    with gc_paused():
        from comparator.count import fasttrace
    return fasttrace


__all__ = ["gc_paused", "jax_counting"]
