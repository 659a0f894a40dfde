"""A traced count as a program in the length, evaluated without jax.

``comparator.count.costprogram`` records a jaxpr's walk once; its nodes are costed at any
length by the rules of ``rules.py`` on the shapes evaluated there.  This module holds
what that evaluation needs and nothing that imports jax, so a program kept in the results
store answers a later length on the analytic path's speed:

* ``dims.Dim`` -- a dim expression in ``k`` (the length is ``g k``) read back from JSON,
  ``dims.ev`` its value in exact Python ints;
* ``Eqn`` -- an equation as the cost rules read it: primitive name, the parameters they
  use, the shapes (dim expressions) and element sizes of its operands and results;
* ``Compiled`` and ``evaluate`` -- the walk's nodes grouped for evaluation and their
  cost at one length (shared with ``CostProgram``, whose dims are JAX's);
* ``Part`` -- one shallow model traced for the lengths ``g k``, ``k`` in ``[lo, hi]``:
  forward and training-step programs, parameter shapes, saved activation bytes and the
  logged dims where a concrete trace may branch otherwise (a length where one vanishes
  is not answered);
* ``LengthProgram`` -- a model's counts over a domain of lengths (multiples of ``step``
  in ``[lo, hi]``): ``sum(coef * part)`` over a depth plan; ``count(n)`` is the
  ``FastCount`` a fresh trace gives at ``n``.  ``to_json``/``from_json`` round-trip it.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from comparator.count.dims import Dim, ev
from comparator.count.rules import RULES
from comparator.count.value import ZERO, Cost, TraceResult

COND_FLAG = "cond (costliest branch counted)"
WHILE_FLAG = "while (trip count unknown: body counted once)"


@dataclass(frozen=True)
class FastCount:
    """Counts at one length; ``fwd, train = fc`` unpacks like a pair."""
    fwd: TraceResult
    train: TraceResult
    params: int
    method: str
    activation_bytes: int | None = None   # with ``memory=True``: the saved activations' bytes

    def __iter__(self):
        yield self.fwd
        yield self.train


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


# -- equations as the cost rules read them ---------------------------------------------------

class At:
    """A var or an equation seen at one length (its dims evaluated by ``ev``): what a cost
    rule reads."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    @classmethod
    def var(cls, v, env, memo, ev=ev):
        aval = getattr(v, "aval", None)
        if not hasattr(aval, "shape"):
            return v
        shape = tuple(ev(d, env, memo) for d in aval.shape)
        return cls(aval=cls(shape=shape, dtype=aval.dtype, ndim=len(shape),
                            size=math.prod(shape), weak_type=getattr(aval, "weak_type", False)))

    @classmethod
    def eqn(cls, eqn, env, memo, ev=ev):
        return cls(primitive=eqn.primitive, params=eqn.params,
                   source_info=getattr(eqn, "source_info", None),
                   invars=[cls.var(v, env, memo, ev) for v in eqn.invars],
                   outvars=[cls.var(v, env, memo, ev) for v in eqn.outvars])


class StoredDtype:
    """An element type by its size (``rules.itemsize`` reads ``stored_itemsize``)."""
    __slots__ = ("stored_itemsize",)

    def __init__(self, itemsize: int):
        self.stored_itemsize = itemsize


def _ref(obj, dims):
    """A dim as a program writes it: an int, ``[index]`` into ``dims``, or its JSON."""
    if isinstance(obj, list):
        return dims[obj[0]]
    return Dim.from_json(obj)


def _param(obj):
    if isinstance(obj, dict) and "nt" in obj:     # a named tuple: read by attribute
        return At(**{k: _param(v) for k, v in obj["nt"].items()})
    if isinstance(obj, list):
        return tuple(_param(x) for x in obj)
    return obj


def _var(obj, dims, sizes):
    if obj is None:
        return At()                                 # no shaped value (rules skip it)
    shape, size = obj
    if size not in sizes:
        sizes[size] = StoredDtype(size)
    return At(aval=At(shape=tuple(_ref(d, dims) for d in shape), dtype=sizes[size]))


def eqn_from_json(obj, dims=(), sizes=None):
    sizes = {} if sizes is None else sizes
    return At(primitive=At(name=obj["p"]), params={k: _param(v) for k, v in obj["a"].items()},
              invars=[_var(v, dims, sizes) for v in obj["i"]],
              outvars=[_var(v, dims, sizes) for v in obj["o"]])


# -- evaluation ----------------------------------------------------------------------------

class Acc:
    def __init__(self):
        self.by_term = defaultdict(lambda: ZERO)
        self.unsupported, self.flagged = Counter(), Counter()


