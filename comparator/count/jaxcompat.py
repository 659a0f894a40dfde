"""The one place that touches JAX's private internals, with a public fallback.

Symbolic-length traces (``comparator.count.symbolic``) need JAX internals that no public
API offers: the ``_DimExpr`` class of ``jax._src.export.shape_poly`` (its comparisons are
patched, its terms read), NumPy-style static indexing and ``arange`` of
``jax._src.numpy`` (patched to take a symbolic length, as a concrete trace slices), and
the dead-code elimination of ``jax._src.interpreters.partial_eval``.  Every such name is
imported here, defensively; nothing else in ``comparator``, ``kernels`` or
``architectures`` imports a private JAX module.

``available()`` says, once per process, whether every private name the symbolic path
needs exists *and* behaves as expected: a small function with a symbolic length is traced
through the patches and its program compared, equation by equation, with its concrete
traces (``_self_check``, about 30 ms).  When it is not (a missing name, a failed check, or
``COMPARATOR_PLAIN_TRACES=1`` in the environment), ``fasttrace.traced_counts`` traces
every length concretely (its depth reduction needs no internals and stays) and
``warn_plain()`` says why, once; dead code is then removed by ``comparator.count.plainjax``
(public jaxpr structure only).  Named scopes are read from ``jax.extend``'s ``NameStack``
on both paths (``scope_names``; from its text should that field go).  The counts are the
same either way (tests/test_jaxcompat.py), only slower.  JAX before 0.9.1 lacks the static
indexing internals: there the plain path is the only one (BENCHMARKS.md).  A symbolic dim
is read here (``ev``; as JSON, ``dim_json``, for ``comparator.count.dims``).
"""
from __future__ import annotations

import importlib
import os
import warnings
from contextlib import ExitStack, contextmanager

import jax

from comparator.count import dims, plainjax

ENV = "COMPARATOR_PLAIN_TRACES"


def _module(name):
    try:
        return importlib.import_module(name)
    except Exception:   # moved or removed in this JAX: the plain path is used
        return None


# the private modules, by the name they have here
PRIVATE = {"shape_poly": "jax._src.export.shape_poly", "core": "jax._src.core",
           "lax_internal": "jax._src.lax.lax", "slicing": "jax._src.lax.slicing",
           "indexing": "jax._src.numpy.indexing", "lax_numpy": "jax._src.numpy.lax_numpy",
           "partial_eval": "jax._src.interpreters.partial_eval"}
shape_poly, core, lax_internal, slicing, indexing, lax_numpy, partial_eval = (
    _module(m) for m in PRIVATE.values())


def _first(*candidates):
    """The first ``(module, attribute)`` that exists, public ones listed first."""
    for mod, name in candidates:
        m = _module(mod) if isinstance(mod, str) else mod
        if m is not None and hasattr(m, name):
            return getattr(m, name)
    return None


# public (or semi-public ``jax.extend``) names, a private one only where none exists
Literal = _first(("jax.extend.core", "Literal"), ("jax.core", "Literal"), (core, "Literal"))
jaxpr_as_fun = _first(("jax.extend.core", "jaxpr_as_fun"), ("jax.core", "jaxpr_as_fun"),
                      (core, "jaxpr_as_fun"))
max_dim = _first(("jax.core", "max_dim"), (core, "max_dim"))
min_dim = _first(("jax.core", "min_dim"), (core, "min_dim"))
InconclusiveDimensionOperation = _first(
    ("jax.errors", "InconclusiveDimensionOperation"),
    ("jax.core", "InconclusiveDimensionOperation"),
    (shape_poly, "InconclusiveDimensionOperation")) or type(
        "InconclusiveDimensionOperation", (Exception,), {})   # never raised then
_is_symbolic_dim = _first(("jax.export", "is_symbolic_dim"))
DimExpr = getattr(shape_poly, "_DimExpr", None)

# (a name here, dotted attribute path): what the symbolic path uses of the internals
NEEDED = [*(("shape_poly", f"_DimExpr.{n}") for n in ("__eq__", "__ge__", "__gt__", "__le__",
                                                        "__lt__", "__int__", "_sorted_terms")),
          ("indexing", "NDIndexer.to_static_slice"), ("indexing", "NDIndexer.expand_ellipses"),
          ("indexing", "_StaticSliceIndexer"), ("indexing", "IndexType.SLICE"),
          ("slicing", "GatherScatterMode.from_any"), ("lax_numpy", "_arange"),
          ("lax_numpy", "dtypes.default_int_dtype"), ("lax_internal", "broadcasted_iota"),
          ("partial_eval", "dce_jaxpr"), ("max_dim", ""), ("min_dim", "")]


