"""The cost commands: ``cost`` (time, dollars, energy, memory of a run), ``roofline``
(where a traced step is memory-bound) and ``accelerators`` (the catalogue)."""
from __future__ import annotations

from comparator.run import costing, sweep
from comparator.report import costnotes, tables
from comparator.cli.timing import Timer, add_time_args, time_model_of
from comparator.cli.args import arch_list, large_int, number, one_size, positive_int, seq_list
from comparator.cost.pricing import resolve_dtype
from comparator.cli.args import UsageError


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


def price_kwargs(a, accs) -> dict:
    """The checked --prices/--price-kind and the catalogue's distributions."""
    from comparator.cost.catalogue import CatalogueError
    try:
        return costing.price_options(accs, getattr(a, "prices", None),
                                     getattr(a, "price_kind", "on-demand"), a.accelerators)
    except CatalogueError as err:
        raise UsageError(err.field, err.value, err.allowed) from None


def accelerators_of(a) -> list:
    from comparator.cost.catalogue import CatalogueError, load, lookup
    try:
        cat = load(overrides=a.accelerators)
        names = list(cat) if a.accelerator == "all" else a.accelerator.split(",")
        return [lookup(cat, n) for n in names]
    except CatalogueError as err:
        field = "--accelerator" if err.field == "accelerator" else err.field
        raise UsageError(field, err.value, err.allowed) from None


def cost_kwargs(a, accs=()) -> dict:
    return dict(devices=positive_int("--devices", a.devices), dtype=a.dtype,
                **price_kwargs(a, accs),
                mfu=None if a.mfu is None else number("--mfu", a.mfu),
                runs=positive_int("--runs", a.runs), pue=number("--pue", a.pue),
                grid_intensity=number("--grid-intensity", a.grid_intensity),
                policy=a.policy, zero=a.zero)


def _calibrated(a, acc, kw: dict, arch: str | None) -> dict:
    """``kw`` with the calibration file's measured MFU for ``acc`` (``--calibration``)."""
    if not getattr(a, "calibration", None):
        return kw
    from comparator.cost import measured_mfu as cal
    if a.mfu is not None:
        raise UsageError("--mfu", a.mfu, "not together with --calibration")
    try:
        mfu, source = cal.mfu_for(cal.load(a.calibration), acc, resolve_dtype(a.dtype, acc), arch,
                                  getattr(a, "convention", "standard"))
    except cal.CalibrationError as err:
        raise UsageError(err.field, err.value, err.allowed) from None
    return {**kw, "mfu": mfu, "mfu_source": source}


def with_costs(recs, a, cfgs: dict) -> tuple[list, list]:
    """Each record once per accelerator of ``a`` with its cost fields (sweep); a device
    that cannot price a record (no such dtype, no MFU) is skipped and named.  ``cfgs``:
    ``{(arch, preset): Config}`` of the records' models."""
    from comparator.cost import pricing as cm
    if a.tokens is not None and a.steps is not None:
        raise UsageError("--tokens", a.tokens, "either --tokens or --steps, not both")
    tokens = large_int("--tokens", a.tokens) if a.tokens is not None else None
    steps = large_int("--steps", a.steps) if a.steps is not None else 1
    accs = accelerators_of(a)
    kw, out, skipped = cost_kwargs(a, accs), [], {}
    timer = Timer(a)
    for acc in accs:
        for r in recs:
            if r["train_flops"] is None:    # not defined by its convention: nothing to price
                out.append(r)
                continue
            n = cm.tokens_to_steps(tokens, r["batch"], r["seq_len"]) if tokens else steps
            cfg = cfgs.get((r["arch"], r["preset"]))
            try:
                tkw, extra = timer.cost_kwargs(r, cfg, acc, kw["devices"], kw["dtype"])
                out.append({**sweep.with_cost(r, acc, n, cfg=cfg,
                                              **_calibrated(a, acc, kw, r["arch"]), **tkw),
                            **extra})
            except cm.CostError as err:
                if len(accs) == 1:
                    raise UsageError(err.field, err.value, err.allowed) from None
                skipped[acc.name] = err.allowed       # a visible row says why
                out.append(costing.unpriced(r, acc, err.allowed))
    return time_ratios(out), [f"{k} ({v})" for k, v in skipped.items()]


def time_ratios(recs: list) -> list:
    """Each priced record compared with its baseline's on the same device: the ratios of
    step time and dollars beside the FLOP ratio (they differ where the time model says)."""
    base = {(r["arch"] + ":" + r["preset"], r["seq_len"], r["batch"], r.get("accelerator")): r
            for r in recs if "step_time_s" in r}
    for r in recs:
        b = base.get((r.get("baseline"), r["seq_len"], r["batch"], r.get("accelerator")))
        if b is not None and "step_time_s" in r and b["step_time_s"]:
            r["ratio_time"] = r["step_time_s"] / b["step_time_s"]
            if r.get("dollars") is not None and b.get("dollars"):
                r["ratio_dollars"] = r["dollars"] / b["dollars"]
    return recs


