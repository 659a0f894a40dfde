"""Symbolic sequence lengths for traced counts: dims evaluated at a length, and the
patches that make a trace with the length symbolic the program a concrete trace gives.

``symbolic_tracing(domain, log)`` traces with the length ``g k`` symbolic, for ``k``
in ``domain`` only (see its docstring); ``ev(dim, env, memo)`` evaluates a dim --
an int or a ``jax.export`` ``_DimExpr`` -- at ``env`` in exact Python ints, and
``At`` presents an equation at one length to the cost rules of ``rules.py``.
The JAX internals this takes (``_DimExpr``'s comparisons, static indexing, ``arange``)
come from ``comparator.count.jaxcompat``, the one place that touches them; each patch
is undone when the context exits, and ``comparator.count.fasttrace`` checks every
symbolic program against a concrete trace before using it.
"""
from __future__ import annotations

import dataclasses
import operator
import sys
from contextlib import ExitStack, contextmanager

from comparator.count import dims
from comparator.count import jaxcompat as jc
from comparator.count.jaxcompat import InconclusiveDimensionOperation, ev, is_symbolic
from comparator.count.lengthprogram import At as _At


def shape_of(v):
    return getattr(getattr(v, "aval", None), "shape", None)


class At(_At):
    """A var or an equation seen at one length (JAX's dims): what a cost rule reads."""

    @classmethod
    def var(cls, v, env, memo, ev=ev):
        return super().var(v, env, memo, ev)

    @classmethod
    def eqn(cls, eqn, env, memo, ev=ev):
        return super().eqn(eqn, env, memo, ev)


TESTS = {"==": operator.eq, "!=": operator.ne, ">=": operator.ge, ">": operator.gt,
         "<=": operator.le, "<": operator.lt}


class Values:
    """What a dim is over a domain of ``k`` (a tuple, or a ``range``), kept per expression
    (a trace compares the same few dims many times): bounds by interval arithmetic where
    they settle a question, else its value at every ``k`` (NumPy for a long range)."""
    SMALL = 64

    def __init__(self, domain):
        self.domain = domain
        self.lo, self.hi = min(domain), max(domain)
        self.ks = None
        self.memo: dict = {}
        self.bounds_memo: dict = {}

    def full(self, e):
        """``e`` at every ``k``: a list, or an int64 array."""
        key = str(e)
        if key not in self.memo:
            vals = None
            if isinstance(self.domain, range) and len(self.domain) > self.SMALL:
                if self.ks is None:
                    import numpy as np
                    self.ks = np.arange(self.domain.start, self.domain.stop,
                                        self.domain.step, dtype=np.int64)
                vals = dims.many(self.dim(e), self.ks, {})
            self.memo[key] = vals if vals is not None else [ev(e, {"k": k}, {})
                                                           for k in self.domain]
        return self.memo[key]

    @staticmethod
    def dim(e):
        return dims.Dim.from_json(jc.dim_json(e))

    def bounds(self, e):
        key = str(e)
        if key not in self.bounds_memo:
            self.bounds_memo[key] = dims.bounds(self.dim(e), self.lo, self.hi, {})
        return self.bounds_memo[key]

    def holds(self, e, kind: str, ref: int = 0) -> tuple[bool, bool]:
        """(``e kind ref`` holds at every ``k``, at some ``k``)."""
        b = self.bounds(e)
        if b is not None:
            lo, hi = b
            if kind in ("==", "!="):
                if lo == hi or not lo <= ref <= hi:
                    got = TESTS[kind](lo, ref) if lo == hi else kind == "!="
                    return got, got
            elif TESTS[kind](lo, ref) == TESTS[kind](hi, ref):   # a threshold: monotone
                return TESTS[kind](lo, ref), TESTS[kind](lo, ref)
        vals = self.full(e)
        if isinstance(vals, list):
            got = [TESTS[kind](v, ref) for v in vals]
            return all(got), any(got)
        got = TESTS[kind](vals, ref)
        return bool(got.all()), bool(got.any())

    def extremes(self, e) -> tuple[int, int]:
        """The smallest and largest value, or bounds of them where they are equal."""
        b = self.bounds(e)
        if b is not None and b[0] == b[1]:
            return b
        vals = self.full(e)
        return int(min(vals)), int(max(vals))


