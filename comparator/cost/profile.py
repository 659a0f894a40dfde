"""Device profiles: what a device achieves per kind of operation (TIMEMODEL_SPEC.md).

PLACEHOLDER written on branch ``timemodel`` so that the time model can be coded and tested
against the interface of issue 14's part A; the ``profile`` branch's version (validation,
store, datasheet profiles, ``comparator calibrate``) replaces this file when it merges.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields

from ..errors import FieldError


class ProfileError(FieldError):
    """A refused profile: names the field, the value and what is allowed."""


@dataclass(frozen=True)
class MatmulPoint:
    m: int
    k: int
    n: int
    batch: int
    dtype: str
    flops_per_s: float


@dataclass(frozen=True)
class DeviceProfile:
    device: str
    kind: str
    calibrated: bool
    source: str
    date: str
    software: dict
    matmul: tuple
    bandwidth: float
    vector_flops: float
    transcendentals: float
    sort: float
    gather: float
    scatter: float
    overhead_s: float
    # bytes/s at which memory newly mapped for a step is first written (page faults of
    # the buffers the CPU runtime allocates afresh each run); 0: not measured / no cost
    first_touch: float = 0.0
    # the smallest buffer the runtime maps afresh every run (smaller ones are reused)
    first_touch_min_bytes: int = 0

    def matmul_rate(self, m, k, n, batch=1, dtype="fp32") -> float:
        """Inverse-distance interpolation over the points of ``dtype`` in (log FLOPs of
        one product, log smallest dim), never above the largest measured rate."""
        pts = [p for p in self.matmul if p.dtype == dtype]
        if not pts:
            raise ProfileError("dtype", dtype, "a dtype of the profile's matmul grid: "
                               + ", ".join(sorted({p.dtype for p in self.matmul})))

        def where(mm, kk, nn, bb):
            return (math.log(2.0 * mm * kk * nn * bb), math.log(min(mm, kk, nn)))

        x = where(m, k, n, batch)
        num = den = 0.0
        for p in pts:
            y = where(p.m, p.k, p.n, p.batch)
            d2 = (x[0] - y[0]) ** 2 + (x[1] - y[1]) ** 2
            if d2 < 1e-12:
                return p.flops_per_s
            w = 1.0 / d2
            num += w * math.log(p.flops_per_s)
            den += w
        return min(math.exp(num / den), max(p.flops_per_s for p in pts))


def from_dict(d) -> DeviceProfile:
    names = [f.name for f in fields(DeviceProfile)]
    missing = [n for n in names if n not in d and not n.startswith("first_touch")]
    if missing:
        raise ProfileError(missing[0], None, "a device profile field")
    kw = {n: d[n] for n in names if n in d}
    kw["matmul"] = tuple(MatmulPoint(**p) for p in d["matmul"])
    return DeviceProfile(**kw)


def to_dict(p: DeviceProfile) -> dict:
    d = asdict(p)
    d["matmul"] = [asdict(q) for q in p.matmul]
    return d


def load(path) -> DeviceProfile:
    try:
        with open(path, encoding="utf-8") as fh:
            return from_dict(json.load(fh))
    except (OSError, json.JSONDecodeError) as err:
        raise ProfileError("--profile", str(path), f"a device profile JSON file ({err})") \
            from None


def save(p: DeviceProfile, path) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(to_dict(p), fh, indent=1)


__all__ = ["DeviceProfile", "MatmulPoint", "ProfileError", "from_dict", "load", "save",
           "to_dict"]
