"""The cost commands: ``cost`` (time, dollars, energy, memory of a run), ``scenario``
(published runs priced) and ``accelerators`` (the catalogue); ``roofline`` is in
``cli.roofline``."""
from __future__ import annotations

from comparator.run import execute
from comparator.run.costing import accelerators
from comparator.run.requests import CostRequest, Pricing, priced
from comparator.run.steprequests import ScenarioRequest
from comparator.report import costnotes, tables
from comparator.cli.timing import add_time_args
from comparator.cli.args import (UsageError, arch_list, build, given, large_int, number,
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
    add_step_time_args(p)
    p.add_argument("--runs", help="runs (e.g. 20 for 2 configurations x 10; default 1)")
    p.add_argument("--pue", help="data-centre power usage effectiveness (default 1.1)")
    p.add_argument("--grid-intensity", help="kg CO2 per kWh (default 0.4)")
    p.add_argument("--policy", choices=("store_all", "checkpoint", "reversible"),
                   help="activation memory, sized from the traced step: store_all (default; "
                        "reversible for the Reformer), checkpoint (each layer's input kept, "
                        "one layer recomputed), reversible (the Reformer's layers)")
    p.add_argument("--zero", action="store_true",
                   help="shard the optimizer state over the devices (ZeRO-1)")
    p.add_argument("--largest", action="store_true",
                   help="also search, per device, the largest batch at this length and the "
                        "largest length at one sequence that fit (JSON max_batch_per_device, "
                        "max_seq_per_device): traced peaks of several more steps, seconds each")
    add_price_args(p)


def add_step_time_args(p) -> None:
    """The options that time one step on the accelerator (cost, sweep and plot): the
    catalogue overrides, data-parallel devices, the dtype, a flat MFU or a calibration,
    the time model and a device profile."""
    p.add_argument("--accelerators", help="a TOML/JSON file adding or overriding entries")
    # no defaults here: an option left out is the request value's default, and one given
    # where nothing is priced is refused (requests.priced), not ignored
    p.add_argument("--devices", help="data-parallel devices (default 1)")
    p.add_argument("--dtype", help="a training dtype: auto (default: each device's training "
                   "precision, fp16 mixed on V100/T4, bf16 elsewhere), bf16, fp16, fp32, tf32")
    p.add_argument("--mfu", help="model-FLOPs utilisation (default: the catalogue's)")
    p.add_argument("--calibration", help="the JSON of 'comparator bench --accelerator NAME': "
                   "its measured utilisation replaces the default MFU for that device")
    add_time_args(p)


def add_price_args(p) -> None:
    """--prices, --price-kind, --point (cost, sweep, scenario, budget)."""
    p.add_argument("--prices", help="price with the snapshots listed on or before this date: "
                   "a year (2020) or YYYY-MM(-DD) (default: the latest)")
    p.add_argument("--price-kind", help="on-demand (default; the "
                   "ranges then draw from every offer listed), reserved, spot, preemptible")
    p.add_argument("--point", action="store_true", help="single numbers, without the "
                   "(low-high) ranges (JSON keeps the _low/_high fields)")


def accelerators_of(a) -> list:
    """The catalogue entries ``--accelerator`` names (with ``--accelerators`` overrides)."""
    return accelerators(a.accelerator.split(","), a.accelerators)


PRICE_OPTIONS = ("accelerators_file", "devices", "dtype", "mfu", "runs", "pue",
                 "grid_intensity", "policy", "zero", "largest", "calibration", "time_model",
                 "profile", "prices", "price_kind")


def _typed(a) -> dict:
    """The pricing options as typed (None, False: not given)."""
    return {k: getattr(a, "accelerators" if k == "accelerators_file" else k, None)
            for k in PRICE_OPTIONS}


def _run(a) -> dict:
    return {k: None if getattr(a, k, None) is None else large_int(f"--{k}", getattr(a, k))
            for k in ("tokens", "steps")}


def _opt(a, name: str):
    """Option ``name`` as typed, None where the command has no such option (plot prices
    one step: no run, energy or price options)."""
    return getattr(a, name, None)


def pricing_of(a, accelerator=None, counts: bool = False):
    """The ``Pricing`` of the cost options, parsed.  Without an accelerator: None (a
    sweep's), or with ``counts`` the run's counts only (``cost --accelerator none``);
    there every pricing option given is refused as typed (``requests.priced``).
    ``accelerator``: the names, when the command reads ``--accelerator`` otherwise."""
    names = accelerator if accelerator is not None else a.accelerator
    if names is not None and not isinstance(names, tuple):
        names = tuple(names.split(",")) if names else ()
    if not names or names == ("none",):
        if getattr(a, "point", False):   # prints the cost columns, which there are none of
            raise UsageError("--point", True, "only with --accelerator (it prints the "
                                              "cost columns as single numbers)")
        run = _run(a) if counts else dict(tokens=_opt(a, "tokens"), steps=_opt(a, "steps"))
        return priced(None, counts=counts, **_typed(a), **run)
    n = dict(**_run(a),
             devices=positive_int("--devices", a.devices) if a.devices is not None else None,
             mfu=None if a.mfu is None else number("--mfu", a.mfu),
             runs=positive_int("--runs", a.runs) if _opt(a, "runs") is not None else None,
             pue=None if _opt(a, "pue") is None else number("--pue", a.pue),
             grid_intensity=(None if _opt(a, "grid_intensity") is None else
                             number("--grid-intensity", a.grid_intensity)))
    return build(Pricing, a, accelerators=names, **given(**{**_typed(a), **n}))


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
    pricing = pricing_of(a, tuple(a.accelerator.split(",")), counts=True)
    req = build(CostRequest, a, arch=a.arch, seq=seqs[0], pricing=pricing, preset=a.preset,
                batch=batch, scope=a.scope, convention=a.convention, size=size_of(a),
                db=getattr(a, "db", None), model=a.model,
                attention=getattr(a, "attention", None))
    res = execute.cost(req)
    rec, steps, out, convention = res.record, res.steps, res.records, req.convention
    if not pricing.accelerators:
        return _run_counts(a, out[0])
    if a.format == "json":
        return tables.render(out, "json")
    arch, preset = rec["arch"], rec["preset"]
    rows = tables.cost_rows(out, a.point, fits=_fits)
    done = [r for r in out if not r.get("not_priced")]
    policy = done[0]["memory_policy"] if done else pricing.policy
    rounded = done[0]["assumptions"].get("tokens") if done else None
    cap = (f"{arch}:{preset}, seq {seqs[0]}, batch {batch}, {steps:,} steps"
           + (f" ({rounded})" if rounded else "")
           + f", {rec['train_flops'] * steps:.3g} training FLOPs per run; dtype {pricing.dtype}"
           + (" (each device's training precision, named per row)" if pricing.dtype == "auto"
              else "")
           + f"; {time_text(res.time_model)}; $ = device-hours x {pricing.price_kind} price "
           + (f"listed on or before {pricing.as_of}" if pricing.prices else "(latest listed)")
           + f"; energy = device-hours x TDP x PUE {pricing.pue:g}; CO2 at "
           f"{pricing.grid_intensity:g} kg/kWh; memory: Adam, {policy} activations"
           + (", ZeRO-1" if pricing.zero else "") + ". "
           + ("" if a.point else costnotes.ranges_text(done)) + tables.convention_text(convention)
           + ". " + tables.not_defined_text([rec]) + _model_note(req, out)).strip()
    return tables.render(rows, a.format, cap, label="tab:cost")


def _model_note(req, out) -> str:
    """A user's model: what was counted, and where the time model fell back."""
    if req.model is None:
        return ""
    failed = [f"{r['accelerator']}: {r['time_model_failed']}" for r in out
              if r.get("time_model_failed")]
    return (" " + tables.model_text(out) + (" The time model failed, the flat MFU priced "
                                            "these: " + "; ".join(failed) + "."
                                            if failed else ""))


def _run_counts(a, out: dict) -> str:
    """``cost --accelerator none``: the whole run's counts (a paper's "train FLOPs" column)."""
    rec, steps = out, out["steps"]
    if a.format == "json":
        return tables.render([out], "json")
    row = {"arch": rec["arch"], "preset": rec["preset"], "seq": rec["seq_len"],
           "batch": rec["batch"], "steps": steps, "convention": rec["convention"],
           "train FLOPs / step": rec["train_flops"],
           "total train FLOPs": out["total_train_flops"]}
    rounded = rec.get("assumptions", {}).get("tokens")
    cap = (f"Training FLOPs of {steps:,} steps ({a.scope} scope), no accelerator priced. "
           + (f"{rounded[0].upper()}{rounded[1:]}. " if rounded else "")
           + tables.convention_text(rec["convention"]) + ". "
           + tables.not_defined_text([rec])
           + (" " + tables.model_text([rec]) if "model" in rec else "")).strip()
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


def scenario_request(a) -> ScenarioRequest:
    return build(ScenarioRequest, a, accelerators=a.accelerator, accelerators_file=a.accelerators,
                 scenarios=a.scenarios,
                 runs=positive_int("--runs", a.runs) if a.runs is not None else None,
                 pue=number("--pue", a.pue), grid_intensity=number("--grid-intensity",
                                                                   a.grid_intensity),
                 time_model=a.time_model, profile=a.profile, db=a.db, prices=a.prices,
                 **given(price_kind=a.price_kind))


def fused_text(recs) -> str:
    """The caption's sentence on flash attention priced as its fused kernel (the records'
    ``assumptions.fused_attention``), or nothing."""
    if not any(r.get("assumptions", {}).get("fused_attention") for r in recs):
        return ""
    return (" Flash attention on an accelerator: one fused kernel a layer and direction, "
            "its HBM traffic by FlashAttention's IO model on the device's on-chip memory "
            "(Dao et al. 2022; JSON assumptions.fused_attention), not XLA:CPU's blocks.")


def cmd_scenario(a) -> str:
    from comparator.cost import scenario as sc
    req = scenario_request(a)
    res = execute.scenario(req)
    recs, meta, accs, model = res.records, res.meta, res.accelerators, res.time_model
    if a.format == "json":
        return tables.render(recs, "json")
    n = recs[0]["runs"] if recs else 0
    when = res.prices.isoformat() if res.prices else None
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
           f"each device's training precision (dtype column), {req.price_kind} "
           f"prices, energy at TDP x PUE {a.pue}; {n} runs = {meta['tuning_note']}. "
           f"Published: {meta['estimate_source']}. " + costnotes.price_sources(recs, when)
           + ("" if a.point else "(low-high) = p5-p95 over utilisation, the offers listed, "
              "PUE and grid intensity (comparator/data/accelerators.toml [ranges]); "
              "'range vs published' spans our one run's low to our "
              f"{n} runs' high, as the published range spans one run to the tuning runs. ")
           + f"Schedules: {sources}. {sc.NOTES} " + tables.CONVENTIONS + ".")
    return tables.render(rows, a.format, cap, label="tab:scenario")
