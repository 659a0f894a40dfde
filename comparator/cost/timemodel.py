"""The step-time model: a roofline over the compiled regions of the step (issue 14).

Each region (``regions.Region``: a fusion, a matmul, a sort...) run ``count`` times takes

    count x (max(compute, memory) + overhead)

on a device profile ``p`` (``profile.DeviceProfile``), where

* a contraction computes at ``p.matmul_rate(m, k, n, batch, dtype)`` -- the rate measured
  for that shape, so a 64x64 chunk matmul is not charged a 4096x4096 one's rate;
* a sort at ``p.sort`` keys/s, a gather at ``p.gather`` and a scatter at ``p.scatter``
  bytes/s (their measured throughputs; their memory term is that throughput);
* anything else at ``p.vector_flops`` for its arithmetic plus ``p.transcendentals`` for
  its exp/log/tanh... evaluations, plus the bytes its reductions read / ``p.reduce``
  (adding ones) or ``p.reduce_max`` (comparing ones: max, min, argmax);
* memory = the bytes the region moves (its operands read and results written, not the
  intermediates a fusion keeps) / ``p.bandwidth``, except the bytes it reorders (a
  transposing copy), which move at ``p.transpose_rate(run)`` for their contiguous run;
* overhead = ``p.overhead_s``, the fixed cost of launching one compiled region.

A ``fused`` region (``fusedflash``: flash attention as the one kernel an accelerator runs)
computes its ``share`` of the arithmetic of the regions it replaces (``parts``: their
contractions, elementwise work and reductions at the rates above; their data movement is
its own ``bytes``), spread over its ``count`` runs.

The step's buffers (``alloc`` regions: XLA's temporaries and each result) cost
bytes / ``p.first_touch`` when the profile measured that rate and the buffer is at least
``p.first_touch_min_bytes``: a CPU runtime maps such buffers afresh at every run and the
OS zeroes each page on its first write (accelerator runtimes keep their memory: None).

A region's *bound* is whichever of compute, memory and overhead is largest.  Every number
of the model is a profile measurement; nothing is fitted to a step.

``predict_mfu`` is the flat model the tool used before: training FLOPs / (MFU x peak).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

TIME_MODEL = "roofline"
BOUNDS = ("compute", "memory", "overhead")


@dataclass(frozen=True)
class StepTime:
    """The predicted time of one training step and where it goes."""
    total_s: float
    term_s: dict                  # {term: seconds}
    term_memory_share: dict       # {term: share of its seconds in memory-bound regions}
    bound_share: dict             # {"compute"|"memory"|"overhead": share of total_s}
    matmul_flops: int             # contraction FLOPs of the step (x counts)
    utilisation: float            # matmul_flops / (total_s x the best measured matmul rate)
    device: str
    calibrated: bool
    time_model: str = TIME_MODEL
    unknown: dict = field(default_factory=dict)   # {opcode: count} charged bytes only
    notes: tuple = ()             # how regions were priced other than as compiled

    @property
    def memory_share(self) -> float:
        return self.bound_share.get("memory", 0.0)


ARITHMETIC = ("matmul", "elementwise", "reduce")


def _compute_s(r, p) -> float:
    if r.kind == "fused":
        return r.share * sum(q.count * _compute_s(q, p) for q in r.parts
                             if q.kind in ARITHMETIC) / r.count
    if r.kind == "matmul" and r.shape:
        m, k, n, batch = r.shape
        return r.flops / p.matmul_rate(m, k, n, batch, r.dtype)
    if r.kind == "sort":
        return r.keys / p.sort
    if r.kind == "gather":
        return r.bytes / p.gather
    if r.kind == "scatter":
        return r.bytes / p.scatter
    reduce = r.reduced / p.reduce if p.reduce else 0.0
    rate = p.reduce_max or p.reduce
    reduce += r.reduced_max / rate if rate else 0.0
    return ((r.flops - r.transcendentals) / p.vector_flops
            + r.transcendentals / p.transcendentals + reduce)


def _memory_s(r, p) -> float:
    if r.kind in ("sort", "gather", "scatter"):   # their throughputs include the memory
        return 0.0
    rate = p.transpose_rate(r.run) if r.transposed else None
    if rate is None:
        return r.bytes / p.bandwidth
    return max(0, r.bytes - r.transposed) / p.bandwidth + r.transposed / rate


def region_time(r, p) -> tuple[float, str]:
    """(seconds of all ``r.count`` runs of region ``r`` on profile ``p``, its bound)."""
    if r.kind == "alloc":       # a buffer of the step: first touched afresh at every run?
        fresh = p.first_touch is not None and r.bytes >= (p.first_touch_min_bytes or 0)
        return (r.count * r.bytes / p.first_touch if fresh else 0.0), "memory"
    compute, memory, overhead = _compute_s(r, p), _memory_s(r, p), p.overhead_s
    if r.kind in ("sort", "gather", "scatter"):
        compute, memory = 0.0, compute            # a data-movement throughput
    parts = {"compute": compute, "memory": memory, "overhead": overhead}
    bound = max(BOUNDS, key=parts.get)
    return r.count * (max(compute, memory) + overhead), bound


def best_matmul_rate(p, dtype: str = "fp32") -> float:
    rates = [q.flops_per_s for q in p.matmul if q.dtype == dtype]
    return max(rates) if rates else max(q.flops_per_s for q in p.matmul)


def predict(regions, p, notes: tuple = ()) -> StepTime:
    """The step time of ``regions`` (``regions.step_regions``) on profile ``p``; ``notes``
    say how regions were priced other than as compiled (``fusedflash.fuse``)."""
    term_s: dict = defaultdict(float)
    term_mem: dict = defaultdict(float)
    bound_s: dict = {b: 0.0 for b in BOUNDS}
    unknown: dict = defaultdict(int)
    flops, dtype = 0, "fp32"
    for r in regions:
        t, bound = region_time(r, p)
        term_s[r.term] += t
        bound_s[bound] += t
        if bound == "memory":
            term_mem[r.term] += t
        if r.kind == "matmul":
            flops += r.flops * r.count
            dtype = r.dtype
        if r.kind == "fused":
            flops += r.share * sum(q.flops * q.count for q in r.parts if q.kind == "matmul")
        if r.kind == "other":
            unknown[r.op] += r.count
    total = sum(term_s.values())
    return StepTime(
        total_s=total, term_s=dict(sorted(term_s.items())),
        term_memory_share={k: term_mem[k] / v if v else 0.0 for k, v in sorted(term_s.items())},
        bound_share={b: s / total if total else 0.0 for b, s in bound_s.items()},
        matmul_flops=int(round(flops)),
        utilisation=flops / (total * best_matmul_rate(p, dtype)) if total else 0.0,
        device=p.device, calibrated=p.calibrated, unknown=dict(unknown), notes=tuple(notes))


def predict_mfu(train_flops: float, mfu: float, peak: float) -> float:
    """The flat model: seconds = training FLOPs / (MFU x peak FLOP/s)."""
    return train_flops / (mfu * peak)


__all__ = ["BOUNDS", "StepTime", "TIME_MODEL", "best_matmul_rate", "predict", "predict_mfu",
           "region_time"]
