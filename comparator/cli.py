"""Command line: argparse -> sweep -> tables.  Parses and reports; computes nothing itself."""
from __future__ import annotations

import argparse
import sys

import architectures
from architectures.config import ConfigError

from . import sweep, tables
from .sweep import InputError

MAX_SEQ = 1 << 24


def seq_list(text: str) -> list[int]:
    """'512,1024' or a geometric range '512:65536:x2' (start:stop:xFACTOR, stop included)."""
    allowed = "positive integers as '512,1024' or a range 'START:STOP:xFACTOR' like 512:65536:x2"
    try:
        if ":" in text:
            start, stop, step = text.split(":")
            if not step.startswith("x"):
                raise ValueError
            a, b, f = int(start), int(stop), int(step[1:])
            if a <= 0 or b < a or f < 2:
                raise ValueError
            out = []
            while a <= b:
                out.append(a)
                a *= f
        else:
            out = [int(x) for x in text.split(",") if x.strip()]
        if not out or any(s <= 0 or s > MAX_SEQ for s in out):
            raise ValueError
        return out
    except ValueError:
        raise InputError("--seq", text, allowed + f" (at most {MAX_SEQ})") from None


def positive_int(field: str, text: str) -> int:
    try:
        v = int(text)
        if v > 0:
            return v
    except ValueError:
        pass
    raise InputError(field, text, "a positive integer")


def arch_list(text: str) -> list[str]:
    names = list(architectures.NAMES) if text == "all" else [a for a in text.split(",") if a]
    for a in names:
        if a not in architectures.NAMES:
            raise InputError("--arch", a, sweep.suggest(a, architectures.NAMES) + " or all")
    return names


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def int_list(field: str, text: str | None) -> list:
    if text is None:
        return [None]
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
        if vals and all(v > 0 for v in vals):
            return vals
    except ValueError:
        pass
    raise InputError(field, text, "positive integers, comma separated (e.g. 256,512,1024)")


def _common(p: argparse.ArgumentParser, many: bool = True) -> None:
    p.add_argument("--arch", help="transformer, albert, electra, reformer"
                   + (", a comma-separated list, or all" if many else ""))
    p.add_argument("--preset", help="preset name(s), comma separated (default: the "
                   "architecture's BERT-base-sized preset; see 'comparator presets')")
    p.add_argument("--seq", required=True, help="sequence lengths: 512,1024 or 512:65536:x2")
    p.add_argument("--batch", default="1", help="sequences per step (default 1)")
    p.add_argument("--scope", default="matmul", choices=sweep.SCOPES,
                   help="matmul: contractions only; all: + elementwise, softmax, norms, hashing")
    p.add_argument("--format", default="text", choices=tables.FORMATS)
    p.add_argument("-o", "--output", help="write the table to this file instead of stdout")


def _trace_option(p) -> None:
    p.add_argument("--trace", default="fast", choices=sweep.TRACES,
                   help="fast (default): each model traced shallow and with the length "
                        "symbolic, equal to full traces; checked: also one length against "
                        "the full model; full: every point traced whole (slow)")


