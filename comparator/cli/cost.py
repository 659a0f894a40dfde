"""The cost commands: ``cost`` (time, dollars, energy, memory of a run), ``roofline``
(where a traced step is memory-bound) and ``accelerators`` (the catalogue)."""
from __future__ import annotations

from comparator.run import costing, execute, sweep
from comparator.run.costing import Timer, accelerators
from comparator.run.requests import CostRequest, Pricing, priced
from comparator.report import costnotes, tables
from comparator.cli.timing import add_time_args
from comparator.cli.args import (UsageError, arch_list, build, large_int, number, one_size,
                                 positive_int, seq_list, size_of)


def add_cost_args(p, sweep_mode: bool = False) -> None:
    """The options that turn counts into time, dollars and energy (cost and sweep)."""
    if sweep_mode:
        p.add_argument("--accelerator", help="add cost columns: a catalogue name, a list, "
                       "or all (one row per accelerator)")
        p.add_argument("--tokens", help="with --accelerator: cost of a run of this many "
                       "tokens (steps = tokens / (batch x seq)); default: one step")
        p.add_argument("--steps", help="with --accelerator: cost of this many steps")
    else:
        p.add_argument("--tokens", help="training tokens (steps = tokens / (batch x seq))")
        p.add_argument("--steps", help="training steps (with --batch)")
        p.add_argument("--accelerator", default="all", help="a catalogue name, a list, all, "
                       "or none (counts only: total_train_flops of the run, no pricing)")
    p.add_argument("--accelerators", help="a TOML/JSON file adding or overriding entries")
    p.add_argument("--devices", default="1", help="data-parallel devices (default 1)")
    p.add_argument("--dtype", default="auto", help="auto (default: each device's training "
                   "precision, fp16 mixed on V100/T4, bf16 elsewhere), bf16, fp16, fp32, tf32")
    p.add_argument("--mfu", help="model-FLOPs utilisation (default: the catalogue's)")
    p.add_argument("--runs", default="1", help="runs (e.g. 20 for 2 configurations x 10)")
    p.add_argument("--pue", default="1.1", help="data-centre power usage effectiveness")
    p.add_argument("--grid-intensity", default="0.4", help="kg CO2 per kWh")
    p.add_argument("--policy", choices=("store_all", "checkpoint", "reversible"),
                   help="activation memory: store_all (default; reversible for the Reformer), "
                        "checkpoint (each layer's input kept, one layer recomputed)")
    p.add_argument("--zero", action="store_true",
                   help="shard the optimizer state over the devices (ZeRO-1)")
    p.add_argument("--calibration", help="the JSON of 'comparator bench --accelerator NAME': "
                   "its measured utilisation replaces the default MFU for that device")
    add_price_args(p)
    add_time_args(p)


def add_price_args(p) -> None:
    """--prices, --price-kind, --point (cost, sweep, scenario, budget)."""
    p.add_argument("--prices", help="price with the snapshots listed on or before this date: "
                   "a year (2020) or YYYY-MM(-DD) (default: the latest)")
    p.add_argument("--price-kind", default="on-demand", help="on-demand (default; the "
                   "ranges then draw from every offer listed), reserved, spot, preemptible")
    p.add_argument("--point", action="store_true", help="single numbers, without the "
                   "(low-high) ranges (JSON keeps the _low/_high fields)")


def accelerators_of(a) -> list:
    """The catalogue entries ``--accelerator`` names (with ``--accelerators`` overrides)."""
    return accelerators(a.accelerator.split(","), a.accelerators)


def pricing_of(a, accelerator=None):
    """The ``Pricing`` of the cost options, parsed (None without an accelerator: a sweep's
    ``--tokens``/``--steps`` then have nothing to price).  ``accelerator``: the names, when
    the command reads ``--accelerator`` otherwise (cost: ``none`` is counts only)."""
    names = accelerator if accelerator is not None else a.accelerator
    if names is not None and not isinstance(names, tuple):
        names = tuple(names.split(",")) if names else ()
    if not names:
        return priced(None, tokens=a.tokens, steps=a.steps)
    run = dict(tokens=large_int("--tokens", a.tokens) if a.tokens is not None else None,
               steps=large_int("--steps", a.steps) if a.steps is not None else None)
    return build(Pricing, a, accelerators=names, accelerators_file=a.accelerators, **run,
                 devices=positive_int("--devices", a.devices), dtype=a.dtype,
                 mfu=None if a.mfu is None else number("--mfu", a.mfu),
                 runs=positive_int("--runs", a.runs), pue=number("--pue", a.pue),
                 grid_intensity=number("--grid-intensity", a.grid_intensity),
                 policy=a.policy, zero=a.zero, calibration=a.calibration,
                 time_model=a.time_model, profile=a.profile, prices=a.prices,
                 price_kind=a.price_kind)


