"""``comparator memory``: the memory estimate against XLA's allocation, over a grid.

A ``MemoryRequest`` (``comparator.run.measurerequests``) names architectures (presets, a
size grid as ``sweep`` takes it), lengths, batches, memory policies (default: every
policy each architecture supports), attention kernels (``--attention``) and the dtype;
``run`` also runs each step for its measured peak.  ``check`` compiles every
point (``comparator.measure.memory.check``) and returns one record per point and
policy; ``summary`` condenses them into the median and worst ratio of our estimate to
XLA's total per architecture and policy (what BENCHMARKS.md records).
"""
from __future__ import annotations

import statistics

import architectures
from architectures.config import ConfigError

from comparator.run.measurerequests import MemoryRequest
from comparator.run.sweep import RequestError
from comparator.run.variants import models


def points(req: MemoryRequest) -> list:
    """(Model, seq, batch, policy) of every point of ``req``; a policy an architecture
    lacks is skipped for it; a length a model refuses is refused."""
    out = []
    for m in models(req.archs, req.presets, req.sizes, req.attentions):
        mod = architectures.get(m.arch)
        for pol in [p for p in req.policies or mod.POLICIES if p in mod.POLICIES]:
            for s in req.seqs:
                try:
                    mod.terms(m.cfg, 1, s)       # lengths the model refuses, refused here
                except ConfigError as err:
                    raise RequestError("--seq", s, f"{m.arch}:{m.preset}: {err}") from None
                out.extend((m, s, b, pol) for b in req.batches)
    return out


def check(req: MemoryRequest, progress=None) -> list:
    """One record per point (``measure.memory.check``), in ``points()`` order."""
    from comparator.measure import memory as mm
    pts, out = points(req), []
    for i, (m, s, b, pol) in enumerate(pts):
        mod = architectures.get(m.arch)
        rec = {"arch": m.arch, "preset": m.preset, "seq_len": s, "batch": b,
               "d_model": m.cfg.d_model, "n_layers": m.cfg.n_layers,
               "params": mod.params(m.cfg, s)}
        rec.update(mm.check(mod, m.cfg, s, b, pol, req.dtype, req.run))
        out.append(rec)
        if progress:
            progress(i + 1, len(pts))
    return out


def summary(records) -> list:
    """Per architecture and policy: points, the median ratio estimate / XLA, the worst
    (farthest from 1) and the range."""
    groups: dict = {}
    for r in records:
        if r.get("ratio") is not None:
            groups.setdefault((r["arch"], r["policy"]), []).append(r)
    rows = []
    for (arch, pol), rs in groups.items():
        ratios = [r["ratio"] for r in rs]
        worst = max(rs, key=lambda r: abs(r["ratio"] - 1))
        rows.append({"arch": arch, "policy": pol, "points": len(rs),
                     "median": statistics.median(ratios), "worst": worst["ratio"],
                     "min": min(ratios), "max": max(ratios),
                     "worst_at": f"{worst['preset']} seq {worst['seq_len']} batch "
                                 f"{worst['batch']}"})
    return rows


__all__ = ["MemoryRequest", "check", "points", "summary"]