@contextmanager
def symbolic_tracing(domain, log: list):
    """Trace with the length ``g k`` symbolic, for ``k`` in ``domain`` only.

    ``domain``: a tuple of ``k``, or a ``range`` (a program for every length of it).
    A comparison of dims JAX cannot decide from the bounds is decided by evaluating
    it at every ``k`` of ``domain``: an ordering that holds at some and fails at
    others raises (the caller splits the lengths); an ``==`` (JAX says False when
    undecided) or a truth test (True) that holds at some is answered as at the
    others, its dims logged: a concrete trace may branch otherwise there; ``int()`` of
    a dim, and the architectures' ``floor_log2`` and ``ceil_log2`` of one, are their
    value where it is the same at every ``k`` (else they raise, as JAX's ``int()``).
    Indexing and ``arange`` as a concrete trace does them; ``int_spec`` takes a symbolic
    bound.
    """
    from architectures import num, program
    busy = []
    orig = jc.dim_comparisons()
    orig_spec = program.int_spec
    values = Values(domain)

    def over(e, ask, *args):
        """``values.ask(e, ...)`` over the domain, or None (another scope or variable)."""
        if busy:
            return None
        busy.append(1)
        try:
            return getattr(values, ask)(e, *args)
        except Exception:
            return None
        finally:
            busy.pop()

    def eq(self, other):
        res = orig["__eq__"](self, other)
        if res or busy or not (is_symbolic(other) or isinstance(other, int)):
            return res
        busy.append(1)
        try:
            diff = self - other
        except Exception:  # another scope or variable
            return res
        finally:
            busy.pop()
        got = over(diff, "holds", "==") if is_symbolic(diff) else None
        if got is None:
            return res
        every, some = got
        if every and is_symbolic(other):
            return True   # (never against a constant: a cache key holding a concrete shape)
        if some and not jc.in_tree_util(sys._getframe(1)):
            log.append(diff)
        return res

    def ordering(name, kind):
        def cmp(self, other):
            try:
                return orig[name](self, other)
            except InconclusiveDimensionOperation:
                got = over(self - other, "holds", kind)
                if got is None or got[0] != got[1]:
                    raise
                return got[0]
        return cmp

    def truth(self):
        got = over(self, "holds", "!=")
        if got is not None and not got[1]:
            return False
        if got is None or not got[0]:
            log.append(self)
        return True

    def to_int(self):
        try:
            return orig["__int__"](self)
        except InconclusiveDimensionOperation:
            ends = over(self, "extremes")
            if ends is None or ends[0] != ends[1]:
                raise
            return ends[0]

    def int_spec(shape, bound):  # the bound only limits example values
        return orig_spec(shape, 1 if is_symbolic(bound) else bound)[0], bound

    def constant(fn):
        """A monotone function of an int (``floor_log2``) taking a symbolic dim: its value
        where that is the same at every ``k`` (at the smallest and largest dim)."""
        def call(x):
            if not is_symbolic(x):
                return fn(x)
            b = over(x, "bounds")
            ends = over(x, "extremes") if b is None or fn(b[0]) != fn(b[1]) else b
            if ends is not None and fn(ends[0]) == fn(ends[1]):
                return fn(ends[0])
            raise InconclusiveDimensionOperation(f"{fn.__name__}({x}) differs over the lengths")
        return call

    with ExitStack() as stack:
        stack.enter_context(jc.comparing_dims({
            "__eq__": eq, "__bool__": truth,
            "__ge__": ordering("__ge__", ">="), "__gt__": ordering("__gt__", ">"),
            "__le__": ordering("__le__", "<="), "__lt__": ordering("__lt__", "<"),
            "__int__": to_int}))
        swaps = {"int_spec": (orig_spec, int_spec)}
        swaps.update((f.__name__, (f, constant(f))) for f in (num.floor_log2, num.ceil_log2))
        for n, m in list(sys.modules.items()):
            if n.split(".")[0] != "architectures":
                continue
            for name, (old, new) in swaps.items():
                if getattr(m, name, None) is old:
                    stack.enter_context(jc.patched(m, name, new))
        stack.enter_context(jc.symbolic_indexing())
        yield log


def with_max_len(cfg, rows):
    """``cfg`` with a symbolic position table (``dataclasses.replace`` validates ints)."""
    c = dataclasses.replace(cfg)
    object.__setattr__(c, "max_len", rows)
    return c



__all__ = ["At", "InconclusiveDimensionOperation", "Values", "ev", "is_symbolic", "shape_of",
           "symbolic_tracing", "with_max_len"]