def _fits(r: dict) -> str:
    if r.get("fits") is None:
        return ""
    if r["fits"]:
        return "yes"
    return f"no (>= {r['min_devices']} devices)" if r["min_devices"] else \
        "no (one sequence exceeds a device)"


def cmd_cost(a) -> str:
    if a.arch:
        arch_list(a.arch)   # names checked as everywhere; one of them: the request
    seqs = seq_list(a.seq)
    if len(seqs) != 1:
        raise UsageError("--seq", a.seq, "one sequence length for cost")
    batch = positive_int("--batch", a.batch)
    if a.accelerator == "none":
        pricing = Pricing((), **{k: None if getattr(a, k) is None else
                                 large_int(f"--{k}", getattr(a, k)) for k in ("tokens", "steps")})
    else:
        pricing = pricing_of(a, tuple(a.accelerator.split(",")))
    req = build(CostRequest, a, arch=a.arch, seq=seqs[0], pricing=pricing, preset=a.preset,
                batch=batch, scope=a.scope, convention=a.convention, size=size_of(a),
                db=getattr(a, "db", None))
    res = execute.cost(req)
    rec, steps, out, convention = res.record, res.steps, res.records, req.convention
    if not pricing.accelerators:
        return _run_counts(a, out[0])
    if a.format == "json":
        return tables.render(out, "json")
    arch, preset = rec["arch"], rec["preset"]
    rows = tables.cost_rows(out, a.point, fits=_fits)
    done = [r for r in out if not r.get("not_priced")]
    policy = done[0]["memory_policy"] if done else a.policy
    cap = (f"{arch}:{preset}, seq {seqs[0]}, batch {batch}, {steps:,} steps "
           f"({rec['train_flops'] * steps:.3g} training FLOPs per run), dtype {a.dtype}"
           + (" (each device's training precision, named per row)" if a.dtype == "auto" else "")
           + f"; {time_text(res.time_model)}; $ = device-hours x {pricing.price_kind} price "
           + (f"listed on or before {pricing.as_of}" if pricing.prices else "(latest listed)")
           + f"; energy = device-hours x TDP x PUE {a.pue}; CO2 at {a.grid_intensity} kg/kWh; "
           f"memory: Adam, {policy} activations" + (", ZeRO-1" if a.zero else "") + ". "
           + ("" if a.point else costnotes.ranges_text(done)) + tables.convention_text(convention)
           + ". " + tables.not_defined_text([rec])).strip()
    return tables.render(rows, a.format, cap, label="tab:cost")


def _run_counts(a, out: dict) -> str:
    """``cost --accelerator none``: the whole run's counts (a paper's "train FLOPs" column)."""
    rec, steps = out, out["steps"]
    if a.format == "json":
        return tables.render([out], "json")
    row = {"arch": rec["arch"], "preset": rec["preset"], "seq": rec["seq_len"],
           "batch": rec["batch"], "steps": steps, "convention": rec["convention"],
           "train FLOPs / step": rec["train_flops"],
           "total train FLOPs": out["total_train_flops"]}
    cap = (f"Training FLOPs of {steps:,} steps ({a.scope} scope), no accelerator priced. "
           + tables.convention_text(rec["convention"]) + ". "
           + tables.not_defined_text([rec])).strip()
    return tables.render([row], a.format, cap, label="tab:run")


def cmd_accelerators(a) -> str:
    from comparator.cost.catalogue import CatalogueError, load, rows
    try:
        cat = load(overrides=a.accelerators)
    except CatalogueError as err:
        raise UsageError(err.field, err.value, err.allowed) from None
    full = list(rows(cat))
    if a.format not in ("json", "csv"):  # a readable table; json/csv keep every field
        full = [{"name": r["name"], "vendor": r["vendor"], "fp32 FLOPs/s": r["fp32"] or "",
                 "16-bit FLOPs/s": r["bf16"] or getattr(cat[r["name"]], "fp16", None) or "",
                 "fp8 FLOPs/s": r["fp8"] or "", "memory GB": r["memory_gb"] or "",
                 "GB/s": r["memory_bandwidth_gbs"] or "", "TDP W": r["tdp_w"] or "",
                 "$/h": r["price_per_hour"] or "", "default MFU": r["default_mfu"] or ""}
                for r in full]
    return tables.render(full, a.format, "Dense peak FLOP/s (never the sparse figures; "
                         "16-bit = bf16, or fp16 where the device has no bf16), on-demand "
                         "prices per device-hour; every number's source is in "
                         "comparator/data/accelerators.toml (json/csv list them).",
                         label="tab:accelerators")


