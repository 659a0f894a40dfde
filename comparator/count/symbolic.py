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
import math
import sys
from contextlib import ExitStack, contextmanager

from comparator.count import jaxcompat as jc
from comparator.count.jaxcompat import InconclusiveDimensionOperation, ev, is_symbolic


def shape_of(v):
    return getattr(getattr(v, "aval", None), "shape", None)


class At:
    """A var or an equation seen at one length: what a cost rule reads."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    @classmethod
    def var(cls, v, env, memo):
        aval = getattr(v, "aval", None)
        if not hasattr(aval, "shape"):
            return v
        shape = tuple(ev(d, env, memo) for d in aval.shape)
        return cls(aval=cls(shape=shape, dtype=aval.dtype, ndim=len(shape),
                            size=math.prod(shape), weak_type=getattr(aval, "weak_type", False)))

    @classmethod
    def eqn(cls, eqn, env, memo):
        return cls(primitive=eqn.primitive, params=eqn.params, source_info=eqn.source_info,
                   invars=[cls.var(v, env, memo) for v in eqn.invars],
                   outvars=[cls.var(v, env, memo) for v in eqn.outvars])



@contextmanager
def symbolic_tracing(domain, log: list):
    """Trace with the length ``g k`` symbolic, for ``k`` in ``domain`` only.

    A comparison of dims JAX cannot decide from the bounds is decided by evaluating
    it at every ``k`` of ``domain``: an ordering that holds at some and fails at
    others raises (the caller splits the lengths); an ``==`` (JAX says False when
    undecided) or a truth test (True) that holds at some is answered as at the
    others, its dims logged: a concrete trace may branch otherwise there.  Indexing
    and ``arange`` as a concrete trace does them; ``int_spec`` takes a symbolic bound.
    """
    from architectures import program
    busy = []
    orig = jc.dim_comparisons()
    orig_spec = program.int_spec

    def at_domain(e):
        """``e`` at every k of the domain, or None (another scope or variable)."""
        if busy:
            return None
        busy.append(1)
        try:
            return [ev(e, {"k": k}, {}) for k in domain]
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
            vals = [ev(diff, {"k": k}, {}) for k in domain] if is_symbolic(diff) else None
        except Exception:  # another scope or variable
            return res
        finally:
            busy.pop()
        if vals and all(v == 0 for v in vals) and is_symbolic(other):
            return True   # (never against a constant: a cache key holding a concrete shape)
        if vals and 0 in vals and not jc.in_tree_util(sys._getframe(1)):
            log.append(diff)
        return res

    def ordering(name, test):
        def cmp(self, other):
            try:
                return orig[name](self, other)
            except InconclusiveDimensionOperation:
                vals = at_domain(self - other)
                if vals is None or len({test(v) for v in vals}) != 1:
                    raise
                return test(vals[0])
        return cmp

    def truth(self):
        vals = at_domain(self)
        if vals is not None and not any(vals):
            return False
        if vals is None or not all(vals):
            log.append(self)
        return True

    def int_spec(shape, bound):  # the bound only limits example values
        return orig_spec(shape, 1 if is_symbolic(bound) else bound)[0], bound

    with ExitStack() as stack:
        stack.enter_context(jc.comparing_dims({
            "__eq__": eq, "__bool__": truth,
            "__ge__": ordering("__ge__", lambda v: v >= 0),
            "__gt__": ordering("__gt__", lambda v: v > 0),
            "__le__": ordering("__le__", lambda v: v <= 0),
            "__lt__": ordering("__lt__", lambda v: v < 0)}))
        for n, m in list(sys.modules.items()):
            if n.split(".")[0] == "architectures" and getattr(m, "int_spec", None) is orig_spec:
                stack.enter_context(jc.patched(m, "int_spec", int_spec))
        stack.enter_context(jc.symbolic_indexing())
        yield log


def with_max_len(cfg, rows):
    """``cfg`` with a symbolic position table (``dataclasses.replace`` validates ints)."""
    c = dataclasses.replace(cfg)
    object.__setattr__(c, "max_len", rows)
    return c



__all__ = ["At", "InconclusiveDimensionOperation", "ev", "is_symbolic", "shape_of",
           "symbolic_tracing", "with_max_len"]
