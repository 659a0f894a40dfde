"""Dim expressions without jax: a symbolic dim as ``jaxcompat.dim_json`` writes it, read
back (``Dim``) and evaluated at one ``k`` (``ev``), at every ``k`` of a long range with
NumPy (``many``), or bounded over a range by interval arithmetic (``bounds``).

A dim is ``sum(coeff * prod(factor ** exp))``, a factor the variable ``k`` or
``floordiv``, ``mod``, ``max``, ``min`` of two dims, as JAX's symbolic dims are.  Stored
programs (``lengthprogram``) evaluate theirs with ``ev``; a symbolic trace over a range
of lengths (``symbolic.Values``) decides JAX's undecided comparisons with ``bounds``,
else ``many``.
"""
from __future__ import annotations


class Dim:
    """``sum(coeff * prod(factor ** exp))``; a factor is a variable name or
    ``(operation, a, b)`` of two expressions (``floordiv``, ``mod``, ``max``, ``min``)."""
    __slots__ = ("terms",)

    def __init__(self, terms):
        self.terms = terms

    @classmethod
    def from_json(cls, obj):
        if isinstance(obj, int):
            return obj
        return cls(tuple((int(c), tuple((f if isinstance(f, str) else
                                         (f[0], cls.from_json(f[1]), cls.from_json(f[2])),
                                         int(e)) for f, e in factors))
                         for c, factors in obj["t"]))


def apply(operation: str, a: int, b: int) -> int:
    """A factor's operation on two ints, as JAX's symbolic dims define it (a division or
    remainder by 0 is 0): the one rule both evaluators use (``ev`` here, ``jaxcompat.ev``
    on JAX's own dims)."""
    if operation == "floordiv":
        return a // b if b else 0
    if operation == "mod":
        return a % b if b else 0
    return {"max": max, "min": min}[operation](a, b)


def ev(d, env: dict, memo: dict) -> int:
    """A dim (an int or a ``Dim``) at ``env`` in Python ints."""
    if not isinstance(d, Dim):
        return int(d)
    if id(d) not in memo:
        total = 0
        for coeff, factors in d.terms:
            v = coeff
            for f, exp in factors:
                if isinstance(f, str):
                    x = env[f]
                else:
                    x = apply(f[0], ev(f[1], env, memo), ev(f[2], env, memo))
                v *= x ** exp
            total += v
        memo[id(d)] = total
    return memo[id(d)]


def bounds(d, lo: int, hi: int, memo: dict):
    """``(low, high)`` holding every value of ``d`` for ``k`` in ``[lo, hi]`` (interval
    arithmetic on its terms: not always the smallest such pair), or None where it cannot
    say (another variable, a division by a range holding 0)."""
    if not isinstance(d, Dim):
        return int(d), int(d)
    if id(d) not in memo:
        memo[id(d)] = _bounds(d, lo, hi, memo)
    return memo[id(d)]


def _bounds(d, lo, hi, memo):
    total = (0, 0)
    for coeff, factors in d.terms:
        t = (coeff, coeff)
        for f, exp in factors:
            if isinstance(f, str):
                if f != "k":
                    return None
                x = (lo, hi)
            else:
                a, b = bounds(f[1], lo, hi, memo), bounds(f[2], lo, hi, memo)
                x = None if a is None or b is None else _operation(f[0], a, b)
                if x is None:
                    return None
            ends = {x[0] ** exp, x[1] ** exp} | ({0} if x[0] < 0 < x[1] else set())
            t = _corners(t, (min(ends), max(ends)), lambda u, v: u * v)
        total = (total[0] + t[0], total[1] + t[1])
    return total


def _corners(a, b, op):
    got = [op(u, v) for u in a for v in b]
    return min(got), max(got)


def _operation(name, a, b):
    if name == "floordiv":
        return _corners(a, b, lambda u, v: u // v) if b[0] > 0 or b[1] < 0 else None
    if name == "mod":
        if b[0] != b[1] or b[0] <= 0:
            return None
        m = b[0]
        return (a[0] % m, a[1] % m) if a[0] // m == a[1] // m else (0, m - 1)
    if name == "max":
        return max(a[0], b[0]), max(a[1], b[1])
    if name == "min":
        return min(a[0], b[0]), min(a[1], b[1])
    return None


def many(d, ks, memo: dict):
    """``d`` at every ``k`` of the int64 array ``ks`` (NumPy: the caller has it); exact
    while every value stays below 2**62 (checked from the factors' largest values), else
    None."""
    import numpy as np
    if not isinstance(d, Dim):
        return np.full(ks.shape, int(d), dtype=np.int64)
    if id(d) not in memo:
        total, bound = np.zeros(ks.shape, dtype=np.int64), 0.0
        for coeff, factors in d.terms:
            v, fv = np.full(ks.shape, coeff, dtype=np.int64), float(abs(coeff))
            for f, exp in factors:
                if isinstance(f, str):
                    if f != "k":
                        return None
                    x = ks
                else:
                    a, b = many(f[1], ks, memo), many(f[2], ks, memo)
                    if a is None or b is None:
                        memo[id(d)] = None
                        return None
                    safe = np.where(b == 0, 1, b)
                    x = {"floordiv": np.where(b == 0, 0, a // safe),
                         "mod": np.where(b == 0, 0, a % safe),
                         "max": np.maximum(a, b), "min": np.minimum(a, b)}[f[0]]
                v = v * x ** exp
                fv *= float(np.abs(x).max(initial=0)) ** exp
            total = total + v
            bound += fv
        memo[id(d)] = total if bound < 2.0 ** 62 else None
    return memo[id(d)]


__all__ = ["Dim", "apply", "bounds", "ev", "many"]
