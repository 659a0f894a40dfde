"""Numba-compiled evaluation of closed-form counts over large grids.

The analytic formulas are ordinary Python arithmetic.  Evaluating them once on
``Poly`` placeholders records them -- no second copy of any formula is
written -- as exact polynomials over the grid variables (``seq``, ``batch``)
with integer coefficients.  Operations that are not polynomial (floor
division, max, ceil- and floor-log2, powers of two) become *atoms*: named sub-expressions whose
arguments are polynomials themselves.  The recorded polynomial is then
emitted as a small loop and compiled with numba, so a whole grid evaluates in
one call at tens of millions of points per second.

    poly = record(lambda seq, batch: my_formula(cfg, seq, batch), ("seq", "batch"))
    f = compile_poly(poly)            # numba kernel, float64 in and out
    f(seq_array, batch_array)         # one value per grid point

Values are float64 (training FLOPs pass 1e19); integer-valued float64
arithmetic is exact below 2**53.
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Callable

import numpy as np

Monomial = tuple  # sorted ((symbol, power), ...); symbols are variable names or atom ids


class Poly:
    """An exact polynomial with rational coefficients over variables and atoms."""

    __slots__ = ("terms", "ctx")

    def __init__(self, terms: dict, ctx: "Recorder"):
        self.terms = {m: c for m, c in terms.items() if c != 0}
        self.ctx = ctx

    # -- construction ------------------------------------------------------------
    def _lift(self, x) -> "Poly":
        if isinstance(x, Poly):
            return x
        if isinstance(x, (int, Fraction)) and not isinstance(x, bool):
            return Poly({(): Fraction(x)}, self.ctx)
        if isinstance(x, float) and x.is_integer():
            return Poly({(): Fraction(int(x))}, self.ctx)
        raise TypeError(f"cannot record {type(x).__name__} {x!r} in a grid formula")

    def const(self):
        """The value if this polynomial is a constant, else None."""
        if not self.terms:
            return Fraction(0)
        if list(self.terms) == [()]:
            return self.terms[()]
        return None

    # -- ring operations -----------------------------------------------------------
    def __add__(self, o):
        o = self._lift(o)
        out = dict(self.terms)
        for m, c in o.terms.items():
            out[m] = out.get(m, 0) + c
        return Poly(out, self.ctx)

    __radd__ = __add__

    def __neg__(self):
        return Poly({m: -c for m, c in self.terms.items()}, self.ctx)

    def __sub__(self, o):
        return self + (-self._lift(o))

    def __rsub__(self, o):
        return self._lift(o) - self

    def __mul__(self, o):
        o = self._lift(o)
        out: dict = {}
        for m1, c1 in self.terms.items():
            for m2, c2 in o.terms.items():
                m = _mono_mul(m1, m2)
                out[m] = out.get(m, 0) + c1 * c2
        return Poly(out, self.ctx)

    __rmul__ = __mul__

    def __floordiv__(self, o):
        o = self._lift(o)
        a, b = self.const(), o.const()
        if a is not None and b is not None:
            return self._lift(Fraction(math.floor(a / b)))
        if b is not None and b > 0 and all((c / b).denominator == 1 for c in self.terms.values()):
            return self * Fraction(1, 1) * (1 / b)  # exact: every coefficient divides
        return self.ctx.atom("floordiv", self, o)

    def __rfloordiv__(self, o):
        return self._lift(o) // self

    def __mod__(self, o):
        return self - (self // o) * o

    def __truediv__(self, o):
        o = self._lift(o)
        b = o.const()
        if b is None:
            raise TypeError("division by a grid variable is not a polynomial")
        return self * (1 / b)

    # -- helpers that architectures/num.py dispatches to ---------------------------------
    def _grid_max(self, o):
        o = self._lift(o)
        a, b = self.const(), o.const()
        if a is not None and b is not None:
            return self._lift(max(a, b))
        return self.ctx.atom("max", self, o)

    def _grid_ceil_log2(self):
        a = self.const()
        if a is not None:
            return self._lift((int(a) - 1).bit_length())
        return self.ctx.atom("ceil_log2", self)

    def _grid_floor_log2(self):
        a = self.const()
        if a is not None:
            return self._lift(int(a).bit_length() - 1)
        return self.ctx.atom("floor_log2", self)

    def _grid_pow2(self):
        a = self.const()
        if a is not None:
            return self._lift(2 ** int(a))
        return self.ctx.atom("pow2", self)

    def __bool__(self):
        raise TypeError("a grid formula cannot branch on a grid variable")


def _mono_mul(a: Monomial, b: Monomial) -> Monomial:
    powers: dict = {}
    for s, p in a + b:
        powers[s] = powers.get(s, 0) + p
    return tuple(sorted(powers.items(), key=lambda sp: str(sp[0])))


class Recorder:
    """Holds the atoms (non-polynomial sub-expressions) of one recording."""

    def __init__(self):
        self.atoms: list = []   # (op, args) with args as Polys
        self._index: dict = {}

    def var(self, name: str) -> Poly:
        return Poly({((name, 1),): Fraction(1)}, self)

    def atom(self, op: str, *args: Poly) -> Poly:
        key = (op, tuple(tuple(sorted(a.terms.items(), key=str)) for a in args))
        if key not in self._index:
            self._index[key] = len(self.atoms)
            self.atoms.append((op, args))
        return Poly({((f"_a{self._index[key]}", 1),): Fraction(1)}, self)


def record(fn: Callable, names=("seq", "batch")):
    """Run ``fn`` on placeholder variables; returns (outputs as Polys, recorder)."""
    rec = Recorder()
    out = fn(*(rec.var(n) for n in names))
    return out, rec, tuple(names)


def _poly_src(p: Poly) -> str:
    if not p.terms:
        return "0.0"
    parts = []
    for mono, c in sorted(p.terms.items(), key=lambda mc: str(mc[0])):
        factors = [repr(float(c))] if c != 1 or not mono else []
        for s, k in mono:
            factors += [str(s)] * k
        parts.append("*".join(factors))
    return " + ".join(parts)


def _atom_src(op: str, args) -> str:
    a = [_poly_src(x) for x in args]
    if op == "floordiv":
        return f"np.floor(({a[0]}) / ({a[1]}))"
    if op == "max":
        return f"max({a[0]}, {a[1]})"
    if op == "ceil_log2":
        return f"np.ceil(np.log2(max({a[0]}, 1.0)))"
    if op == "floor_log2":
        return f"np.floor(np.log2(max({a[0]}, 1.0)))"
    if op == "pow2":
        return f"2.0 ** ({a[0]})"
    raise ValueError(op)


def source(outputs: list, rec: Recorder, names) -> str:
    """Python/numba source of a loop evaluating ``outputs`` at every grid point."""
    lines = [f"def kernel({', '.join(f'{n}_arr' for n in names)}, out):",
             f"    for i in range({names[0]}_arr.shape[0]):"]
    lines += [f"        {n} = {n}_arr[i]" for n in names]
    for k, (op, args) in enumerate(rec.atoms):
        lines.append(f"        _a{k} = {_atom_src(op, args)}")
    for j, p in enumerate(outputs):
        lines.append(f"        out[{j}, i] = {_poly_src(p)}")
    return "\n".join(lines)


def compile_formula(fn: Callable, n_outputs: int, names=("seq", "batch"), jit: bool = True):
    """Record ``fn`` (returning ``n_outputs`` values) and compile it over grid arrays.

    Returns ``evaluate(*arrays) -> float64 array [n_outputs, n_points]``.
    """
    outs, rec, names = record(fn, names)
    outs = [o if isinstance(o, Poly) else rec.var(names[0]) * 0 + o for o in outs]
    if len(outs) != n_outputs:
        raise ValueError(f"formula returned {len(outs)} values, expected {n_outputs}")
    src = source(outs, rec, names)
    scope: dict = {"np": np}
    exec(compile(src, "<grid kernel>", "exec"), scope)
    kernel = scope["kernel"]
    if jit:
        import numba
        kernel = numba.njit(cache=False, fastmath=False)(kernel)

    def evaluate(*arrays):
        arrays = [np.ascontiguousarray(a, dtype=np.float64) for a in arrays]
        arrays = np.broadcast_arrays(*arrays)
        arrays = [np.ascontiguousarray(a).ravel() for a in arrays]
        out = np.empty((n_outputs, arrays[0].shape[0]), dtype=np.float64)
        kernel(*arrays, out)
        return out

    evaluate.source = src
    return evaluate
