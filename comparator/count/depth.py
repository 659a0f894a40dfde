"""The depth reduction of traced counts (``comparator.count.fasttrace``): a model of
``L = q p + r`` identical layers (cycled with the minimal period ``p`` of ``attn_layers``)
is counted from two shallow models, at depths ``a = p + r`` and ``a + p``, as
``c(L) = c(a) + (q - 1) (c(a + p) - c(a))``; ``depth_plan`` says which, with the weights.
"""
from __future__ import annotations

import dataclasses

DEPTH_ARCHS = ("transformer", "albert", "electra", "reformer")


def _period(kinds) -> int:
    kinds = tuple(kinds or ()) or (None,)
    return next(p for p in range(1, len(kinds) + 1)
                if len(kinds) % p == 0 and kinds == kinds[p:] + kinds[:p])


def depth_plan(mod, cfg, reduce_jitted: bool = False):
    """``([(coef, shallow cfg)], label)``: the full model's counts are ``sum(coef * c)``.
    ``reduce_jitted``: reduce models with jitted layers too (a trace of one costs one
    layer; a *compilation* of one costs every layer: the time model asks for this)."""
    if getattr(mod, "NAME", None) not in DEPTH_ARCHS or (
            mod.model(cfg).jitted_layers and not reduce_jitted):
        return [(1, cfg)], "full depth"   # (jitted layers: the full trace costs one layer)
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


__all__ = ["DEPTH_ARCHS", "depth_plan"]
