"""One model under every paper's FLOP convention: the computation behind ``comparator
conventions`` (``conventions``: a record per convention with its model and hardware FLOPs
and, timed on a device, its MFU and HFU; ``count.utilisation``, PaLM App. B).

Takes its request value (``steprequests.ConventionsRequest``); what needs the catalogue
(the device's peak in the dtype asked for) is refused here naming the option, and a
utilisation above 100% with ``UtilisationError`` saying why.
"""
from __future__ import annotations

from dataclasses import dataclass

from comparator.count import utilisation as ut
from comparator.run import sweep as sw
from comparator.run.steprequests import ConventionsRequest


@dataclass(frozen=True)
class ConventionsResult:
    """``records``: one per convention (``sweep.analytic``'s record with ``model_flops``,
    ``hardware_flops`` and, timed, ``mfu``, ``hfu``, ``step_s``, ``accelerator``,
    ``dtype``, ``peak_flops``); the ``point`` counted (preset, config); ``text``: the
    caption's sentence on model and hardware FLOPs; ``peak`` FLOP/s, None untimed."""
    records: list
    point: object
    text: str
    peak: float | None = None


def conventions(req: ConventionsRequest, names=None) -> ConventionsResult:
    """Every convention of ``names`` (default: all, ours first) of ``req``'s model."""
    from comparator.count.conventions import NAMES
    _, preset, cfg = sw.resolve(req.arch, req.preset)
    pt = sw.Point(req.arch, preset, req.seq, req.batch, cfg)
    recs = [sw.analytic(pt, req.scope, c) for c in (names or NAMES)]
    use = _utilisations(req, pt, recs)
    return ConventionsResult([{**r, **u} for r, u in zip(recs, use["rows"])], pt,
                             use["text"], use["peak"])


def _utilisations(req: ConventionsRequest, pt, recs) -> dict:
    """Per record ``model_flops``, ``hardware_flops`` (``count.utilisation.split`` of the
    convention's terms under ``req.recompute``) and, timed, ``mfu``/``hfu``; the caption's
    sentence; the peak."""
    from comparator.count import conventions as cv
    rows = []
    for r in recs:
        if r["train_flops"] is None:
            rows.append({"model_flops": None, "hardware_flops": None})
            continue
        terms = cv.terms(r["convention"], pt.arch, pt.cfg, pt.seq, pt.batch)
        model, hardware = ut.split(terms, req.scope, req.recompute, r["convention"])
        rows.append({"model_flops": int(model), "hardware_flops": int(hardware)})
    text = ("Model FLOPs = forward + backward; hardware FLOPs add what is run again: what "
            "the model or formula recomputes itself (reversible layers, flash attention's "
            "scores, Megatron's activation recomputation)"
            + (" and, --recompute checkpoint, every layer's forward once more"
               if req.recompute == "checkpoint" else "")
            + "; MFU and HFU divide them by time x peak (" + ut.SOURCE + ").")
    if not req.timed:
        return {"rows": rows, "text": text, "peak": None}
    acc, dtype, peak = _peak(req)
    std = rows[0]
    step = req.step_time
    if req.mfu is not None:
        step = ut.utilisations(std["model_flops"], std["hardware_flops"], peak,
                               mfu=req.mfu)["step_s"]
    for r, row in zip(recs, rows):
        if row["model_flops"] is None:
            row.update(mfu=None, hfu=None)
            continue
        try:
            got = ut.utilisations(row["model_flops"], row["hardware_flops"], peak, step_s=step)
        except ut.UtilisationError as err:
            if req.mfu is None:
                raise
            raise ut.UtilisationError("--mfu", req.mfu, err.allowed.replace(
                "its", f"by {r['convention']}'s count the step's", 1)) from None
        row.update(mfu=got["mfu"], hfu=got["hfu"], step_s=step, accelerator=acc,
                   dtype=dtype, peak_flops=peak)
    text += (f" MFU and HFU on one {acc} at its {dtype} peak {peak:.3g} FLOP/s, a step of "
             f"{step:.3g} s" + (f" (our MFU {req.mfu:g} implies it)" if req.mfu is not None
                                else "") + ".")
    return {"rows": rows, "text": text, "peak": peak}


def _peak(req: ConventionsRequest) -> tuple:
    """(device name, dtype, peak FLOP/s) of ``req.accelerator`` in ``req.dtype`` (auto:
    the device's training precision)."""
    from comparator.cost import pricing as cm
    from comparator.run.steps import accelerator, peak_of
    acc = accelerator(req.accelerator)
    dtype, peak = peak_of(acc, cm.resolve_dtype(req.dtype, acc))
    return acc.name, dtype, peak


__all__ = ["ConventionsResult", "conventions"]
