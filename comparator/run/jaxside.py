"""Where the run room imports jax: ``jax_counting()`` gives ``comparator.count.fasttrace``
imported (with jax) while Python's cyclic garbage collector is paused (``gc_paused``,
``comparator.count.quiet.no_gc``), which the room also uses while the limits build each
model (Flax is imported then).
Nothing here imports jax at import time."""
from __future__ import annotations

from comparator.count.quiet import imports_settled
from comparator.count.quiet import no_gc as gc_paused


def jax_counting():
    """``comparator.count.fasttrace``, imported (with jax) while the collector is paused,
    what the import made then frozen (``imports_settled``)."""
    with imports_settled():
        from comparator.count import fasttrace
    return fasttrace


__all__ = ["gc_paused", "imports_settled", "jax_counting"]
