"""Traced counts with the programs in the length that give them, for the results store.

``traced_programs(mod, cfg, seqs, batch, verify, known)`` counts as
``fasttrace.traced_counts`` does (with the saved activation bytes), but traces each
symbolic program for a whole region of lengths (``fasttrace._cover_wide``: every multiple
of the model's length step up to the next position-table cut or
``fasttrace.PROGRAM_MAX_LEN``, cut at powers of two where JAX cannot decide, as the
Reformer's bucket count changes there), and returns what a later process needs to answer
another length of that region without jax: ``lengthprogram.LengthProgram``\\ s as JSON,
one per combination of the depth plan's programs, each checked against a concrete trace
at one length (as every symbolic program is) and, written and read back, equal to it at
the lengths counted now and at its domain's ends.  A length counted concretely comes back
as a program of that length alone (``LengthProgram.of``): a later request checks a new
program on it instead of tracing the full model once more (``known``).
"""
from __future__ import annotations

import json
import math
import warnings

from comparator.count import fasttrace as ft
from comparator.count.costprogram import Tables
from comparator.count.lengthprogram import FastCount, LengthProgram


def traced_programs(mod, cfg, seqs, batch: int = 1, verify: str = "point",
                    known: dict | None = None) -> tuple[dict, list]:
    """``({seq: FastCount}, [LengthProgram JSON])`` for ``mod.model(cfg)`` at ``seqs``;
    ``known``: ``{seq: FastCount}`` of the full model counted before (stored)."""
    known = dict(known or {})
    counts, plan, label, parts = ft.traced_parts(mod, cfg, seqs, batch, verify, True, True,
                                                 known)
    out, groups = [], {}
    for s, fc in counts.items():
        owners = None if parts is None else tuple(p[s][2] for p in parts)
        if owners is None or any(o is None or not isinstance(o.domain, range)
                                 for o in owners):
            if s not in known:
                out.append(LengthProgram.of(s, fc).to_json())
            continue
        groups.setdefault(tuple(id(o) for o in owners), (owners, []))[1].append(s)
    how = "symbolic" if len(plan) == 1 else f"{label}; symbolic"
    for owners, lengths in groups.values():
        prog = _program(plan, owners, lengths, counts, how)
        if prog is not None:
            out.append(prog)
    return counts, out


def _program(plan, owners, lengths, counts, how: str) -> dict | None:
    """The program of one combination of symbolic programs, as JSON; None (with a
    warning) when it does not read back as the counts it was made from."""
    step = math.lcm(*(o.g for o in owners))
    lo = max(o.g * o.domain[0] for o in owners)
    hi = min(o.g * o.domain[-1] for o in owners)
    lo = -(-lo // step) * step
    checked = next((o.checked_at for o in reversed(owners) if o.checked_at), None)
    parts, bodies = [], []
    for (coef, _), o in zip(plan, owners):
        tables = Tables()
        body = {"fwd": o.fwd.dump(tables), "train": o.train.dump(tables),
                "params": [[tables.dim(d) for d in s] for s in o.param_shapes],
                "memory": tables.dim(o.memory), "risks": [tables.dim(r) for r in o.risks]}
        body.update(tables.json())
        parts.append((coef, o))
        bodies.append(body)
    obj = {"step": step, "lo": lo, "hi": hi, "how": how,
           "checked_at": checked,
           "parts": [[c, {"g": o.g, "k": [o.domain[0], o.domain[-1]], **b}]
                     for (c, o), b in zip(parts, bodies)]}
    back = LengthProgram.from_json(json.loads(json.dumps(obj)))
    for n in sorted({*lengths[:3], lo, hi}):
        if not back.covers(n):
            continue
        want = counts.get(n) or _evaluate(plan, owners, n)
        got = back.count(n)
        if not (ft.same(want.fwd, got.fwd) and ft.same(want.train, got.train)
                and (want.params, want.activation_bytes) == (got.params,
                                                              got.activation_bytes)):
            warnings.warn(f"the program of lengths {back.domain()} does not read back as "
                          f"traced at {n}: not stored", RuntimeWarning)
            return None
    return obj


def _evaluate(plan, owners, n) -> FastCount:
    got = [(c, o.count(n)) for (c, _), o in zip(plan, owners)]
    return FastCount(ft.combine((c, t[0]) for c, t in got), ft.combine((c, t[1]) for c, t in got),
                     sum(c * t[2] for c, t in got), "symbolic", sum(c * t[3] for c, t in got))


__all__ = ["traced_programs"]
