"""The claim-checking commands: ``conventions`` (one model under every paper's FLOP
accounting, side by side) and ``claims`` (the registry of efficiency claims with
verdicts computed from our counts)."""
from __future__ import annotations

from comparator.run import sweep
from comparator.run.requests import ClaimsRequest
from comparator.report import tables
from comparator.cli.args import UsageError, build, number, positive_int, seq_list


def add_parsers(sub) -> None:
    from comparator.count.conventions import NAMES
    v = sub.add_parser("conventions", help="one model under every FLOP convention (ours, "
                       "ELECTRA's, Kaplan's, Megatron's, PaLM's, Chinchilla's) with formulas "
                       "and ratios")
    v.add_argument("--preset", required=True, help="a preset name (see 'comparator presets')")
    v.add_argument("--arch", help="its architecture (default: the one that has the preset)")
    v.add_argument("--seq", required=True, help="one sequence length")
    v.add_argument("--batch", default="1", help="sequences per step (default 1)")
    v.add_argument("--scope", default="matmul", choices=sweep.SCOPES,
                   help="matmul (default) or all; Kaplan, Megatron and PaLM count "
                        "contractions only, so 'all' changes ours, ELECTRA's and "
                        "Chinchilla's (its softmax)")
    v.add_argument("--recompute", default="none", help="none (default) or checkpoint: "
                   "every layer's forward run again in the backward; hardware FLOPs add it "
                   "(and what the model recomputes itself: reversible layers, flash "
                   "attention), model FLOPs never do")
    v.add_argument("--accelerator", help="a catalogue device: with --step-time or --mfu, "
                   "each convention's MFU and HFU on its peak")
    v.add_argument("--dtype", default="auto", help="the peak's precision (default auto: "
                   "the device's training precision)")
    v.add_argument("--step-time", help="seconds one step of --batch sequences took on one "
                   "device: MFU = model FLOPs / (time x peak), HFU = hardware FLOPs / "
                   "(time x peak)")
    v.add_argument("--mfu", help="our (standard) MFU instead of a time: the time it implies "
                   "gives every row's MFU and HFU")
    v.add_argument("--format", default="text", choices=tables.FORMATS)
    v.add_argument("-o", "--output")
    v.set_defaults(conventions=NAMES)
    c = sub.add_parser("claims", help="published efficiency claims, each checked from our "
                       "counts: verdict and the numbers behind it")
    c.add_argument("--id", help="claim ids, comma separated (default: all)")
    c.add_argument("--bench", help="JSON of 'comparator bench --kernel attention --format "
                   "json': checks the measured crossover claim")
    c.add_argument("--time-model", default="roofline", choices=("roofline", "mfu"),
                   help="roofline (default): claims about speed or cost also get a verdict "
                        "from the step times the time model predicts (compiles each model's "
                        "step once; kept in the results store); mfu: FLOP verdicts only")
    c.add_argument("--db", help="results store (profiles, compiled regions; default: the "
                                "user's cache)")
    c.add_argument("--format", default="text", choices=tables.FORMATS)
    c.add_argument("-o", "--output")


def cmd_conventions(a) -> str:
    from comparator.count import conventions as cv
    seqs = seq_list(a.seq)
    if len(seqs) != 1:
        raise UsageError("--seq", a.seq, "one sequence length for conventions")
    arch = a.arch or sweep.arch_of(a.preset)
    mod, preset, cfg = sweep.resolve(arch, a.preset)
    pt = sweep.Point(arch, preset, seqs[0], positive_int("--batch", a.batch), cfg)
    recs = [sweep.analytic(pt, a.scope, c) for c in a.conventions]
    use = utilisation_fields(a, arch, cfg, pt, recs)
    recs = [{**r, **u} for r, u in zip(recs, use["rows"])]
    if a.format == "json":
        return tables.render([{**r, "convention_label": cv.LABELS[r["convention"]],
                               "formula": cv.FORMULAS[r["convention"]]} for r in recs], "json")
    std = recs[0]["train_flops"]
    rows = [{"convention": cv.LABELS[r["convention"]], "formula": cv.FORMULAS[r["convention"]],
             "fwd FLOPs": r["fwd_flops"], "train FLOPs": r["train_flops"],
             "train FLOPs/token": r["train_flops_per_token"],
             "vs standard": r["train_flops"] / std if r["train_flops"] is not None else None,
             "model FLOPs": r["model_flops"], "hardware FLOPs": r["hardware_flops"],
             **({"MFU": _pct(r["mfu"]), "HFU": _pct(r["hfu"])} if use["peak"] else {}),
             **({"note": tables.convention_note(r)} if tables.convention_note(r) else {})}
            for r in recs]
    n = ("" if cv.undefined("kaplan", arch) else "; non-embedding weights (N of Kaplan and "
         f"PaLM) {cv.non_embedding_params(arch, cfg, pt.seq):,}")
    cap = (f"{arch}:{preset}, seq {pt.seq}, batch {pt.batch} ({a.scope} scope): one config "
           f"counted by each paper's convention; ratio = training FLOPs over ours (standard). "
           f"Parameters {recs[0]['params']:,}{n}. " + use["text"] + " "
           + tables.not_defined_text(recs)).strip()
    return tables.render(rows, a.format, cap, label="tab:conventions",
                         wrap={"formula": 60, "convention": 24, "note": 40})


def _pct(x) -> str:
    return "" if x is None else f"{x:.1%}"