def missing_names() -> list[str]:
    """The names the symbolic path needs that this JAX lacks (``jax.core.max_dim`` may be
    JAX's private one)."""
    out = []
    for name, path in NEEDED:
        obj = globals()[name]
        for part in path.split(".") if path else ():
            obj = getattr(obj, part, None)
        if obj is None:
            out.append(".".join(x for x in (PRIVATE.get(name, "jax.core." + name), path) if x))
    ns = _first(("jax.extend.source_info_util", "NameStack"))
    if "stack" not in getattr(ns, "__dataclass_fields__", {}):
        out.append("jax.extend.source_info_util.NameStack.stack")
    return out


# -- the verdict, once -------------------------------------------------------------------

class PlainTracesWarning(UserWarning):
    """Traced counts go the plain way on this JAX (exact, slower): not an error, and not
    the ``RuntimeWarning`` of a symbolic program that a check rejected."""


_UNSET = object()
_reason = _UNSET
_warned = False


def plain_reason() -> str | None:
    """Why the private path is off (None: it is on).  Computed once per process; while the
    self-check runs, the private path is assumed on (the check traces through it)."""
    global _reason
    if _reason is _UNSET:
        if os.environ.get(ENV, "") not in ("", "0"):
            _reason = f"{ENV}={os.environ[ENV]} is set"
            return _reason
        gone = missing_names()
        if gone:
            _reason = "JAX " + jax.__version__ + " lacks " + ", ".join(gone)
            return _reason
        _reason = None
        try:
            _reason = _self_check()
        except Exception as e:   # any failure of the check is a verdict, never an error
            _reason = f"the self-check failed ({type(e).__name__}: {e})"
    return _reason


def available() -> bool:
    """Whether the symbolic path may be used (every private name there and behaving)."""
    return plain_reason() is None


def reset() -> None:
    """Forget the verdict and the warning (tests; after changing ``COMPARATOR_PLAIN_TRACES``)."""
    global _reason, _warned
    _reason, _warned = _UNSET, False


def warn_plain() -> None:
    """Warn once per process that traced counts use plain concrete traces, and why."""
    global _warned
    if not _warned and not available():
        _warned = True
        warnings.warn(f"comparator: symbolic-length traces are off ({plain_reason()}): every "
                      "length is traced concretely; counts are exact but slower",
                      PlainTracesWarning, stacklevel=3)


# -- what the counting modules call ------------------------------------------------------

def is_symbolic(d) -> bool:
    if DimExpr is not None:
        return isinstance(d, DimExpr)
    return bool(_is_symbolic_dim and _is_symbolic_dim(d))


def ev(d, env: dict, memo: dict) -> int:
    """A dim (int or ``_DimExpr``) at ``env`` in Python ints (JAX's evaluator is int32),
    read off the expression's terms and factors."""
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
                    x = dims.apply(f.operation, *(ev(o, env, memo) for o in f.operands))
                v *= x ** int(exp)
            total += v
        memo[id(d)] = total
    return memo[id(d)]


def dim_json(d):
    """A dim as JSON, an int or ``{"t": [[coeff, [[factor, exp], ...]], ...]}`` (a factor a
    variable or ``[operation, a, b]``): ``dims.Dim.from_json`` reads it without jax."""
    if not is_symbolic(d):
        return int(d)
    return {"t": [[int(coeff), [[f.var if f.var is not None else
                                 [f.operation, *(dim_json(o) for o in f.operands)], int(exp)]
                                for f, exp in term._factors]]
                  for term, coeff in d._sorted_terms]}


def dce(closed):
    """The jaxpr of ``closed`` without the equations whose results are never used (XLA
    would not run them): JAX's own pass once the private path's verdict is in and on;
    ``plainjax.dce_jaxpr`` on the plain path, and before the verdict is asked for -- a
    concrete count needs nothing else private, and the self-check would cost it about
    30 ms; the two passes remove the same code (tests/test_jaxcompat.py)."""
    if partial_eval is not None and _reason is None:
        return partial_eval.dce_jaxpr(closed.jaxpr, [True] * len(closed.jaxpr.outvars))[0]
    return plainjax.dce_jaxpr(closed.jaxpr)


