"""Measurements, a request in and records out: the computation behind ``comparator bench``
(``bench``: real training steps through the results store and, with a scheduler, Dask
workers; ``--predict`` beside the time model's and a flat MFU's predictions),
``bench --kernel attention`` (``kernels``) and ``comparator calibrate`` (``calibrate``,
``show_profile``).  The request values are ``comparator.run.measurerequests``'.
"""
from __future__ import annotations

from dataclasses import dataclass

import architectures

from comparator.run import sweep as sw
from comparator.run import variants
from comparator.run.costing import accelerators
from comparator.run.measurerequests import BenchRequest, CalibrateRequest, KernelBenchRequest
from comparator.run.sweep import RequestError


@dataclass(frozen=True)
class BenchResult:
    """``records`` (one per point measured, skipped or read from the store), the
    ``tally`` (``runner.Tally``: what the store supplied, the points that failed), the
    catalogue ``accelerator`` (or None), the ``peak`` FLOP/s utilisation is against (None:
    measured here), the memory ``limit`` (bytes) and the ``dtype``.  With ``predict``: the
    ``summary`` of the errors, ``fit`` (the index of the record the flat MFU is fitted on)
    and the device ``profile`` predicted with."""
    records: list
    tally: object
    accelerator: object
    peak: float | None
    limit: int | None
    dtype: str
    summary: dict | None = None
    fit: int | None = None
    profile: object = None


def with_convention(r: dict, pt, convention: str) -> dict:
    """A measured record with its FLOP columns (train_flops, achieved_flops, utilisation)
    counted by ``convention``'s whole formula, the traced ones kept beside; a model the
    convention does not define keeps its times, the FLOP columns null, and the reason."""
    if convention == "standard":
        return r
    c = sw.analytic(pt, "all", convention)
    out = {**r, "convention": convention, **({"reason": c["reason"]} if c.get("reason") else {})}
    if r.get("skipped"):
        return out
    f = c["train_flops"]
    achieved = f / r["step_s"] if f is not None else None
    out.update(traced_train_flops=r["train_flops"], traced_utilisation=r["utilisation"],
               train_flops=f, achieved_flops=achieved,
               utilisation=achieved / r["peak_flops"] if achieved and r["peak_flops"] else None)
    return out


def bench_accelerator(name: str | None, overrides: str | None, dtype: str):
    """The catalogue device a bench runs on (its dense peak in ``dtype`` checked), or
    None."""
    from comparator.cost.catalogue import CatalogueError
    if not name:
        return None
    acc = accelerators(name.split(","), overrides)
    if len(acc) != 1:
        raise RequestError("--accelerator", name, "one catalogue device")
    try:
        acc[0].peak(dtype)
    except CatalogueError as err:
        raise RequestError("--accelerator", acc[0].name, err.allowed) from None
    return acc[0]


def store_of(db: str | None, no_cache: bool):
    if no_cache:
        return None
    from comparator.run.store import Store
    return Store(db)


def predict_profile(req: BenchRequest, acc, note=None):
    """The device profile ``predict`` predicts with: ``req.profile`` (which must describe
    this device), else the calibrated profile the store keeps for this device, else a
    quick calibration measured now (``note`` is told; kept in the store)."""
    from comparator.cost.devices import for_device
    from comparator.cost.profile import ProfileError
    from comparator.measure.calibrate import device_name
    device = device_name(acc.name if acc else None)[0]
    try:
        if req.profile:
            return for_device(req.profile, expect=device)
        store = store_of(req.db, req.no_cache)
        p = store.get_profile(device) if store is not None else None
        if p is None:
            from comparator.measure.calibrate import measure
            if note is not None:
                note(f"no calibrated profile of {device} stored: measuring a quick one "
                     "(comparator calibrate measures a full one)")
            p, _ = measure(quick=True, accelerator=acc.name if acc else None)
            if store is not None:
                store.put_profile(p)
        return p
    except ProfileError as err:
        raise RequestError(err.field, err.value, err.allowed) from None


