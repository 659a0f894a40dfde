"""Traced counts for sweeps without re-tracing the whole model per point.

``traced_counts(mod, cfg, seqs, batch)`` gives, for every length, the same
``TraceResult``s (total, by_term, unsupported, flagged) that
``comparator.trace.trace`` gives for the full model's loss and training step on
the inputs ``sweep.traced`` uses, and the parameter count.  Two reuses:

* **depth** -- a depth field (``n_layers``, T5's ``n_dec_layers``) counts
  identical layers, cycled with the minimal period ``p`` of ``attn_layers``
  (1 without).  For ``L = q p + r`` two shallow models are traced, at depths
  ``a = p + r`` and ``a + p`` (when that is fewer layers than ``L``), and every
  count -- per term, unsupported, flagged, parameters -- is
  ``c(L) = c(a) + (q - 1) (c(a + p) - c(a))``: exact by construction when the
  layers are identical (a first layer that differs, as Reformer's, sits inside
  ``a``; ALBERT's shared gradients add ``L - 1`` times).  Only the
  architectures of ``DEPTH_ARCHS`` are reduced.
* **length** -- a shallow model is traced once for a *region* of the requested
  lengths with the length symbolic (``s = g k``, ``k`` a
  ``jax.export.symbolic_shape``, ``g`` the lengths' gcd); the walk keeps the
  symbolic dims and the rules of ``rules.py`` cost each equation per length on
  its shapes evaluated there, in exact Python ints.  Regions split where the
  parameter shapes change form: a learned position table past ``max_len`` gets
  ``s`` rows (as ``for_length`` gives it), Reformer's axial rows grow.

The symbolic trace is made the program a concrete trace gives at each requested
length of its region.  JAX's static indexing and ``arange`` get symbolic-length
versions (JAX gathers ``x[:n]`` for a symbolic ``n``; a concrete trace
slices); scalars computed from dims only (``dim_as_value`` chains, literals in
a concrete trace) are folded; a comparison of dims that JAX cannot decide is
decided by evaluating it at every length of the region.  An ordering that
differs between them raises (the region is halved, and at last traced
concretely); an ``==`` or truth test that differs (JAX would say False / True)
is answered as at most lengths and logged, and where a logged dim vanishes --
e.g. the one length at which a slice spans a whole table and is elided -- the
length is traced concretely (a group of such lengths symbolically, on its own
gcd).  With ``verify="point"`` (default) each symbolic program is compared with
a concrete trace of its shallow model at one length and dropped on any
difference (the base model's program is trusted when the deeper model's
program of the same lengths passed: its code paths are a subset);
``verify="full"`` also compares one length with the full model.  Models needing
concrete lengths (T5's NumPy relative buckets) are traced per length, at
reduced depth.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import warnings
from collections import Counter, defaultdict
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jax import export
from jax._src import core as _core
from jax._src.export import shape_poly as _sp
from jax._src.lax import lax as _lax
from jax._src.lax import slicing as _slicing
from jax._src.numpy import indexing as _ix
from jax._src.numpy import lax_numpy as _lnp

from .cost import ZERO, Cost
from .rules import RULES
from .trace import (
    CALLS,
    TraceResult,
    _as_jaxpr,
    _dce,
    _scopes,
    _sub_jaxpr,
    term_of,
    trace,
)

DEPTH_ARCHS = ("transformer", "albert", "electra", "reformer")
MIN_SYMBOLIC = 4   # a symbolic trace and its check cost about 3-4 concrete shallow traces
COND_FLAG = "cond (costliest branch counted)"
WHILE_FLAG = "while (trip count unknown: body counted once)"


@dataclass(frozen=True)
class FastCount:
    """Counts at one length; ``fwd, train = fc`` unpacks like a pair."""
    fwd: TraceResult
    train: TraceResult
    params: int
    method: str

    def __iter__(self):
        yield self.fwd
        yield self.train


def same(a: TraceResult, b: TraceResult) -> bool:
    return (a.total == b.total and a.by_term == b.by_term and a.unsupported == b.unsupported
            and a.flagged == b.flagged)


# -- symbolic dims at a length ----------------------------------------------------

def _symbolic(d) -> bool:
    return isinstance(d, _sp._DimExpr)


def _ev(d, env: dict, memo: dict) -> int:
    """A dim (int or ``_DimExpr``) at ``env`` in Python ints (JAX's evaluator is int32)."""
    if not _symbolic(d):
        return int(d)
    if id(d) not in memo:
        total = 0
        for term, coeff in d._sorted_terms:
            v = int(coeff)
            for f, exp in term._factors:
                if f.var is not None:
                    x = env[f.var]
                else:
                    a, b = (_ev(o, env, memo) for o in f.operands)
                    x = {"floordiv": a // b if b else 0, "mod": a % b if b else 0,
                         "max": max(a, b), "min": min(a, b)}[f.operation]
                v *= x ** int(exp)
            total += v
        memo[id(d)] = total
    return memo[id(d)]


def _shape(v):
    return getattr(getattr(v, "aval", None), "shape", None)


class _At:
    """A var or an equation seen at one length: what a cost rule reads."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    @classmethod
    def var(cls, v, env, memo):
        aval = getattr(v, "aval", None)
        if not hasattr(aval, "shape"):
            return v
        shape = tuple(_ev(d, env, memo) for d in aval.shape)
        return cls(aval=cls(shape=shape, dtype=aval.dtype, ndim=len(shape),
                            size=math.prod(shape), weak_type=getattr(aval, "weak_type", False)))

    @classmethod
    def eqn(cls, eqn, env, memo):
        return cls(primitive=eqn.primitive, params=eqn.params, source_info=eqn.source_info,
                   invars=[cls.var(v, env, memo) for v in eqn.invars],
                   outvars=[cls.var(v, env, memo) for v in eqn.outvars])


# -- the walk of trace._Walker, recorded once and costed per length ---------------------

class CostProgram:
    """Nodes: ``("leaf", eqn, term, times, fixed cost or None, symbolic?)``,
    ``("unsup", name, times)``, ``("flag", label, times)``, ``("cond", times,
    [branch nodes])``; ``times`` (scan lengths) may be symbolic."""

    def __init__(self, closed):
        self.nodes = []
        self._flatten(_dce(closed), (), 1, set(), self.nodes)

    def _flatten(self, jaxpr, prefix, times, static, out):
        """``static``: vars holding scalars computed from dims only (literals, concretely)."""
        for eqn in _as_jaxpr(jaxpr).eqns:
            if self._folds(eqn, static):
                static.update(eqn.outvars)
            else:
                self._eqn(eqn, prefix + _scopes(eqn), times, static, out)

    @staticmethod
    def _folds(eqn, static) -> bool:
        if eqn.primitive.name == "dim_as_value":
            return True
        ins = [v for v in eqn.invars if not isinstance(v, _core.Literal)]
        return bool(ins) and all(v in static for v in ins) and all(
            _shape(v) == () for v in eqn.outvars)

    def _call(self, sub, eqn, invars, scopes, times, static, out, outward=True):
        """Walk a sub-jaxpr, its invars static where ``invars`` are (scalar results
        static where the sub-jaxpr's are, for a call: not for a loop's carry)."""
        sub = _as_jaxpr(sub)
        inner = {s for s, v in zip(sub.invars, invars)
                 if not isinstance(v, _core.Literal) and v in static}
        self._flatten(sub, scopes, times, inner, out)
        if outward and len(sub.outvars) == len(eqn.outvars):
            static.update(o for s, o in zip(sub.outvars, eqn.outvars)
                          if not isinstance(s, _core.Literal) and s in inner
                          and _shape(o) == ())

    def _eqn(self, eqn, scopes, times, static, out):
        name = eqn.primitive.name
        rule = RULES.get(name)
        if name in CALLS or (name not in ("scan", "cond", "while") and rule is None
                             and _sub_jaxpr(eqn) is not None):
            if name not in CALLS:
                out.append(("flag", f"{name} (entered as a call)", times))
            self._call(_sub_jaxpr(eqn), eqn, eqn.invars, scopes, times, static, out)
        elif name == "scan":
            self._call(eqn.params["jaxpr"], eqn, eqn.invars[:eqn.params["num_consts"]], scopes,
                       times * eqn.params["length"], static, out, outward=False)
        elif name == "cond":
            branches = [[] for _ in eqn.params["branches"]]
            for b, nodes in zip(eqn.params["branches"], branches):
                self._call(b, eqn, eqn.invars[1:], scopes, times, set(static), nodes, False)
            out.append(("cond", times, branches))
        elif name == "while":
            out.append(("flag", WHILE_FLAG, times))
            self._flatten(eqn.params["cond_jaxpr"], scopes, times, set(), out)
            self._flatten(eqn.params["body_jaxpr"], scopes, times, set(), out)
        elif rule is None:
            out.append(("unsup", name, times))
        else:
            sym = any(_symbolic(d) for v in (*eqn.invars, *eqn.outvars) for d in _shape(v) or ())
            fixed = None if sym or _symbolic(times) else rule(eqn) * int(times)
            out.append(("leaf", eqn, term_of(scopes), times, fixed, sym))

    def evaluate(self, env: dict | None = None) -> TraceResult:
        acc = _Acc()
        total = self._run(self.nodes, env or {}, {}, {}, acc)
        return TraceResult(total=total, by_term=dict(acc.by_term),
                           unsupported=dict(acc.unsupported), flagged=dict(acc.flagged))

    def _run(self, nodes, env, memo, costs, acc) -> Cost:
        total = ZERO
        for node in nodes:
            kind = node[0]
            if kind == "leaf":
                _, eqn, term, times, cost, sym = node
                if cost is None:
                    if id(eqn) not in costs:   # sub-jaxprs are shared between call sites
                        costs[id(eqn)] = RULES[eqn.primitive.name](
                            _At.eqn(eqn, env, memo) if sym else eqn)
                    cost = costs[id(eqn)] * _ev(times, env, memo)
                acc.by_term[term] = acc.by_term[term] + cost
                total = total + cost
            elif kind == "unsup":
                acc.unsupported[node[1]] += _ev(node[2], env, memo)
            elif kind == "flag":
                acc.flagged[node[1]] += _ev(node[2], env, memo)
            else:  # cond: the costliest branch, flagged (as trace._Walker._cond)
                best, best_acc = None, None
                for branch in node[2]:
                    a = _Acc()
                    c = self._run(branch, env, memo, costs, a)
                    if best is None or c.flops > best.flops:
                        best, best_acc = c, a
                acc.flagged[COND_FLAG] += _ev(node[1], env, memo)
                for k, v in best_acc.by_term.items():
                    acc.by_term[k] = acc.by_term[k] + v
                acc.unsupported.update(best_acc.unsupported)
                acc.flagged.update(best_acc.flagged)
                total = total + best
        return total


class _Acc:
    def __init__(self):
        self.by_term = defaultdict(lambda: ZERO)
        self.unsupported, self.flagged = Counter(), Counter()


def combine(parts) -> TraceResult:
    """``sum(coef * result)`` over ``(int coef, TraceResult)`` pairs, term by term."""
    total, by_term, unsupported, flagged = ZERO, {}, Counter(), Counter()
    for coef, r in parts:
        total = total + r.total * coef
        for k, v in r.by_term.items():
            by_term[k] = by_term.get(k, ZERO) + v * coef
        for k, v in r.unsupported.items():
            unsupported[k] += v * coef
        for k, v in r.flagged.items():
            flagged[k] += v * coef
    if any(v < 0 for v in (*unsupported.values(), *flagged.values())):
        raise ValueError("depth extrapolation gave a negative count")
    return TraceResult(total=total, by_term=by_term,
                       unsupported={k: v for k, v in unsupported.items() if v},
                       flagged={k: v for k, v in flagged.items() if v})


# -- tracing, concrete and symbolic ----------------------------------------------

def _inputs(mod, cfg, batch, seq):
    from architectures.program import spec_structs
    prog = mod.model(cfg)
    params = prog.abstract_params(batch, seq)
    data = spec_structs(prog.spec(batch, seq))
    return prog, params, data, jax.ShapeDtypeStruct((2,), jnp.uint32)


def full_count(mod, cfg, seq: int, batch: int = 1) -> FastCount:
    """One length traced in full, exactly as ``sweep.traced`` does (the reference)."""
    prog, params, data, rng = _inputs(mod, cfg, batch, seq)
    n = sum(int(x.size) for x in jax.tree_util.tree_leaves(params))
    return FastCount(trace(prog.loss, params, data, rng),
                     trace(prog.train_step, params, data, rng), n, "full")


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
        if not _symbolic(v):
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
        sym = any(_symbolic(d) for d in self.shape) or any(
            isinstance(p.index, slice)
            and any(_symbolic(v) for v in (p.index.start, p.index.stop, p.index.step))
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
        if stop is None and step is None and _symbolic(start):
            dt = _lnp.dtypes.default_int_dtype() if dtype is None else _lnp.dtypes.jax_dtype(dtype)
            return _lax.broadcasted_iota(dt, (start,), 0, out_sharding=out_sharding)
        return orig(start, stop=stop, step=step, dtype=dtype, out_sharding=out_sharding)

    return _arange


def _cache_key(frame) -> bool:
    """A comparison of static arguments as cache keys (``jax.tree_util`` statics holding
    shapes of earlier, concrete traces): a miss retraces, the program does not depend on it."""
    return frame.f_code.co_filename.endswith("jax/_src/tree_util.py")


@contextmanager
def _symbolic_tracing(domain, log: list):
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
            return [_ev(e, {"k": k}, {}) for k in domain]
        except Exception:
            return None
        finally:
            busy.pop()

    def eq(self, other):
        res = orig["__eq__"](self, other)
        if res or busy or not (_symbolic(other) or isinstance(other, int)):
            return res
        busy.append(1)
        try:
            diff = self - other
            vals = [_ev(diff, {"k": k}, {}) for k in domain] if _symbolic(diff) else None
        except Exception:  # another scope or variable
            return res
        finally:
            busy.pop()
        if vals and all(v == 0 for v in vals) and _symbolic(other):
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
        return orig_spec(shape, 1 if _symbolic(bound) else bound)[0], bound

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


def _with_max_len(cfg, rows):
    """``cfg`` with a symbolic position table (``dataclasses.replace`` validates ints)."""
    c = dataclasses.replace(cfg)
    object.__setattr__(c, "max_len", rows)
    return c


@dataclass
class _Symbolic:
    """One shallow model traced for the lengths ``g k``, ``k`` in ``domain``."""
    g: int
    domain: tuple
    past_max_len: bool
    fwd: CostProgram
    train: CostProgram
    param_shapes: list
    risks: list

    key = property(lambda self: (self.g, self.domain, self.past_max_len))

    def usable(self, seq) -> bool:
        return seq % self.g == 0 and seq // self.g in self.domain and not self.risky(seq)

    def vanishing(self, seq) -> tuple:
        env, memo = {"k": seq // self.g}, {}
        return tuple(i for i, e in enumerate(self.risks) if _ev(e, env, memo) == 0)

    def risky(self, seq) -> bool:
        return bool(self.vanishing(seq))

    def count(self, seq) -> tuple:
        env, memo = {"k": seq // self.g}, {}
        n = sum(math.prod(_ev(d, env, memo) for d in shape) for shape in self.param_shapes)
        return self.fwd.evaluate(env), self.train.evaluate(env), n


def _trace_symbolic(mod, cfg, batch, seqs) -> tuple:
    """``(g, domain, past max_len), fwd jaxpr, train jaxpr, param shapes, logged dims``."""
    g = math.gcd(*seqs)
    domain = tuple(s // g for s in seqs)
    k, = export.symbolic_shape("k", constraints=(f"k >= {min(domain)}", f"k <= {max(domain)}"))
    max_len = getattr(cfg, "max_len", 0) or 0
    past = bool(max_len) and min(seqs) > max_len
    log = []
    with _symbolic_tracing(domain, log):
        c = _with_max_len(cfg, g * k) if past else cfg
        prog, params, data, rng = _inputs(mod, c, batch, g * k)
        fwd = jax.make_jaxpr(prog.loss)(params, data, rng)
        train = jax.make_jaxpr(prog.train_step)(params, data, rng)
    return ((g, domain, past), fwd, train,
            [tuple(x.shape) for x in jax.tree_util.tree_leaves(params)],
            list({str(e): e for e in log}.values()))


# -- one shallow model over many lengths ---------------------------------------------

_CACHE: dict = {}   # (arch, cfg, batch) -> {"sym": [_Symbolic], "conc": {seq: counts}, ...}


def clear_cache() -> None:
    _CACHE.clear()


def _regions(cfg, seqs):
    """Lengths grouped where the parameter shapes change form (position tables)."""
    cuts = [c for c in (getattr(cfg, "max_len", 0),
                        math.prod(getattr(cfg, "axial_shape", ()) or (0,))) if c]
    groups = defaultdict(list)
    for s in sorted(seqs):
        groups[tuple(s > c for c in cuts)].append(s)
    return list(groups.values())


def _cover(mod, cfg, batch, seqs, cache, out):
    """Symbolic programs for ``seqs``: a region JAX cannot decide on is halved; lengths
    that are risky for a program are covered again on their own gcd."""
    if len(seqs) < MIN_SYMBOLIC or cache["no_symbolic"]:
        return
    try:
        head, fwd, train, shapes, risks = _trace_symbolic(mod, cfg, batch, seqs)
    except _sp.InconclusiveDimensionOperation:
        _cover(mod, cfg, batch, seqs[:len(seqs) // 2], cache, out)
        _cover(mod, cfg, batch, seqs[len(seqs) // 2:], cache, out)
        return
    except Exception:  # the model needs concrete lengths (T5's NumPy relative buckets)
        cache["no_symbolic"] = True
        return
    entry = _Symbolic(*head, CostProgram(fwd), CostProgram(train), shapes, risks)
    groups = defaultdict(list)   # risky lengths, by the logged dims vanishing there
    for s in seqs:
        groups[entry.vanishing(s)].append(s)
    if () in groups:
        out.append((entry, seqs))
    for zeros, group in groups.items():
        if zeros and (len(group) < len(seqs) or math.gcd(*group) != entry.g):
            _cover(mod, cfg, batch, group, cache, out)


def _shallow_counts(mod, cfg, seqs, batch, verify, trusted) -> tuple[dict, set]:
    """``{seq: ((fwd, train, params), "symbolic" | "concrete")}`` for one config, and the
    keys of the symbolic programs that passed their check."""
    cache = _CACHE.setdefault((getattr(mod, "NAME", mod.__name__), cfg, batch),
                              {"sym": [], "conc": {}, "no_symbolic": False})

    def concrete(seq):
        if seq not in cache["conc"]:
            fc = full_count(mod, cfg, seq, batch)
            cache["conc"][seq] = (fc.fwd, fc.train, fc.params)
        return cache["conc"][seq]

    def owner(seq):
        return next((e for e in cache["sym"] if e.usable(seq)), None)

    passed = set()
    todo = [s for s in seqs if s not in cache["conc"] and owner(s) is None]
    for region in _regions(cfg, todo):
        new = []
        _cover(mod, cfg, batch, region, cache, new)
        for entry, mine in new:
            if verify == "none" or entry.key in trusted or _agrees(entry, mine, concrete):
                cache["sym"].append(entry)
                passed.add(entry.key)
    out = {}
    for s in seqs:
        e = None if s in cache["conc"] else owner(s)
        out[s] = (concrete(s), "concrete") if e is None else (e.count(s), "symbolic")
    return out, passed


def _agrees(entry, seqs, concrete) -> bool:
    """The program equals a concrete trace at one length: a risky one if any (traced
    concretely anyway; a difference there is allowed), else -- or then -- a clean one."""
    risky = [s for s in seqs if entry.risky(s)]
    clean = [s for s in seqs if s not in risky]
    for s in risky[:1] + clean[:1]:
        want = concrete(s)
        try:
            got = entry.count(s)
        except (ZeroDivisionError, ValueError, KeyError):  # out of range at a boundary
            got = None
        if got and same(want[0], got[0]) and same(want[1], got[1]) and want[2] == got[2]:
            return True
        if s not in risky:
            warnings.warn(f"symbolic trace ({entry.g} k) differs from a concrete trace at "
                          f"seq {s}: those lengths are traced concretely", RuntimeWarning)
    return False


# -- depth ------------------------------------------------------------------------------

def _period(kinds) -> int:
    kinds = tuple(kinds or ()) or (None,)
    return next(p for p in range(1, len(kinds) + 1)
                if len(kinds) % p == 0 and kinds == kinds[p:] + kinds[:p])


def depth_plan(mod, cfg):
    """``([(coef, shallow cfg)], label)``: the full model's counts are ``sum(coef * c)``."""
    if getattr(mod, "NAME", None) not in DEPTH_ARCHS:
        return [(1, cfg)], "full depth"
    p = _period(getattr(cfg, "attn_layers", None))
    red = {}
    for f in ("n_layers", "n_dec_layers"):
        L = getattr(cfg, f, 0) or 0
        q, r = divmod(L, p)
        if q >= 2 and (p + r) + (2 * p + r) < L:
            red[f] = (p + r, 2 * p + r, q - 1)
    if not red:
        return [(1, cfg)], "full depth"
    base = dataclasses.replace(cfg, **{f: a for f, (a, _, _) in red.items()})
    label = "depth " + ", ".join(f"{f} {a},{b}->{getattr(cfg, f)}" for f, (a, b, _) in red.items())
    if len(set(red.values())) == 1:      # one step for every field (T5 with L_enc == L_dec)
        _, b, m = next(iter(red.values()))
        return [(1 - m, base), (m, dataclasses.replace(base, **{f: b for f in red}))], label
    plan = [(1 - sum(m for _, _, m in red.values()), base)]
    plan += [(m, dataclasses.replace(base, **{f: b})) for f, (_, b, m) in red.items()]
    return plan, label


def traced_counts(mod, cfg, seqs, batch: int = 1, verify: str = "point") -> dict[int, FastCount]:
    """``{seq: FastCount}``, equal to full traces of ``mod.model(cfg)`` at every length.

    ``verify``: ``"none"`` trusts the logged symbolic decisions; ``"point"``
    (default) checks the symbolic programs at one length against concrete traces
    of the same shallow models; ``"full"`` also checks the smallest length
    against the full model and falls back to full traces on a difference.
    """
    if verify not in ("none", "point", "full"):
        raise ValueError(f"verify must be none, point or full, got {verify!r}")
    seqs = sorted({int(s) for s in seqs})
    plan, label = depth_plan(mod, cfg)
    parts, trusted = [None] * len(plan), set()
    for i in reversed(range(len(plan))):   # deeper models first: the base may trust them
        parts[i], passed = _shallow_counts(mod, plan[i][1], seqs, batch, verify,
                                           trusted if i == 0 else set())
        trusted |= passed
    out = {}
    for s in seqs:
        how = "+".join(sorted({p[s][1] for p in parts}))
        terms = [(coef, p[s][0]) for (coef, _), p in zip(plan, parts)]
        out[s] = FastCount(combine((c, t[0]) for c, t in terms),
                           combine((c, t[1]) for c, t in terms),
                           sum(c * t[2] for c, t in terms),
                           how if len(plan) == 1 else f"{label}; {how}")
    if verify == "full" and len(plan) > 1:
        ref, got = full_count(mod, cfg, seqs[0], batch), out[seqs[0]]
        if not (same(ref.fwd, got.fwd) and same(ref.train, got.train) and ref.params == got.params):
            warnings.warn(f"depth extrapolation differs from the full trace at seq {seqs[0]}: "
                          "tracing every length in full", RuntimeWarning)
            return {s: full_count(mod, cfg, s, batch) for s in seqs}
    return out


__all__ = [
    "DEPTH_ARCHS",
    "CostProgram",
    "FastCount",
    "clear_cache",
    "combine",
    "depth_plan",
    "full_count",
    "same",
    "traced_counts",
]
