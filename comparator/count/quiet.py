"""Python's cyclic garbage collector paused (``no_gc``) around work that makes many
short-lived objects and little garbage: a trace (collections during one cost about a fifth
of a bert-large trace) and importing jax and Flax (about a tenth).  The garbage is
collected as usual afterwards.  ``imports_settled`` pauses it around imports and then
freezes what they left (``gc.freeze``): modules, classes and functions live as long as the
process, and the collector would otherwise walk every one of them again in its next
collections (two collections of what importing jax made cost about 0.09 s of a cold
traced count).  No jax here."""
from __future__ import annotations

import gc
import sys
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


@contextmanager
def imports_settled():
    """``no_gc`` for imports (and building a model, which imports Flax), then every object
    tracked so far moved to the collector's permanent generation, never collected or walked
    again, where the context imported a module.  Only for what lives as long as the
    process, never around a trace."""
    was, modules = gc.isenabled(), len(sys.modules)
    gc.disable()
    try:
        yield
    finally:
        # only after a first import (jax, then Flax): later calls in a long sweep import
        # nothing, and freezing then would keep whatever garbage a trace left in cycles;
        # before the collector runs again, whose next collection would walk it all
        if len(sys.modules) > modules:
            gc.freeze()
        if was:
            gc.enable()


__all__ = ["imports_settled", "no_gc"]