def cmd_roofline(a) -> str:
    from comparator.cost import pricing as cm
    from comparator.cost import roofline as rl
    from comparator.cost.catalogue import CatalogueError, get
    archs = arch_list(a.arch) if a.arch else []
    if len(archs) != 1:
        raise UsageError("--arch", a.arch, "one architecture for roofline")
    seqs = seq_list(a.seq)
    if len(seqs) != 1:
        raise UsageError("--seq", a.seq, "one sequence length for roofline")
    batch = positive_int("--batch", a.batch)
    top = positive_int("--top", a.top) if a.top is not None else None
    try:
        acc = get(a.accelerator, overrides=a.accelerators)
    except CatalogueError as err:
        field = "--accelerator" if err.field == "accelerator" else err.field
        raise UsageError(field, err.value, err.allowed) from None
    mod, preset, cfg = sweep.resolve(archs[0], a.preset)
    preset, cfg = one_size(a, archs[0], preset, cfg)
    convention = sweep.check_convention(a.convention)
    sweep.require_defined(convention, archs[0])
    if getattr(a, "time_model", "roofline") == "roofline":
        from comparator.cli.timing import fused_roofline
        return fused_roofline(a, archs[0], preset, mod, cfg, seqs[0], batch, acc, top,
                              convention)
    try:
        r = rl.model_roofline(mod, cfg, seqs[0], batch, acc, a.dtype)
    except cm.CostError as err:
        raise UsageError(err.field, err.value, err.allowed) from None
    rows = rl.rows(r, top)
    t = r.total
    summary = {"arch": archs[0], "preset": preset, "seq_len": seqs[0], "batch": batch,
               "accelerator": acc.name, "dtype": a.dtype, "mfu_bound": r.mfu_bound,
               "compute_only_s": t.compute_s, "memory_only_s": t.memory_s,
               "unsupported": r.unsupported, "convention": convention}
    if convention != "standard":    # the paper's whole formula over the same roofline time
        conv = sweep.analytic(sweep.Point(archs[0], preset, seqs[0], batch, cfg), "all",
                              convention)["train_flops"]
        summary.update(convention_train_flops=conv,
                       mfu_bound_convention=rl.utilisation(conv, r))
    rows[-1].update(summary)
    if a.format == "json":
        return tables.render(rows, "json")
    shown = [{"term": x["term"], "FLOPs": x["flops"], "bytes": tables.si(x["bytes"]) + "B",
              "compute s": x["compute_s"], "memory s": x["memory_s"],
              "roofline s": x["time_s"], "share": f"{x['share']:.1%}",
              "memory-bound": f"{x['memory_bound_share']:.0%}", "bound": x["bound"]}
             for x in rows]
    unsup = ", ".join(f"{k} x{v}" for k, v in r.unsupported.items()) or "none"
    cap = (f"{archs[0]}:{preset}, seq {seqs[0]}, batch {batch}, training step on {acc.name} "
           f"({a.dtype}): roofline {t.time_s:.3g} s per step, compute alone {t.compute_s:.3g} s,"
           f" memory alone {t.memory_s:.3g} s; utilisation bound (matmul FLOPs / peak / "
           f"roofline) {r.mfu_bound:.1%}.  Per equation max(FLOPs / peak, bytes / "
           f"{acc.memory_bandwidth_gbs:g} GB/s), matmuls at the {a.dtype} peak, other FLOPs "
           f"at the vector (fp32) peak; unfused: every equation reads and writes memory, "
           f"views move nothing; an upper bound on time.  Unsupported primitives: {unsup}."
           + _roofline_convention(summary))
    return tables.render(shown, a.format, cap, label="tab:roofline")


def _roofline_convention(summary: dict) -> str:
    if summary["convention"] == "standard":
        return ""
    from comparator.count.conventions import LABELS
    return (f"  By the {LABELS[summary['convention']]} convention the step is "
            f"{summary['convention_train_flops']:.3g} training FLOPs (its whole formula; the "
            f"rows above stay the traced step's): utilisation bound "
            f"{summary['mfu_bound_convention']:.1%}.")


def _pct(x) -> str:
    return "" if x is None else f"{x:.1%}"


