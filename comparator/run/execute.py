"""A request in, records out: the computation behind ``comparator sweep``, ``plot``,
``cost`` and ``scenario`` and behind ``comparator.sweep`` / ``comparator.cost`` of the Python API.

``sweep(SweepRequest)`` resolves the models (presets, a configuration file, a size grid),
computes the records of every point and method through ``sweep.run`` (traced points
through the results store and workers: ``runner.Tracer``) and prices them on the
request's accelerators.  ``cost(CostRequest)`` prices one model's run.  Both return the
records with what a caption or a caller needs to know (devices skipped, the time model,
the points that failed).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from comparator.run import sweep as sw
from comparator.run import variants
from comparator.run.costing import Timer, priced, time_ratios
from comparator.run.requests import CostRequest, Pricing, SweepRequest
from comparator.run.steprequests import ScenarioRequest
from comparator.run.sweep import RequestError


@dataclass(frozen=True)
class SweepResult:
    """``records`` (the JSON records), ``skipped`` (devices that could not price them,
    with the reason), ``time_model`` (with pricing), ``tracer`` (the traced points'
    ``runner.Tracer``: ``failures``, ``loaded``, ``computed``; None without traced
    points), ``models`` (the models swept); a user's model: ``counted``
    (``usermodel.Counted``: its name, how its lengths were counted)."""
    records: list
    skipped: list = field(default_factory=list)
    time_model: str | None = None
    tracer: object = None
    models: list = field(default_factory=list)
    counted: object = None


@dataclass(frozen=True)
class CostResult:
    """``records`` (one per accelerator priced, or the run's counts without one),
    ``record`` (the model's analytic record at one step), ``steps`` of the run,
    ``skipped`` devices and the ``time_model``."""
    records: list
    record: dict
    steps: int
    skipped: list = field(default_factory=list)
    time_model: str | None = None


def models_of(req: SweepRequest) -> list:
    """The models a sweep request names: its presets (default: each architecture's
    BERT-base-sized one) or the models of its configuration file (those of ``archs``
    when given), each at every size of ``sizes`` and with each of ``attentions``."""
    if req.config:
        from comparator.run.configs import load
        loaded = [sw.Model(arch, label, cfg) for arch, label, cfg in load(req.config)]
        if req.archs:
            loaded = [m for m in loaded if m.arch in set(req.archs)]
        if req.sizes:
            loaded = [sw.resized(m.arch, m.preset, m.cfg, s) for m in loaded for s in req.sizes]
        return [variants.with_attention(m, a) for m in loaded for a in req.attentions] or loaded
    return variants.models(req.archs, req.presets, req.sizes, req.attentions)


def tracer_of(req: SweepRequest):
    """A ``runner.Tracer`` for the traced points of ``req`` (None without any): through
    the results store unless ``no_cache``, in ``jobs`` processes or on ``scheduler``."""
    if not req.traced:
        return None
    store = None
    if not req.no_cache:
        from comparator.run.store import Store
        store = Store(req.db)
    from comparator.run.runner import Tracer
    return Tracer(store, jobs=req.jobs, scheduler=req.scheduler, retry_failed=req.retry_failed,
                  convention=req.convention, resources=req.worker_resources,
                  limits=req.limits)


def sweep(req: SweepRequest, progress=None) -> SweepResult:
    """Records of every model x length x method of ``req`` (baselines first), priced on
    its accelerators when it has ``pricing``.  ``progress(i, n)``: traced points done."""
    if req.model is not None:
        return _model_sweep(req)
    ms = models_of(req)
    tracer = tracer_of(req)
    recs = sw.run(sw.points(ms, req.seqs, req.batch), req.methods, req.scope,
                  progress=progress if req.traced else None, baseline=req.baseline,
                  with_baseline=req.with_baseline, trace=req.trace,
                  convention=req.convention, tracer=tracer)
    if req.pricing is None:
        return SweepResult(recs, tracer=tracer, models=ms)
    cfgs = {(m.arch, m.preset): m.cfg for m in ms}
    for m in ms:
        b = sw.baseline_for(m, req.baseline) if req.with_baseline else None
        if b is not None:
            cfgs[(b.arch, b.preset)] = b.cfg
    model = req.pricing.time_model_for(req.convention)
    timer = Timer(model, req.pricing.profile, req.db)
    recs, skipped = priced(recs, req.pricing, cfgs, timer, req.convention)
    return SweepResult(time_ratios(recs), skipped, model, tracer, ms)


def _model_sweep(req: SweepRequest) -> SweepResult:
    """A user's model at every length (``usermodel.records``), priced when asked: the
    time model compiles its step (``usermodel.UserStep``)."""
    from comparator.run import usermodel as um
    recs, c = um.records(req.model, req.seqs, req.batch, req.scope, req.trace)
    if req.pricing is None:
        return SweepResult(recs, counted=c)
    model = req.pricing.time_model_for(req.convention)
    cfgs = {(c.name, um.PRESET): um.UserStep(req.model, um.step_terms(recs[0]))}
    recs, skipped = priced(recs, req.pricing, cfgs, Timer(model, req.pricing.profile, req.db),
                           req.convention)
    return SweepResult(recs, skipped, model, counted=c)


def cost(req: CostRequest) -> CostResult:
    """The run of ``req``'s model priced on each of its accelerators (none: the run's
    training FLOPs and tokens, no pricing)."""
    from comparator.cost import pricing as cm
    p = req.pricing
    steps = p.steps or cm.tokens_to_steps(p.tokens, req.batch, req.seq)
    accs = p.accelerators
    if accs:   # an unknown device or a bad overrides file refused before any work
        from comparator.run.costing import accelerators
        accelerators(accs, p.accelerators_file)
    if req.model is not None:    # a user's model: its traced record, its step compiled
        from comparator.run import usermodel as um
        (rec,), c = um.records(req.model, [req.seq], req.batch, req.scope)
        key, cfg = (c.name, um.PRESET), um.UserStep(req.model, um.step_terms(rec))
    else:
        arch = req.arch
        _, preset, cfg = sw.resolve(arch, req.preset)
        if req.size is not None and any(v is not None for v in req.size):
            m = sw.resized(arch, preset, cfg, req.size)
            preset, cfg = m.preset, m.cfg
        if req.attention is not None:   # lsh: the Reformer of the Transformer's widths
            m = variants.with_attention(sw.Model(arch, preset, cfg), req.attention)
            arch, preset, cfg = m.arch, m.preset, m.cfg
        sw.require_defined(req.convention, arch, cfg)
        rec = sw.analytic(sw.Point(arch, preset, req.seq, req.batch, cfg), req.scope,
                          req.convention)
        key = (arch, preset)
    if not accs:
        return CostResult([run_counts(rec, steps, p.tokens)], rec, steps)
    model = p.time_model_for(req.convention)
    out, skipped = priced([rec], p, {key: cfg}, Timer(model, p.profile, req.db),
                          req.convention, steps_of=lambda r: steps)
    return CostResult(out, rec, steps, skipped, model)


@dataclass(frozen=True)
class ScenarioResult:
    """``records`` (each run on each accelerator), the scenarios file's ``meta``, the
    ``accelerators`` priced, the ``time_model`` and ``prices``, the ``datetime.date`` the
    runs were also priced at (None: today's prices only)."""
    records: list
    meta: dict
    accelerators: list
    time_model: str
    prices: object = None


def scenario(req: ScenarioRequest) -> ScenarioResult:
    """The published runs of ``req.scenarios`` priced on its accelerators (default: the
    file's), at today's ``price_kind`` prices and, with ``prices``, at that date's."""
    from comparator.cost import pricing as cm
    from comparator.cost import scenario as sc
    from comparator.cost.catalogue import CatalogueError, load
    from comparator.run.costing import accelerators, price_options
    try:
        meta = sc.load(req.scenarios)["meta"]
    except sc.ScenarioError as err:
        raise RequestError(err.field, err.value, err.allowed) from None
    names = req.accelerators or tuple(meta["accelerators"])
    accs = accelerators(names, req.accelerators_file)
    pricing = Pricing(names, req.accelerators_file, time_model=req.time_model,
                      prices=req.prices, price_kind=req.price_kind)
    model = pricing.time_model_for()
    pk = price_options(accs, pricing)
    try:
        recs, meta = sc.records(accs, req.runs, req.scenarios, req.pue, req.grid_intensity,
                                load(overrides=req.accelerators_file),
                                step_time=Timer(model, req.profile, req.db).step_seconds, **pk)
    except (cm.CostError, sc.ScenarioError) as err:
        raise RequestError(err.field, err.value, err.allowed) from None
    except CatalogueError as err:   # a run's reported hardware is not in the catalogue
        raise RequestError("runs.reported.accelerator", err.value, err.allowed) from None
    return ScenarioResult(recs, meta, accs, model, pk["prices"])


def run_counts(rec: dict, steps: int, tokens: int | None = None) -> dict:
    """A record with the whole run's counts (a paper's "train FLOPs" column); ``tokens``:
    those asked for, noted in ``assumptions`` where they were rounded up to whole steps."""
    from comparator.cost.pricing import tokens_note
    note = tokens_note(tokens, rec["batch"], rec["seq_len"])
    return {**rec, "steps": steps, "total_train_flops": rec["train_flops"] * steps,
            "total_tokens": rec["tokens"] * steps,
            **({"assumptions": {**rec.get("assumptions", {}), "tokens": note}} if note else {})}


__all__ = ["CostResult", "ScenarioResult", "SweepResult", "cost", "models_of", "run_counts",
           "scenario", "sweep", "tracer_of"]
