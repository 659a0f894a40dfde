"""Command line: argparse -> sweep -> tables.  Parses and reports; computes nothing itself."""
from __future__ import annotations

import argparse
import os
import sys

import architectures
from architectures.config import ConfigError

from comparator.run import execute, sweep
from comparator.run.requests import SweepRequest
from comparator.report import tables
from comparator.cli.bench import cmd_bench
from comparator.cli.calibrate import add_parser as add_calibrate_parser, cmd_calibrate
from comparator.cli.timing import add_time_args
from comparator.cli.cost import (add_cost_args, add_price_args, add_step_time_args,
                                 cmd_accelerators, cmd_cost, cmd_scenario, fused_text,
                                 pricing_of, time_text)
from comparator.cli.budget import add_parser as add_budget_parser, cmd_budget
from comparator.cli.explain import cmd_explain
from comparator.cli.roofline import cmd_roofline
from comparator.cli.claims import add_parsers as add_claim_parsers, cmd_claims, cmd_conventions
from comparator.cli.memory import register as register_memory
from comparator.cli.run import add_run_args, report, runner_options
from comparator.cli.store import add_parser as add_store_parser, notify as notify_store
from comparator.cli.args import (ATTENTION_CHOICES_HELP, ATTENTION_HELP, Parser, UsageError,
                                 add_model_option, add_output_options, add_size_options,
                                 arch_list, build, positive_int, seq_list, size_grid)
from comparator.errors import FieldError

def _common(p: argparse.ArgumentParser, many: bool = True, formats: bool = True) -> None:
    p.add_argument("--arch", help="transformer, albert, electra, reformer"
                   + (", a comma-separated list, or all" if many else ""))
    p.add_argument("--preset", help="preset name(s), comma separated (default: the "
                   "architecture's BERT-base-sized preset; see 'comparator presets')")
    p.add_argument("--seq", required=True, help="sequence lengths: 512,1024 or 512:65536:x2")
    p.add_argument("--batch", default="1", help="sequences per step (default 1)")
    p.add_argument("--scope", default="matmul", choices=sweep.SCOPES,
                   help="matmul: contractions only; all: + elementwise, softmax, norms, hashing")
    if formats:
        add_output_options(p, tables.FORMATS)
    else:       # plot: -o is the image
        p.add_argument("-o", "--output", help="the image file: .png, .pdf or .svg")


def _convention_option(p, effect: str = "") -> None:
    from comparator.count.conventions import NAMES
    p.add_argument("--convention", default="standard", help="whose FLOP accounting: "
                   + ", ".join(NAMES) + " (default standard: ours; the others are analytic "
                   "formulas of the papers, see 'comparator conventions')"
                   + (f"; {effect}" if effect else ""))


def _trace_option(p, store: bool = True) -> None:
    kept = (" (a program the results store keeps answers later lengths without tracing)"
            if store else "")
    p.add_argument("--trace", default="fast", choices=sweep.TRACES,
                   help="fast (default): each model traced shallow and with the length "
                        f"symbolic, equal to full traces{kept}; checked: also one length "
                        "against the full model" + (" (a stored program too)" if store
                                                    else "")
                        + "; full: every point traced whole (slow)"
                        + (", no stored program used" if store else ""))


