"""Integer helpers that work on exact Python ints and on NumPy float64 arrays alike.

Scalar counts stay exact ints; a sweep passes float64 arrays (training FLOPs
pass 1e19 and would overflow int64); ``kernels.grid`` passes placeholders that
record the formula (they provide ``_grid_max`` / ``_grid_ceil_log2``).  Integer-valued float64 arithmetic is
exact below 2**53, which every size here is.  NumPy is imported only once an array is
met (none exists before it is imported): a scalar count imports none.
"""
from __future__ import annotations

import sys


def _is_array(*xs) -> bool:
    np = sys.modules.get("numpy")
    return np is not None and any(isinstance(x, np.ndarray) for x in xs)


def maximum(a, b):
    if hasattr(a, "_grid_max"):       # a recorded grid formula (kernels/grid.py)
        return a._grid_max(b)
    if hasattr(b, "_grid_max"):
        return b._grid_max(a)
    return sys.modules["numpy"].maximum(a, b) if _is_array(a, b) else max(a, b)


def minimum(a, b):
    """min(a, b), written through ``maximum`` so recorded grid formulas take it too."""
    if hasattr(a, "_grid_max") or hasattr(b, "_grid_max"):
        return a + b - maximum(a, b)
    return sys.modules["numpy"].minimum(a, b) if _is_array(a, b) else min(a, b)


def ceil_div(a, b):
    """ceil(a / b) for non-negative integers (or integer-valued floats)."""
    return -((-a) // b)


def ceil_log2(k):
    """ceil(log2 k) for k >= 1: 0, 1, 2, 2, 3, ..."""
    if hasattr(k, "_grid_ceil_log2"):
        return k._grid_ceil_log2()
    if _is_array(k):
        np = sys.modules["numpy"]
        return np.ceil(np.log2(np.maximum(k, 1)))
    return (int(k) - 1).bit_length()


def any_nonzero(x) -> bool:
    """For validation; a recorded grid formula has no values yet (its caller checks them)."""
    if hasattr(x, "_grid_max"):
        return False
    return bool(sys.modules["numpy"].any(x)) if _is_array(x) else bool(x)


def floor_log2(k):
    """floor(log2 k) for k >= 1: 0, 1, 1, 2, 2, 2, 2, 3, ... (int.bit_length() - 1)."""
    if hasattr(k, "_grid_floor_log2"):
        return k._grid_floor_log2()
    if _is_array(k):
        np = sys.modules["numpy"]
        return np.floor(np.log2(np.maximum(k, 1)))
    return int(k).bit_length() - 1


def pow2(k):
    """2 ** k for an integer k >= 0."""
    if hasattr(k, "_grid_pow2"):
        return k._grid_pow2()
    if _is_array(k):
        return sys.modules["numpy"].exp2(k)
    return 2 ** int(k)


def positive(x):
    """1 where the integer-valued ``x`` is > 0, else 0: a branch written as arithmetic, so
    one formula serves ints, float64 sweeps and recorded grid formulas."""
    if hasattr(x, "_grid_max"):
        return maximum(0, x) - maximum(0, x - 1)
    if _is_array(x):
        return (x > 0).astype(sys.modules["numpy"].float64)
    return int(x > 0)
