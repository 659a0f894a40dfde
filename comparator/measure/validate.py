"""Validation of the step-time model against measured steps (``comparator bench --predict``).

``predict_records(records, regions_of, profile, fit)`` adds to each measured bench record

* ``predicted_step_s``: the time model (``cost.timemodel.predict``) of the compiled step's
  regions (``regions_of(record)``) on ``profile``, with its memory-bound share, achieved
  utilisation and per-term seconds;
* ``predicted_step_s_mfu``: the flat model, training FLOPs / (MFU x peak), with the MFU
  fitted on one named point (``fit``: its index; the peak is the profile's best matmul
  rate, which cancels: the prediction is the fit point's time scaled by the FLOP ratio);
* both errors in percent, (predicted - measured) / measured.

``summary(records)``: median and worst |error| of each model, and the time ratio of each
architecture to the Transformer of the same widths at each length, measured and predicted.
"""
from __future__ import annotations

import statistics

from comparator.cost.timemodel import TIME_MODEL, best_matmul_rate, predict, predict_mfu


def measured(records) -> list[dict]:
    return [r for r in records if not r.get("skipped") and r.get("step_s")]


def default_fit(records) -> int:
    """The point the flat MFU is fitted on: the Transformer's at the length nearest 1,024
    tokens (the first width), else the first measured point."""
    ok = measured(records)
    tr = [r for r in ok if r["arch"] == "transformer"] or ok
    best = min(tr, key=lambda r: (abs(r["seq_len"] - 1024), ok.index(r)))
    return records.index(best)


def point_label(r: dict) -> str:
    return f"{r['arch']}:{r['preset']} seq {r['seq_len']} batch {r['batch']}"


def predict_records(records, regions_of, profile, fit: int) -> list[dict]:
    """The records with the predictions (see the module docstring); skipped records are
    returned unchanged."""
    peak = best_matmul_rate(profile)
    ref = records[fit]
    mfu = ref["train_flops"] / (ref["step_s"] * peak)
    out = []
    for r in records:
        if r.get("skipped") or not r.get("step_s"):
            out.append(r)
            continue
        st = predict(regions_of(r), profile)
        flat = predict_mfu(r["train_flops"], mfu, peak)
        out.append({
            **r, "measured_step_s": r["step_s"], "predicted_step_s": st.total_s,
            "predicted_step_s_mfu": flat, "time_model": TIME_MODEL,
            "error_pct": 100 * (st.total_s - r["step_s"]) / r["step_s"],
            "error_pct_mfu": 100 * (flat - r["step_s"]) / r["step_s"],
            "memory_bound_share": st.memory_share, "bound_share": st.bound_share,
            "predicted_utilisation": st.utilisation, "term_s": st.term_s,
            "term_memory_share": st.term_memory_share, "unknown_ops": st.unknown,
            "mfu_fit_point": point_label(ref), "mfu_fitted": mfu, "mfu_peak": peak,
            "profile_device": profile.device, "profile_calibrated": profile.calibrated,
        })
    return out


def _stats(errs) -> dict:
    a = [abs(e) for e in errs]
    return {"median_abs_pct": statistics.median(a), "worst_abs_pct": max(a)} if a else {}


def ratios(records) -> list[dict]:
    """Each non-Transformer architecture's step time over the Transformer's of the same
    widths (d_model, layers) and length: measured, predicted by each model."""
    pred = [r for r in records if "predicted_step_s" in r]
    base = {}
    for r in pred:
        if r["arch"] == "transformer":
            base[(_widths(r), r["seq_len"], r["batch"])] = r
    out = []
    for r in pred:
        b = base.get((_widths(r), r["seq_len"], r["batch"]))
        if r["arch"] == "transformer" or b is None:
            continue
        out.append({"arch": r["arch"], "preset": r["preset"], "seq_len": r["seq_len"],
                    "measured": r["step_s"] / b["step_s"],
                    "predicted": r["predicted_step_s"] / b["predicted_step_s"],
                    "predicted_mfu": r["predicted_step_s_mfu"] / b["predicted_step_s_mfu"]})
    for x in out:
        x["error_pct"] = 100 * (x["predicted"] - x["measured"]) / x["measured"]
    return out


def _widths(r):
    return (r.get("d_model"), r.get("n_layers"))


def summary(records) -> dict:
    pred = [r for r in records if "predicted_step_s" in r]
    return {"time_model": _stats([r["error_pct"] for r in pred]),
            "mfu": _stats([r["error_pct_mfu"] for r in pred]),
            "ratios": ratios(records)}


__all__ = ["default_fit", "measured", "point_label", "predict_records", "ratios", "summary"]