def run_nodes(nodes, env, memo, costs, acc, ev=ev, at=At.eqn) -> Cost:
    """The cost of a walk's nodes (``CostProgram``'s docstring) at ``env``."""
    total = ZERO
    for node in nodes:
        kind = node[0]
        if kind == "leaf":
            _, eqn, term, times, cost, sym = node
            if cost is None:
                if id(eqn) not in costs:   # sub-jaxprs are shared between call sites
                    costs[id(eqn)] = RULES[eqn.primitive.name](
                        at(eqn, env, memo) if sym else eqn)
                cost = costs[id(eqn)] * ev(times, env, memo)
            acc.by_term[term] = acc.by_term[term] + cost
            total = total + cost
        elif kind == "unsup":
            acc.unsupported[node[1]] += ev(node[2], env, memo)
        elif kind == "flag":
            acc.flagged[node[1]] += ev(node[2], env, memo)
        else:  # cond: the costliest branch, flagged (as trace._Walker._cond)
            best, best_acc = None, None
            for branch in node[2]:
                a = Acc()
                c = run_nodes(branch, env, memo, costs, a, ev, at)
                if best is None or c.flops > best.flops:
                    best, best_acc = c, a
            acc.flagged[COND_FLAG] += ev(node[1], env, memo)
            for k, v in best_acc.by_term.items():
                acc.by_term[k] = acc.by_term[k] + v
            acc.unsupported.update(best_acc.unsupported)
            acc.flagged.update(best_acc.flagged)
            total = total + best
    return total


class Compiled:
    """The top-level nodes grouped for repeated evaluation: the fixed costs summed per
    term once; equal symbolic leaves (one equation of a body called once per layer, under
    one term and trip count) and equal counters kept once with their multiplicity;
    ``cond`` nodes as they are.  ``key(times)`` tells trip counts apart."""

    def __init__(self, nodes=(), key=int):
        self.fixed: dict = defaultdict(lambda: ZERO)
        self.sym: dict = {}        # (id(eqn), term, times key) -> [eqn, term, times, sym, n]
        self.counters: dict = {}   # (kind, name, times key) -> [kind, name, times, n]
        self.conds = []
        for node in nodes:
            kind = node[0]
            if kind == "leaf":
                _, eqn, term, times, cost, sym = node
                if cost is not None:
                    self.fixed[term] = self.fixed[term] + cost
                else:
                    self.sym.setdefault((id(eqn), term, key(times)),
                                        [eqn, term, times, sym, 0])[4] += 1
            elif kind in ("unsup", "flag"):
                self.counters.setdefault((kind, node[1], key(node[2])),
                                         [kind, node[1], node[2], 0])[3] += 1
            else:
                self.conds.append(node)
        self.fixed_total = sum(self.fixed.values(), ZERO)

    def run(self, env, memo, costs, acc, ev=ev, at=At.eqn) -> Cost:
        total = self.fixed_total
        for term, cost in self.fixed.items():
            acc.by_term[term] = acc.by_term[term] + cost
        for eqn, term, times, sym, n in self.sym.values():
            if id(eqn) not in costs:
                costs[id(eqn)] = RULES[eqn.primitive.name](at(eqn, env, memo) if sym else eqn)
            cost = costs[id(eqn)] * (ev(times, env, memo) * n)
            acc.by_term[term] = acc.by_term[term] + cost
            total = total + cost
        for kind, name, times, n in self.counters.values():
            (acc.unsupported if kind == "unsup" else acc.flagged)[name] += ev(times, env, memo) * n
        if self.conds:
            total = total + run_nodes(self.conds, env, memo, costs, acc, ev, at)
        return total

    def evaluate(self, env: dict, ev=ev, at=At.eqn) -> TraceResult:
        acc = Acc()
        total = self.run(env, {}, {}, acc, ev, at)
        return TraceResult(total=total, by_term=dict(acc.by_term),
                           unsupported=dict(acc.unsupported), flagged=dict(acc.flagged))

    @classmethod
    def from_json(cls, obj, eqns, dims=()) -> "Compiled":
        """A program as ``costprogram.dump`` writes it; ``eqns``, ``dims``: its tables."""
        out = cls()
        out.fixed.update({t: Cost(*c) for t, c in obj["fixed"].items()})
        out.fixed_total = sum(out.fixed.values(), ZERO)
        for i, (e, term, times, n) in enumerate(obj["sym"]):
            out.sym[i] = [eqns[e], term, _ref(times, dims), True, n]
        for i, (kind, name, times, n) in enumerate(obj["counters"]):
            out.counters[i] = [kind, name, _ref(times, dims), n]
        out.conds = [_node(n, eqns, dims) for n in obj["conds"]]
        return out

    @classmethod
    def of(cls, result: TraceResult) -> "Compiled":
        """A count at one length as a program with fixed costs only."""
        out = cls()
        out.fixed.update(result.by_term)
        out.fixed_total = result.total
        for kind, d in (("unsup", result.unsupported), ("flag", result.flagged)):
            for name, n in d.items():
                out.counters[(kind, name)] = [kind, name, n, 1]
        return out

    def to_json(self) -> dict:
        """The JSON of a program with fixed costs only (``of``)."""
        if self.sym or self.conds:
            raise ValueError("a symbolic program is written by costprogram.dump")
        return {"fixed": {t: _cost(c) for t, c in self.fixed.items()}, "sym": [],
                "counters": [[k, name, int(t) * n, 1] for k, name, t, n in
                             self.counters.values()], "conds": []}


def _cost(c: Cost) -> list:
    return [c.flops, c.matmul, c.transcendentals, c.bytes]


