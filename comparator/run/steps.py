"""One model's training step, term by term: the computation behind ``comparator explain``
(``explain``: FLOPs per term by each method, with an accelerator each term's predicted
seconds) and ``comparator roofline`` (``roofline``: where the step's time goes on a device,
by the time model of the compiled step or the unfused roofline of the traced one).

Each takes its request value (``steprequests``) and returns the rows and what a caption
needs; a value that needs the catalogue or a device profile is refused here with
``RequestError`` naming the option.
"""
from __future__ import annotations

from dataclasses import dataclass

from comparator.run import sweep as sw
from comparator.run.costing import Timer
from comparator.run.steprequests import ExplainRequest, RooflineRequest
from comparator.run.sweep import RequestError


@dataclass(frozen=True)
class ExplainResult:
    """``rows`` (per term, and a total), ``records`` ({method or convention: record}),
    ``preset`` and ``about`` (the architecture's description at this length) of the model;
    with an accelerator, ``step`` (its ``StepTime``) and the catalogue ``accelerator``."""
    rows: list
    records: dict
    preset: str
    about: str = ""
    step: object = None
    accelerator: object = None


@dataclass(frozen=True)
class RooflineResult:
    """``rows`` (per term, slowest first, and a total row), the ``summary`` of the step
    (the JSON fields of the total row), the ``accelerator`` and ``preset``; the time model's
    ``step`` (``StepTime``) and ``peak`` FLOP/s, or the unfused ``roofline``."""
    rows: list
    summary: dict
    accelerator: object
    preset: str
    step: object = None
    peak: float | None = None
    roofline: object = None


def accelerator(name: str, overrides: str | None = None):
    """The catalogue entry ``name`` (with an overrides file)."""
    from comparator.cost.catalogue import CatalogueError, get
    try:
        return get(name, overrides=overrides)
    except CatalogueError as err:
        raise RequestError("--accelerator" if err.field == "accelerator" else err.field,
                           err.value, err.allowed) from None


def peak_of(acc, dtype: str) -> tuple[str, float]:
    """(the catalogue's dtype key, ``acc``'s dense peak in it): a dtype the device lacks
    is refused naming ``--dtype``."""
    from comparator.cost.catalogue import CatalogueError
    from comparator.cost.pricing import DTYPE_BYTES, dtype_key
    key = dtype_key(dtype)
    try:
        if key not in DTYPE_BYTES:
            raise CatalogueError("--dtype", dtype, "a training dtype: " + ", ".join(DTYPE_BYTES))
        return key, acc.peak(key)
    except CatalogueError as err:
        raise RequestError("--dtype", dtype, err.allowed) from None


def device_profile(timer: Timer, acc):
    """The device's profile for the time model (a device without one refused)."""
    from comparator.cost.pricing import CostError
    try:
        return timer.profile(acc)
    except CostError as err:
        raise RequestError(err.field, err.value, err.allowed) from None


def predict_one(acc, mod, cfg, seq: int, batch: int, dtype: str, profile=None, db=None):
    """``(StepTime, peak FLOP/s)`` of one step on ``acc`` in ``dtype`` by the time model,
    for the one-point commands (roofline, explain)."""
    from comparator.cost import steptime
    key, peak = peak_of(acc, dtype)
    timer = Timer("roofline", profile, db)
    prof = device_profile(timer, acc)
    return steptime.predict(mod, cfg, seq, batch, key, prof, timer._store()), peak


def timed_rows(rows: list, st) -> list:
    """``rows`` of FLOPs per term with each term's predicted seconds and memory-bound
    share, and a row for each compiled region's term outside every FLOP term (copies,
    layout changes), before the total."""
    out = []
    for r in rows:
        t = st.total_s if r["term"] == "total" else st.term_s.get(r["term"], 0.0)
        mem = st.memory_share if r["term"] == "total" else st.term_memory_share.get(r["term"], 0)
        out.append({**r, "time_s": t, "memory_bound": mem})
    for k in sorted(set(st.term_s) - {r["term"] for r in rows}):
        out.insert(-1, {"term": k, "time_s": st.term_s[k],
                        "memory_bound": st.term_memory_share.get(k, 0.0)})
    return out