def scope_names(eqn, roots=()) -> tuple:
    """The ``jax.named_scope`` names around ``eqn``, outermost first (transforms such as
    ``jvp`` and ``transpose`` left out), from the ``stack`` field of
    ``jax.extend.source_info_util.NameStack``; from its text where that field is gone
    (``plainjax.scopes_from_text``, a root of ``roots`` joined with the word after it: a
    Flax module named like a term root may then merge with the scope inside it -- the
    totals stay, a term may move).  Either path."""
    ns = eqn.source_info.name_stack
    stack = getattr(ns, "stack", None)
    if stack is None:
        return plainjax.scopes_from_text(str(ns), roots)
    return tuple(s.name for s in stack if type(s).__name__ == "Scope")


def in_tree_util(frame) -> bool:
    """Whether ``frame`` runs in JAX's pytree code (comparing static cache keys)."""
    return frame.f_code.co_filename.replace("\\", "/").endswith("jax/_src/tree_util.py")


# -- the patches of symbolic tracing -----------------------------------------------------

@contextmanager
def patched(obj, name, value):
    """``obj.name = value`` while the context lasts (removed again if ``obj`` had none)."""
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


COMPARISONS = ("__eq__", "__ge__", "__gt__", "__le__", "__lt__", "__int__")


def dim_comparisons() -> dict:
    """JAX's own comparisons of symbolic dims (and ``int()`` of one), by dunder name."""
    return {n: vars(DimExpr)[n] for n in COMPARISONS}


@contextmanager
def comparing_dims(fns: dict):
    """Symbolic dims compared (and truth-tested, ``__bool__``) by ``fns`` in the context."""
    with ExitStack() as stack:
        for name, fn in fns.items():
            stack.enter_context(patched(DimExpr, name, fn))
        yield


@contextmanager
def symbolic_indexing():
    """Static indexing and ``jnp.arange`` taking a symbolic length, as a concrete trace
    does them (JAX gathers ``x[:n]`` for a symbolic ``n``; a concrete trace slices)."""
    with patched(indexing.NDIndexer, "to_static_slice",
                 _static_slice_symbolic(indexing.NDIndexer.to_static_slice)), \
            patched(lax_numpy, "_arange", _arange_symbolic(lax_numpy._arange)):
        yield


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
            return max_dim(v + size, 0) if v < 0 else min_dim(v, size)
        try:
            if not v >= 0:
                raise TypeError("negative symbolic slice bound")
        except InconclusiveDimensionOperation as e:
            raise TypeError(str(e)) from None
        return min_dim(v, size)

    return bound(sl.start, 0), bound(sl.stop, size), step


def _static_slice_symbolic(orig):
    """``NDIndexer.to_static_slice`` taking symbolic shapes and slice bounds too (JAX
    refuses them and gathers; a concrete trace slices, squeezes, expands).  A TypeError
    sends JAX to its other indexing paths, as for any index a static slice cannot do."""
    mode_ok = (slicing.GatherScatterMode.PROMISE_IN_BOUNDS, slicing.GatherScatterMode.CLIP)
    kinds = indexing.IndexType

    def to_static_slice(self, *, arr_is_sharded=False, normalize_indices=True, mode):
        sym = any(is_symbolic(d) for d in self.shape) or any(
            isinstance(p.index, slice)
            and any(is_symbolic(v) for v in (p.index.start, p.index.stop, p.index.step))
            for p in self.indices)
        if not sym or arr_is_sharded:
            return orig(self, arr_is_sharded=arr_is_sharded,
                        normalize_indices=normalize_indices, mode=mode)
        if (mode_ok[0] if mode is None else slicing.GatherScatterMode.from_any(mode)) \
                not in mode_ok:
            raise ValueError("static_slice requires mode='promise_in_bounds' or mode='clip'")
        starts, limits, strides, squeeze, newaxis = [], [], [], [], []
        for p in self.expand_ellipses().indices:
            if p.typ == kinds.NONE:
                newaxis.append(len(starts) - len(squeeze) + len(newaxis))
            elif p.typ == kinds.INTEGER:
                axis, = p.consumed_axes
                size, i = self.shape[axis], int(p.index)
                i = i + size if normalize_indices and i < 0 else i
                i = min_dim(max_dim(i, 0), size - 1)
                starts.append(i), limits.append(i + 1), strides.append(1), squeeze.append(axis)
            elif p.typ == kinds.SLICE:
                a, b, st = _slice_bounds(p.index, self.shape[p.consumed_axes[0]])
                starts.append(a), limits.append(max_dim(a, b)), strides.append(st)
            else:
                raise TypeError("static_slice: indices must be static scalars or slices")
        return indexing._StaticSliceIndexer(
            start_indices=starts, limit_indices=limits,
            strides=None if all(x == 1 for x in strides) else strides,
            rev_axes=[], squeeze_axes=squeeze, newaxis_dims=newaxis)

    return to_static_slice


