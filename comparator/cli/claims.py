"""The claim-checking commands: ``conventions`` (one model under every paper's FLOP
accounting, side by side) and ``claims`` (the registry of efficiency claims with
verdicts computed from our counts)."""
from __future__ import annotations

from comparator.run import sweep
from comparator.run.requests import ClaimsRequest
from comparator.report import tables
from comparator.cli.args import UsageError, add_output_options, build, positive_int, seq_list


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
    seqs = seq_list(a.seq)
    if len(seqs) != 1:
        raise UsageError("--seq", a.seq, "one sequence length for conventions")
    arch = a.arch or sweep.arch_of(a.preset)
    mod, preset, cfg = sweep.resolve(arch, a.preset)
    pt = sweep.Point(arch, preset, seqs[0], positive_int("--batch", a.batch), cfg)
    recs = [sweep.analytic(pt, a.scope, c) for c in a.conventions]
    if a.format == "json":
        return tables.render([{**r, "convention_label": cv.LABELS[r["convention"]],
                               "formula": cv.FORMULAS[r["convention"]]} for r in recs], "json")
    std = recs[0]["train_flops"]
    rows = [{"convention": cv.LABELS[r["convention"]], "formula": cv.FORMULAS[r["convention"]],
             "fwd FLOPs": r["fwd_flops"], "train FLOPs": r["train_flops"],
             "train FLOPs/token": r["train_flops_per_token"],
             "vs standard": r["train_flops"] / std if r["train_flops"] is not None else None,
             **({"note": tables.convention_note(r)} if tables.convention_note(r) else {})}
            for r in recs]
    n = ("" if cv.undefined("kaplan", arch) else "; non-embedding weights (N of Kaplan and "
         f"PaLM) {cv.non_embedding_params(arch, cfg, pt.seq):,}")
    cap = (f"{arch}:{preset}, seq {pt.seq}, batch {pt.batch} ({a.scope} scope): one config "
           f"counted by each paper's convention; ratio = training FLOPs over ours (standard). "
           f"Parameters {recs[0]['params']:,}{n}. " + tables.not_defined_text(recs)).strip()
    return tables.render(rows, a.format, cap, label="tab:conventions",
                         wrap={"formula": 60, "convention": 24, "note": 40})


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
