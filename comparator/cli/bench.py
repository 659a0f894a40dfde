"""The ``bench`` command: measured training steps and ``bench --kernel attention``.  Parses
the options into a ``BenchRequest`` or ``KernelBenchRequest``, runs it
(``comparator.run.measuring``: the results store, Dask workers, the predictions) and
renders the tables."""
from __future__ import annotations

import sys

from comparator.run import measuring
from comparator.run.measurerequests import BenchRequest, KernelBenchRequest
from comparator.report import tables
from comparator.cli.cost import _pct
from comparator.cli.args import (UsageError, arch_list, build, int_list, large_int,
                                 positive_int, seq_list, size_grid)
from comparator.count.conventions import LABELS

DTYPE_NOTE = {"bf16": "; fp32 parameters cast to bf16 in the step, fp32 loss",
              "fp16": "; fp32 parameters cast to fp16 in the step, fp32 loss",
              "tf32": "; fp32 with TensorFloat-32 matmuls where the device has them"}


def _note(line: str) -> None:
    sys.stderr.write(f"comparator bench: {line}\n")


def bench_request(a) -> BenchRequest:
    from comparator.cli.run import runner_options
    run = runner_options(a, jobs=False)
    run.pop("jobs")
    return build(BenchRequest, a, archs=arch_list(a.arch) if a.arch else (),
                 seqs=seq_list(a.seq), presets=a.preset or (), sizes=size_grid(a),
                 batch=positive_int("--batch", a.batch), steps=positive_int("--steps", a.steps),
                 dtype=a.dtype, accelerator=a.accelerator, accelerators_file=a.accelerators,
                 memory_limit=(large_int("--memory-limit", a.memory_limit)
                               if a.memory_limit is not None else None),
                 predict=a.predict, profile=a.profile, mfu_fit=a.mfu_fit,
                 convention=a.convention, model=a.model, attentions=a.attention, **run)


def cmd_bench(a) -> str:
    from comparator.cli.run import report
    from comparator.measure.bench import peak_source
    if a.kernel is not None:
        return _kernel_bench(a)
    req = bench_request(a)
    res = measuring.bench(req, note=_note)
    recs, acc, peak, limit = res.records, res.accelerator, res.peak, res.limit
    dtype, batch, steps, convention = req.dtype, req.batch, req.steps, req.convention
    report(a, res.tally, "benchmark")
    if req.predict:
        return _predicted(a, res)
    if a.format == "json":
        return tables.render(recs, "json")
    rows = []
    for r in recs:
        row = {"arch": r["arch"], "preset": r["preset"], "seq": r["seq_len"]}
        if r["skipped"]:
            row["skipped"] = r["skipped"]
        else:
            row.update({"step s": r["step_s"], "min s": r["step_s_min"],
                        "max s": r["step_s_max"], "tokens/s": r["tokens_per_s"],
                        "train FLOPs": r["train_flops"], "achieved FLOPs/s": r["achieved_flops"],
                        "utilisation": _pct(r["utilisation"]),
                        "XLA temp": tables.si(r.get("xla_temp_bytes", 0)) + "B"})
            if "device_peak_bytes" in r:
                row["device peak"] = tables.si(r["device_peak_bytes"]) + "B"
        if r.get("reason"):
            row["note"] = r["reason"]
        rows.append(row)
    cap = (f"Measured {dtype} training steps (loss and gradients{DTYPE_NOTE.get(dtype, '')}), "
           f"batch {batch}: median of "
           f"{steps} steps after one warm-up, min and max beside it; achieved = "
           + ("traced training FLOPs (matmul scope)" if convention == "standard" else
              f"training FLOPs by the {LABELS[convention]} convention (its whole formula; "
              f"the traced count stays in traced_train_flops)")
           + " / median time; utilisation against "
           + (f"{peak:.3g} FLOP/s, " if peak else "")
           + (f"{acc.name}'s catalogue {dtype} peak" if acc else peak_source(dtype))
           + f". Points needing more than {limit / 1e9:.3g} GB (estimated) are skipped."
           if limit else ".")
    if req.model is not None:
        cap += (" " + tables.model_text(recs) if recs else "") + (
            " Not kept in the results store (a model file may change between runs).")
    return tables.render(rows, a.format, cap, label="tab:bench")


