"""``comparator memory``: the memory estimate against XLA's allocation, over a grid.

A ``MemoryRequest`` names architectures (presets, a size grid as ``sweep`` takes it),
lengths, batches, memory policies (default: every policy each architecture supports) and
the dtype; ``run`` also runs each step for its measured peak.  ``check`` compiles every
point (``comparator.measure.memory.check``) and returns one record per point and
policy; ``summary`` condenses them into the median and worst ratio of our estimate to
XLA's total per architecture and policy (what BENCHMARKS.md records).
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass

import architectures
from architectures.config import ConfigError

from comparator.run.sweep import RequestError, models, suggest

DTYPES = ("fp32", "tf32", "bf16", "fp16")


def _tuple(v) -> tuple:
    if v is None:
        return ()
    if isinstance(v, str):
        return tuple(x for x in v.split(",") if x)
    return tuple(v) if isinstance(v, (list, tuple)) else (v,)


def _positives(field: str, values) -> tuple:
    values = _tuple(values)
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0
                         for v in values):
        raise RequestError(field, values, "positive integers")
    return values


@dataclass(frozen=True)
class MemoryRequest:
    archs: tuple = tuple(architectures.NAMES)
    presets: tuple = ()
    sizes: tuple | None = None
    seqs: tuple = (512,)
    batches: tuple = (1,)
    policies: tuple = ()          # empty: every policy of each architecture
    dtype: str = "fp32"
    run: bool = False

    def __post_init__(self):
        archs = tuple(architectures.NAMES) if self.archs in ("all", ("all",)) else _tuple(
            self.archs)
        for a in archs:
            if a not in architectures.NAMES:
                raise RequestError("--arch", a, suggest(a, architectures.NAMES) + " or all")
        object.__setattr__(self, "archs", archs)
        object.__setattr__(self, "presets", _tuple(self.presets))
        object.__setattr__(self, "seqs", _positives("--seq", self.seqs))
        object.__setattr__(self, "batches", _positives("--batch", self.batches))
        pols = () if self.policies in ("all", ("all",)) else _tuple(self.policies)
        known = sorted({p for a in archs for p in architectures.get(a).POLICIES})
        for p in pols:
            if p not in known:
                raise RequestError("--policy", p, suggest(p, known) + " or all")
        if pols and not any(p in architectures.get(a).POLICIES for a in archs for p in pols):
            raise RequestError("--policy", ",".join(pols), "a policy of " + ", ".join(archs))
        object.__setattr__(self, "policies", pols)
        if self.dtype not in DTYPES:
            raise RequestError("--dtype", self.dtype, suggest(self.dtype, DTYPES))

    def points(self) -> list:
        """(Model, seq, batch, policy) of every point; a policy an architecture lacks is
        skipped for it."""
        out = []
        for m in models(self.archs, self.presets, self.sizes):
            mod = architectures.get(m.arch)
            for pol in [p for p in self.policies or mod.POLICIES if p in mod.POLICIES]:
                for s in self.seqs:
                    try:
                        mod.terms(m.cfg, 1, s)       # lengths the model refuses, refused here
                    except ConfigError as err:
                        raise RequestError("--seq", s, f"{m.arch}:{m.preset}: {err}") from None
                    out.extend((m, s, b, pol) for b in self.batches)
        return out


def check(req: MemoryRequest, progress=None) -> list:
    """One record per point (``measure.memory.check``), in ``points()`` order."""
    from comparator.measure import memory as mm
    pts, out = req.points(), []
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


__all__ = ["DTYPES", "MemoryRequest", "check", "summary"]
