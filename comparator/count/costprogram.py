"""A jaxpr's walk recorded once and costed at any length.

``CostProgram(closed_jaxpr)`` flattens the walk of ``comparator.count.trace`` (calls
entered, scans multiplied, the costliest ``cond`` branch, ``while`` flagged) into
nodes; equations whose shapes hold no symbolic dim are costed once, the others
per length by the same rules of ``rules.py``, on their shapes evaluated there.
``evaluate(env)`` gives the ``TraceResult`` that ``trace.count_jaxpr`` gives for a
concrete trace at that length (the evaluation lives in ``lengthprogram``, which needs no
jax); ``dump`` writes the program as JSON for a stored ``lengthprogram.LengthProgram``.
``combine`` sums results with integer weights.
"""
from __future__ import annotations

import json

from comparator.count.jaxcompat import Literal, dim_json
from comparator.count.lengthprogram import COND_FLAG, WHILE_FLAG, Compiled, combine
from comparator.count.rules import RULES, itemsize
from comparator.count.symbolic import At, ev, is_symbolic, shape_of
from comparator.count.trace import CALLS, TraceResult, _as_jaxpr, _dce, _scopes, _sub_jaxpr, term_of


class CostProgram:
    """Nodes: ``("leaf", eqn, term, times, fixed cost or None, symbolic?)``,
    ``("unsup", name, times)``, ``("flag", label, times)``, ``("cond", times,
    [branch nodes])``; ``times`` (scan lengths) may be symbolic."""

    def __init__(self, closed):
        self.nodes = []
        self._flatten(_dce(closed), (), 1, set(), self.nodes)
        self._top = Compiled(self.nodes, _key)

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
        ins = [v for v in eqn.invars if not isinstance(v, Literal)]
        return bool(ins) and all(v in static for v in ins) and all(
            shape_of(v) == () for v in eqn.outvars)

    def _call(self, sub, eqn, invars, scopes, times, static, out, outward=True):
        """Walk a sub-jaxpr, its invars static where ``invars`` are (scalar results
        static where the sub-jaxpr's are, for a call: not for a loop's carry)."""
        sub = _as_jaxpr(sub)
        inner = {s for s, v in zip(sub.invars, invars)
                 if not isinstance(v, Literal) and v in static}
        self._flatten(sub, scopes, times, inner, out)
        if outward and len(sub.outvars) == len(eqn.outvars):
            static.update(o for s, o in zip(sub.outvars, eqn.outvars)
                          if not isinstance(s, Literal) and s in inner
                          and shape_of(o) == ())

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
            sym = any(is_symbolic(d) for v in (*eqn.invars, *eqn.outvars) for d in shape_of(v) or ())
            fixed = None if sym or is_symbolic(times) else rule(eqn) * int(times)
            out.append(("leaf", eqn, term_of(scopes), times, fixed, sym))

    def evaluate(self, env: dict | None = None) -> TraceResult:
        return self._top.evaluate(env or {}, ev, At.eqn)

    def dump(self, tables: Tables) -> dict:
        """The program as JSON for ``lengthprogram.Compiled.from_json`` (no jax needed to
        evaluate it); its equations and dims go to ``tables``, shared with other programs
        of the same trace."""
        top = self._top
        sym: dict = {}    # equal equations (by what a rule reads) under one term and count
        for e, term, times, _, n in top.sym.values():
            key = (tables.eqn(e), term, json.dumps(tables.dim(times)))
            sym[key] = sym.get(key, 0) + n
        return {"fixed": {t: _cost(c) for t, c in top.fixed.items()},
                "sym": [[e, term, json.loads(times), n] for (e, term, times), n in sym.items()],
                "counters": [[kind, name, tables.dim(times), n]
                             for kind, name, times, n in top.counters.values()],
                "conds": [_node_json(n, tables) for n in top.conds]}


class Tables:
    """The equations and symbolic dims of dumped programs, each written once: a program
    refers to an equation by its index, to a symbolic dim by ``[index]`` (an int dim is
    written as it is), so a dim shared by many shapes is read and evaluated once."""

    def __init__(self):
        self.eqns: dict = {}     # JSON text -> (index, JSON)
        self.dims: dict = {}     # JSON text -> (index, JSON)

    def dim(self, d):
        if not is_symbolic(d):
            return int(d)
        j = dim_json(d)
        text = json.dumps(j, sort_keys=True)
        if text not in self.dims:
            self.dims[text] = (len(self.dims), j)
        return [self.dims[text][0]]

    def var(self, v):
        aval = getattr(v, "aval", None)
        if not hasattr(aval, "shape"):
            return None
        return [[self.dim(d) for d in aval.shape], itemsize(aval.dtype)]

    def eqn(self, eqn) -> int:
        """The index of ``eqn``; equations a rule reads alike share one."""
        params = {k: _param_json(v) for k, v in eqn.params.items()}
        j = {"p": eqn.primitive.name, "a": {k: v for k, v in params.items() if v is not None},
             "i": [self.var(v) for v in eqn.invars], "o": [self.var(v) for v in eqn.outvars]}
        text = json.dumps(j, sort_keys=True)
        if text not in self.eqns:
            self.eqns[text] = (len(self.eqns), j)
        return self.eqns[text][0]

    def json(self) -> dict:
        """``{"eqns": [...], "dims": [...]}`` in index order."""
        return {name: [j for _, j in sorted(getattr(self, name).values(), key=lambda x: x[0])]
                for name in ("eqns", "dims")}


def _key(times):
    return ("sym", id(times)) if is_symbolic(times) else int(times)


def _cost(c) -> list:
    return [c.flops, c.matmul, c.transcendentals, c.bytes]


def _param_json(v):
    """A parameter a cost rule may read, as JSON (named tuples by field); None for one
    that no rule reads as data (dtypes, jaxprs, enums)."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, tuple) and hasattr(v, "_fields"):
        return {"nt": {f: _param_json(getattr(v, f)) for f in v._fields}}
    if isinstance(v, (tuple, list)):
        out = [_param_json(x) for x in v]
        return out if all(x is not None or y is None for x, y in zip(out, v)) else None
    return None


def _node_json(node, tables):
    kind = node[0]
    if kind == "leaf":
        _, eqn, term, times, cost, sym = node
        return ["leaf", None if cost is not None else tables.eqn(eqn), term,
                tables.dim(times), None if cost is None else _cost(cost), sym]
    if kind in ("unsup", "flag"):
        return [kind, node[1], tables.dim(node[2])]
    return ["cond", tables.dim(node[1]), [[_node_json(n, tables) for n in b] for b in node[2]]]


__all__ = ["COND_FLAG", "WHILE_FLAG", "CostProgram", "Tables", "combine"]