def utilisation_fields(a, arch: str, cfg, pt, recs) -> dict:
    """Per record ``model_flops``, ``hardware_flops`` (``count.utilisation.split`` of the
    convention's terms under ``--recompute``) and, with ``--accelerator`` and a
    ``--step-time`` or ``--mfu``, ``mfu``/``hfu``; the caption's sentence; the peak."""
    from comparator.count import conventions as cv
    from comparator.count import utilisation as ut
    try:
        recompute = ut.check_recompute(a.recompute, arch)
    except ut.UtilisationError as err:
        raise UsageError(err.field, err.value, err.allowed) from None
    rows = []
    for r in recs:
        if r["train_flops"] is None:
            rows.append({"model_flops": None, "hardware_flops": None})
            continue
        terms = cv.terms(r["convention"], arch, cfg, pt.seq, pt.batch)
        model, hardware = ut.split(terms, a.scope, recompute, r["convention"])
        rows.append({"model_flops": int(model), "hardware_flops": int(hardware)})
    text = ("Model FLOPs = forward + backward; hardware FLOPs add what is run again: what "
            "the model or formula recomputes itself (reversible layers, flash attention's "
            "scores, Megatron's activation recomputation)"
            + (" and, --recompute checkpoint, every layer's forward once more"
               if recompute == "checkpoint" else "")
            + "; MFU and HFU divide them by time x peak (" + ut.SOURCE + ").")
    peak = _peak(a)
    if peak is None:
        return {"rows": rows, "text": text, "peak": None}
    acc, dtype, peak = peak
    std = rows[0]
    mfu = None if a.mfu is None else number("--mfu", a.mfu)
    try:
        if mfu is not None:
            step = ut.utilisations(std["model_flops"], std["hardware_flops"], peak,
                                   mfu=mfu)["step_s"]
        else:
            step = number("--step-time", a.step_time)
        for r, row in zip(recs, rows):
            if row["model_flops"] is None:
                row.update(mfu=None, hfu=None)
                continue
            try:
                got = ut.utilisations(row["model_flops"], row["hardware_flops"], peak,
                                      step_s=step)
            except ut.UtilisationError as err:
                if mfu is None:
                    raise
                raise ut.UtilisationError("--mfu", mfu, err.allowed.replace(
                    "its", f"by {r['convention']}'s count the step's", 1)) from None
            row.update(mfu=got["mfu"], hfu=got["hfu"], step_s=step, accelerator=acc,
                       dtype=dtype, peak_flops=peak)
    except ut.UtilisationError as err:
        raise UsageError(err.field, err.value, err.allowed) from None
    text += (f" MFU and HFU on one {acc} at its {dtype} peak {peak:.3g} FLOP/s, a step of "
             f"{step:.3g} s" + (f" (our MFU {mfu:g} implies it)" if mfu is not None
                                else "") + ".")
    return {"rows": rows, "text": text, "peak": peak}


def _peak(a):
    """(device, dtype, peak FLOP/s) of --accelerator, or None without a time to divide."""
    if a.step_time is None and a.mfu is None:
        if a.accelerator:
            raise UsageError("--accelerator", a.accelerator, "with --step-time or --mfu "
                             "(the utilisations need a time)")
        return None
    if a.step_time is not None and a.mfu is not None:
        raise UsageError("--mfu", a.mfu, "not together with --step-time (one gives the other)")
    if not a.accelerator:
        raise UsageError("--step-time" if a.step_time is not None else "--mfu",
                         a.step_time or a.mfu, "with --accelerator (its peak FLOP/s)")
    from comparator.cost import pricing as cm
    from comparator.cost.catalogue import CatalogueError, get
    try:
        acc = get(a.accelerator)
        dtype = cm.resolve_dtype(a.dtype, acc)
        return acc.name, dtype, acc.peak(dtype)
    except CatalogueError as err:
        field = "--accelerator" if err.field == "accelerator" else err.field
        raise UsageError(field, err.value, err.allowed) from None


def cmd_claims(a) -> str:
    from comparator.claims import registry as cl
    ids = [i for i in (a.id or "").split(",") if i]
    bench = cl.load_bench(a.bench) if a.bench is not None else None
    recs = cl.records(build(ClaimsRequest, a, ids=ids, bench=bench, time_model=a.time_model,
                            db=a.db))
    if a.format == "json":
        return tables.render(recs, "json")
    timed = ("  'Time model (verdict)': the claim judged from predicted step times instead "
             "of FLOPs -- each compiled region of the step takes max(FLOPs / achievable "
             "rate, bytes / bandwidth) + an overhead on the device's profile (uncalibrated: "
             "datasheet x sourced fractions, unless 'comparator calibrate' stored one); "
             "--time-model mfu leaves these lines out."
             if any(r["time_verdict"] for r in recs) else "")
    cap = ("Efficiency claims checked from our counts (standard convention unless a claim "
           "names another; 'holds only ...' gives the range where it does). "
           + tables.CONVENTIONS + "." + timed)
    text = tables.render(tables.claim_rows(recs, full=a.format != "text"), a.format, cap,
                         label="tab:claims", wrap={"statement": 34, "numbers": 64,
                                                   "verdict": 22})
    if ids and len(ids) == 1 and a.format in ("text", "markdown"):
        text += "\n" + tables.render(tables.number_rows(recs[0]), a.format)
    return text
