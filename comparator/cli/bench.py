"""The ``bench`` command: measured training steps (``comparator.measure.bench``), through the
results store and, with ``--scheduler``, Dask workers; and ``bench --kernel attention``
(``comparator.measure.kernelbench``)."""
from __future__ import annotations

import architectures

from comparator.run import sweep, variants
from comparator.report import tables
from comparator.cost.catalogue import CatalogueError
from comparator.cli.cost import _pct, accelerators_of
from comparator.cli.args import arch_list, positive_int, seq_list, size_grid
from comparator.count.conventions import LABELS
from comparator.cli.args import UsageError

DTYPE_NOTE = {"bf16": "; fp32 parameters cast to bf16 in the step, fp32 loss",
              "fp16": "; fp32 parameters cast to fp16 in the step, fp32 loss",
              "tf32": "; fp32 with TensorFloat-32 matmuls where the device has them"}


def cmd_bench(a) -> str:
    from comparator.cost import compiled
    from comparator.measure import bench
    from comparator.cli.run import open_store, report, runner_options
    from comparator.run.runner import Tally
    from comparator.run.store import describe
    from comparator.cli.args import large_int
    if a.kernel is not None:
        return _kernel_bench(a)
    convention = sweep.check_convention(a.convention)
    if not a.predict and (a.profile or a.mfu_fit):
        raise UsageError("--profile" if a.profile else "--mfu-fit", a.profile or a.mfu_fit,
                         "only with --predict")
    if a.predict and convention != "standard":
        raise UsageError("--convention", a.convention, "standard with --predict (the time "
                                                       "model times the traced step, ours)")
    archs = arch_list(a.arch) if a.arch else []
    if not archs:
        raise UsageError("--arch", a.arch, "one or more architectures, or all")
    try:
        dtype = compiled.check_dtype(a.dtype)
    except ValueError:
        raise UsageError("--dtype", a.dtype, ", ".join(compiled.DTYPES)) from None
    seqs, batch = seq_list(a.seq), positive_int("--batch", a.batch)
    steps = positive_int("--steps", a.steps)
    given = large_int("--memory-limit", a.memory_limit) if a.memory_limit is not None else None
    limit = given if given is not None else bench.available_memory()
    models = variants.models(archs, [a.preset] if a.preset and len(archs) == 1 else [],
                             size_grid(a), tuple(x for x in (a.attention or "").split(",") if x))
    if a.mfu_fit and a.mfu_fit not in {f"{m.arch}:{s}" for m in models for s in seqs}:
        raise UsageError("--mfu-fit", a.mfu_fit, "ARCH:SEQ of a point to measure: " + ", ".join(
            dict.fromkeys(f"{m.arch}:{s}" for m in models for s in seqs)))
    acc = _accelerator(a, dtype)
    profile = _profile(a, acc) if a.predict else None   # refused before anything is measured
    peak = acc.peak(dtype) if acc else None
    opts = runner_options(a, jobs=False)
    scheduler, res = opts["scheduler"], opts["worker_resources"]
    tally = Tally(open_store(a), a.retry_failed)
    where = dict(steps=steps, dtype=dtype, accelerator=acc.name if acc else None,
                 memory_limit=a.memory_limit,     # the limit when given: a default moves
                 machine=f"dask workers with {a.worker_resources or 'any resources'}"
                 if scheduler else bench.machine())
    pts = [sweep.Point(m.arch, m.preset, s, batch, m.cfg) for m in models for s in seqs]
    # stored as measured (traced FLOPs): the convention only recounts them on the way out
    descs = [describe(p.arch, p.preset, p.cfg, p.seq, batch, "bench", "matmul", "standard",
                      **where) for p in pts]
    found = [tally.lookup(p, d) for p, d in zip(pts, descs)]
    got = {i: rec for i, (rec, _) in enumerate(found) if rec is not None}
    todo = [i for i, (_, pending) in enumerate(found) if pending]
    compiled = {}   # --predict: the regions of each step compiled here
    if todo and scheduler:   # measured on the cluster's workers, stored here as they land
        from comparator.run.runner import bench_task, dask_map
        spec = (acc.name, peak, acc.sources.get("peaks", "")) if acc else None
        for j, out in dask_map([(bench_task, (pts[i], steps, given, spec, dtype))
                                for i in todo], scheduler, res):
            i = todo[j]
            got[i] = tally.save(pts[i], descs[i], out.get("record"), out.get("error"),
                                out.get("transient", False))
    elif todo:
        peak = peak or bench.device_peak(dtype)   # measured once, for every point
        source = (f"catalogue: {acc.name} {dtype} dense peak ({acc.sources.get('peaks', '')})"
                  if acc else bench.peak_source(dtype))

        def measure(p):
            mod = architectures.get(p.arch)
            keep = (lambda c: compiled.__setitem__(p, _regions(c, mod, p))) if a.predict \
                else None
            r = bench.bench_step(mod, p.cfg, p.seq, batch, steps=steps, memory_limit=limit,
                                 peak=peak, dtype=dtype, on_compiled=keep)
            r["peak_source"] = source
            if acc is not None:
                r["accelerator"] = acc.name
            r["machine"] = where["machine"]
            return {"arch": p.arch, "preset": p.preset, "accelerator": None, **r}

        for i in todo:
            got[i] = tally.compute(pts[i], descs[i], lambda: measure(pts[i]))
    recs = [with_convention(got[i], pts[i], convention) for i in sorted(got)
            if got[i] is not None]
    report(a, tally, "benchmark")
    if a.predict:
        return _predicted(a, recs, pts, profile, dtype, compiled)
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
           + (f"{acc.name}'s catalogue {dtype} peak" if acc else bench.peak_source(dtype))
           + f". Points needing more than {limit / 1e9:.3g} GB (estimated) are skipped."
           if limit else ".")
    return tables.render(rows, a.format, cap, label="tab:bench")


