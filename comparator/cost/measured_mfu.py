"""Measured utilisation for the cost model (``comparator cost --calibration FILE``).

A calibration file is the JSON of ``comparator bench --accelerator NAME``: records of
measured training steps, each with the catalogue device it ran on (``accelerator``), its
``dtype`` and its ``utilisation`` (traced matmul FLOPs / time / that device's dense peak).
``mfu_for(records, acc, dtype, arch)`` is the median utilisation of the records measured
on ``acc`` at ``dtype`` -- those of ``arch`` when there are any -- and replaces the
catalogue's default MFU for that device.
"""
from __future__ import annotations

import statistics

from comparator.cost import files
from comparator.errors import FieldError


class CalibrationError(FieldError):
    """A calibration file or value refused: names the field, the value and what is
    allowed."""


def load(path: str) -> list[dict]:
    text = files.read_text(path, "--calibration", "a readable file", CalibrationError)
    data = files.parse(text, "json", path, "--calibration", "the JSON of comparator bench",
                       CalibrationError)
    recs = [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []
    if not recs:
        raise CalibrationError("--calibration", path, "the JSON records of comparator bench")
    return recs


def _by(convention: str) -> str:
    return "" if convention == "standard" else f" by {convention}"


def mfu_for(records: list[dict], acc, dtype: str, arch: str | None = None,
            convention: str = "standard") -> tuple[float, str]:
    """(median utilisation, where it comes from) for ``acc`` at ``dtype``, of the records
    whose utilisation counts FLOPs by ``convention`` (``bench --convention``)."""
    ok = [r for r in records if not r.get("skipped") and r.get("utilisation")
          and r.get("accelerator") == acc.name and r.get("dtype") == dtype
          and r.get("convention", "standard") == convention]
    if not ok:
        have = sorted({f"{r.get('accelerator')} at {r.get('dtype')}"
                       + _by(r.get("convention", "standard")) for r in records
                       if not r.get("skipped")})
        other = any(r.get("accelerator") == acc.name and r.get("dtype") == dtype
                    for r in records if not r.get("skipped"))
        raise CalibrationError("--calibration", acc.name,
                               f"records of {acc.name} at {dtype}{_by(convention)}; the file has: "
                               + (", ".join(have) or "no measured points")
                               + (" (give the --convention they were measured with)" if other
                                  else " (run comparator bench --accelerator NAME to label "
                                       "them)"))
    mine = [r for r in ok if r.get("arch") == arch]
    what = f"{arch} points" if mine else "points (every architecture)"
    mine = mine or ok
    mfu = statistics.median(r["utilisation"] for r in mine)
    return mfu, f"calibration: median of {len(mine)} measured {what} on {acc.name} at {dtype}"


__all__ = ["CalibrationError", "load", "mfu_for"]
