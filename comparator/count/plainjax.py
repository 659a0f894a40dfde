"""What the plain path uses in place of JAX internals, from public jaxpr structure only.

``dce_jaxpr(jaxpr)`` removes the equations whose results are never used, as JAX's own
``partial_eval.dce_jaxpr`` does for counting: an equation is kept when one of its outputs
is used or it has effects; a call's body (``pjit``, ``closed_call``, ``remat``,
``custom_jvp``/``custom_vjp``) is pruned for the outputs used, a ``scan`` body to a fixed
point of its carry, each ``cond`` branch for the outputs used; a ``while`` is kept whole.
Only the equations change (inputs and outputs of every jaxpr stay), which is all a count
reads.  ``scopes_from_text`` reads the named scopes off a name stack's text.
"""
from __future__ import annotations

import re

CALL_PARAMS = ("jaxpr", "call_jaxpr", "fun_jaxpr")


def _is_var(v) -> bool:
    """A variable (``jax.extend.core.Var``), not a literal or a dropped output."""
    return type(v).__name__ not in ("Literal", "DropVar")


def _open(j):
    """(open jaxpr, rewrap): a ``ClosedJaxpr`` is unwrapped and wrapped back."""
    if not hasattr(getattr(j, "jaxpr", None), "eqns"):
        return j, lambda new: new
    return j.jaxpr, lambda new: j.replace(jaxpr=new)


class _Pruner:
    def __init__(self):
        self.memo: dict = {}   # (id(jaxpr), used) -> (pruned, used inputs): shared bodies stay shared

    def prune(self, j, used: tuple):
        """(``j`` without dead equations for outputs ``used``, used inputs)."""
        key = (id(j), used)
        if key not in self.memo:
            jaxpr, wrap = _open(j)
            live = {v for v, u in zip(jaxpr.outvars, used) if u and _is_var(v)}
            eqns = []
            for eqn in reversed(jaxpr.eqns):
                outs = tuple(v in live for v in eqn.outvars)
                if not any(outs) and not eqn.effects:
                    continue
                eqn, ins = self.eqn(eqn, outs)
                eqns.append(eqn)
                live.update(v for v, u in zip(eqn.invars, ins) if u and _is_var(v))
            new = wrap(jaxpr.replace(eqns=eqns[::-1]))
            self.memo[key] = (new, tuple(v in live for v in jaxpr.invars), j)   # (j: keeps the id)
        return self.memo[key][:2]

    def eqn(self, eqn, outs):
        """(the equation with pruned bodies, which of its inputs are used)."""
        name, p = eqn.primitive.name, eqn.params
        if name == "scan":
            n_c, n_carry = p["num_consts"], p["num_carry"]
            carry = outs[:n_carry]
            while True:   # a carry read by the body is needed from the previous trip
                body, ins = self.prune(p["jaxpr"], carry + outs[n_carry:])
                more = tuple(a or b for a, b in zip(carry, ins[n_c:n_c + n_carry]))
                if more == carry:
                    break
                carry = more
            ins = list(ins)   # a used carry's initial value is needed, read or not (as JAX)
            ins[n_c:n_c + n_carry] = [a or b for a, b in zip(ins[n_c:n_c + n_carry], carry)]
            return eqn.replace(params=dict(p, jaxpr=body)), ins
        if name == "cond":
            branches, used = [], [True] + [False] * (len(eqn.invars) - 1)
            for b in p["branches"]:
                nb, ins = self.prune(b, outs)
                branches.append(nb)
                used[1:] = [a or b for a, b in zip(used[1:], ins)]
            return eqn.replace(params=dict(p, branches=tuple(branches))), used
        key = next((k for k in CALL_PARAMS if k in p), None)
        if name != "while" and key is not None and len(_open(p[key])[0].outvars) == len(outs):
            body, ins = self.prune(p[key], outs)
            if len(ins) == len(eqn.invars):
                return eqn.replace(params=dict(p, **{key: body})), ins
        return eqn, [True] * len(eqn.invars)


def dce_jaxpr(jaxpr):
    """``jaxpr`` (open) without the equations whose results are never used."""
    return _Pruner().prune(jaxpr, (True,) * len(jaxpr.outvars))[0]


_WRAPPED = re.compile(r"^(?:[A-Za-z_]\w*\()*(.*?)\)*$")


def scopes_from_text(text: str, roots) -> tuple:
    """Scope names from a name stack's text (``transpose(jvp(enc))/attn/qkv``): transform
    wrappers dropped, a word of ``roots`` joined with the word after it (one scope
    ``attn/qkv``), as ``trace.term_of`` reads them."""
    words = [w for w in (_WRAPPED.match(s).group(1) for s in text.split("/")) if w]
    out, i = [], 0
    while i < len(words):
        if words[i] in roots and i + 1 < len(words):
            out.append(words[i] + "/" + words[i + 1])
            i += 2
        else:
            out.append(words[i])
            i += 1
    return tuple(out)


__all__ = ["dce_jaxpr", "scopes_from_text"]
