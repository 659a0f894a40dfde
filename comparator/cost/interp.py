"""Interpolation of a device profile's matmul grid (``DeviceProfile.matmul_rate``):
``cube_rate`` between the points of measured cubes (every combination of a few m, k, n
at a batch), trilinear in the log dimensions and log-linear in log batch; ``grouped``
elsewhere, by smallest dimension and log FLOPs of one product.  Points are
``MatmulPoint``s of one dtype; no jax here."""
from __future__ import annotations

import bisect
import math
from collections import Counter


def cube_rate(pts, m: int, k: int, n: int, batch: int) -> float | None:
    """The trilinear rate at each measured batch whose cube holds the query, log-linear
    in log batch between the two of them around the query's batch (the nearest one
    outside them); None when no batch's cube holds it."""
    levels = []
    for b in sorted({p.batch for p in pts}):
        r = trilinear([p for p in pts if p.batch == b], m, k, n)
        if r is not None:
            levels.append((b, r))
    if not levels:
        return None
    if batch <= levels[0][0]:
        return levels[0][1]
    for (b0, r0), (b1, r1) in zip(levels, levels[1:]):
        if batch <= b1:
            w = math.log(batch / b0) / math.log(b1 / b0)
            return r1 if w == 1 else math.exp(math.log(r0) + w * (math.log(r1) - math.log(r0)))
    return levels[-1][1]


def trilinear(pts, m: int, k: int, n: int) -> float | None:
    """Log-rate trilinear in (log m, log k, log n) between the eight measured products
    around the query (each coordinate clamped into the measured range), or None when one
    of them is not measured.  The cube's sizes on an axis are the values at least half as
    many points share as the most shared one (a lone extra shape is no cube size)."""
    rate = {(p.m, p.k, p.n): p.flops_per_s for p in pts}
    axes = []
    for i in range(3):   # the cube's sizes: values many points share, not a lone shape's
        count = Counter(key[i] for key in rate)
        most = max(count.values())
        axes.append(sorted(v for v, c in count.items() if 2 * c >= most))
    corners, weights = [], []
    for axis, v in zip(axes, (m, k, n)):
        v = min(max(v, axis[0]), axis[-1])
        j = max(0, bisect.bisect_right(axis, v) - 1)
        lo, hi = axis[j], axis[min(j + 1, len(axis) - 1)]
        w = 0.0 if hi == lo else math.log(v / lo) / math.log(hi / lo)
        corners.append((lo, hi))
        weights.append(w)
    terms = []
    for i in (0, 1):
        for j in (0, 1):
            for l in (0, 1):
                w = ((weights[0] if i else 1 - weights[0]) * (weights[1] if j else 1 - weights[1])
                     * (weights[2] if l else 1 - weights[2]))
                key = (corners[0][i], corners[1][j], corners[2][l])
                if key not in rate:
                    return None
                if w > 0:
                    terms.append((w, rate[key]))
    if len(terms) == 1:
        return terms[0][1]
    return math.exp(sum(w * math.log(r) for w, r in terms))


def grouped(pts, flops: float, dim: float) -> float:
    levels: dict = {}
    for p in pts:
        levels.setdefault(min(p.m, p.k, p.n), []).append(p)
    dims = sorted(levels)
    cap = max(p.flops_per_s for p in pts)
    u, v = math.log(flops), math.log(dim)
    if dim <= dims[0] or dim >= dims[-1]:
        rate = along(levels[dims[0] if dim <= dims[0] else dims[-1]], u, True)
    else:
        i = bisect.bisect_right(dims, dim) - 1
        lo, hi = dims[i], dims[i + 1]
        a, b = math.log(along(levels[lo], u)), math.log(along(levels[hi], u))
        w = (v - math.log(lo)) / (math.log(hi) - math.log(lo))
        rate = math.exp(a + w * (b - a))
    return min(rate, cap)


def along(pts, u: float, time_below: bool = False) -> float:
    """Rate at log-FLOPs ``u`` within one smallest-dimension group: the end rates hold
    outside its range, except below it with ``time_below`` (the smallest product's time
    holds; see matmul_rate)."""
    by: dict = {}
    for p in pts:   # products of equal FLOPs in one group: their geometric mean
        by.setdefault(math.log(p.flops), []).append(p.flops_per_s)
    us = sorted(by)
    rates = [r[0] if len(r) == 1 else math.exp(sum(map(math.log, r)) / len(r))
             for r in (by[x] for x in us)]   # (a product of many rates overflows)
    lr = [math.log(r) for r in rates]
    if u >= us[-1]:
        return rates[-1]
    if u <= us[0]:
        return rates[0] * math.exp(u - us[0]) if time_below else rates[0]
    j = bisect.bisect_right(us, u) - 1
    w = (u - us[j]) / (us[j + 1] - us[j])
    return math.exp(lr[j] + w * (lr[j + 1] - lr[j]))


__all__ = ["along", "cube_rate", "grouped", "trilinear"]