def term_rows(pt, scope: str, methods=("analytic", "traced"), trace: str = "fast",
            convention: str = "standard"):
    """Per term: forward and training FLOPs by each method and, with both, the difference
    (traced - analytic).  With a paper's ``convention``: ours (``standard``) beside that
    convention's terms, diff = convention - standard (how much of a gap is convention)."""
    sw.check_convention(convention, methods)
    if convention != "standard":
        sw.require_defined(convention, pt.arch, pt.model.cfg)
        recs = {"standard": sw.analytic(pt, scope),
                convention: sw.analytic(pt, scope, convention)}
    else:
        recs = {m: (sw.analytic(pt, scope) if m == "analytic" else sw.traced(pt, scope, trace))
                for m in methods}
    terms = sorted(set().union(*(r["train_breakdown"] for r in recs.values())))
    rows = []
    for term in terms + ["total"]:
        row = {"term": term}
        for m, r in recs.items():
            row[f"{m}_fwd"] = r["fwd_flops"] if term == "total" else r["breakdown"].get(term, 0)
            row[f"{m}_train"] = (r["train_flops"] if term == "total"
                                 else r["train_breakdown"].get(term, 0))
        if len(recs) == 2:
            a, b = recs
            row["diff_fwd"] = row[f"{b}_fwd"] - row[f"{a}_fwd"]
            row["diff_train"] = row[f"{b}_train"] - row[f"{a}_train"]
        rows.append(row)
    return rows, recs


def explain(req: ExplainRequest) -> ExplainResult:
    """Per term: forward and training FLOPs by each method of ``req`` (see
    ``term_rows``), with an accelerator the time model's seconds beside them."""
    if req.model is not None:
        return _explain_model(req)
    mod, preset, cfg = sw.resolve(req.arch, req.preset)
    pt = sw.Point(req.arch, preset, req.seq, req.batch, cfg)
    rows, recs = term_rows(pt, req.scope, req.methods, req.trace, req.convention)
    st = acc = None
    if req.accelerator:
        acc = accelerator(req.accelerator)
        st, _ = predict_one(acc, mod, cfg, pt.seq, pt.batch, req.dtype, req.profile, req.db)
        rows = timed_rows(rows, st)
    about = getattr(mod, "describe", lambda cfg, seq: "")(cfg, req.seq)
    return ExplainResult(rows, recs, preset, about, st, acc)


def model_rows(rec: dict) -> list:
    """Per term of a user's model (and a total): traced forward and training FLOPs and
    each as its polynomial in n (empty where there is none)."""
    fwd_n, train_n = rec.get("breakdown_formula") or {}, rec.get("train_breakdown_formula") or {}
    rows = []
    for term in sorted(set(rec["breakdown"]) | set(rec["train_breakdown"])) + ["total"]:
        total = term == "total"
        rows.append({"term": term,
                     "traced_fwd": rec["fwd_flops"] if total else rec["breakdown"].get(term, 0),
                     "traced_train": (rec["train_flops"] if total
                                      else rec["train_breakdown"].get(term, 0)),
                     "fwd_in_n": (rec["formula"] if total else fwd_n.get(term)) or "",
                     "train_in_n": (rec["train_formula"] if total else train_n.get(term))
                     or ""})
    return rows


def _user_time(req, rec, acc):
    """(``StepTime``, peak) of a user's step on ``acc`` by the time model."""
    from comparator.run import usermodel as um
    key, peak = peak_of(acc, req.dtype)
    prof = device_profile(Timer("roofline", req.profile, req.db), acc)
    step = um.UserStep(req.model, um.step_terms(rec))
    return step.step_time(req.seq, req.batch, key, prof), peak


def _explain_model(req: ExplainRequest) -> ExplainResult:
    """A user's model per term: its traced counts and their closed forms in n."""
    from comparator.run import usermodel as um
    (rec,), c = um.records(req.model, [req.seq], req.batch, req.scope, req.trace)
    rows, st, acc = model_rows(rec), None, None
    if req.accelerator:
        acc = accelerator(req.accelerator)
        st, _ = _user_time(req, rec, acc)
        rows = timed_rows(rows, st)
    return ExplainResult(rows, {"traced": rec}, um.PRESET, c.note, st, acc)


def roofline(req: RooflineRequest) -> RooflineResult:
    """Where the training step of ``req``'s model goes on its accelerator, per term."""
    acc = accelerator(req.accelerator, req.accelerators_file)
    if req.model is not None:
        return _roofline_model(req, acc)
    mod, preset, cfg = sw.resolve(req.arch, req.preset)
    if req.size is not None:
        m = sw.resized(req.arch, preset, cfg, req.size)
        preset, cfg = m.preset, m.cfg
    pt = sw.Point(req.arch, preset, req.seq, req.batch, cfg)
    sw.require_defined(req.convention, req.arch, cfg)     # before any step is compiled
    if req.time_model == "roofline":
        return _fused(req, pt, mod, acc)
    from comparator.cost import pricing as cm
    from comparator.cost import roofline as rl
    try:
        r = rl.model_roofline(mod, cfg, req.seq, req.batch, acc, req.dtype)
    except cm.CostError as err:
        raise RequestError(err.field, err.value, err.allowed) from None
    rows = rl.rows(r, req.top)
    t = r.total
    summary = {"arch": req.arch, "preset": preset, "seq_len": req.seq, "batch": req.batch,
               "accelerator": acc.name, "dtype": req.dtype, "mfu_bound": r.mfu_bound,
               "compute_only_s": t.compute_s, "memory_only_s": t.memory_s,
               "unsupported": r.unsupported, "convention": req.convention}
    if req.convention != "standard":  # the paper's whole formula over the same roofline time
        conv = sw.analytic(pt, "all", req.convention)["train_flops"]
        summary.update(convention_train_flops=conv,
                       mfu_bound_convention=rl.utilisation(conv, r))
    rows[-1].update(summary)
    return RooflineResult(rows, summary, acc, preset, roofline=r)


