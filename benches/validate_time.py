"""The time model against measured steps, measured in several rounds spread in time.

    python benches/validate_time.py --profile cpu.json --rounds 3 [--out DIR] \
        [--arch transformer,reformer,albert,electra] [--seq 256,512,1024,2048,4096] \
        [--d-model 256,512] [--layers 2] [--steps 5]
    python benches/validate_time.py --from DIR/round*.json      # combine earlier rounds
    python benches/validate_time.py --from DIR/round*.json --without-layouts cpu.json

Each round is one whole ``comparator bench --predict --no-cache --format json`` process
over every point (odd rounds take the architectures and lengths in reverse order, so that
no point is always measured first or last).  A round's step time of a point is the median
of its ``--steps`` steps; across rounds this prints, per point, the prediction (the same
in every round: one profile), the fastest and the median of the rounds' medians, and the
time model's and the flat MFU's errors against both.

``--without-layouts PROFILE`` also predicts every point on that profile with its matmul
points in other layouts than "nn" left out (as a profile measured before layouts were),
compiling each point's step again, and prints that model's errors beside: what the
operand layouts add.

Why rounds: on this shared 2-core machine the same step has been measured 60% apart in two
sessions (BENCHMARKS.md, issue 14's runs), while the steps within one run agree within a
few percent: a slow period lasts longer than one point's steps, so more steps in a row do
not help but measurements minutes apart do.  The fastest round is the estimate of the
undisturbed step the model predicts; the median of rounds is shown beside it so that a
reader sees how much choosing it matters.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile


def run_round(k: int, args, out_dir: str) -> str:
    archs, seqs = args.arch.split(","), args.seq.split(",")
    if k % 2:
        archs, seqs = archs[::-1], seqs[::-1]
    path = os.path.join(out_dir, f"round{k}.json")
    cmd = [sys.executable, "-m", "comparator", "bench", "--predict", "--no-cache",
           "--arch", ",".join(archs), "--seq", ",".join(seqs), "--d-model", args.d_model,
           "--layers", args.layers, "--steps", str(args.steps), "--profile", args.profile,
           "--format", "json", "-o", path]
    print("round", k, ":", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True)
    return path


def key(r: dict) -> tuple:
    return (r["arch"], r.get("d_model"), r.get("n_layers"), r["seq_len"], r["batch"])


def combine(paths) -> list[dict]:
    """One row per point measured in every round: the prediction, each round's median
    step, their fastest and median, and the errors against both."""
    rounds = []
    for p in paths:
        with open(p, encoding="utf-8") as fh:
            recs = json.load(fh)
        rounds.append({key(r): r for r in recs if "predicted_step_s" in r})
    rows = []
    for k in rounds[0]:
        if not all(k in rd for rd in rounds):
            continue
        first = rounds[0][k]
        steps = [rd[k]["step_s"] for rd in rounds]
        pred, mfu = first["predicted_step_s"], first["predicted_step_s_mfu"]
        best, med = min(steps), statistics.median(steps)
        rows.append({"arch": k[0], "preset": first["preset"], "d_model": k[1], "n_layers": k[2], "seq_len": k[3],
                     "batch": k[4], "rounds_s": steps, "fastest_s": best, "median_s": med,
                     "predicted_s": pred, "predicted_mfu_s": mfu,
                     "error_fastest_pct": 100 * (pred - best) / best,
                     "error_median_pct": 100 * (pred - med) / med,
                     "mfu_error_fastest_pct": 100 * (mfu - best) / best,
                     "spread_pct": 100 * (max(steps) - best) / best})
    return rows


def ratio_rows(rows, measured: str) -> list[dict]:
    """Each architecture's time over the Transformer's at the same widths and length."""
    base = {(r["d_model"], r["n_layers"], r["seq_len"], r["batch"]): r
            for r in rows if r["arch"] == "transformer"}
    out = []
    for r in rows:
        b = base.get((r["d_model"], r["n_layers"], r["seq_len"], r["batch"]))
        if r["arch"] == "transformer" or b is None:
            continue
        m, p = r[measured] / b[measured], r["predicted_s"] / b["predicted_s"]
        out.append({"arch": r["arch"], "d_model": r["d_model"], "seq_len": r["seq_len"],
                    "measured": m, "predicted": p, "error_pct": 100 * (p - m) / m})
    return out


def crossover(rows, arch: str, d_model, measured: str):
    """The first length at which ``arch`` is faster than the Transformer, measured and
    predicted (None: not within the lengths)."""
    rs = sorted((r for r in ratio_rows(rows, measured)
                 if r["arch"] == arch and r["d_model"] == d_model), key=lambda r: r["seq_len"])
    first = lambda f: next((r["seq_len"] for r in rs if f(r) < 1), None)   # noqa: E731
    return first(lambda r: r["measured"]), first(lambda r: r["predicted"])


def stats(errs) -> str:
    a = sorted(abs(e) for e in errs)
    return f"median {statistics.median(a):.1f}%, worst {a[-1]:.1f}%" if a else "none"


def report(rows) -> None:
    print(f"{'arch':<12}{'d':>5}{'seq':>7}  {'rounds (s)':<30}{'predicted':>10}"
          f"{'err fastest':>12}{'err median':>11}{'MFU err':>9}{'spread':>8}")
    for r in sorted(rows, key=lambda r: (r["arch"], r["d_model"], r["seq_len"])):
        rounds = " ".join(f"{s:.4g}" for s in r["rounds_s"])
        print(f"{r['arch']:<12}{r['d_model']:>5}{r['seq_len']:>7}  {rounds:<30}"
              f"{r['predicted_s']:>10.4g}{r['error_fastest_pct']:>+11.1f}%"
              f"{r['error_median_pct']:>+10.1f}%{r['mfu_error_fastest_pct']:>+8.1f}%"
              f"{r['spread_pct']:>7.0f}%")
    for which, col, mcol in (("fastest round", "error_fastest_pct", "fastest_s"),
                             ("median of rounds", "error_median_pct", "median_s")):
        rat = ratio_rows(rows, mcol)
        within = sum(abs(x["error_pct"]) <= 20 for x in rat)
        print(f"against the {which}: time model {stats(r[col] for r in rows)}; "
              f"ratios to the Transformer within 20%: {within} of {len(rat)}")
    print("flat MFU against the fastest round:", stats(r["mfu_error_fastest_pct"] for r in rows))
    for d in sorted({r["d_model"] for r in rows}, key=str):
        for arch in sorted({r["arch"] for r in rows} - {"transformer"}):
            m, p = crossover(rows, arch, d, "fastest_s")
            print(f"crossover {arch} < transformer at d_model {d}: measured {m}, predicted {p}")


def without_layouts(rows, path: str) -> None:
    """Each row's prediction on ``path``'s profile without its non-"nn" matmul points, and
    its errors against the fastest and the median round (``*_nn`` fields)."""
    import dataclasses

    import architectures
    from comparator.cost.profile import load
    from comparator.cost.regions import step_regions
    from comparator.cost.timemodel import predict
    from comparator.run.sweep import resolve
    full = load(path)
    nn = dataclasses.replace(full, matmul=tuple(p for p in full.matmul if p.layout == "nn"))
    for r in rows:
        mod = architectures.get(r["arch"])
        _, _, cfg = resolve(r["arch"], r["preset"].split("@")[0])
        cfg = mod.resize(cfg, d_model=r["d_model"], n_layers=r["n_layers"], n_heads=None,
                         d_ff=None)
        regs = step_regions(mod, cfg, r["seq_len"], r["batch"], "fp32")
        pred = predict(regs, nn).total_s
        r["predicted_nn_s"] = pred
        r["error_fastest_nn_pct"] = 100 * (pred - r["fastest_s"]) / r["fastest_s"]
        r["error_median_nn_pct"] = 100 * (pred - r["median_s"]) / r["median_s"]
        again = predict(regs, full).total_s       # the same regions on the full profile
        r["recheck_pct"] = 100 * (again - r["predicted_s"]) / r["predicted_s"]
    print("without the layout points (every contraction at its nn rate):")
    for which, col in (("fastest round", "error_fastest_nn_pct"),
                       ("median of rounds", "error_median_nn_pct")):
        print(f"  against the {which}: {stats(r[col] for r in rows)}")
    print("  recomputed with the layouts, largest difference to the rounds' prediction: "
          f"{max(abs(r['recheck_pct']) for r in rows):.2f}%")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--from", dest="paths", nargs="+", help="combine these round files")
    ap.add_argument("--profile", help="device profile JSON (comparator calibrate -o)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", help="folder for the round files (default: a temporary one)")
    ap.add_argument("--arch", default="transformer,reformer,albert,electra")
    ap.add_argument("--seq", default="256,512,1024,2048,4096")
    ap.add_argument("--d-model", default="256,512")
    ap.add_argument("--layers", default="2")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--without-layouts", metavar="PROFILE",
                    help="also predict on PROFILE without its non-nn matmul points")
    args = ap.parse_args(argv)
    if args.paths:
        paths = args.paths
    else:
        if not args.profile:
            ap.error("--profile is required to measure (or give --from FILES)")
        out = args.out or tempfile.mkdtemp(prefix="validate_time_")
        os.makedirs(out, exist_ok=True)
        paths = [run_round(k, args, out) for k in range(args.rounds)]
    rows = combine(paths)
    report(rows)
    if args.without_layouts:
        without_layouts(rows, args.without_layouts)


if __name__ == "__main__":
    main()
