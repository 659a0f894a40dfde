"""The claim-checking commands: ``conventions`` (one model under every paper's FLOP
accounting, side by side) and ``claims`` (the registry of efficiency claims with
verdicts computed from our counts)."""
from __future__ import annotations

from comparator.run import sweep
from comparator.run.requests import ClaimsRequest
from comparator.run.steprequests import ConventionsRequest
from comparator.report import tables
from comparator.cli.args import (UsageError, add_output_options, build, number,
                                 positive_int, seq_list)


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
    v.add_argument("--dtype", help="with --accelerator, the peak's precision (default "
                   "auto: the device's training precision)")
    v.add_argument("--step-time", help="seconds one step of --batch sequences took on one "
                   "device: MFU = model FLOPs / (time x peak), HFU = hardware FLOPs / "
                   "(time x peak)")
    v.add_argument("--mfu", help="our (standard) MFU instead of a time: the time it implies "
                   "gives every row's MFU and HFU")
    add_output_options(v, tables.FORMATS)
    v.set_defaults(conventions=NAMES)
    c = sub.add_parser("claims", help="published efficiency claims, each checked from our "
                       "counts: verdict and the numbers behind it")
    c.add_argument("--id", help="claim ids, comma separated (default: all)")
    c.add_argument("--bench", help="JSON of 'comparator bench --kernel attention --format "
                   "json': checks the measured crossover claim")
    c.add_argument("--time-model", default="roofline", choices=("roofline", "mfu"),
                   help="roofline (default): claims about speed or cost also get a verdict "
                        "from the step times the time model predicts (compiles each model's "
                        "step once; kept in the results store); mfu: FLOP verdicts only (the "
                        "memory claim still traces its steps)")
    c.add_argument("--db", help="results store (profiles, compiled regions; default: the "
                                "user's cache)")
    add_output_options(c, tables.FORMATS)


def cmd_conventions(a) -> str:
    from comparator.count import conventions as cv
    from comparator.run.conventions import conventions
    seqs = seq_list(a.seq)
    if len(seqs) != 1:
        raise UsageError("--seq", a.seq, "one sequence length for conventions")
    arch = a.arch or sweep.arch_of(a.preset)
    got = conventions(build(
        ConventionsRequest, a, arch=arch, seq=seqs[0], preset=a.preset,
        batch=positive_int("--batch", a.batch), scope=a.scope, recompute=a.recompute,
        accelerator=a.accelerator, dtype=a.dtype,
        step_time=None if a.step_time is None else number("--step-time", a.step_time),
        mfu=None if a.mfu is None else number("--mfu", a.mfu)), a.conventions)
    recs, pt = got.records, got.point
    if a.format == "json":
        return tables.render([{**r, "convention_label": cv.LABELS[r["convention"]],
                               "formula": cv.FORMULAS[r["convention"]]} for r in recs], "json")
    std = recs[0]["train_flops"]
    rows = [{"convention": cv.LABELS[r["convention"]], "formula": cv.FORMULAS[r["convention"]],
             "fwd FLOPs": r["fwd_flops"], "train FLOPs": r["train_flops"],
             "train FLOPs/token": r["train_flops_per_token"],
             "vs standard": r["train_flops"] / std if r["train_flops"] is not None else None,
             "model FLOPs": r["model_flops"], "hardware FLOPs": r["hardware_flops"],
             **({"MFU": _pct(r["mfu"]), "HFU": _pct(r["hfu"])} if got.peak else {}),
             **({"note": tables.convention_note(r)} if tables.convention_note(r) else {})}
            for r in recs]
    n = ("" if cv.undefined("kaplan", arch) else "; non-embedding weights (N of Kaplan and "
         f"PaLM) {cv.non_embedding_params(arch, pt.cfg, pt.seq):,}")
    if n and cv.modern_fields(pt.cfg).get("n_experts"):
        n += (" a token uses, of "
              f"{cv.non_embedding_params(arch, pt.cfg, pt.seq, active=False):,} with every expert")
    cap = (f"{arch}:{pt.preset}, seq {pt.seq}, batch {pt.batch} ({a.scope} scope): one "
           f"config counted by each paper's convention; ratio = training FLOPs over ours "
           f"(standard). Parameters {recs[0]['params']:,}{n}. " + got.text + " "
           + tables.not_defined_text(recs)).strip()
    return tables.render(rows, a.format, cap, label="tab:conventions",
                         wrap={"formula": 60, "convention": 24, "note": 40})


def _pct(x) -> str:
    return "" if x is None else f"{x:.1%}"


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