def _fused_rows(st, rec: dict, top: int | None) -> list:
    """The time model's seconds per term (the ``top`` slowest), their share and
    memory-bound share, beside each term's training FLOPs (of ``rec``), and a total."""
    flops = rec["train_breakdown"]
    order = sorted(st.term_s, key=lambda k: -st.term_s[k])
    order = order[:top] if top else order
    rows = [{"term": k, "train FLOPs": flops.get(k, 0), "time s": st.term_s[k],
             "share": st.term_s[k] / st.total_s,
             "memory-bound": st.term_memory_share.get(k, 0.0)} for k in order]
    rows.append({"term": "total", "train FLOPs": rec["train_flops"], "time s": st.total_s,
                 "share": 1.0, "memory-bound": st.memory_share})
    return rows


def _fused_summary(req, pt, acc, st) -> dict:
    from comparator.cost import steptime
    return {"arch": pt.arch, "preset": pt.preset, "seq_len": pt.seq, "batch": pt.batch,
            "accelerator": acc.name, "dtype": req.dtype, "time_model": st.time_model,
            "profile": st.device, "calibrated": st.calibrated,
            "achieved_utilisation": st.utilisation, "bound_share": st.bound_share,
            "unmodelled_ops": st.unknown, "convention": req.convention,
            "regions": steptime.COMPILER_NOTE}


def _roofline_model(req: RooflineRequest, acc) -> RooflineResult:
    """A user's step: the time model of it compiled here, or its unfused roofline; the
    FLOPs are its traced step's (all scope)."""
    from comparator.run import usermodel as um
    (rec,), c = um.records(req.model, [req.seq], req.batch, "all")
    pt = sw.Point(c.name, um.PRESET, req.seq, req.batch)
    extra = {"model": req.model, "unsupported": rec["unsupported"]}
    if req.time_model == "roofline":
        st, peak = _user_time(req, rec, acc)
        return RooflineResult(_fused_rows(st, rec, req.top),
                              {**_fused_summary(req, pt, acc, st), **extra}, acc, um.PRESET,
                              st, peak)
    from comparator.cost import pricing as cm
    from comparator.cost import roofline as rl
    from comparator.count.usermodel import step_program
    try:
        prog, args = step_program(um.build(req.model, req.seq, req.batch))
        r = um.guard(req.model, req.seq, rl.program_roofline, prog, args, acc, req.dtype)
    except cm.CostError as err:
        raise RequestError(err.field, err.value, err.allowed) from None
    rows, t = rl.rows(r, req.top), r.total
    summary = {"arch": pt.arch, "preset": pt.preset, "seq_len": req.seq, "batch": req.batch,
               "accelerator": acc.name, "dtype": req.dtype, "mfu_bound": r.mfu_bound,
               "compute_only_s": t.compute_s, "memory_only_s": t.memory_s,
               "unsupported": r.unsupported, "convention": req.convention,
               "model": req.model}
    rows[-1].update(summary)
    return RooflineResult(rows, summary, acc, um.PRESET, roofline=r)


def _fused(req: RooflineRequest, pt, mod, acc) -> RooflineResult:
    """The time model's seconds per term, their memory-bound share and the utilisation
    the step reaches, beside each term's training FLOPs."""
    st, peak = predict_one(acc, mod, pt.cfg, pt.seq, pt.batch, req.dtype, req.profile,
                           req.db)
    rec = sw.analytic(pt, "all")
    rows = _fused_rows(st, rec, req.top)
    summary = _fused_summary(req, pt, acc, st)
    if req.convention != "standard":    # the paper's whole formula over the same step time
        conv = sw.analytic(pt, "all", req.convention)["train_flops"]
        summary.update(convention_train_flops=conv,
                       utilisation_convention=conv / (peak * st.total_s))
    return RooflineResult(rows, summary, acc, pt.preset, st, peak)


__all__ = ["ExplainResult", "RooflineResult", "accelerator", "device_profile", "explain",
           "model_rows", "peak_of", "predict_one", "roofline", "term_rows", "timed_rows"]
