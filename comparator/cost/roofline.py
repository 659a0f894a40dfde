"""Roofline time of a traced training step on an accelerator.

Every equation of the training step's jaxpr (DCE'd, calls entered, scans multiplied, as
``comparator.count.trace`` walks it) takes ``max(compute, memory)`` seconds:

* compute = matmul FLOPs / peak(dtype) + other FLOPs / vector peak.  The vector peak is
  the catalogue's fp32 figure (NVIDIA's and AMD's non-tensor rate) where it is below
  peak(dtype), else peak(dtype) (TPUs publish no separate vector rate);
* memory = bytes / memory bandwidth, where bytes are the operands read and the results
  written (the rules' ``bytes``), floating-point values at the training dtype's width
  (the traced model is fp32; bf16 halves them), integers at their own width.  Views
  that XLA lowers without a copy (``VIEWS``: reshape, broadcast, dtype casts, ...)
  move no bytes.

Summed over equations this is the *unfused* roofline: each equation goes through
memory, as if XLA fused nothing.  Real compilers fuse elementwise chains, so the
memory part is an upper bound and the step time a pessimistic one; what it shows
reliably is *where* the step is memory-bound (LSH sorts and gathers, softmax and
masking at long sequence) and the utilisation that leaves: ``mfu_bound`` = training
matmul FLOPs / (peak(dtype) x roofline time).

Large models are walked at reduced depth (``fasttrace.depth_plan``): every time is a sum
over equations, so ``t(L) = t(a) + (q - 1) (t(a + p) - t(a))`` holds as for FLOPs.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, fields

from comparator.cost.catalogue import CatalogueError
from comparator.cost.pricing import DTYPE_BYTES, CostError, dtype_key
from comparator.count.trace import UNATTRIBUTED, _dce, _Walker

VIEWS = frozenset({"reshape", "squeeze", "expand_dims", "broadcast_in_dim",
                   "convert_element_type", "bitcast_convert_type", "reduce_precision",
                   "iota", "stop_gradient", "random_wrap", "random_unwrap", "random_seed",
                   "optimization_barrier", "device_put", "sharding_constraint", "mesh_cast",
                   "pvary", "copy", "copy_p"})


@dataclass
class TermTime:
    """Roofline seconds of one term (or of the whole step)."""
    flops: int = 0
    matmul: int = 0
    bytes: float = 0.0
    compute_s: float = 0.0
    memory_s: float = 0.0
    time_s: float = 0.0            # sum over equations of max(compute, memory)
    memory_bound_s: float = 0.0    # the part of time_s spent in memory-bound equations

    def add(self, other: "TermTime", k: float = 1) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + k * getattr(other, f.name))

    @property
    def bound(self) -> str:
        return "memory" if self.memory_bound_s > self.time_s / 2 else "compute"


@dataclass(frozen=True)
class Rates:
    peak: float          # FLOP/s for contractions at the training dtype
    vector: float        # FLOP/s for everything else
    bandwidth: float     # bytes/s
    width: int           # bytes of a floating-point value at the training dtype

    @classmethod
    def of(cls, acc, dtype: str = "bf16") -> "Rates":
        key = dtype_key(dtype)
        if key not in DTYPE_BYTES:
            raise CostError("--dtype", dtype, "a training dtype: " + ", ".join(DTYPE_BYTES))
        try:
            peak = acc.peak(key)
        except CatalogueError as err:   # no published peak for this dtype
            raise CostError("--dtype", dtype, err.allowed) from None
        if not acc.memory_bandwidth_gbs:
            raise CostError("--accelerator", acc.name,
                            "an accelerator with a memory bandwidth in the catalogue")
        vector = min(peak, acc.fp32) if acc.fp32 else peak
        return cls(peak, vector, acc.memory_bandwidth_gbs * 1e9, DTYPE_BYTES[key])

    def nbytes(self, aval) -> float:
        dt = getattr(aval, "dtype", None)
        if dt is None or not hasattr(aval, "shape"):
            return 0.0
        size = 1
        for d in aval.shape:
            size *= int(d)
        kind = getattr(dt, "kind", None)
        width = self.width if kind in ("f", "c") else getattr(dt, "itemsize", 4)
        return float(size * width)


class _RooflineWalker(_Walker):
    def __init__(self, rates: Rates):
        super().__init__()
        self.rates = rates
        self.times: dict = defaultdict(TermTime)

    def scratch(self):
        w = type(self)(self.rates)
        w.memo = self.memo
        return w

    def absorb(self, other) -> None:
        super().absorb(other)
        for k, v in other.times.items():
            self.times[k].add(v)

    def record(self, eqn, term, cost, times) -> None:
        super().record(eqn, term, cost, times)
        r = self.rates
        io = 0.0
        if eqn.primitive.name not in VIEWS:
            io = sum(r.nbytes(v.aval) for v in (*eqn.invars, *eqn.outvars)
                     if hasattr(v, "aval")) * times
        compute = cost.matmul / r.peak + (cost.flops - cost.matmul) / r.vector
        memory = io / r.bandwidth
        t = self.times[term]
        t.add(TermTime(cost.flops, cost.matmul, io, compute, memory, max(compute, memory),
                       memory if memory > compute else 0.0))


@dataclass
class Roofline:
    by_term: dict          # term -> TermTime
    total: TermTime
    rates: Rates
    unsupported: dict

    @property
    def mfu_bound(self) -> float:
        """Training matmul FLOPs / (peak x roofline time): the utilisation it leaves."""
        return utilisation(self.total.matmul, self)


def utilisation(train_flops: float, r: Roofline) -> float:
    """``train_flops`` (ours, or a paper's count of the same step) / (peak x roofline
    time of the traced step)."""
    return train_flops / (r.rates.peak * r.total.time_s) if r.total.time_s else 0.0


class _ByPrimitive(_RooflineWalker):
    """A user's step: work outside every term scope under its primitive's name (as
    ``count.usercount`` counts it)."""

    def record(self, eqn, term, cost, times) -> None:
        super().record(eqn, eqn.primitive.name if term == UNATTRIBUTED else term, cost, times)


def roofline_jaxpr(closed, rates: Rates, walker=_RooflineWalker) -> Roofline:
    w = walker(rates)
    w.walk(_dce(closed))
    total = TermTime()
    for v in w.times.values():
        total.add(v)
    return Roofline(dict(w.times), total, rates, dict(w.unsupported))


def _combine(parts, rates) -> Roofline:
    by_term: dict = defaultdict(TermTime)
    unsupported: dict = defaultdict(int)
    for coef, r in parts:
        for k, v in r.by_term.items():
            by_term[k].add(v, coef)
        for k, v in r.unsupported.items():
            unsupported[k] += coef * v
    by_term = {k: v for k, v in by_term.items() if v.flops or v.bytes or v.time_s > 1e-15}
    total = TermTime()
    for v in by_term.values():
        total.add(v)
    return Roofline(by_term, total, rates, {k: v for k, v in unsupported.items() if v})


def model_roofline(mod, cfg, seq: int, batch: int, acc, dtype: str = "bf16") -> Roofline:
    """The training step of ``mod.model(cfg)`` at ``seq`` x ``batch`` on ``acc``."""
    import jax

    from comparator.count.fasttrace import abstract_inputs, depth_plan

    rates = Rates.of(acc, dtype)
    plan, _ = depth_plan(mod, cfg)
    parts = []
    for coef, shallow in plan:
        prog, params, data, rng = abstract_inputs(mod, shallow, batch, seq)
        parts.append((coef, roofline_jaxpr(jax.make_jaxpr(prog.train_step)(params, data, rng),
                                           rates)))
    return _combine(parts, rates)


def program_roofline(prog, args, acc, dtype: str = "bf16") -> Roofline:
    """The unfused roofline of any training step ``prog.train_step`` (a user's) on its
    abstract ``args``, whole; terms are its term scopes, else the primitive."""
    import jax
    rates = Rates.of(acc, dtype)
    return roofline_jaxpr(jax.make_jaxpr(prog.train_step)(*args), rates, _ByPrimitive)


def rows(r: Roofline, top: int | None = None) -> list[dict]:
    """One row per term, slowest first, and a total row (for ``tables.render``)."""
    out = []
    items = sorted(r.by_term.items(), key=lambda kv: -kv[1].time_s)
    for term, t in items[:top] if top else items:
        out.append(_row(term, t, r.total.time_s))
    out.append(_row("total", r.total, r.total.time_s))
    return out


def _row(term: str, t: TermTime, total: float) -> dict:
    return {"term": term or UNATTRIBUTED, "flops": t.flops, "bytes": t.bytes,
            "compute_s": t.compute_s, "memory_s": t.memory_s, "time_s": t.time_s,
            "share": t.time_s / total if total else 0.0,
            "memory_bound_share": t.memory_bound_s / t.time_s if t.time_s else 0.0,
            "bound": t.bound}


__all__ = ["VIEWS", "Rates", "Roofline", "TermTime", "model_roofline", "program_roofline",
           "roofline_jaxpr", "rows", "utilisation"]
