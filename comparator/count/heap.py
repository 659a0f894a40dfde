"""XLA's heap simulator: where the buffer assigner places the temporaries of a program.

XLA assigns every temporary an offset in one heap (``GlobalDecreasingSizeBestFitHeap``),
given each buffer's lifetime along the schedule, and keeps the smaller of two orders of
placement (``ChooseBestHeapAlgorithm`` over a spatial and a temporal order).  Where
lifetimes interleave, a buffer finds no gap it fits in for its whole lifetime and goes
on top: the heap is then larger than the most bytes alive at once (fragmentation), and
that heap is what ``memory_analysis()`` reports as temporaries.
"""
from __future__ import annotations

import numpy as np

ALIGN = 64     # bytes: the alignment of XLA:CPU's buffers (every offset in its heap is a
#                multiple of 64); each size is rounded up to it


def pack(buffers, temporal: bool = False, align: int = ALIGN) -> int:
    """Bytes of one heap holding ``buffers`` ((first, last, size) each, alive from first to
    last inclusive), placed as XLA's heap simulator places them
    (``GlobalDecreasingSizeBestFitHeap``; the buffer assigner keeps the smaller of its
    two orders): in decreasing size, longer-lived first among equals (``temporal``: in
    decreasing lifetime, larger first), each at the smallest gap free for its whole
    lifetime -- the room between the buffers alive with it and the heap's top included --
    else on top of those buffers.  At least the most bytes alive at once; more where
    lifetimes interleave (fragmentation)."""
    if not buffers:
        return 0
    first = np.array([b[0] for b in buffers], dtype=np.int64)
    last = np.array([b[1] for b in buffers], dtype=np.int64)
    size = np.array([-(-b[2] // align) * align for b in buffers], dtype=np.int64)
    life = last - first
    order = np.lexsort((-size, -life) if temporal else (-life, -size))
    offset = np.full(len(buffers), -1, dtype=np.int64)
    heap = 0
    for i in order.tolist():
        clash = (offset >= 0) & (first <= last[i]) & (last >= first[i])
        lo, hi = offset[clash], offset[clash] + size[clash]
        at, best, fit = 0, None, None
        for a, b in sorted(zip(lo.tolist(), hi.tolist())):
            if a - at >= size[i] and (fit is None or a - at < fit):
                best, fit = at, a - at
            at = max(at, b)
        if heap - at >= size[i] and (fit is None or heap - at < fit):
            best = at
        offset[i] = at if best is None else best
        heap = max(heap, int(offset[i] + size[i]))
    return heap


def heap_bytes(buffers, align: int = ALIGN) -> int:
    """The heap XLA's buffer assigner keeps for ``buffers``: the smaller of ``pack``'s two
    orders."""
    return min(pack(buffers, False, align), pack(buffers, True, align))


__all__ = ["ALIGN", "heap_bytes", "pack"]