def build_parser() -> argparse.ArgumentParser:
    ap = Parser(prog="comparator", description="What an architecture really "
                "costs to train: analytic and traced FLOPs, parameters.")
    ap.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = ap.add_subparsers(dest="command", required=True, parser_class=Parser)
    s = sub.add_parser("sweep", help="FLOPs and parameters over architectures, sizes, lengths")
    _common(s)
    s.add_argument("--method", default="analytic", choices=("analytic", "traced", "both"))
    s.add_argument("--d-model", help="size grid: model widths, e.g. 256,512,1024")
    s.add_argument("--layers", help="size grid: depths, e.g. 6,12,24")
    s.add_argument("--heads", help="attention heads (default: d_model / 64)")
    s.add_argument("--d-ff", help="FFN widths (default: 4 x d_model)")
    s.add_argument("--baseline", help="ARCH[:PRESET] to compare with at the same length and "
                   "size (default: the Transformer of the same widths)")
    s.add_argument("--no-baseline", action="store_true", help="no baseline rows or ratios")
    s.add_argument("--per", default="sequence", choices=("sequence", "token"),
                   help="FLOP columns per sequence (step) or per token")
    s.add_argument("--config", help="a Hugging Face config.json or a comparator TOML file")
    s.add_argument("--quiet", action="store_true", help="no progress on stderr")
    _trace_option(s)
    e = sub.add_parser("explain", help="where the FLOPs go: analytic vs traced per term")
    _common(e, many=False)
    e.add_argument("--method", default="both", choices=("analytic", "traced", "both"))
    _trace_option(e)
    g = sub.add_parser("plot", help="FLOPs against length or size, log-log, with fitted "
                       "exponents and crossovers (PNG, PDF or SVG)")
    _common(g)
    g.set_defaults(format="text")
    g.add_argument("--method", default="analytic", choices=("analytic", "traced", "both"))
    g.add_argument("--d-model", help="size grid: model widths (with --x params)")
    g.add_argument("--layers", help="size grid: depths")
    g.add_argument("--heads", help="attention heads (default: d_model / 64)")
    g.add_argument("--d-ff", help="FFN widths (default: 4 x d_model)")
    g.add_argument("--config", help="a Hugging Face config.json or a comparator TOML file")
    g.add_argument("--x", default="seq_len", choices=("seq_len", "params"))
    g.add_argument("--y", default="train_flops",
                   help="a numeric record field: train_flops (default), fwd_flops, "
                        "train_flops_per_token, attention_share, ...")
    g.add_argument("--quiet", action="store_true", help="no progress on stderr")
    _trace_option(g)
    k = sub.add_parser("cost", help="time, dollars, energy and memory of a training run")
    _common(k, many=False)
    k.add_argument("--tokens", help="training tokens (steps = tokens / (batch x seq))")
    k.add_argument("--steps", help="training steps (with --batch)")
    k.add_argument("--accelerator", default="all", help="a catalogue name, a list, or all")
    k.add_argument("--accelerators", help="a TOML/JSON file adding or overriding entries")
    k.add_argument("--devices", default="1", help="data-parallel devices (default 1)")
    k.add_argument("--dtype", default="bf16", help="bf16 (default), fp16, fp32, tf32, fp8")
    k.add_argument("--mfu", help="model-FLOPs utilisation (default: the catalogue's)")
    k.add_argument("--runs", default="1", help="runs (e.g. 20 for 2 configurations x 10)")
    k.add_argument("--pue", default="1.1", help="data-centre power usage effectiveness")
    k.add_argument("--grid-intensity", default="0.4", help="kg CO2 per kWh")
    c = sub.add_parser("accelerators", help="the accelerator catalogue with its sources")
    c.add_argument("--accelerators", help="a TOML/JSON file adding or overriding entries")
    c.add_argument("--format", default="text", choices=tables.FORMATS)
    c.add_argument("-o", "--output")
    p = sub.add_parser("presets", help="every preset with its sizes, parameters and source")
    p.add_argument("--format", default="text", choices=tables.FORMATS)
    p.add_argument("-o", "--output")
    return ap


def _emit(text: str, output: str | None) -> None:
    if output:
        try:
            with open(output, "w") as fh:
                fh.write(text)
        except OSError as err:
            # the result is computed: do not lose it, print it and report the file error
            sys.stdout.write(text)
            raise InputError("-o", output, f"a writable file path ({err.strerror})") from None
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


def _methods(m: str):
    return ("analytic", "traced") if m == "both" else (m,)


def _models(a) -> list:
    presets = [p for p in (a.preset or "").split(",") if p]
    sizes = [(d, L, h, ff) for d in int_list("--d-model", a.d_model)
             for L in int_list("--layers", a.layers) for h in int_list("--heads", a.heads)
             for ff in int_list("--d-ff", a.d_ff)]
    sizes = None if sizes == [(None, None, None, None)] else sizes
    if a.config:
        from .configs import load
        loaded = [sweep.Model(arch, label, cfg) for arch, label, cfg in load(a.config)]
        if a.arch:
            keep = set(arch_list(a.arch))
            loaded = [m for m in loaded if m.arch in keep]
        if sizes:
            loaded = [sweep.resized(m.arch, m.preset, m.cfg, s) for m in loaded for s in sizes]
        return loaded
    if not a.arch:
        raise InputError("--arch", None, "an architecture (or --config FILE)")
    return sweep.models(arch_list(a.arch), presets, sizes)


