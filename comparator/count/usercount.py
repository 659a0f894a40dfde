"""Count any JAX function or Flax module: the Python API's ``comparator.count`` and
``comparator.count_module`` (``comparator/__init__.py``), and what a command counting a
user's model builds on.

A ``Target`` says what to count -- a forward function, optionally a training step (loss and
gradients), and how to build its abstract arguments at a length -- and ``count_target``
counts it: the jaxprs walked as ``comparator.count.trace`` walks them (rules of
``rules.py``, calls entered, scans multiplied, ``cond`` = costliest branch, ``while`` one
trip, both flagged), primitives without a rule in ``unsupported`` with their counts.  A term
is the user's ``jax.named_scope`` where it starts at a term root (``attn/scores``, see
``trace.term_of``), else the primitive's name (``dot_general``, ``exp``).

With a sequence axis, the length is also traced symbolic (``jax.export.symbolic_shape``),
the walk kept as a ``CostProgram`` and checked against the concrete trace at the example's
length; the counts at other lengths are that program evaluated there, and the closed form
in ``n`` is the exact polynomial through them (``polyfit``), or None with the reason (not a
polynomial, or the symbolic trace failed: then every length is traced concretely).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Callable

import jax
from jax.extend.core import Literal as _Literal

from comparator.count import polyfit
from comparator.count.costprogram import CostProgram
from comparator.count.symbolic import ev
from comparator.count.trace import UNATTRIBUTED, TraceResult, _dce, _Walker
from comparator.errors import FieldError

SCOPES = ("matmul", "all")
VAR = "n"


class CountError(FieldError):
    """An argument of ``count``/``count_module`` refused: the argument, the value and what
    is allowed."""


# -- terms: the user's term scopes, else the primitive --------------------------------

class _Walk(_Walker):
    def record(self, eqn, term, cost, times):
        super().record(eqn, eqn.primitive.name if term == UNATTRIBUTED else term, cost, times)


class _Program(CostProgram):
    @staticmethod
    def _folds(eqn, static) -> bool:
        """Only a dim made a value (``dim_as_value``) and its casts are folded: a concrete
        trace has a literal there.  Arithmetic on it (``1 / n`` in the gradient of a mean)
        is an equation in a concrete trace too, on literals, and is counted as there."""
        name = eqn.primitive.name
        if name == "dim_as_value":
            return True
        ins = [v for v in eqn.invars if not isinstance(v, _Literal)]
        return name == "convert_element_type" and bool(ins) and all(v in static for v in ins)

    def _eqn(self, eqn, scopes, times, static, out):
        n = len(out)
        super()._eqn(eqn, scopes, times, static, out)
        if len(out) == n + 1 and out[n][0] == "leaf" and out[n][2] == UNATTRIBUTED:
            out[n] = (*out[n][:2], out[n][1].primitive.name, *out[n][3:])


def count_closed(closed) -> TraceResult:
    """``trace.count_jaxpr`` with unattributed work under its primitive's name."""
    w = _Walk()
    total = w.walk(_dce(closed))
    return TraceResult(total=total, by_term=dict(w.by_term), unsupported=dict(w.unsupported),
                       flagged=dict(w.flagged))


# -- the record -------------------------------------------------------------------------

@dataclass(frozen=True)
class CountRecord:
    """Counts of one function or module at one length (``seq_len``; None without a
    sequence axis), in ``scope`` (``matmul``: contractions; ``all``: every operation).

    ``fwd_*``: one call; ``train_*`` (with ``train=True``): loss and gradients.
    ``breakdown`` / ``train_breakdown``: FLOPs by term; ``*_transcendentals``: exp, log,
    tanh, ... evaluations; ``*_bytes``: operands read + results written (unfused, an upper
    bound); ``unsupported``: primitives without a cost rule, with their counts (counted as
    nothing: the totals are lower bounds while it is not empty); ``flagged``:
    approximations (``cond``, ``while``).  ``params``: parameters (a module's, or the
    elements of the differentiated arguments).  With a sequence axis: ``formula`` /
    ``train_formula`` and per term, the exact polynomial in ``n`` (None, with
    ``formula_note`` saying why); ``at(n)`` the record at another length."""
    name: str
    scope: str
    fwd_flops: int
    breakdown: dict
    fwd_transcendentals: int
    fwd_bytes: int
    unsupported: dict
    flagged: dict
    train_flops: int | None = None
    train_breakdown: dict | None = None
    train_transcendentals: int | None = None
    train_bytes: int | None = None
    params: int | None = None
    seq_len: int | None = None
    method: str = "traced"
    trace: str = "concrete"
    formula: str | None = None
    train_formula: str | None = None
    breakdown_formula: dict | None = None
    train_breakdown_formula: dict | None = None
    formula_note: str | None = None
    _at: Callable | None = field(default=None, repr=False, compare=False)

    def at(self, n: int) -> "CountRecord":
        """The record at length ``n`` (the symbolic program evaluated there, or a concrete
        trace where the symbolic one failed)."""
        if self._at is None:
            raise CountError("seq_axis", None, "a sequence axis (seq_axis=...) to count at "
                                               "other lengths")
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise CountError("n", n, "a positive integer length")
        return self._at(n)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("_at")
        return d

    __hash__ = None   # holds dicts


def _nonzero(d: dict) -> dict:
    return {k: int(v) for k, v in sorted(d.items()) if v}


def _merge(a: dict, b: dict | None) -> dict:
    out = dict(a)
    for k, v in (b or {}).items():
        out[k] = max(out.get(k, 0), v)
    return out


