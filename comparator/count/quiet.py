"""Python's cyclic garbage collector paused (``no_gc``) around work that makes many
short-lived objects and little garbage: a trace (collections during one cost about a fifth
of a bert-large trace) and importing jax and Flax (about a tenth).  The garbage is
collected as usual afterwards.  No jax here."""
from __future__ import annotations

import gc
from contextlib import contextmanager


@contextmanager
def no_gc():
    """The collector paused while the context lasts (and re-enabled if it was on)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


__all__ = ["no_gc"]