def _fits(r: dict) -> str:
    if r.get("fits") is None:
        return ""
    if r["fits"]:
        return "yes"
    return f"no (>= {r['min_devices']} devices)" if r["min_devices"] else \
        "no (one sequence exceeds a device)"


def cmd_cost(a) -> str:
    from comparator.cost import pricing as cm
    archs = arch_list(a.arch) if a.arch else []
    if len(archs) != 1:
        raise UsageError("--arch", a.arch, "one architecture for cost")
    (arch,) = archs
    seqs = seq_list(a.seq)
    if len(seqs) != 1:
        raise UsageError("--seq", a.seq, "one sequence length for cost")
    batch = positive_int("--batch", a.batch)
    if (a.tokens is None) == (a.steps is None):
        raise UsageError("--tokens", a.tokens, "either --tokens or --steps (with --batch)")
    steps = (large_int("--steps", a.steps) if a.steps else
             cm.tokens_to_steps(large_int("--tokens", a.tokens), batch, seqs[0]))
    convention = sweep.check_convention(a.convention)
    sweep.require_defined(convention, arch)
    accs = [] if a.accelerator == "none" else accelerators_of(a)
    mod, preset, cfg = sweep.resolve(arch, a.preset)
    preset, cfg = one_size(a, arch, preset, cfg)
    rec = sweep.analytic(sweep.Point(arch, preset, seqs[0], batch, cfg), a.scope, convention)
    if not accs:
        return _run_counts(a, rec, steps)
    kw = cost_kwargs(a, accs)
    out, skipped = [], []
    timer = Timer(a)
    for acc in accs:
        try:
            tkw, extra = timer.cost_kwargs(rec, cfg, acc, kw["devices"], kw["dtype"])
            out.append({**sweep.with_cost(rec, acc, steps, cfg=cfg,
                                          **_calibrated(a, acc, kw, arch), **tkw), **extra})
        except cm.CostError as err:
            if len(accs) == 1:
                raise UsageError(err.field, err.value, err.allowed) from None
            out.append(costing.unpriced(rec, acc, err.allowed))   # a visible row says why
    if a.format == "json":
        return tables.render(out, "json")
    rows = tables.cost_rows(out, a.point, fits=_fits)
    priced = [r for r in out if not r.get("not_priced")]
    policy = priced[0]["memory_policy"] if priced else a.policy
    cap = (f"{arch}:{preset}, seq {seqs[0]}, batch {batch}, {steps:,} steps "
           f"({rec['train_flops'] * steps:.3g} training FLOPs per run), dtype {a.dtype}"
           + (" (each device's training precision, named per row)" if a.dtype == "auto" else "")
           + f"; {time_text(timer.model)}; $ = device-hours x {kw['price_kind']} price "
           + (f"listed on or before {kw['prices']}" if kw["prices"] else "(latest listed)")
           + f"; energy = device-hours x TDP x PUE {a.pue}; CO2 at {a.grid_intensity} kg/kWh; "
           f"memory: Adam, {policy} activations" + (", ZeRO-1" if a.zero else "") + ". "
           + ("" if a.point else costnotes.ranges_text(priced)) + tables.convention_text(convention)
           + ". " + tables.not_defined_text([rec])).strip()
    return tables.render(rows, a.format, cap, label="tab:cost")


def _run_counts(a, rec: dict, steps: int) -> str:
    """``cost --accelerator none``: the whole run's counts (a paper's "train FLOPs" column)."""
    out = {**rec, "steps": steps, "total_train_flops": rec["train_flops"] * steps,
           "total_tokens": rec["tokens"] * steps}
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
            "implies")


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
    runs = positive_int("--runs", a.runs) if a.runs is not None else None
    pk = price_kwargs(a, accs)
    try:
        from comparator.cost.catalogue import load as load_catalogue
        recs, meta = sc.records(accs, runs, a.scenarios, number("--pue", a.pue),
                                number("--grid-intensity", a.grid_intensity),
                                load_catalogue(overrides=a.accelerators),
                                step_time=Timer(a).step_seconds, **pk)
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
           f"training FLOPs counted per phase (ours), {time_text(time_model_of(a))}, "
           f"each device's training precision (dtype column), {pk['price_kind']} "
           f"prices, energy at TDP x PUE {a.pue}; {n} runs = {meta['tuning_note']}. "
           f"Published: {meta['estimate_source']}. " + costnotes.price_sources(recs, when)
           + ("" if a.point else "(low-high) = p5-p95 over utilisation, the offers listed, "
              "PUE and grid intensity (comparator/data/accelerators.toml [ranges]); "
              "'range vs published' spans our one run's low to our "
              f"{n} runs' high, as the published range spans one run to the tuning runs. ")
           + f"Schedules: {sources}. {sc.NOTES} " + tables.CONVENTIONS + ".")
    return tables.render(rows, a.format, cap, label="tab:scenario")