def build_parser() -> argparse.ArgumentParser:
    ap = Parser(prog="comparator", description="What an architecture really "
                "costs to train: analytic and traced FLOPs, parameters.")
    ap.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = ap.add_subparsers(dest="command", required=True, parser_class=Parser)
    s = sub.add_parser("sweep", help="FLOPs and parameters over architectures, sizes, lengths")
    _common(s)
    s.add_argument("--method", choices=("analytic", "traced", "both"),
                   help="default analytic (traced with --model)")
    add_model_option(s)
    s.add_argument("--d-model", help="size grid: model widths, e.g. 256,512,1024")
    s.add_argument("--layers", help="size grid: depths, e.g. 6,12,24")
    s.add_argument("--heads", help="attention heads (default: d_model / 64)")
    s.add_argument("--d-ff", help="FFN widths (default: 4 x d_model)")
    s.add_argument("--attention", help=ATTENTION_HELP)
    s.add_argument("--baseline", help="ARCH[:PRESET] to compare with at the same length and "
                   "size (default: the Transformer of the same widths)")
    s.add_argument("--no-baseline", action="store_true", help="no baseline rows or ratios")
    s.add_argument("--per", default="sequence", choices=("sequence", "token"),
                   help="FLOP columns per sequence (step) or per token")
    s.add_argument("--config", help="a Hugging Face config.json or a comparator TOML file")
    s.add_argument("--quiet", action="store_true", help="no progress on stderr")
    _trace_option(s)
    _convention_option(s)
    add_run_args(s)
    add_cost_args(s, sweep_mode=True)
    e = sub.add_parser("explain", help="where the FLOPs go: analytic vs traced per term")
    _common(e, many=False)
    e.add_argument("--method", choices=("analytic", "traced", "both"),
                   help="default both (analytic beside traced); with a paper's --convention: "
                        "analytic, ours beside the convention's terms; with --model: traced")
    add_model_option(e, "each term's closed form in the length n where there is one")
    _trace_option(e, store=False)
    _convention_option(e)
    e.add_argument("--accelerator", help="add each term's predicted seconds and memory-bound "
                   "share on this catalogue device (the time model; see 'roofline')")
    e.add_argument("--dtype", help="with --accelerator: the training dtype (default bf16)")
    e.add_argument("--profile", help="with --accelerator: a device profile JSON")
    e.add_argument("--db", help="results store (profiles, compiled regions)")
    g = sub.add_parser("plot", help="FLOPs against length or size, log-log, with fitted "
                       "exponents and crossovers (PNG, PDF or SVG)")
    _common(g, formats=False)
    g.set_defaults(format="text")
    g.add_argument("--method", default="analytic", choices=("analytic", "traced", "both"),
                   help="analytic (default), traced, or both (each its own series)")
    g.add_argument("--d-model", help="size grid: model widths (with --x params)")
    g.add_argument("--layers", help="size grid: depths")
    g.add_argument("--heads", help="attention heads (default: d_model / 64)")
    g.add_argument("--d-ff", help="FFN widths (default: 4 x d_model)")
    g.add_argument("--attention", help=ATTENTION_HELP)
    g.add_argument("--config", help="a Hugging Face config.json or a comparator TOML file")
    g.add_argument("--x", default="seq_len", choices=("seq_len", "params"),
                   help="the x axis: seq_len (default) or params (with a size grid)")
    g.add_argument("--y", default="train_flops",
                   help="a numeric record field: train_flops (default), fwd_flops, "
                        "train_flops_per_token, attention_share, ...; with --accelerator "
                        "step_time_s, model_flops_utilisation, dollars (one step), ...")
    g.add_argument("--quiet", action="store_true", help="no progress on stderr")
    _trace_option(g)
    _convention_option(g)
    add_run_args(g)
    g.add_argument("--accelerator", help="time one step of each point on this catalogue "
                   "device (a list, or all: one series per device) for --y step_time_s")
    add_step_time_args(g)
    k = sub.add_parser("cost", help="time, dollars, energy and memory of a training run")
    _common(k, many=False)
    add_model_option(k)
    add_cost_args(k)
    add_size_options(k, grid=False)
    k.add_argument("--attention", help="one attention kernel the model runs instead of its "
                   "own, labelled PRESET@CHOICE: " + ATTENTION_CHOICES_HELP)
    _convention_option(k)
    r = sub.add_parser("roofline", help="time of the training step per term on a device: "
                       "where it goes and where it is memory-bound")
    _common(r, many=False)
    r.add_argument("--accelerator", required=True, help="a catalogue name")
    add_model_option(r)
    r.add_argument("--accelerators", help="a TOML/JSON file adding or overriding entries")
    r.add_argument("--dtype", default="bf16", help="bf16 (default), fp16, fp32, tf32")
    r.add_argument("--top", help="show the N slowest terms (and the total)")
    add_size_options(r, grid=False)
    r.add_argument("--time-model", choices=("roofline", "unfused"), default="roofline",
                   help="roofline (default): the time model of the compiled step (fused "
                        "regions, shape-dependent rates) on the device's profile; unfused: "
                        "every traced equation through memory, an upper bound")
    r.add_argument("--profile", help="a device profile JSON describing the accelerator")
    r.add_argument("--db", help="results store (profiles, compiled regions)")
    _convention_option(r, "the utilisation bound (training FLOPs / peak / roofline time) "
                       "counts the step by that paper's whole formula; the per-term rows "
                       "stay the traced step's")
    b = sub.add_parser("bench", help="measure the real jit-compiled training step (time, "
                       "tokens/s, achieved FLOP/s, utilisation), or attention kernels")
    _common(b)
    add_model_option(b, "its training step measured at each --seq")
    b.add_argument("--accelerator", help="the catalogue device this runs on: utilisation "
                   "against its peak in --dtype, records labelled for 'cost --calibration'")
    b.add_argument("--accelerators", help="a TOML/JSON file adding or overriding entries")
    b.add_argument("--kernel", help="attention: dense, chunked, flash, local, Linformer, "
                   "Performer and LSH attention across --seq, with the measured and the FLOP "
                   "crossovers")
    b.add_argument("--d-model", help="size grid: model widths, e.g. 256,512 (as sweep)")
    b.add_argument("--layers", help="size grid: depths, e.g. 2,4")
    b.add_argument("--heads", help="attention heads (default: d_model / 64; with --kernel: "
                   "heads, default 4)")
    b.add_argument("--d-ff", help="FFN widths (default: 4 x d_model)")
    b.add_argument("--attention", help=ATTENTION_HELP + "; not with --kernel")
    b.add_argument("--predict", action="store_true", help="also predict each step's time: "
                   "the time model (roofline of the compiled step on a device profile) and "
                   "a flat MFU fitted on one point, with their errors")
    b.add_argument("--profile", help="with --predict: the device profile JSON to predict with")
    b.add_argument("--mfu-fit", help="with --predict: ARCH:SEQ of the point the flat MFU is "
                   "fitted on (default: the Transformer's nearest 1024 tokens)")
    b.add_argument("--d-head", default="64", help="with --kernel: head width (default 64)")
    b.add_argument("--chunk", default="64", help="with --kernel: chunk length (default 64)")
    b.add_argument("--hashes", default="1,2,4,8", help="with --kernel: LSH hash rounds")
    b.add_argument("--steps", default="5", help="timed steps after one warm-up (default 5)")
    b.add_argument("--dtype", default="fp32", help="fp32 (default), bf16 or fp16 (mixed "
                   "precision: fp32 parameters, 16-bit compute, fp32 loss), tf32")
    b.add_argument("--memory-limit", help="bytes a point may need (default: the memory "
                   "available now); points above it are skipped, not run")
    _convention_option(b, "train FLOPs, achieved FLOP/s and utilisation follow that "
                       "paper's whole formula (the measured times do not change); not with "
                       "--kernel")
    add_run_args(b, jobs=False)   # local benchmarks one at a time: workers would contend
    n = sub.add_parser("scenario", help="published pre-training runs (BERT, GPT-2, T5) priced "
                       "on accelerators, against the published cost estimates")
    n.add_argument("--accelerator", help="catalogue names or all (default: tpu-v3, "
                   "v100-16gb, a100-80gb, h100-sxm)")
    n.add_argument("--accelerators", help="a TOML/JSON file adding or overriding entries")
    n.add_argument("--scenarios", help="a scenarios TOML file (default: the packaged one)")
    n.add_argument("--runs", help="runs for the tuning column (default 20: 2 configs x 10)")
    n.add_argument("--pue", default="1.1", help="data-centre power usage effectiveness")
    n.add_argument("--grid-intensity", default="0.4", help="kg CO2 per kWh")
    n.add_argument("--db", help="results store (profiles, compiled regions)")
    add_price_args(n)
    add_time_args(n)
    add_output_options(n, tables.FORMATS)
    c = sub.add_parser("accelerators", help="the accelerator catalogue with its sources")
    c.add_argument("--accelerators", help="a TOML/JSON file adding or overriding entries")
    add_output_options(c, tables.FORMATS)
    add_calibrate_parser(sub, tables.FORMATS)
    add_budget_parser(sub, tables.FORMATS)
    add_claim_parsers(sub)
    add_store_parser(sub, COMMANDS)
    register_memory(sub, COMMANDS)
    p = sub.add_parser("presets", help="every preset with its sizes, parameters and source")
    add_output_options(p, tables.FORMATS)
    return ap


