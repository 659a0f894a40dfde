"""The ``explain`` command: where the FLOPs of one model go, term by term (analytic beside
traced, or ours beside a paper's convention), with ``--accelerator`` each term's predicted
seconds.  Parses the options into an ``ExplainRequest``, runs it (``run.steps``) and
renders the table."""
from __future__ import annotations

from comparator.run import steps
from comparator.run.steprequests import ExplainRequest
from comparator.report import tables
from comparator.cli.args import build, given, positive_int, seq_list


def explain_request(a) -> ExplainRequest:
    return build(ExplainRequest, a, arch=a.arch, seq=seq_list(a.seq), preset=a.preset,
                 batch=positive_int("--batch", a.batch), scope=a.scope, methods=a.method,
                 trace=a.trace, convention=a.convention, accelerator=a.accelerator,
                 profile=a.profile, db=a.db, model=a.model, **given(dtype=a.dtype))


def time_caption(st, acc, dtype: str) -> str:
    """The caption's sentence on the time column (``explain --accelerator``)."""
    from comparator.cost import steptime
    return (f"Time on {acc.name} ({dtype}, {st.time_model} time model, profile "
            f"{st.device}, {'calibrated' if st.calibrated else 'uncalibrated'}): "
            f"{st.total_s:.3g} s per step, {st.memory_share:.0%} memory-bound; "
            f"{steptime.COMPILER_NOTE}. ")


def cmd_explain(a) -> str:
    req = explain_request(a)
    res = steps.explain(req)
    recs, rows = res.records, res.rows
    timed = time_caption(res.step, res.accelerator, req.dtype) if res.step else ""
    if req.model is not None:
        rec = recs["traced"]
        cap = (f"{rec['arch']}:{res.preset}, seq {req.seq}, batch {req.batch}; per term, "
               f"forward and training FLOPs of the traced step and each as a polynomial in "
               f"the length n (in_n; empty where there is none). "
               + tables.model_text([rec], res.about) + " " + timed
               + tables.caption(req.scope, "sequence", req.batch))
        return tables.render(rows, a.format, cap, label="tab:explain")
    gaps = tables.not_defined_text(recs.values())
    unsupported = {k: v for r in recs.values() for k, v in r["unsupported"].items()}
    note = ", ".join(f"{k} x{v}" for k, v in unsupported.items()) or "none"
    both = len(req.methods) == 2
    cap = (f"{req.arch}:{res.preset}, seq {req.seq}, batch {req.batch}; "
           + (f"{res.about}; " if res.about else "") + "per term, forward and "
           f"training FLOPs" + (f"; diff = {req.convention} - standard (both analytic)"
                                if req.paper else "; diff = traced - analytic" if both else "")
           + f"; unsupported primitives: {note}. " + timed + tables.caption(
               req.scope, "sequence", req.batch, convention=req.convention)
           + (" " + gaps if gaps else ""))
    return tables.render(rows, a.format, cap, label="tab:explain")


__all__ = ["cmd_explain", "explain_request", "time_caption"]
