"""Traced counts: read FLOPs, transcendentals and bytes off a real jaxpr.

``trace(fn, *abstract_args)`` builds the jaxpr of ``fn`` on abstract inputs
(``jax.ShapeDtypeStruct``; nothing is allocated), removes dead code (what XLA
would never run), and walks it.  Each equation is costed by the rule registry
in ``rules.py``; call-like primitives are entered (pjit, custom_jvp/custom_vjp,
remat, scan x length, cond = costliest branch, flagged, while = one trip,
flagged).  Primitives with no rule are listed in ``unsupported`` with their
count, never counted as zero silently.

FLOPs are attributed to the term names of the analytic breakdown through the
``jax.named_scope`` tags the kernels put around their work: the term of an
equation is the innermost scope path that starts at a term root
(``attn``, ``ffn``, ...), prefixed by a group (``gen``, ``disc``, ``enc``,
``dec``) when one encloses it.
"""
from __future__ import annotations

from collections import Counter, defaultdict

import jax

from comparator.count import jaxcompat
from comparator.count.value import ZERO, Cost, TraceResult
from comparator.count.rules import cost_of

TERM_ROOTS = ("embed", "attn", "lsh", "ffn", "norm", "head", "loss", "rev")
GROUPS = ("gen", "disc", "enc", "dec")
UNATTRIBUTED = "other"

CALL_PARAMS = ("jaxpr", "call_jaxpr", "fun_jaxpr")
CALLS = {
    "pjit", "jit", "closed_call", "core_call", "custom_jvp_call", "custom_vjp_call",
    "custom_vjp_call_jaxpr", "remat", "remat2", "checkpoint", "named_call",
    "shard_map", "custom_lin",
}


def term_of(scopes: tuple[str, ...]) -> str:
    """Map a scope path to a breakdown term name (see module docstring).

    A term scope is a ``root/leaf`` entry (``attn/qkv``); Flax module names
    and other scopes are single words and never match.  The innermost term
    scope wins; a group entry (``gen``) enclosing it is prefixed.
    """
    for i in range(len(scopes) - 1, -1, -1):
        segs = scopes[i].split("/")
        if len(segs) >= 2 and segs[0] in TERM_ROOTS:
            term = "/".join(segs[:2])
            group = next((s for s in scopes[:i] if s in GROUPS), None)
            return f"{group}/{term}" if group else term
    return UNATTRIBUTED


def _scopes(eqn) -> tuple[str, ...]:
    return jaxcompat.scope_names(eqn, TERM_ROOTS)


def _sub_jaxpr(eqn):
    for key in CALL_PARAMS:
        sub = eqn.params.get(key)
        if sub is not None:
            return sub
    return None


def _as_jaxpr(j):
    return j.jaxpr if hasattr(j, "jaxpr") and not hasattr(j, "eqns") else j


def _term_scopes(scopes: tuple[str, ...]) -> tuple[str, ...]:
    """The scopes ``term_of`` can use: groups and ``root/leaf`` term scopes."""
    return tuple(s for s in scopes if s in GROUPS or s.split("/")[0] in TERM_ROOTS)


class _Walker:
    def __init__(self):
        self.by_term: dict[str, Cost] = defaultdict(lambda: ZERO)
        self.unsupported: Counter = Counter()
        self.flagged: Counter = Counter()
        # a call's body walked once per (body, trip count, term scopes): the layers of a
        # model with jitted layers share one body (JAX caches its trace)
        self.memo: dict = {}

    def walk(self, jaxpr, prefix: tuple[str, ...] = (), times: int = 1) -> Cost:
        jaxpr = _as_jaxpr(jaxpr)
        total = ZERO
        for eqn in jaxpr.eqns:
            scopes = prefix + _scopes(eqn)
            total = total + self.eqn(eqn, scopes, times)
        return total

    def eqn(self, eqn, scopes, times: int) -> Cost:
        name = eqn.primitive.name
        if name in CALLS or (name not in ("scan", "cond", "while") and cost_of(eqn) is None
                             and _sub_jaxpr(eqn) is not None):
            if name not in CALLS:
                self.flagged[f"{name} (entered as a call)"] += times
            sub = _as_jaxpr(_sub_jaxpr(eqn))
            key = (id(sub), times, _term_scopes(scopes))
            if key not in self.memo:
                w = self.scratch()
                self.memo[key] = (w.walk(sub, scopes, times), w, sub)   # (sub: keeps the id)
            cost, w, _ = self.memo[key]
            self.absorb(w)
            return cost
        if name == "scan":
            return self.walk(eqn.params["jaxpr"], scopes, times * int(eqn.params["length"]))
        if name == "cond":
            return self._cond(eqn, scopes, times)
        if name == "while":
            self.flagged["while (trip count unknown: body counted once)"] += times
            return (self.walk(eqn.params["cond_jaxpr"], scopes, times)
                    + self.walk(eqn.params["body_jaxpr"], scopes, times))
        cost = cost_of(eqn)
        if cost is None:
            self.unsupported[name] += times
            return ZERO
        cost = cost * times
        self.record(eqn, term_of(scopes), cost, times)
        return cost

    def record(self, eqn, term: str, cost: Cost, times: int) -> None:
        """One counted equation (``cost`` already x ``times``): a hook for other walks."""
        self.by_term[term] = self.by_term[term] + cost

    def scratch(self) -> "_Walker":
        """An empty walker of the same kind (a ``cond`` branch, a call's body), sharing
        the memo of call bodies."""
        w = type(self)()
        w.memo = self.memo
        return w

    def absorb(self, other: "_Walker") -> None:
        for k, v in other.by_term.items():
            self.by_term[k] = self.by_term[k] + v
        self.unsupported.update(other.unsupported)
        self.flagged.update(other.flagged)

    def _cond(self, eqn, scopes, times: int) -> Cost:
        # cost every branch on a scratch walker, keep the costliest, flag it
        best, best_walker = None, None
        for branch in eqn.params["branches"]:
            w = self.scratch()
            c = w.walk(branch, scopes, times)
            if best is None or c.flops > best.flops:
                best, best_walker = c, w
        self.flagged["cond (costliest branch counted)"] += times
        self.absorb(best_walker)
        return best


def _dce(closed):
    """Drop equations whose results are never used (XLA would not run them): JAX's pass,
    or the public one of ``plainjax`` on the plain path (``jaxcompat.dce``)."""
    return jaxcompat.dce(closed)


def count_jaxpr(closed) -> TraceResult:
    walker = _Walker()
    total = walker.walk(_dce(closed))
    return TraceResult(total=total, by_term=dict(walker.by_term),
                       unsupported=dict(walker.unsupported), flagged=dict(walker.flagged))


def trace(fn, *args, **kwargs) -> TraceResult:
    """Count ``fn(*args, **kwargs)`` on abstract inputs; nothing is allocated."""
    closed = jax.make_jaxpr(fn)(*args, **kwargs)
    return count_jaxpr(closed)


def abstract(tree):
    """ShapeDtypeStructs for every array of a pytree (or of ``jax.eval_shape`` output)."""
    return jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)


__all__ = ["TraceResult", "trace", "count_jaxpr", "abstract", "term_of"]