def _emit(text: str, output: str | None) -> None:
    if output:
        try:
            with open(output, "w") as fh:
                fh.write(text)
        except OSError as err:
            # the result is computed: do not lose it, print it and report the file error
            sys.stdout.write(text)
            raise UsageError("-o", output, f"a writable file path ({err.strerror})") from None
    else:
        sys.stdout.write(text)


def _progress(quiet: bool):
    if quiet or not sys.stderr.isatty():
        return None

    def show(i, n):
        bar = "#" * (30 * i // n)
        sys.stderr.write(f"\r[{bar:<30}] {i}/{n} traced points")
        if i == n:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def _methods(m: str | None):
    return None if m is None else ("analytic", "traced") if m == "both" else (m,)


def _notes(a, req) -> None:
    """What the request changed of what was typed (a length given twice), on stderr."""
    for note in req.notes:
        sys.stderr.write(f"comparator {a.command}: note: {note}\n")


def sweep_request(a, pricing=None, with_baseline: bool = True) -> SweepRequest:
    """The ``SweepRequest`` of sweep's (or plot's) options, parsed."""
    return build(SweepRequest, a, archs=arch_list(a.arch) if a.arch else (),
                 presets=[p for p in (a.preset or "").split(",") if p], sizes=size_grid(a),
                 attentions=tuple(x for x in (a.attention or "").split(",") if x),
                 config=a.config, seqs=seq_list(a.seq), batch=positive_int("--batch", a.batch),
                 methods=_methods(a.method), scope=a.scope, trace=a.trace,
                 convention=a.convention, baseline=getattr(a, "baseline", None),
                 with_baseline=with_baseline, pricing=pricing, model=getattr(a, "model", None),
                 **runner_options(a))


def cmd_sweep(a) -> str:
    req = sweep_request(a, pricing_of(a), with_baseline=not a.no_baseline)
    res = execute.sweep(req, progress=_progress(a.quiet))
    recs = res.records
    report(a, res.tracer)
    _notes(a, req)
    if a.format == "json":
        return tables.render(recs, "json")
    method = "both" if len(req.methods) == 2 else req.methods[0]
    cap = tables.caption(a.scope, a.per, req.batch, any("ratio_train" in r for r in recs),
                         method, convention=a.convention)
    if res.counted is not None:
        cap += " " + tables.model_text(recs, res.counted.note)
    if tables.not_defined_text(recs):
        cap += " " + tables.not_defined_text(recs)
    if req.pricing is not None:
        p = req.pricing
        run = (f"a run of {p.tokens:,} tokens" if p.tokens else
               f"{p.steps:,} steps" if p.steps else "one training step")
        cap += (f" Cost of {run} at {p.dtype}"
                + (" (each device's training precision)" if p.dtype == "auto" else "")
                + f": {time_text(res.time_model)}; $ = device-hours x {p.price_kind} price"
                + (f" listed on or before {p.prices}" if p.prices else "")
                + ", energy = device-hours x TDP x PUE"
                + ("" if a.point else "; (low-high) = p5-p95 over utilisation, offers, PUE "
                   "and grid intensity") + "."
                + (f" Not priced: {'; '.join(res.skipped)}." if res.skipped else "")
                + fused_text(recs))
    return tables.render(tables.sweep_rows(recs, a.per, a.point), a.format, cap,
                         label="tab:sweep")


def cmd_plot(a) -> str:
    if not a.output:
        raise UsageError("-o", None, "an output file ending in .png, .pdf or .svg")
    if not a.output.lower().endswith((".png", ".pdf", ".svg")):
        raise UsageError("-o", a.output, "a file name ending in .png, .pdf or .svg")
    folder = os.path.dirname(os.path.abspath(a.output))
    if not (os.path.isdir(folder) and os.access(folder, os.W_OK)):
        raise UsageError("-o", a.output, "a file in an existing, writable folder")
    req = sweep_request(a, pricing_of(a), with_baseline=False)
    res = execute.sweep(req, progress=_progress(a.quiet))
    recs, batch = res.records, req.batch
    report(a, res.tracer)
    _notes(a, req)
    gaps = [r for r in recs if r.get("reason")]     # points the convention does not define
    recs = [r for r in recs if not r.get("reason")]
    if gaps and not recs:
        raise UsageError("--convention", a.convention, "standard, or a convention that "
                         f"defines one of the architectures ({gaps[0]['reason']})")
    from comparator.report import plots
    cap = tables.caption(a.scope, "sequence", batch, convention=a.convention)
    if req.pricing is not None:
        cap += (f" One step on each device in {req.pricing.dtype}: "
                f"{time_text(res.time_model)}." + fused_text(recs))
    try:
        fit = plots.plot(recs, a.output, x=a.x, y=a.y, caption=cap)
    except ValueError as err:
        raise UsageError("--y", a.y, str(err) + ("" if req.pricing is not None else
                         "; time and cost fields (step_time_s, ...) with --accelerator")) \
            from None
    except OSError as err:
        raise UsageError("-o", a.output, f"a writable file path ({err.strerror})") from None
    rows = [{"series": k, "exponent": v, "local exponent": fit["local_exponents"].get(k)}
            for k, v in fit["exponents"].items()]
    rows += [{"series": f"{c['a']} below {c['b']} beyond", "crossover": c["x"]}
             for c in fit["crossovers"]]
    rows += [{"series": f"{r['arch']}:{r['preset']} (not plotted)", "note": r["reason"]}
             for r in {(r["arch"], r["preset"]): r for r in gaps}.values()]
    return tables.render(rows, "text", f"wrote {a.output}")


def cmd_presets(a) -> str:
    rows = []
    for arch, name, cfg, src in architectures.all_presets():
        mod = architectures.get(arch)
        active = getattr(mod, "active_params", None)
        rows.append({"arch": arch, "preset": name, "d_model": cfg.d_model,
                     "layers": cfg.n_layers, "heads": cfg.n_heads,
                     "d_ff": getattr(cfg, "d_ff", None), "vocab": cfg.vocab,
                     "params": mod.params(cfg),
                     **({"active params": active(cfg)} if active else {}), "source": src})
    return tables.render(rows, a.format, "Parameters counted from each config (equal to the "
                         "Flax parameter tree); active: those a token uses (a mixture of "
                         "experts' top-k experts).", label="tab:presets")


COMMANDS = {"sweep": cmd_sweep, "explain": cmd_explain, "presets": cmd_presets,
            "plot": cmd_plot, "accelerators": cmd_accelerators, "cost": cmd_cost,
            "roofline": cmd_roofline, "scenario": cmd_scenario, "bench": cmd_bench,
            "conventions": cmd_conventions, "claims": cmd_claims, "calibrate": cmd_calibrate,
            "budget": cmd_budget}


def main(argv=None) -> int:
    ap = build_parser()
    a = ap.parse_args(argv)
    from comparator.cost import steptime
    steptime.PROGRESS = None if getattr(a, "quiet", False) else (
        lambda line: (sys.stderr.write(f"comparator: {line}\n"), sys.stderr.flush()))
    from comparator.run import storefile
    storefile.NOTIFY = notify_store
    try:
        text = COMMANDS[a.command](a)
        _emit(text, None if a.command == "plot" else getattr(a, "output", None))
        return getattr(a, "exit_status", 0)   # 1: some points failed (named on stderr)
    except (FieldError, ConfigError) as err:
        if a.debug:
            raise
        field = getattr(err, "field", "input")
        sys.stderr.write(f"comparator {a.command}: error: {field}: {err.value!r} is not "
                         f"allowed; {err.allowed}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("comparator: interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