def bench(req: BenchRequest, note=None) -> BenchResult:
    """Every point of ``req`` measured (or read from the store), with ``predict`` beside
    the predictions.  ``note(line)``: told before a quick calibration."""
    if req.model is not None:
        return bench_model(req)
    from comparator.measure import bench as mb
    from comparator.run.runner import Tally
    from comparator.run.store import describe
    dtype, batch, steps, given = req.dtype, req.batch, req.steps, req.memory_limit
    limit = given if given is not None else mb.available_memory()
    models = variants.models(req.archs, req.presets if len(req.archs) == 1 else (), req.sizes,
                             req.attentions)
    seqs = req.seqs
    if req.mfu_fit and req.mfu_fit not in {f"{m.arch}:{s}" for m in models for s in seqs}:
        raise RequestError("--mfu-fit", req.mfu_fit, "ARCH:SEQ of a point to measure: "
                           + ", ".join(dict.fromkeys(f"{m.arch}:{s}" for m in models
                                                     for s in seqs)))
    acc = bench_accelerator(req.accelerator, req.accelerators_file, dtype)
    profile = predict_profile(req, acc, note) if req.predict else None   # before measuring
    peak = acc.peak(dtype) if acc else None
    scheduler, res = req.scheduler, req.worker_resources
    tally = Tally(store_of(req.db, req.no_cache), req.retry_failed)
    where = dict(steps=steps, dtype=dtype, accelerator=acc.name if acc else None,
                 memory_limit=given,     # the limit when given: a default moves
                 machine=f"dask workers with {_resources(res) or 'any resources'}"
                 if scheduler else mb.machine())
    pts = [sw.Point(m.arch, m.preset, s, batch, m.cfg) for m in models for s in seqs]
    # stored as measured (traced FLOPs): the convention only recounts them on the way out
    descs = [describe(p.arch, p.preset, p.cfg, p.seq, batch, "bench", "matmul", "standard",
                      **where) for p in pts]
    found = [tally.lookup(p, d) for p, d in zip(pts, descs)]
    got = {i: rec for i, (rec, _) in enumerate(found) if rec is not None}
    todo = [i for i, (_, pending) in enumerate(found) if pending]
    regions = {}   # predict: the regions of each step compiled here
    if todo and scheduler:   # measured on the cluster's workers, stored here as they land
        from comparator.run.runner import bench_task, dask_map
        spec = (acc.name, peak, acc.sources.get("peaks", "")) if acc else None
        for j, out in dask_map([(bench_task, (pts[i], steps, given, spec, dtype))
                                for i in todo], scheduler, res):
            i = todo[j]
            got[i] = tally.save(pts[i], descs[i], out.get("record"), out.get("error"),
                                out.get("transient", False))
    elif todo:
        peak = peak or mb.device_peak(dtype)   # measured once, for every point
        source = (f"catalogue: {acc.name} {dtype} dense peak ({acc.sources.get('peaks', '')})"
                  if acc else mb.peak_source(dtype))

        def measure(p):
            mod = architectures.get(p.arch)
            keep = (lambda c: regions.__setitem__(p, _regions(c, mod, p))) if req.predict \
                else None
            r = mb.bench_step(mod, p.cfg, p.seq, batch, steps=steps, memory_limit=limit,
                              peak=peak, dtype=dtype, on_compiled=keep)
            r["peak_source"] = source
            if acc is not None:
                r["accelerator"] = acc.name
            r["machine"] = where["machine"]
            return {"arch": p.arch, "preset": p.preset, "accelerator": None, **r}

        for i in todo:
            got[i] = tally.compute(pts[i], descs[i], lambda: measure(pts[i]))
    recs = [with_convention(got[i], pts[i], req.convention) for i in sorted(got)
            if got[i] is not None]
    out = BenchResult(recs, tally, acc, peak, limit, dtype)
    if not req.predict:
        return out
    recs, summary, fit = predicted(req, recs, pts, profile, regions)
    return BenchResult(recs, tally, acc, peak, limit, dtype, summary, fit, profile)


def bench_model(req: BenchRequest) -> BenchResult:
    """A user's training step measured at every length of ``req`` (its factory called
    there, abstract inputs drawn: ``usermodel.step_arguments``), its FLOPs its traced
    step's.  Not kept in the results store (the user's file may change between runs); a
    point that fails is named in ``tally.failures``."""
    from comparator.count.usermodel import StepProgram, count, loss_parts, step_arguments
    from comparator.cost.compiled import compute_dtype
    from comparator.measure import bench as mb
    from comparator.run import usermodel as um
    from comparator.run.runner import Tally
    dtype, batch = req.dtype, req.batch
    recs, c = um.records(req.model, req.seqs, batch, "matmul")
    limit = req.memory_limit if req.memory_limit is not None else mb.available_memory()
    acc = bench_accelerator(req.accelerator, req.accelerators_file, dtype)
    peak = acc.peak(dtype) if acc else mb.device_peak(dtype)
    source = (f"catalogue: {acc.name} {dtype} dense peak ({acc.sources.get('peaks', '')})"
              if acc else mb.peak_source(dtype))
    tally, out = Tally(None), []

    def measure(r):
        model = um.build(req.model, r["seq_len"], batch)
        every = um.guard(req.model, r["seq_len"], count, model, "all", symbolic=False)
        got = mb.bench_program(
            StepProgram(loss_parts(model)[0]),
            lambda: step_arguments(model, compute_dtype(dtype)), r["seq_len"], batch,
            train_flops=r["train_flops"], train_flops_all=every.train_flops,
            params=r["params"], need=2 * 4 * r["params"] + r["activation_bytes"],
            steps=req.steps, memory_limit=limit, peak=peak, dtype=dtype)
        got.update(peak_source=source, machine=mb.machine(),
                   **({"accelerator": acc.name} if acc else {}))
        return {"arch": c.name, "preset": um.PRESET, "accelerator": None, **got,
                "model": req.model, "unsupported": r["unsupported"]}

    for r in recs:
        pt = sw.Point(c.name, um.PRESET, r["seq_len"], batch)
        got = tally.compute(pt, None, lambda: measure(r))
        if got is not None:
            out.append(got)
    return BenchResult(out, tally, acc, peak, limit, dtype)


