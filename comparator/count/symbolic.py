"""Symbolic sequence lengths for traced counts: dims evaluated at a length, and the
patches that make a trace with the length symbolic the program a concrete trace gives.

``symbolic_tracing(domain, log)`` traces with the length ``g k`` symbolic, for ``k``
in ``domain`` only (see its docstring); ``ev(dim, env, memo)`` evaluates a dim --
an int or a ``jax.export`` ``_DimExpr`` -- at ``env`` in exact Python ints, and
``At`` presents an equation at one length to the cost rules of ``rules.py``.
These reach into private JAX modules (``jax._src``): each patch is undone when the
context exits, and ``comparator.count.fasttrace`` checks every symbolic program against a
concrete trace before using it.
"""
from __future__ import annotations

import dataclasses
import math
import sys
from contextlib import ExitStack, contextmanager

from jax._src import core as _core
from jax._src.export import shape_poly as _sp
from jax._src.lax import lax as _lax
from jax._src.lax import slicing as _slicing
from jax._src.numpy import indexing as _ix
from jax._src.numpy import lax_numpy as _lnp

InconclusiveDimensionOperation = _sp.InconclusiveDimensionOperation

def is_symbolic(d) -> bool:
    return isinstance(d, _sp._DimExpr)


def ev(d, env: dict, memo: dict) -> int:
    """A dim (int or ``_DimExpr``) at ``env`` in Python ints (JAX's evaluator is int32)."""
    if not is_symbolic(d):
        return int(d)
    if id(d) not in memo:
        total = 0
        for term, coeff in d._sorted_terms:
            v = int(coeff)
            for f, exp in term._factors:
                if f.var is not None:
                    x = env[f.var]
                else:
                    a, b = (ev(o, env, memo) for o in f.operands)
                    x = {"floordiv": a // b if b else 0, "mod": a % b if b else 0,
                         "max": max(a, b), "min": min(a, b)}[f.operation]
                v *= x ** int(exp)
            total += v
        memo[id(d)] = total
    return memo[id(d)]


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
def _patched(obj, name, value):
    had = name in vars(obj)
    old = vars(obj).get(name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        if had:
            setattr(obj, name, old)
        else:
            delattr(obj, name)


def _slice_bounds(sl, size):
    """``slice.indices(size)`` for a positive step, ``size`` or the bounds symbolic."""
    step = 1 if sl.step is None else sl.step
    if not isinstance(step, int) or step <= 0:
        raise TypeError("symbolic slice with a non-positive or symbolic step")

    def bound(v, default):
        if v is None:
            return default
        if not is_symbolic(v):
            v = int(v)
            return _core.max_dim(v + size, 0) if v < 0 else _core.min_dim(v, size)
        try:
            if not v >= 0:
                raise TypeError("negative symbolic slice bound")
        except _core.InconclusiveDimensionOperation as e:
            raise TypeError(str(e)) from None
        return _core.min_dim(v, size)

    return bound(sl.start, 0), bound(sl.stop, size), step


def _static_slice_symbolic(orig):
    """``NDIndexer.to_static_slice`` taking symbolic shapes and slice bounds too (JAX
    refuses them and gathers; a concrete trace slices, squeezes, expands).  A TypeError
    sends JAX to its other indexing paths, as for any index a static slice cannot do."""
    mode_ok = (_slicing.GatherScatterMode.PROMISE_IN_BOUNDS, _slicing.GatherScatterMode.CLIP)

    def to_static_slice(self, *, arr_is_sharded=False, normalize_indices=True, mode):
        sym = any(is_symbolic(d) for d in self.shape) or any(
            isinstance(p.index, slice)
            and any(is_symbolic(v) for v in (p.index.start, p.index.stop, p.index.step))
            for p in self.indices)
        if not sym or arr_is_sharded:
            return orig(self, arr_is_sharded=arr_is_sharded,
                        normalize_indices=normalize_indices, mode=mode)
        if (mode_ok[0] if mode is None else _slicing.GatherScatterMode.from_any(mode)) \
                not in mode_ok:
            raise ValueError("static_slice requires mode='promise_in_bounds' or mode='clip'")
        starts, limits, strides, squeeze, newaxis = [], [], [], [], []
        for p in self.expand_ellipses().indices:
            if p.typ == _ix.IndexType.NONE:
                newaxis.append(len(starts) - len(squeeze) + len(newaxis))
            elif p.typ == _ix.IndexType.INTEGER:
                axis, = p.consumed_axes
                size, i = self.shape[axis], int(p.index)
                i = i + size if normalize_indices and i < 0 else i
                i = _core.min_dim(_core.max_dim(i, 0), size - 1)
                starts.append(i), limits.append(i + 1), strides.append(1), squeeze.append(axis)
            elif p.typ == _ix.IndexType.SLICE:
                a, b, st = _slice_bounds(p.index, self.shape[p.consumed_axes[0]])
                starts.append(a), limits.append(_core.max_dim(a, b)), strides.append(st)
            else:
                raise TypeError("static_slice: indices must be static scalars or slices")
        return _ix._StaticSliceIndexer(
            start_indices=starts, limit_indices=limits,
            strides=None if all(x == 1 for x in strides) else strides,
            rev_axes=[], squeeze_axes=squeeze, newaxis_dims=newaxis)

    return to_static_slice


def _arange_symbolic(orig):
    """``jnp.arange(n)`` of a symbolic ``n`` as one iota, as a concrete trace has it."""

    def _arange(start, stop=None, step=None, dtype=None, out_sharding=None):
        if stop is None and step is None and is_symbolic(start):
            dt = _lnp.dtypes.default_int_dtype() if dtype is None else _lnp.dtypes.jax_dtype(dtype)
            return _lax.broadcasted_iota(dt, (start,), 0, out_sharding=out_sharding)
        return orig(start, stop=stop, step=step, dtype=dtype, out_sharding=out_sharding)

    return _arange


def _cache_key(frame) -> bool:
    """A comparison of static arguments as cache keys (``jax.tree_util`` statics holding
    shapes of earlier, concrete traces): a miss retraces, the program does not depend on it."""
    return frame.f_code.co_filename.endswith("jax/_src/tree_util.py")


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
    cls, busy = _sp._DimExpr, []
    orig = {n: vars(cls)[n] for n in ("__eq__", "__ge__", "__gt__", "__le__", "__lt__")}
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
        if vals and 0 in vals and not _cache_key(sys._getframe(1)):
            log.append(diff)
        return res

    def ordering(name, test):
        def cmp(self, other):
            try:
                return orig[name](self, other)
            except _core.InconclusiveDimensionOperation:
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
        for name, fn in (("__eq__", eq), ("__bool__", truth),
                         ("__ge__", ordering("__ge__", lambda v: v >= 0)),
                         ("__gt__", ordering("__gt__", lambda v: v > 0)),
                         ("__le__", ordering("__le__", lambda v: v <= 0)),
                         ("__lt__", ordering("__lt__", lambda v: v < 0))):
            stack.enter_context(_patched(cls, name, fn))
        for n, m in list(sys.modules.items()):
            if n.split(".")[0] == "architectures" and getattr(m, "int_spec", None) is orig_spec:
                stack.enter_context(_patched(m, "int_spec", int_spec))
        stack.enter_context(_patched(_ix.NDIndexer, "to_static_slice",
                                     _static_slice_symbolic(_ix.NDIndexer.to_static_slice)))
        stack.enter_context(_patched(_lnp, "_arange", _arange_symbolic(_lnp._arange)))
        yield log


def with_max_len(cfg, rows):
    """``cfg`` with a symbolic position table (``dataclasses.replace`` validates ints)."""
    c = dataclasses.replace(cfg)
    object.__setattr__(c, "max_len", rows)
    return c



__all__ = ["At", "InconclusiveDimensionOperation", "ev", "is_symbolic", "shape_of",
           "symbolic_tracing", "with_max_len"]
