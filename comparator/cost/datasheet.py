"""Uncalibrated device profiles: a catalogue accelerator's datasheet peaks and bandwidth
times sourced achievable fractions (``comparator/data/achievable.toml``).

``profile(acc, dtype=None)`` builds a ``DeviceProfile`` with ``calibrated=False`` whose
``source`` names the catalogue's sources and every fraction's source.  The arithmetic:

* bandwidth = datasheet memory bandwidth x ``bandwidth_fraction``;
* matmul points on ``GRID`` (per dtype with a peak): the time of ``batch`` products of
  (m x k) @ (k x n) is FLOPs / R(s) + ``matmul_latency_s``, with R(s) = peak x fraction
  x min(1, g(s) / g(2048)), g(s) = s / (s + ``matmul_half_dim``), s the smallest of m, k,
  n (fraction: ``gemm_fraction``, or ``fp32_gemm_fraction`` for a GPU's fp32 peak);
* elementwise FLOP/s = fp32 peak x ``vector_fraction`` (TPUs: bf16 peak x
  ``vector_peak_ratio``); transcendentals/s = that x ``transcendental_ratio``;
* sort keys/s = bandwidth / ``sort_bytes_per_key``; gather and scatter bytes/s =
  bandwidth x their fractions; ``overhead_s`` per compiled region;
* on-chip memory (``sram_bytes``) = the catalogue's ``sram_kib`` x 1024, as published.

No jax here.
"""
from __future__ import annotations

import math
from functools import lru_cache
from importlib import resources

from comparator.cost.profile import DeviceProfile, MatmulPoint, ProfileError

PACKAGED = "data/achievable.toml"
FIELDS = ("gemm_fraction", "fp32_gemm_fraction", "matmul_half_dim", "matmul_latency_s",
          "bandwidth_fraction", "vector_fraction", "vector_peak_ratio",
          "transcendental_ratio", "sort_bytes_per_key", "gather_fraction",
          "scatter_fraction", "overhead_s")
FRACTIONS = ("gemm_fraction", "fp32_gemm_fraction", "bandwidth_fraction", "vector_fraction",
             "vector_peak_ratio", "transcendental_ratio", "gather_fraction",
             "scatter_fraction")
REFERENCE_DIM = 2048
# (m, k, n, batch): squares, the models' projections and FFNs, per-head attention and the
# Reformer's chunked attention (64 queries x 128 keys x 64 dims per chunk)
GRID = ([(s, s, s, 1) for s in (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)]
        + [(512, 768, 768, 1), (512, 768, 3072, 1), (512, 3072, 768, 1),
           (2048, 768, 3072, 1), (8192, 1024, 4096, 1), (512, 64, 512, 12),
           (1024, 64, 1024, 12), (4096, 64, 4096, 12), (64, 64, 128, 512),
           (64, 128, 64, 512), (64, 64, 128, 4096)]
        # skinny products (a few rows of a wide layer: small batches, MLM heads): each
        # smallest-dimension level needs a large product, or interpolation would carry a
        # tiny cube's latency-bound rate to them
        + [(s, 4096, 4096, 1) for s in (16, 32, 64, 128, 256, 512, 1024)])


@lru_cache(maxsize=1)
def table() -> dict:
    """The packaged fractions, checked: every value a finite positive number with a
    source that ``[sources]`` defines; fractions at most 1."""
    text = resources.files("comparator").joinpath(PACKAGED).read_text(encoding="utf-8")
    from comparator.cost import files
    data = files.parse(text, "toml", PACKAGED, "achievable", "the packaged TOML", ProfileError)
    sources = data.get("sources", {})
    for group in ("kinds", "devices"):
        for name, entry in data.get(group, {}).items():
            for key, item in entry.items():
                where = f"achievable.{group}.{name}.{key}"
                if key not in FIELDS:
                    raise ProfileError(where, item, "fields are " + ", ".join(FIELDS))
                v = item.get("value") if isinstance(item, dict) else None
                if (isinstance(v, bool) or not isinstance(v, (int, float))
                        or not math.isfinite(v) or v <= 0 or (key in FRACTIONS and v > 1)):
                    raise ProfileError(where, v, "a finite number > 0 (a fraction <= 1)")
                if item.get("source") not in sources:
                    raise ProfileError(where + ".source", item.get("source"),
                                       "a key of [sources]")
    return data


def fractions(acc) -> dict:
    """``{field: (value, source key)}`` for ``acc``: its kind's defaults, then its own."""
    data = table()
    kind = acc.kind
    if kind not in data.get("kinds", {}):
        raise ProfileError(f"{acc.name}.kind", kind, "gpu or tpu (achievable fractions are "
                                                     "only known for those kinds)")
    out = {}
    for entry in (data["kinds"][kind], data.get("devices", {}).get(acc.name, {})):
        out.update({k: (float(v["value"]), v["source"]) for k, v in entry.items()})
    return out


