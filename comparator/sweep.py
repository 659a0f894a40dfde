"""Expand (architecture, preset, seq) points and compute records for them.

A record follows the contract of DESIGN.md:
``arch, preset, seq_len, batch, params, method, scope, fwd_flops, train_flops,
breakdown {term: fwd_flops}, unsupported {primitive: count}``, plus
``train_breakdown {term: train_flops}`` and, for traced points, ``flagged``
(cond/while approximations).  The analytic path imports no jax; jax is
imported only when a traced point is asked for.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterator

import architectures

METHODS = ("analytic", "traced")
SCOPES = ("matmul", "all")


class InputError(ValueError):
    """Bad user input: names the field, the value and what is allowed."""

    def __init__(self, field: str, value, allowed: str):
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"{field}: {value!r} is not allowed; {allowed}")


def suggest(value: str, choices) -> str:
    close = difflib.get_close_matches(str(value), list(choices), n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return "choose from " + ", ".join(choices) + hint


@dataclass(frozen=True)
class Point:
    arch: str
    preset: str
    seq: int
    batch: int = 1


def resolve(arch: str, preset: str | None):
    """(module, preset name, Config) for an architecture and optional preset."""
    if arch not in architectures.NAMES:
        raise InputError("--arch", arch, suggest(arch, architectures.NAMES))
    mod = architectures.get(arch)
    name = preset or mod.DEFAULT_PRESET
    if name not in mod.PRESETS:
        raise InputError("--preset", name, f"{arch} presets: " + suggest(name, mod.PRESETS))
    return mod, name, mod.PRESETS[name][0]


def points(archs, presets, seqs, batch) -> Iterator[Point]:
    for arch in archs:
        mod = architectures.get(arch)
        names = [p for p in presets if p in mod.PRESETS] if presets else [mod.DEFAULT_PRESET]
        if presets and not names:
            raise InputError("--preset", ",".join(presets),
                             f"{arch} presets: " + suggest(presets[0], mod.PRESETS))
        for p in names:
            for s in seqs:
                yield Point(arch, p, s, batch)


def _params(mod, cfg, seq):
    try:
        return mod.params(cfg, seq)
    except TypeError:
        return mod.params(cfg)


def analytic(pt: Point, scope: str, cfg=None) -> dict:
    mod, _, preset_cfg = resolve(pt.arch, pt.preset)
    cfg = cfg or preset_cfg
    f = mod.flops(cfg, pt.seq, pt.batch, scope)
    return _record(pt, _params(mod, cfg, pt.seq), "analytic", scope, f.fwd, f.train,
                   f.breakdown, f.train_breakdown, {}, {})


def traced(pt: Point, scope: str, cfg=None) -> dict:
    """Trace the real forward and training step of the model on abstract inputs."""
    import jax

    from architectures.program import spec_structs
    from .trace import trace

    mod, _, preset_cfg = resolve(pt.arch, pt.preset)
    cfg = cfg or preset_cfg
    prog = mod.model(cfg)
    params = prog.abstract_params(pt.batch, pt.seq)
    n_params = sum(int(x.size) for x in jax.tree_util.tree_leaves(params))
    data = spec_structs(prog.spec(pt.batch, pt.seq))
    rng = jax.ShapeDtypeStruct((2,), jax.numpy.uint32)
    fwd = trace(prog.loss, params, data, rng)
    train = trace(prog.train_step, params, data, rng)
    unsupported = dict(fwd.unsupported)
    for k, v in train.unsupported.items():
        unsupported[k] = max(unsupported.get(k, 0), v)
    flagged = {**fwd.flagged, **train.flagged}
    return _record(pt, n_params, "traced", scope, fwd.flops(scope), train.flops(scope),
                   _nonzero(fwd.breakdown(scope)), _nonzero(train.breakdown(scope)),
                   unsupported, flagged)


def _nonzero(d: dict) -> dict:
    return {k: v for k, v in d.items() if v}


def _record(pt, params, method, scope, fwd, train, breakdown, train_breakdown,
            unsupported, flagged) -> dict:
    return {
        "arch": pt.arch, "preset": pt.preset, "seq_len": pt.seq, "batch": pt.batch,
        "params": int(params), "method": method, "scope": scope,
        "fwd_flops": int(fwd), "train_flops": int(train),
        "breakdown": {k: int(v) for k, v in breakdown.items()},
        "train_breakdown": {k: int(v) for k, v in train_breakdown.items()},
        "unsupported": dict(unsupported), "flagged": dict(flagged),
    }


def run(pts, methods=("analytic",), scope: str = "matmul", progress=None) -> list[dict]:
    """Records for every point and method, in order (analytic before traced)."""
    if scope not in SCOPES:
        raise InputError("--scope", scope, "choose from " + ", ".join(SCOPES))
    out = []
    pts = list(pts)
    for i, pt in enumerate(pts):
        for m in methods:
            if m not in METHODS:
                raise InputError("--method", m, "choose from analytic, traced, both")
            out.append(analytic(pt, scope) if m == "analytic" else traced(pt, scope))
        if progress:
            progress(i + 1, len(pts))
    return out


def explain(pt: Point, scope: str) -> list[dict]:
    """Per term: analytic and traced forward and training FLOPs and their differences."""
    a, t = analytic(pt, scope), traced(pt, scope)
    rows = []
    for term in sorted(set(a["train_breakdown"]) | set(t["train_breakdown"])):
        af, tf = a["breakdown"].get(term, 0), t["breakdown"].get(term, 0)
        at, tt = a["train_breakdown"].get(term, 0), t["train_breakdown"].get(term, 0)
        rows.append({"term": term, "analytic_fwd": af, "traced_fwd": tf, "diff_fwd": tf - af,
                     "analytic_train": at, "traced_train": tt, "diff_train": tt - at})
    rows.append({"term": "total", "analytic_fwd": a["fwd_flops"], "traced_fwd": t["fwd_flops"],
                 "diff_fwd": t["fwd_flops"] - a["fwd_flops"], "analytic_train": a["train_flops"],
                 "traced_train": t["train_flops"],
                 "diff_train": t["train_flops"] - a["train_flops"]})
    return rows, a, t
