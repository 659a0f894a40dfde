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
import sys
from contextlib import ExitStack, contextmanager

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


class Values:
    """A dim's values at every ``k`` of a domain (a tuple, or a ``range`` evaluated with
    NumPy), kept per expression: a trace compares the same few dims many times."""
    SMALL = 64

    def __init__(self, domain):
        self.domain = domain
        self.ks = None
        if isinstance(domain, range) and len(domain) > self.SMALL:
            import numpy as np
            self.ks = np.arange(domain.start, domain.stop, domain.step, dtype=np.int64)
        self.memo: dict = {}

    def __call__(self, e):
        key = str(e)
        if key not in self.memo:
            vals = None if self.ks is None else jc.ev_many(e, self.ks, {})
            self.memo[key] = vals if vals is not None else [ev(e, {"k": k}, {})
                                                           for k in self.domain]
        return self.memo[key]


def holds(vals, test) -> tuple[bool, bool]:
    """(``test`` holds at every value, at some value)."""
    if isinstance(vals, list):
        got = [test(v) for v in vals]
        return all(got), any(got)
    got = test(vals)
    return bool(got.all()), bool(got.any())


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

    def at_domain(e):
        """``e`` at every k of the domain, or None (another scope or variable)."""
        if busy:
            return None
        busy.append(1)
        try:
            return values(e)
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
            vals = values(diff) if is_symbolic(diff) else None
        except Exception:  # another scope or variable
            return res
        finally:
            busy.pop()
        if vals is None:
            return res
        every, some = holds(vals, lambda v: v == 0)
        if every and is_symbolic(other):
            return True   # (never against a constant: a cache key holding a concrete shape)
        if some and not jc.in_tree_util(sys._getframe(1)):
            log.append(diff)
        return res

    def ordering(name, test):
        def cmp(self, other):
            try:
                return orig[name](self, other)
            except InconclusiveDimensionOperation:
                vals = at_domain(self - other)
                if vals is None:
                    raise
                every, some = holds(vals, test)
                if every == some:
                    return every
                raise
        return cmp

    def truth(self):
        vals = at_domain(self)
        every, some = (False, False) if vals is None else holds(vals, lambda v: v != 0)
        if vals is not None and not some:
            return False
        if not every:
            log.append(self)
        return True

    def to_int(self):
        try:
            return orig["__int__"](self)
        except InconclusiveDimensionOperation:
            vals = at_domain(self)
            if vals is None:
                raise
            first = int(vals[0])
            if holds(vals, lambda v: v == first)[0]:
                return first
            raise

    def int_spec(shape, bound):  # the bound only limits example values
        return orig_spec(shape, 1 if is_symbolic(bound) else bound)[0], bound

    def constant(fn):
        """A monotone function of an int (``floor_log2``) taking a symbolic dim: its value
        where that is the same at every ``k`` (at the smallest and largest dim)."""
        def call(x):
            if not is_symbolic(x):
                return fn(x)
            vals = at_domain(x)
            if vals is not None:
                ends = {fn(int(min(vals))), fn(int(max(vals)))}
                if len(ends) == 1:
                    return ends.pop()
            raise InconclusiveDimensionOperation(f"{fn.__name__}({x}) differs over the lengths")
        return call

    with ExitStack() as stack:
        stack.enter_context(jc.comparing_dims({
            "__eq__": eq, "__bool__": truth,
            "__ge__": ordering("__ge__", lambda v: v >= 0),
            "__gt__": ordering("__gt__", lambda v: v > 0),
            "__le__": ordering("__le__", lambda v: v <= 0),
            "__lt__": ordering("__lt__", lambda v: v < 0), "__int__": to_int}))
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



__all__ = ["At", "InconclusiveDimensionOperation", "Values", "ev", "holds", "is_symbolic",
           "shape_of", "symbolic_tracing", "with_max_len"]