def _kernel_bench(a) -> str:
    from comparator.measure import kernelbench as kb
    req = build(KernelBenchRequest, a, seqs=seq_list(a.seq), kernel=a.kernel,
                batch=positive_int("--batch", a.batch),
                heads=positive_int("--heads", a.heads or "4"),
                d_head=positive_int("--d-head", a.d_head), chunk=positive_int("--chunk", a.chunk),
                hashes=tuple(int_list("--hashes", a.hashes)),
                steps=positive_int("--steps", a.steps),
                memory_limit=(large_int("--memory-limit", a.memory_limit)
                              if a.memory_limit is not None else None),
                convention=a.convention)
    for flag, given in (("--arch", a.arch), ("--model", a.model), ("--attention", a.attention)):
        if given:
            raise UsageError(flag, given, "not with --kernel (the kernels are benchmarked "
                                          "alone, every one)")
    recs, cross = measuring.kernels(req)
    kw = {"batch": req.batch, "heads": req.heads, "d_head": req.d_head, "chunk": req.chunk,
          "steps": req.steps}
    if a.format == "json":
        return tables.render([*recs, {"crossovers": cross}], "json")
    base = {(r["variant"], r["seq_len"]): r for r in recs
            if r["variant"].startswith("dense") and not r["skipped"]}
    rows = []
    for r in recs:
        row = {"seq": r["seq_len"], "variant": r["variant"]}
        if r["skipped"]:
            row["skipped"] = r["skipped"]
        else:
            d = base.get((kb.baseline_of(r["variant"]), r["seq_len"]))
            row.update({"fwd s": r["fwd_s"], "fwd+bwd s": r["train_s"],
                        "fwd+bwd FLOPs": r["train_flops"],
                        "time vs dense": (f"{r['train_s'] / d['train_s']:.3g}x" if d else ""),
                        "FLOPs vs dense": (f"{r['train_flops'] / d['train_flops']:.3g}x"
                                           if d else "")})
        rows.append(row)
    show = lambda v: "none in this range" if v is None else f"{v:,}"
    cx = "; ".join(f"{v}: measured {show(c['measured_train'])}, FLOPs {show(c['flops_train'])}"
                   for v, c in cross.items())
    cap = (f"Attention kernels, fp32, batch {kw['batch']} x {kw['heads']} heads of "
           f"{kw['d_head']}, chunks of {kw['chunk']} (LSH buckets by the reference rule: "
           f"2n/chunk down to a power of two, factorised above 128), median of "
           f"{kw['steps']} runs after a warm-up; fwd+bwd = gradient of the output's sum "
           f"w.r.t. every input; FLOPs traced from the same functions (matmul scope); "
           f"flash blocks, local windows, Linformer's k and Performer's features: "
           f"{', '.join(f'{k} {v}' for k, v in kb.SIZES.items())}; vs dense: causal "
           f"kernels against causal dense. Crossover (first length from which a kernel "
           f"stays faster than dense, fwd+bwd): {cx}.")
    return tables.render(rows, a.format, cap, label="tab:kernels")


def _predicted(a, res) -> str:
    """``bench --predict``: each measured point beside the time model's and the flat
    MFU's predictions (``measure.validate``)."""
    recs, summ, profile, dtype = res.records, res.summary, res.profile, res.dtype
    if a.format == "json":
        return tables.render([*recs, {"summary": summ}], "json")
    rows = []
    for r in recs:
        row = {"arch": r["arch"], "preset": r["preset"], "seq": r["seq_len"]}
        if "predicted_step_s" not in r:
            row["skipped"] = r.get("skipped") or "not measured"
        else:
            row.update({"measured s": r["step_s"], "time model s": r["predicted_step_s"],
                        "error": f"{r['error_pct']:+.1f}%",
                        "flat MFU s": r["predicted_step_s_mfu"],
                        "MFU error": f"{r['error_pct_mfu']:+.1f}%",
                        "memory-bound": _pct(r["memory_bound_share"]),
                        "other CPU": _pct(r.get("other_cpu_share"))})
        rows.append(row)
    tm, mf = summ["time_model"], summ["mfu"]
    ref = recs[res.fit]
    ratio = "; ".join(f"{x['arch']}/transformer {x['preset'].partition('@')[2] or x['preset']}"
                      f" seq {x['seq_len']}: measured {x['measured']:.3g}, time model "
                      f"{x['predicted']:.3g}, flat MFU {x['predicted_mfu']:.3g}"
                      for x in summ["ratios"])
    cap = (f"Measured {dtype} training steps (median of {a.steps} after one warm-up) beside "
           f"the time model ({ref['time_model']}: compiled regions of the step on the profile "
           f"of {profile.device}, {'calibrated' if profile.calibrated else 'UNCALIBRATED'}) "
           f"and the flat MFU model (MFU {ref['mfu_fitted']:.1%} of {ref['mfu_peak']:.3g} "
           f"FLOP/s, fitted on {ref['mfu_fit_point']}).  |error|: time model median "
           f"{tm['median_abs_pct']:.1f}%, worst {tm['worst_abs_pct']:.1f}%; flat MFU median "
           f"{mf['median_abs_pct']:.1f}%, worst {mf['worst_abs_pct']:.1f}%.  Other CPU: the "
           f"share of the CPUs other processes used while the steps were timed."
           + (f"  Time ratios: {ratio}." if ratio else ""))
    return tables.render(rows, a.format, cap, label="tab:bench-predict")


__all__ = ["DTYPE_NOTE", "bench_request", "cmd_bench"]