def cmd_sweep(a) -> str:
    ms = _models(a)
    seqs = seq_list(a.seq)
    batch = positive_int("--batch", a.batch)
    methods = _methods(a.method)
    if a.no_baseline and a.baseline:
        raise InputError("--baseline", a.baseline, "not together with --no-baseline")
    recs = sweep.run(sweep.points(ms, seqs, batch), methods, a.scope,
                     progress=_progress(a.quiet) if "traced" in methods else None,
                     baseline=a.baseline, with_baseline=not a.no_baseline, trace=a.trace)
    if a.format == "json":
        return tables.render(recs, "json")
    cap = tables.caption(a.scope, a.per, batch, any("ratio_train" in r for r in recs),
                         a.method)
    return tables.render(tables.sweep_rows(recs, a.per), a.format, cap, label="tab:sweep")


def cmd_explain(a) -> str:
    if not a.arch:
        raise InputError("--arch", None, "one architecture")
    archs = arch_list(a.arch)
    if len(archs) != 1:
        raise InputError("--arch", a.arch, "one architecture for explain")
    seqs = seq_list(a.seq)
    if len(seqs) != 1:
        raise InputError("--seq", a.seq, "one sequence length for explain")
    mod, preset, cfg = sweep.resolve(archs[0], a.preset)
    pt = sweep.Point(archs[0], preset, seqs[0], positive_int("--batch", a.batch), cfg)
    rows, recs = sweep.explain(pt, a.scope, _methods(a.method), a.trace)
    unsupported = {k: v for r in recs.values() for k, v in r["unsupported"].items()}
    note = ", ".join(f"{k} x{v}" for k, v in unsupported.items()) or "none"
    cap = (f"{archs[0]}:{preset}, seq {seqs[0]}, batch {pt.batch}; per term, forward and "
           f"training FLOPs" + ("; diff = traced - analytic" if a.method == "both" else "")
           + f"; unsupported primitives: {note}. " + tables.caption(a.scope, "sequence",
                                                                    pt.batch))
    return tables.render(rows, a.format, cap, label="tab:explain")


def cmd_plot(a) -> str:
    if not a.output:
        raise InputError("-o", None, "an output file ending in .png, .pdf or .svg")
    if not a.output.lower().endswith((".png", ".pdf", ".svg")):
        raise InputError("-o", a.output, "a file name ending in .png, .pdf or .svg")
    ms = _models(a)
    seqs, batch = seq_list(a.seq), positive_int("--batch", a.batch)
    recs = sweep.run(sweep.points(ms, seqs, batch), _methods(a.method), a.scope,
                     progress=_progress(a.quiet) if a.method != "analytic" else None,
                     with_baseline=False, trace=a.trace)
    from . import plots
    try:
        fit = plots.plot(recs, a.output, x=a.x, y=a.y, caption=tables.caption(a.scope,
                         "sequence", batch))
    except ValueError as err:
        raise InputError("--y", a.y, str(err)) from None
    rows = [{"series": k, "exponent": v, "local exponent": fit["local_exponents"].get(k)}
            for k, v in fit["exponents"].items()]
    rows += [{"series": f"{c['a']} below {c['b']} beyond", "crossover": c["x"]}
             for c in fit["crossovers"]]
    return tables.render(rows, "text", f"wrote {a.output}")


def _number(field: str, text):
    try:
        return float(text)
    except (TypeError, ValueError):
        raise InputError(field, text, "a number") from None