def _fields(scope: str, fwd: TraceResult, train: TraceResult | None) -> dict:
    out = dict(fwd_flops=fwd.flops(scope), breakdown=_nonzero(fwd.breakdown(scope)),
               fwd_transcendentals=fwd.total.transcendentals, fwd_bytes=fwd.total.bytes,
               unsupported=_merge(fwd.unsupported, train and train.unsupported),
               flagged={**fwd.flagged, **(train.flagged if train else {})})
    if train is not None:
        out.update(train_flops=train.flops(scope),
                   train_breakdown=_nonzero(train.breakdown(scope)),
                   train_transcendentals=train.total.transcendentals,
                   train_bytes=train.total.bytes)
    return out


# -- what to count ----------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """``fwd(*args)`` and optionally ``train(*args)`` (loss and gradients) on the abstract
    arguments ``args(length)`` -- ``length`` None: the example's; an int; or a symbolic dim
    -- with ``params(args)`` the parameter leaves (or None) and ``length`` the example's
    length along the sequence axis (None: no sequence axis)."""
    name: str
    fwd: Callable
    train: Callable | None
    args: Callable
    params: Callable | None = None
    length: int | None = None


def _size(leaves, env=None) -> int | None:
    if leaves is None:
        return None
    memo = {}
    return sum(math.prod(ev(d, env or {}, memo) for d in x.shape) for x in leaves)


def _concrete(t: Target, args, scope: str, n) -> CountRecord:
    fwd = count_closed(jax.make_jaxpr(t.fwd)(*args))
    train = count_closed(jax.make_jaxpr(t.train)(*args)) if t.train else None
    return CountRecord(name=t.name, scope=scope, params=_size(t.params(args)) if t.params
                       else None, seq_len=n, **_fields(scope, fwd, train))


def count_target(t: Target, scope: str = "matmul") -> CountRecord:
    """The counts of ``t`` at its example's length; with a sequence axis, the closed forms
    in the length and ``at(n)``."""
    if scope not in SCOPES:
        raise CountError("scope", scope, "matmul (contractions) or all (every operation)")
    example = _concrete(t, t.args(None), scope, t.length)
    if t.length is None:
        return example
    try:
        n = jax.export.symbolic_shape(VAR)[0]
        sym = t.args(n)
        progs = [_Program(jax.make_jaxpr(f)(*sym)) for f in (t.fwd, t.train) if f]
        leaves = t.params(sym) if t.params else None

        def evaluate(k: int) -> CountRecord:
            env = {VAR: k}
            res = [p.evaluate(env) for p in progs]
            return CountRecord(name=t.name, scope=scope, params=_size(leaves, env), seq_len=k,
                               trace="symbolic", **_fields(scope, res[0], res[1] if t.train
                                                           else None))

        if evaluate(t.length).to_dict() != {**example.to_dict(), "trace": "symbolic"}:
            raise ValueError(f"the symbolic program differs from the concrete trace at "
                             f"n={t.length}")
    except Exception as err:  # noqa: BLE001 -- said in the record; every length traced
        why = f"{type(err).__name__}: {err}".splitlines()[0][:300]
        how = dict(trace="concrete (symbolic trace failed)", formula_note=(
            f"no closed form: the symbolic trace failed ({why}); counts at other lengths "
            "come from concrete traces"))

        def concrete_at(k: int) -> CountRecord:
            return _with(_concrete(t, t.args(k), scope, k), at=concrete_at, **how)
        return _with(example, at=concrete_at, **how)
    forms = _formulas(evaluate, t.length, bool(t.train))

    def symbolic_at(k: int) -> CountRecord:
        return _with(evaluate(k), at=symbolic_at, **forms)
    return symbolic_at(t.length)


def _with(rec: CountRecord, at=None, **changes) -> CountRecord:
    d = {f.name: getattr(rec, f.name) for f in fields(rec)}
    d.update(changes)
    if at is not None:
        d["_at"] = at
    return CountRecord(**d)


def _formulas(evaluate, start: int, train: bool) -> dict:
    """The closed forms of the totals and of every term, from the program at the fitting
    and checking lengths of ``polyfit``."""
    lengths = polyfit.fit_points(start) + polyfit.check_points(start)
    recs = {k: evaluate(k) for k in lengths}
    out, missing = {}, []

    def closed(get, what):
        coeffs = polyfit.fit({k: get(r) for k, r in recs.items()}, start)
        if coeffs is None:
            missing.append(what)
            return None
        return polyfit.formula(coeffs, VAR)

    parts = [("", "fwd_flops", "breakdown")] + ([("train_", "train_flops", "train_breakdown")]
                                                 if train else [])
    for prefix, total, terms in parts:
        out[f"{prefix}formula"] = closed(lambda r: getattr(r, total), total)
        names = sorted({k for r in recs.values() for k in getattr(r, terms)})
        out[f"{prefix}breakdown_formula"] = {
            k: closed(lambda r: getattr(r, terms).get(k, 0), f"{terms}[{k}]") for k in names}
    pts = polyfit.fit_points(start)
    out["formula_note"] = (
        f"exact polynomials in n: fitted on n = {pts[0]}..{pts[-1]}, checked at n = "
        + ", ".join(map(str, polyfit.check_points(start)))
        + (f"; not a polynomial of degree <= {polyfit.DEGREE} in n (no formula): "
           + ", ".join(missing) if missing else ""))
    return out


__all__ = ["CountError", "CountRecord", "SCOPES", "Target", "count_closed", "count_target"]
