"""Where the run room imports jax: ``jax_counting()`` gives ``comparator.count.fasttrace``
imported (with jax) while Python's cyclic garbage collector is paused, what the import
made then frozen (``comparator.count.quiet.imports_settled``); ``ready_to_trace`` also
checks points against the limits, which build each model (Flax is imported then), the
same way.  Nothing here imports jax at import time."""
from __future__ import annotations

from comparator.count.quiet import imports_settled


def jax_counting():
    """``comparator.count.fasttrace``, imported (with jax) while the collector is paused,
    what the import made then frozen (``imports_settled``)."""
    with imports_settled():
        from comparator.count import fasttrace
    return fasttrace


def ready_to_trace(pts, trace: str, limits=None, memory: bool = True):
    """``comparator.count.fasttrace``, once every point of ``pts`` is within ``limits``
    for a ``trace`` trace (``run.limits.check``; a ``LimitError`` before any work);
    ``memory=False`` leaves memory to the machine that traces (a Dask worker)."""
    from comparator.run.limits import check
    ft = jax_counting()
    with imports_settled():
        for pt in pts:
            check(pt, "trace", trace, limits, memory=memory)
    return ft


__all__ = ["jax_counting", "ready_to_trace"]