def cmd_cost(a) -> str:
    from . import costmodel as cm
    from .accelerators import CatalogueError, load, lookup
    archs = arch_list(a.arch) if a.arch else []
    if len(archs) != 1:
        raise InputError("--arch", a.arch, "one architecture for cost")
    (arch,) = archs
    seqs = seq_list(a.seq)
    if len(seqs) != 1:
        raise InputError("--seq", a.seq, "one sequence length for cost")
    batch = positive_int("--batch", a.batch)
    if (a.tokens is None) == (a.steps is None):
        raise InputError("--tokens", a.tokens, "either --tokens or --steps (with --batch)")
    steps = (positive_int("--steps", a.steps) if a.steps else
             cm.tokens_to_steps(positive_int("--tokens", a.tokens), batch, seqs[0]))
    try:
        cat = load(overrides=a.accelerators)
        names = list(cat) if a.accelerator == "all" else a.accelerator.split(",")
        accs = [lookup(cat, n) for n in names]
    except CatalogueError as err:
        raise InputError(err.field, err.value, err.allowed) from None
    mod, preset, cfg = sweep.resolve(arch, a.preset)
    rec = sweep.analytic(sweep.Point(arch, preset, seqs[0], batch, cfg), a.scope)
    mfu = None if a.mfu is None else _number("--mfu", a.mfu)
    out, skipped = [], []
    for acc in accs:
        try:
            out.append(sweep.with_cost(rec, acc, steps, devices=positive_int("--devices",
                       a.devices), dtype=a.dtype, mfu=mfu, runs=positive_int("--runs", a.runs),
                       pue=_number("--pue", a.pue),
                       grid_intensity=_number("--grid-intensity", a.grid_intensity)))
        except cm.CostError as err:
            if len(accs) == 1:
                raise InputError(err.field, err.value, err.allowed) from None
            skipped.append(f"{acc.name} ({err.allowed})")
    if a.format == "json":
        return tables.render(out, "json")
    rows = [{"accelerator": r["accelerator"], "devices": r["assumptions"]["devices"],
             "MFU": r["assumptions"]["mfu"], "step s": r["step_time_s"],
             "days": r["wall_clock_s"] / 86400, "device-hours": r["device_hours"],
             "$ / run": r["dollars"] if r["dollars"] is not None else "",
             f"$ x {r['runs']}": (r["dollars_all_runs"] if r["dollars"] is not None else ""),
             "kWh": r["energy_kwh"] if r["energy_kwh"] is not None else "",
             "CO2 kg": r["co2_kg"] if r["co2_kg"] is not None else "",
             "fits": "yes" if r["fits"] else f"no (>= {r['min_devices'] or '?'} devices)"}
            for r in out]
    cap = (f"{arch}:{preset}, seq {seqs[0]}, batch {batch}, {steps:,} steps "
           f"({rec['train_flops'] * steps:.3g} training FLOPs per run), dtype {a.dtype}; "
           f"time = FLOPs / (dense peak x MFU x devices); $ = device-hours x on-demand price; "
           f"energy = device-hours x TDP x PUE {a.pue}; CO2 at {a.grid_intensity} kg/kWh"
           + (f"; skipped: {'; '.join(skipped)}" if skipped else "") + ". "
           + tables.CONVENTIONS + ".")
    return tables.render(rows, a.format, cap, label="tab:cost")


def cmd_accelerators(a) -> str:
    from .accelerators import CatalogueError, load, rows
    try:
        cat = load(overrides=a.accelerators)
    except CatalogueError as err:
        raise InputError(err.field, err.value, err.allowed) from None
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


def cmd_presets(a) -> str:
    rows = []
    for arch, name, cfg, src in architectures.all_presets():
        mod = architectures.get(arch)
        rows.append({"arch": arch, "preset": name, "d_model": cfg.d_model,
                     "layers": cfg.n_layers, "heads": cfg.n_heads,
                     "d_ff": getattr(cfg, "d_ff", None), "vocab": cfg.vocab,
                     "params": mod.params(cfg), "source": src})
    return tables.render(rows, a.format, "Parameters counted from each config (equal to the "
                         "Flax parameter tree).", label="tab:presets")


COMMANDS = {"sweep": cmd_sweep, "explain": cmd_explain, "presets": cmd_presets,
            "plot": cmd_plot, "accelerators": cmd_accelerators, "cost": cmd_cost}


def main(argv=None) -> int:
    ap = build_parser()
    a = ap.parse_args(argv)
    try:
        text = COMMANDS[a.command](a)
        _emit(text, None if a.command == "plot" else getattr(a, "output", None))
        return 0
    except (InputError, ConfigError) as err:
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