def _arange_symbolic(orig):
    """``jnp.arange(n)`` of a symbolic ``n`` as one iota, as a concrete trace has it."""

    def _arange(start, stop=None, step=None, dtype=None, **kw):
        if stop is None and step is None and is_symbolic(start):
            dts = lax_numpy.dtypes
            dt = dts.default_int_dtype() if dtype is None else dts.jax_dtype(dtype)
            return lax_internal.broadcasted_iota(dt, (start,), 0, **kw)
        return orig(start, stop=stop, step=step, dtype=dtype, **kw)

    return _arange


# -- the self-check ----------------------------------------------------------------------

def _program(closed, env) -> list:
    """``[(primitive, output shapes at env, scopes)]`` of every equation left by ``dce``,
    the bodies of calls, loops and branches entered."""
    out = []

    def walk(j):
        inner = getattr(j, "jaxpr", None)
        for e in (inner if hasattr(inner, "eqns") else j).eqns:
            shapes = tuple(tuple(ev(d, env, {}) for d in getattr(v.aval, "shape", ()))
                           for v in e.outvars)
            out.append((e.primitive.name, shapes, scope_names(e)))
            for p in e.params.values():
                for sub in p if isinstance(p, (tuple, list)) else (p,):
                    if hasattr(sub, "eqns") or hasattr(getattr(sub, "jaxpr", None), "eqns"):
                        walk(sub)

    walk(dce(closed))
    return out


def _self_check() -> str | None:
    """None when a small function traced with a symbolic length ``4 k`` (a table sliced at
    the length, ``arange`` of it, a floor division of it, a named scope, dead code) is, at
    each ``k``, the program of its concrete trace, equation by equation; else what differs.
    (The comparisons of ``symbolic.symbolic_tracing`` are the project's own logic over
    JAX's, checked by name here and by ``fasttrace`` against concrete traces.)"""
    import jax.numpy as jnp
    from jax import export

    def f(table, x):   # table [64, 4], x [s, 4]
        n = x.shape[0]
        with jax.named_scope("attn/check"):
            pos = table[None, :n] * jnp.arange(n)[None, :, None]
        h = (x[None] + pos)[0, 1:] @ table[:4]            # [n - 1, 4]
        dead = table @ table.T                           # never used  # noqa: F841
        return jnp.tanh(h[: (n - 1) // 3]).sum() + x[:, 0].sum()

    S = jax.ShapeDtypeStruct
    k, = export.symbolic_shape("k", constraints=("k >= 2", "k <= 5"))
    with symbolic_indexing():
        sym = jax.make_jaxpr(f)(S((64, 4), jnp.float32), S((4 * k, 4), jnp.float32))
    for kk in (2, 3, 5):
        want = _program(jax.make_jaxpr(f)(S((64, 4), jnp.float32),
                                          S((4 * kk, 4), jnp.float32)), {})
        names = [e[0] for e in want]
        if names.count("dot_general") != 1 or "gather" in names \
                or not any("attn/check" in e[2] for e in want):
            return "dead-code elimination, indexing or named scopes work otherwise than expected"
        if _program(sym, {"k": kk}) != want:
            return f"a symbolic trace differs from the concrete one at length {4 * kk}"
    return None


__all__ = ["ENV", "InconclusiveDimensionOperation", "Literal", "PlainTracesWarning",
           "available", "comparing_dims", "dce", "dim_comparisons", "dim_json", "ev",
           "in_tree_util", "is_symbolic", "jaxpr_as_fun", "max_dim", "min_dim", "missing_names",
           "patched", "plain_reason", "reset", "scope_names", "symbolic_indexing", "warn_plain"]