def _need(acc, field: str) -> float:
    value = getattr(acc, field)
    if value is None:
        why = next((m for m in acc.missing if m.split(":", 1)[0].strip() == field), "")
        raise ProfileError(f"{acc.name}.{field}", None, "a datasheet number to build an "
                           "uncalibrated profile from" + (f" ({why})" if why else "")
                           + "; measure the device with 'comparator calibrate' instead")
    return value


def matmul_points(acc, dtypes, fr: dict) -> list[MatmulPoint]:
    half = fr["matmul_half_dim"][0]
    latency = fr["matmul_latency_s"][0]
    g_ref = REFERENCE_DIM / (REFERENCE_DIM + half)
    pts = []
    for dt in dtypes:
        fraction = fr["fp32_gemm_fraction" if dt == "fp32" and acc.kind == "gpu"
                      else "gemm_fraction"][0]
        top = acc.peak(dt) * fraction
        for m, k, n, b in GRID:
            s = min(m, k, n)
            rate = top * min(1.0, s / (s + half) / g_ref)
            flops = 2 * m * k * n * b
            pts.append(MatmulPoint(m, k, n, b, dt, flops / (flops / rate + latency)))
    return pts


def profile(acc, dtype: str | None = None) -> DeviceProfile:
    """The uncalibrated profile of ``acc`` (see the module docstring); ``dtype``: the
    matmul dtype (default: every training dtype the catalogue has a peak for)."""
    from comparator.cost.catalogue import DTYPE_ALIASES
    from comparator.cost.pricing import DTYPE_BYTES
    fr = fractions(acc)
    if dtype is None:
        dtypes = [d for d in DTYPE_BYTES if getattr(acc, d) is not None]
    else:
        key = DTYPE_ALIASES.get(str(dtype).lower(), str(dtype).lower())
        if key not in DTYPE_BYTES:
            raise ProfileError("--dtype", dtype, "a training dtype: " + ", ".join(DTYPE_BYTES))
        _need(acc, key)
        dtypes = [key]
    if not dtypes:
        raise ProfileError(f"{acc.name}.peaks", None, "a peak in a training dtype ("
                           + ", ".join(DTYPE_BYTES) + ")")
    bandwidth = _need(acc, "memory_bandwidth_gbs") * 1e9 * fr["bandwidth_fraction"][0]
    if acc.kind == "tpu":
        vector = _need(acc, "bf16") * fr["vector_peak_ratio"][0]
    else:
        vector = _need(acc, "fp32") * fr["vector_fraction"][0]
    used = ["bandwidth_fraction", "vector_peak_ratio" if acc.kind == "tpu" else
            "vector_fraction", "gemm_fraction", "matmul_half_dim", "matmul_latency_s",
            "transcendental_ratio", "sort_bytes_per_key", "gather_fraction",
            "scatter_fraction", "overhead_s"]
    if acc.kind == "gpu" and "fp32" in dtypes:
        used.append("fp32_gemm_fraction")
    return DeviceProfile(
        device=acc.name, kind=acc.kind, calibrated=False, source=_source(acc, fr, used),
        date=str(table().get("date", "unknown")), software={"comparator": _version()},
        matmul=tuple(matmul_points(acc, dtypes, fr)), bandwidth=bandwidth,
        vector_flops=vector, transcendentals=vector * fr["transcendental_ratio"][0],
        sort=bandwidth / fr["sort_bytes_per_key"][0],
        gather=bandwidth * fr["gather_fraction"][0],
        scatter=bandwidth * fr["scatter_fraction"][0], overhead_s=fr["overhead_s"][0],
        sram_bytes=None if acc.sram_kib is None else int(acc.sram_kib * 1024))


def _source(acc, fr: dict, used: list) -> str:
    sources = table()["sources"]
    keys = list(dict.fromkeys(fr[f][1] for f in used))
    parts = [f"datasheet profile of {acc.name}, uncalibrated: peaks from "
             f"{acc.sources.get('peaks', 'the catalogue')}; memory bandwidth from "
             f"{acc.sources.get('memory', 'the catalogue')}; "
             + (f"on-chip memory {acc.sram_kib:g} KiB from {acc.sources.get('sram')}; "
                if acc.sram_kib is not None else "")
             + "achievable fractions "
             "(comparator/data/achievable.toml): "
             + ", ".join(f"{f} {fr[f][0]:g} [{fr[f][1]}]" for f in used)]
    parts += [f"[{k}] {sources[k]}" for k in keys]
    return "; ".join(parts)


def _version() -> str:
    from importlib import metadata
    try:
        return metadata.version("comparator")
    except metadata.PackageNotFoundError:
        return "0"


__all__ = ["FIELDS", "GRID", "PACKAGED", "fractions", "matmul_points", "profile", "table"]
