"""The ``roofline`` command: where one training step's time goes on a device, per term --
by the time model of the compiled step (default) or the unfused roofline of the traced
one.  Parses the options into a ``RooflineRequest``, runs it (``run.steps``) and renders."""
from __future__ import annotations

from comparator.run import steps
from comparator.run.steprequests import RooflineRequest
from comparator.report import tables
from comparator.cli.args import build, positive_int, seq_list, size_of


def roofline_request(a) -> RooflineRequest:
    return build(RooflineRequest, a, arch=a.arch, seq=seq_list(a.seq),
                 accelerator=a.accelerator, accelerators_file=a.accelerators, preset=a.preset,
                 batch=positive_int("--batch", a.batch), dtype=a.dtype,
                 top=positive_int("--top", a.top) if a.top is not None else None,
                 size=size_of(a), time_model=a.time_model, profile=a.profile, db=a.db,
                 convention=a.convention, model=a.model)


def cmd_roofline(a) -> str:
    req = roofline_request(a)
    res = steps.roofline(req)
    if req.time_model == "roofline":
        return _fused(a, req, res)
    rows, summary, acc, r = res.rows, res.summary, res.accelerator, res.roofline
    if a.format == "json":
        return tables.render(rows, "json")
    shown = [{"term": x["term"], "FLOPs": x["flops"], "bytes": tables.si(x["bytes"]) + "B",
              "compute s": x["compute_s"], "memory s": x["memory_s"],
              "roofline s": x["time_s"], "share": f"{x['share']:.1%}",
              "memory-bound": f"{x['memory_bound_share']:.0%}", "bound": x["bound"]}
             for x in rows]
    t = r.total
    unsup = ", ".join(f"{k} x{v}" for k, v in r.unsupported.items()) or "none"
    cap = (f"{summary['arch']}:{res.preset}, seq {req.seq}, batch {req.batch}, training step "
           f"on {acc.name} ({req.dtype}): roofline {t.time_s:.3g} s per step, compute alone "
           f"{t.compute_s:.3g} s, memory alone {t.memory_s:.3g} s; utilisation bound (matmul "
           f"FLOPs / peak / roofline) {r.mfu_bound:.1%}.  Per equation max(FLOPs / peak, "
           f"bytes / {acc.memory_bandwidth_gbs:g} GB/s), matmuls at the {req.dtype} peak, "
           f"other FLOPs at the vector (fp32) peak; unfused: every equation reads and writes "
           f"memory, views move nothing; an upper bound on time.  Unsupported primitives: "
           f"{unsup}." + _convention(summary) + _model(summary))
    return tables.render(shown, a.format, cap, label="tab:roofline")


def _convention(summary: dict) -> str:
    if summary["convention"] == "standard":
        return ""
    from comparator.count.conventions import LABELS
    return (f"  By the {LABELS[summary['convention']]} convention the step is "
            f"{summary['convention_train_flops']:.3g} training FLOPs (its whole formula; the "
            f"rows above stay the traced step's): utilisation bound "
            f"{summary['mfu_bound_convention']:.1%}.")


def _model(summary: dict) -> str:
    """A user's model: where its terms come from, its unsupported primitives."""
    if "model" not in summary:
        return ""
    unsup = ", ".join(f"{k} x{v}" for k, v in sorted(summary["unsupported"].items()))
    where = f" ({summary['model']})" if summary["model"] != summary["arch"] else ""
    return (f"  Model {summary['arch']}{where}: FLOPs of its traced training "
            f"step (all scope); terms are its term scopes, else the primitive (unfused) or "
            f"the compiled region's kind (xla/..., time model); unsupported primitives: "
            f"{unsup or 'none'}.")


def _fused(a, req, res) -> str:
    """``roofline`` by the time model: seconds per term, their memory-bound share and the
    utilisation the step reaches, beside each term's training FLOPs."""
    from comparator.cost import steptime
    rows, summary, st, acc = res.rows, res.summary, res.step, res.accelerator
    conv_text = ""
    if req.convention != "standard":
        conv_text = (f"  By the {req.convention} convention the step is "
                     f"{summary['convention_train_flops']:.3g} training FLOPs: "
                     f"{summary['utilisation_convention']:.1%} of the {req.dtype} peak in the "
                     f"same time.")
    if a.format == "json":
        return tables.render([{**r, **(summary if r["term"] == "total" else {})}
                              for r in rows], "json")
    shown = [{**r, "share": f"{r['share']:.1%}", "memory-bound": f"{r['memory-bound']:.0%}"}
             for r in rows]
    b = st.bound_share
    cap = (f"{summary['arch']}:{res.preset}, seq {req.seq}, batch {req.batch}, training step "
           f"on {acc.name} ({req.dtype}, profile {st.device}, "
           f"{'calibrated' if st.calibrated else 'uncalibrated: datasheet x sourced fractions'}"
           f"): {st.total_s:.3g} s per step by the time model, "
           f"{b.get('memory', 0):.0%} of it in memory-bound regions, "
           f"{b.get('overhead', 0):.0%} overhead-bound; achieved utilisation "
           f"{st.utilisation:.1%} of the best matmul rate.  Each compiled region takes "
           f"max(FLOPs / achievable rate for its kind and shape, bytes it moves / achievable "
           f"bandwidth) + a per-region overhead; {steptime.COMPILER_NOTE}; terms are the "
           f"FLOP breakdown's.  --time-model unfused: every traced equation through memory."
           + (f"  Unmodelled ops (bytes only): {st.unknown}." if st.unknown else "")
           + conv_text + _model(summary))
    return tables.render(shown, a.format, cap, label="tab:roofline")


__all__ = ["cmd_roofline", "roofline_request"]