def with_convention(r: dict, pt, convention: str) -> dict:
    """A measured record with its FLOP columns (train_flops, achieved_flops, utilisation)
    counted by ``convention``'s whole formula, the traced ones kept beside; a model the
    convention does not define keeps its times, the FLOP columns null, and the reason."""
    if convention == "standard":
        return r
    c = sweep.analytic(pt, "all", convention)
    out = {**r, "convention": convention, **({"reason": c["reason"]} if c.get("reason") else {})}
    if r.get("skipped"):
        return out
    f = c["train_flops"]
    achieved = f / r["step_s"] if f is not None else None
    out.update(traced_train_flops=r["train_flops"], traced_utilisation=r["utilisation"],
               train_flops=f, achieved_flops=achieved,
               utilisation=achieved / r["peak_flops"] if achieved and r["peak_flops"] else None)
    return out


def _kernel_bench(a) -> str:
    from comparator.measure import kernelbench as kb
    from comparator.measure.bench import available_memory
    from comparator.cli.args import int_list, large_int
    if a.kernel != "attention":
        raise UsageError("--kernel", a.kernel, "attention")
    if sweep.check_convention(a.convention) != "standard":
        raise UsageError("--convention", a.convention, "standard with --kernel (the attention "
                         "kernels alone are not a model a paper's formula counts)")
    if a.arch or a.attention:
        raise UsageError("--arch" if a.arch else "--attention", a.arch or a.attention,
                         "not with --kernel (the kernels are benchmarked alone, every one)")
    seqs = seq_list(a.seq)
    kw = dict(batch=positive_int("--batch", a.batch),
              heads=positive_int("--heads", a.heads or "4"),
              d_head=positive_int("--d-head", a.d_head), chunk=positive_int("--chunk", a.chunk),
              hashes=tuple(int_list("--hashes", a.hashes)), steps=positive_int("--steps", a.steps))
    limit = (large_int("--memory-limit", a.memory_limit) if a.memory_limit is not None
             else available_memory())
    recs, cross = kb.run(seqs, memory_limit=limit, **kw)
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


def _accelerator(a, dtype):
    """The catalogue device this runs on (``--accelerator``; its dense peak in the dtype
    is checked), or None."""
    if not a.accelerator:
        return None
    acc = accelerators_of(a)
    if len(acc) != 1:
        raise UsageError("--accelerator", a.accelerator, "one catalogue device")
    try:
        acc[0].peak(dtype)
    except CatalogueError as err:
        raise UsageError("--accelerator", acc[0].name, err.allowed) from None
    return acc[0]


def _profile(a, acc):
    """The device profile ``--predict`` predicts with: ``--profile FILE`` (which must
    describe this device), else the calibrated profile the store keeps for this device,
    else a quick calibration measured now (``comparator calibrate --quick``, said on
    stderr and kept in the store)."""
    import sys

    from comparator.cli.run import open_store
    from comparator.cost.devices import for_device
    from comparator.cost.profile import ProfileError
    from comparator.measure.calibrate import device_name
    device = device_name(acc.name if acc else None)[0]
    try:
        if a.profile:
            return for_device(a.profile, expect=device)
        store = None if a.no_cache else open_store(a)
        p = store.get_profile(device) if store is not None else None
        if p is None:
            from comparator.measure.calibrate import measure
            sys.stderr.write(f"comparator bench: no calibrated profile of {device} stored: "
                             "measuring a quick one (comparator calibrate measures a full "
                             "one)\n")
            p, _ = measure(quick=True, accelerator=acc.name if acc else None)
            if store is not None:
                store.put_profile(p)
        return p
    except ProfileError as err:     # the CLI reports UsageErrors (exit 2)
        raise UsageError(err.field, err.value, err.allowed) from None


def _regions(compiled, mod, p):
    from comparator.cost.regions import compiled_regions
    return compiled_regions(compiled, mod, p.cfg, p.seq, p.batch)[0]


def _predicted(a, recs, pts, profile, dtype, compiled) -> str:
    """``bench --predict``: each measured point beside the time model's and the flat
    MFU's predictions (``measure.validate``)."""
    from comparator.cost.regions import step_regions
    from comparator.measure import validate
    point = {(p.arch, p.preset, p.seq): p for p in pts}
    for r in recs:
        p = point[(r["arch"], r["preset"], r["seq_len"])]
        r.update(d_model=p.cfg.d_model, n_layers=p.cfg.n_layers)
    ok = validate.measured(recs)
    if not ok:
        raise UsageError("--predict", True, "at least one measured (not skipped) point")
    fit = _fit_index(a, recs)

    def regions_of(r):
        p = point[(r["arch"], r["preset"], r["seq_len"])]
        if p not in compiled:   # read from the store: compile (not run) the step here
            compiled[p] = step_regions(architectures.get(p.arch), p.cfg, p.seq, p.batch, dtype)
        return compiled[p]

    recs = validate.predict_records(recs, regions_of, profile, fit)
    summ = validate.summary(recs)
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
    ref = recs[fit]
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


def _fit_index(a, recs) -> int:
    from comparator.measure import validate
    if not a.mfu_fit:
        return validate.default_fit(recs)
    ok = validate.measured(recs)
    for i, r in enumerate(recs):
        if f"{r['arch']}:{r['seq_len']}" == a.mfu_fit and r in ok:
            return i
    raise UsageError("--mfu-fit", a.mfu_fit, "ARCH:SEQ of a measured (not skipped) point: "
                     + ", ".join(f"{r['arch']}:{r['seq_len']}" for r in ok))