def _resources(res: dict | None) -> str | None:
    """``NAME=N,...`` as the command line writes worker resources (a key of the store)."""
    if not res:
        return None
    return ",".join(f"{k}={v:g}" for k, v in res.items())


def _regions(compiled, mod, p):
    from comparator.cost.regions import compiled_regions
    return compiled_regions(compiled, mod, p.cfg, p.seq, p.batch)[0]


def predicted(req: BenchRequest, recs, pts, profile, regions) -> tuple[list, dict, int]:
    """(each measured record beside the time model's and the flat MFU's predictions, the
    summary of their errors, the index of the record the MFU is fitted on)."""
    from comparator.cost.regions import step_regions
    from comparator.measure import validate
    point = {(p.arch, p.preset, p.seq): p for p in pts}
    for r in recs:
        p = point[(r["arch"], r["preset"], r["seq_len"])]
        r.update(d_model=p.cfg.d_model, n_layers=p.cfg.n_layers)
    ok = validate.measured(recs)
    if not ok:
        raise RequestError("--predict", True, "at least one measured (not skipped) point")
    fit = _fit_index(req.mfu_fit, recs)

    def regions_of(r):
        p = point[(r["arch"], r["preset"], r["seq_len"])]
        if p not in regions:   # read from the store: compile (not run) the step here
            regions[p] = step_regions(architectures.get(p.arch), p.cfg, p.seq, p.batch,
                                      req.dtype)
        return regions[p]

    recs = validate.predict_records(recs, regions_of, profile, fit)
    return recs, validate.summary(recs), fit


def _fit_index(mfu_fit: str | None, recs) -> int:
    from comparator.measure import validate
    if not mfu_fit:
        return validate.default_fit(recs)
    ok = validate.measured(recs)
    for i, r in enumerate(recs):
        if f"{r['arch']}:{r['seq_len']}" == mfu_fit and r in ok:
            return i
    raise RequestError("--mfu-fit", mfu_fit, "ARCH:SEQ of a measured (not skipped) point: "
                       + ", ".join(f"{r['arch']}:{r['seq_len']}" for r in ok))


def kernels(req: KernelBenchRequest) -> tuple[list, dict]:
    """(records of every kernel variant and length, the measured and FLOP crossovers)."""
    from comparator.measure import kernelbench as kb
    from comparator.measure.bench import available_memory
    limit = req.memory_limit if req.memory_limit is not None else available_memory()
    return kb.run(list(req.seqs), memory_limit=limit, batch=req.batch, heads=req.heads,
                  d_head=req.d_head, chunk=req.chunk, hashes=req.hashes, steps=req.steps)


def show_profile(req: CalibrateRequest):
    """The profile ``calibrate --show`` prints: the ``profile`` file, else the stored
    calibrated profile of ``accelerator`` (else its datasheet one), else this machine's
    stored CPU profile."""
    from comparator.cost.devices import for_device
    from comparator.cost.profile import ProfileError
    from comparator.run.store import Store
    try:
        if req.profile:
            return for_device(req.profile, expect=req.accelerator)
        catalogue = None
        if req.accelerator:
            accelerators(req.accelerator.split(","), req.accelerators_file)   # name, file
            from comparator.cost.catalogue import load
            catalogue = load(overrides=req.accelerators_file)
        return for_device(req.accelerator or "cpu", Store(req.db), catalogue=catalogue,
                          dtype=req.dtypes[0] if req.dtypes else None)
    except ProfileError as err:
        raise RequestError(err.field, err.value, err.allowed) from None


def calibrate(req: CalibrateRequest, progress=None, keep=None):
    """This device measured into a profile (``progress(i, n, what)`` as it goes), given to
    ``keep`` (the CLI writes it out) and then kept in the results store unless
    ``no_store``."""
    from comparator.run.store import Store
    store = None if req.no_store else Store(req.db)   # a bad --db refused before measuring
    from comparator.measure.calibrate import device_name, measure
    name = None
    if req.accelerator:
        if device_name()[1] == "cpu":
            raise RequestError("--accelerator", req.accelerator, "only when measuring an "
                               "accelerator (this runs on the CPU, named by its model)")
        found = accelerators(req.accelerator.split(","), req.accelerators_file)
        if len(found) != 1:
            raise RequestError("--accelerator", req.accelerator, "one catalogue device")
        name = found[0].name
    p, _log = measure(list(req.dtypes or ["fp32"]), quick=req.quick, accelerator=name,
                      progress=progress)
    if keep is not None:
        keep(p)
    if store is not None:
        store.put_profile(p)
    return p


__all__ = ["BenchResult", "bench", "bench_accelerator", "bench_model", "calibrate", "kernels",
           "predict_profile", "predicted", "show_profile", "with_convention"]
