"""A jaxpr's walk recorded once and costed at any length.

``CostProgram(closed_jaxpr)`` flattens the walk of ``comparator.count.trace`` (calls
entered, scans multiplied, the costliest ``cond`` branch, ``while`` flagged) into
nodes; equations whose shapes hold no symbolic dim are costed once, the others
per length by the same rules of ``rules.py``, on their shapes evaluated there.
``evaluate(env)`` gives the ``TraceResult`` that ``trace.count_jaxpr`` gives for a
concrete trace at that length.  ``combine`` sums results with integer weights.
"""
from __future__ import annotations

from collections import Counter, defaultdict

from comparator.count.jaxcompat import Literal
from comparator.count.value import ZERO, Cost
from comparator.count.rules import RULES
from comparator.count.symbolic import At, ev, is_symbolic, shape_of
from comparator.count.trace import CALLS, TraceResult, _as_jaxpr, _dce, _scopes, _sub_jaxpr, term_of

COND_FLAG = "cond (costliest branch counted)"
WHILE_FLAG = "while (trip count unknown: body counted once)"


class CostProgram:
    """Nodes: ``("leaf", eqn, term, times, fixed cost or None, symbolic?)``,
    ``("unsup", name, times)``, ``("flag", label, times)``, ``("cond", times,
    [branch nodes])``; ``times`` (scan lengths) may be symbolic."""

    def __init__(self, closed):
        self.nodes = []
        self._flatten(_dce(closed), (), 1, set(), self.nodes)
        self._top = _Compiled(self.nodes)

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
        acc = _Acc()
        total = self._top.run(self, env or {}, {}, {}, acc)
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
                            At.eqn(eqn, env, memo) if sym else eqn)
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
                    a = _Acc()
                    c = self._run(branch, env, memo, costs, a)
                    if best is None or c.flops > best.flops:
                        best, best_acc = c, a
                acc.flagged[COND_FLAG] += ev(node[1], env, memo)
                for k, v in best_acc.by_term.items():
                    acc.by_term[k] = acc.by_term[k] + v
                acc.unsupported.update(best_acc.unsupported)
                acc.flagged.update(best_acc.flagged)
                total = total + best
        return total


class _Compiled:
    """The top-level nodes grouped for repeated evaluation: the fixed costs summed per
    term once; equal symbolic leaves (one equation of a body called once per layer, under
    one term and trip count) and equal counters kept once with their multiplicity;
    ``cond`` nodes as they are.  The same sums as ``CostProgram._run`` over the nodes."""

    def __init__(self, nodes):
        self.fixed: dict = defaultdict(lambda: ZERO)
        self.sym: dict = {}        # (id(eqn), term, times key) -> [eqn, term, times, n]
        self.counters: dict = {}   # (kind, name, times key) -> [kind, name, times, n]
        self.conds = []
        for node in nodes:
            kind = node[0]
            if kind == "leaf":
                _, eqn, term, times, cost, sym = node
                if cost is not None:
                    self.fixed[term] = self.fixed[term] + cost
                else:
                    key = (id(eqn), term, _key(times))
                    self.sym.setdefault(key, [eqn, term, times, sym, 0])[4] += 1
            elif kind in ("unsup", "flag"):
                self.counters.setdefault((kind, node[1], _key(node[2])),
                                         [kind, node[1], node[2], 0])[3] += 1
            else:
                self.conds.append(node)
        self.fixed_total = sum(self.fixed.values(), ZERO)

    def run(self, program, env, memo, costs, acc) -> Cost:
        total = self.fixed_total
        for term, cost in self.fixed.items():
            acc.by_term[term] = acc.by_term[term] + cost
        for eqn, term, times, sym, n in self.sym.values():
            if id(eqn) not in costs:
                costs[id(eqn)] = RULES[eqn.primitive.name](At.eqn(eqn, env, memo) if sym else eqn)
            cost = costs[id(eqn)] * (ev(times, env, memo) * n)
            acc.by_term[term] = acc.by_term[term] + cost
            total = total + cost
        for kind, name, times, n in self.counters.values():
            (acc.unsupported if kind == "unsup" else acc.flagged)[name] += ev(times, env, memo) * n
        if self.conds:
            total = total + program._run(self.conds, env, memo, costs, acc)
        return total


def _key(times):
    return ("sym", id(times)) if is_symbolic(times) else int(times)


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



__all__ = ["COND_FLAG", "WHILE_FLAG", "CostProgram", "combine"]