def _node(obj, eqns, dims):
    kind = obj[0]
    if kind == "leaf":
        _, e, term, times, cost, sym = obj
        return ("leaf", None if e is None else eqns[e], term, _ref(times, dims),
                None if cost is None else Cost(*cost), sym)
    if kind in ("unsup", "flag"):
        return (kind, obj[1], _ref(obj[2], dims))
    return ("cond", _ref(obj[1], dims), [[_node(n, eqns, dims) for n in b] for b in obj[2]])


# -- programs over a domain of lengths -------------------------------------------------------

@dataclass
class Part:
    """One shallow model traced for the lengths ``g k``, ``lo <= k <= hi``."""
    g: int
    lo: int
    hi: int
    fwd: Compiled
    train: Compiled
    param_shapes: list
    memory: object                       # saved activation bytes: a dim expression
    risks: list = field(default_factory=list)

    def covers(self, n: int) -> bool:
        if n % self.g or not self.lo <= n // self.g <= self.hi:
            return False
        env, memo = {"k": n // self.g}, {}
        return all(ev(r, env, memo) != 0 for r in self.risks)

    def count(self, n: int) -> tuple:
        env, memo = {"k": n // self.g}, {}
        params = sum(math.prod(ev(d, env, memo) for d in s) for s in self.param_shapes)
        return (self.fwd.evaluate(env), self.train.evaluate(env), params,
                ev(self.memory, env, memo))

    @classmethod
    def of(cls, n: int, fc: FastCount) -> "Part":
        """The counts of one length (``fc``) as a part whose domain is that length."""
        return cls(n, 1, 1, Compiled.of(fc.fwd), Compiled.of(fc.train), [[fc.params]],
                   fc.activation_bytes)

    def to_json(self, body: dict | None = None) -> dict:
        """``body``: the programs as ``costprogram.dump`` wrote them (symbolic parts)."""
        if body is None:
            body = {"fwd": self.fwd.to_json(), "train": self.train.to_json(), "eqns": [],
                    "dims": [], "params": [[int(d) for d in s] for s in self.param_shapes],
                    "memory": int(self.memory), "risks": []}
        return {"g": self.g, "k": [self.lo, self.hi], **body}

    @classmethod
    def from_json(cls, obj) -> "Part":
        dims = [Dim.from_json(d) for d in obj["dims"]]
        sizes: dict = {}
        eqns = [eqn_from_json(e, dims, sizes) for e in obj["eqns"]]
        return cls(obj["g"], obj["k"][0], obj["k"][1],
                   Compiled.from_json(obj["fwd"], eqns, dims),
                   Compiled.from_json(obj["train"], eqns, dims),
                   [[_ref(d, dims) for d in s] for s in obj["params"]],
                   _ref(obj["memory"], dims), [_ref(r, dims) for r in obj["risks"]])


@dataclass
class LengthProgram:
    """A model's counts at the lengths ``n`` with ``n % step == 0`` and ``lo <= n <= hi``
    (those where no part's logged dim vanishes): ``sum(coef * part)``.  ``how``: how it
    was traced (``depth ...; symbolic``, or ``concrete`` for one length)."""
    step: int
    lo: int
    hi: int
    parts: list                          # [(coef, Part)]
    how: str
    checked_at: int | None = None        # the length compared with a concrete trace

    def covers(self, n: int) -> bool:
        return (n % self.step == 0 and self.lo <= n <= self.hi
                and all(p.covers(n) for _, p in self.parts))

    def count(self, n: int, method: str | None = None) -> FastCount:
        got = [(c, p.count(n)) for c, p in self.parts]
        return FastCount(combine((c, t[0]) for c, t in got), combine((c, t[1]) for c, t in got),
                         sum(c * t[2] for c, t in got), method or self.how,
                         sum(c * t[3] for c, t in got))

    def domain(self) -> str:
        """The lengths it answers, in words."""
        if self.lo == self.hi:
            return f"{self.lo:,}"
        each = "" if self.step == 1 else f", multiples of {self.step:,}"
        return f"{self.lo:,} to {self.hi:,}{each}"

    def to_json(self, bodies=None) -> dict:
        bodies = bodies or [None] * len(self.parts)
        return {"step": self.step, "lo": self.lo, "hi": self.hi, "how": self.how,
                "checked_at": self.checked_at,
                "parts": [[c, p.to_json(b)] for (c, p), b in zip(self.parts, bodies)]}

    @classmethod
    def from_json(cls, obj) -> "LengthProgram":
        return cls(obj["step"], obj["lo"], obj["hi"],
                   [(c, Part.from_json(p)) for c, p in obj["parts"]], obj["how"],
                   obj.get("checked_at"))

    @classmethod
    def of(cls, n: int, fc: FastCount) -> "LengthProgram":
        """One length's counts (a concrete trace: what a later program is checked on)."""
        return cls(n, n, n, [(1, Part.of(n, fc))], fc.method, n)


__all__ = ["COND_FLAG", "WHILE_FLAG", "Acc", "At", "Compiled", "Dim", "FastCount",
           "LengthProgram", "Part", "StoredDtype", "combine", "eqn_from_json", "ev",
           "run_nodes"]