def time_text(model: str) -> str:
    if model == "mfu":
        return "time = FLOPs / (dense peak x MFU x devices) (--time-model mfu)"
    return ("time = the time model: each compiled region of the step (XLA:CPU's fusion) takes "
            "max(FLOPs / achievable rate for its shape, bytes / achievable bandwidth) + a "
            "per-region overhead, on the device's profile (measured by 'comparator "
            "calibrate', else datasheet x sourced fractions: uncalibrated); MFU = what that "
            "implies, model FLOPs (forward + backward) / (time x peak), HFU the same with "
            "the recomputed work (reversible layers, flash attention) counted, PaLM App. B")


def cmd_scenario(a) -> str:
    from comparator.cost import pricing as cm
    from comparator.cost import scenario as sc
    from comparator.cost.catalogue import CatalogueError
    try:
        meta = sc.load(a.scenarios)["meta"]
    except sc.ScenarioError as err:
        raise UsageError(err.field, err.value, err.allowed) from None
    a.accelerator = a.accelerator or ",".join(meta["accelerators"])
    accs = accelerators_of(a)
    pricing = build(Pricing, a, accelerators=tuple(a.accelerator.split(",")),
                    accelerators_file=a.accelerators, time_model=a.time_model,
                    prices=a.prices, price_kind=a.price_kind)
    model = pricing.time_model_for()
    runs = positive_int("--runs", a.runs) if a.runs is not None else None
    pk = costing.price_options(accs, pricing)
    try:
        from comparator.cost.catalogue import load as load_catalogue
        recs, meta = sc.records(accs, runs, a.scenarios, number("--pue", a.pue),
                                number("--grid-intensity", a.grid_intensity),
                                load_catalogue(overrides=a.accelerators),
                                step_time=Timer(model, a.profile, a.db).step_seconds, **pk)
    except (cm.CostError, sc.ScenarioError) as err:
        raise UsageError(err.field, err.value, err.allowed) from None
    except CatalogueError as err:   # a run's reported hardware is not in the catalogue
        raise UsageError("runs.reported.accelerator", err.value, err.allowed) from None
    if a.format == "json":
        return tables.render(recs, "json")
    n = recs[0]["runs"] if recs else 0
    when = pk["prices"].isoformat() if pk["prices"] else None
    rows = []
    for r in recs:
        row = {"run": r["run"], "params": r["params"], "tokens": r["tokens"],
               "train FLOPs": r["total_train_flops"],
               "accelerator": tables.device_label(r["accelerator"], r["time_model"],
                                                  r["calibrated"]),
               "dtype": r["dtype"], "MFU": r["mfu"],
               "device-hours": tables.ranged(r, "device_hours", a.point),
               "$ 1 run": tables.ranged(r, "dollars", a.point, money=True) or "no public price",
               f"$ {n} runs": tables.ranged(r, "dollars_all_runs", a.point, money=True)}
        if when:
            row[f"$ 1 run ({when[:4]} prices)"] = (
                tables.ranged(r, "dollars_period", a.point, money=True) or
                f"no price listed by {when}")
        row.update({"published": r["published"], "ours vs published": r["vs_published"]})
        if when:
            row[f"vs published ({when[:4]} prices)"] = r["vs_published_period"]
        if not a.point:
            row["range vs published"] = r["range_vs_published"] or ""
        row.update({"MFU to match": _pct(r["mfu_to_match_low"]),
                    "original MFU": _pct(r["reported_mfu"]),
                    "kWh 1 run": tables.ranged(r, "energy_kwh", a.point)})
        rows.append(row)
    sources = "; ".join(f"{r['run']}: {r['schedule_source']}" for r in recs[::len(accs)])
    cap = (f"Published pre-training runs priced on {', '.join(x.name for x in accs)}: "
           f"training FLOPs counted per phase (ours), {time_text(model)}, "
           f"each device's training precision (dtype column), {pricing.price_kind} "
           f"prices, energy at TDP x PUE {a.pue}; {n} runs = {meta['tuning_note']}. "
           f"Published: {meta['estimate_source']}. " + costnotes.price_sources(recs, when)
           + ("" if a.point else "(low-high) = p5-p95 over utilisation, the offers listed, "
              "PUE and grid intensity (comparator/data/accelerators.toml [ranges]); "
              "'range vs published' spans our one run's low to our "
              f"{n} runs' high, as the published range spans one run to the tuning runs. ")
           + f"Schedules: {sources}. {sc.NOTES} " + tables.CONVENTIONS + ".")
    return tables.render(rows, a.format, cap, label="tab:scenario")
