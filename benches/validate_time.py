"""The time model against measured steps, measured in several rounds spread in time.

    python benches/validate_time.py --profile cpu.json --rounds 3 [--out DIR] \
        [--arch transformer,reformer,albert,electra] [--seq 256,512,1024,2048,4096] \
        [--d-model 256,512] [--layers 2] [--steps 5]
    python benches/validate_time.py --from DIR/round*.json      # combine earlier rounds
    python benches/validate_time.py --from DIR/round*.json --repredict cpu.json

Each round is one whole ``comparator bench --predict --no-cache --format json`` process
over every point (odd rounds take the architectures and lengths in reverse order, so that
no point is always measured first or last).  A round's step time of a point is the median
of its ``--steps`` steps; across rounds this prints, per point, the prediction (the same
in every round: one profile), the fastest and the median of the rounds' medians, and the
time model's and the flat MFU's errors against both.

``--repredict PROFILE`` predicts every point again with the code as it is now on that
profile (compiling each point's step; the rounds' files keep the prediction of the code
that measured them), so a change to the time model is judged on the same measured steps.

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
    step, their fastest and median, and the errors against both.  The flat MFU is fitted
    on the rounds' own fit point (the one ``bench --predict`` named) by the same
    statistic it is compared with: its fastest round for the fastest, its median for the
    median -- a fit on one round's slow step would blame the model for the machine."""
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
        best, med = min(steps), statistics.median(steps)
        rows.append({"arch": k[0], "preset": first["preset"], "d_model": k[1],
                     "n_layers": k[2], "seq_len": k[3], "batch": k[4],
                     "train_flops": first["train_flops"], "fit": first["mfu_fit_point"],
                     "rounds_s": steps, "fastest_s": best, "median_s": med,
                     "predicted_s": first["predicted_step_s"],
                     "spread_pct": 100 * (max(steps) - best) / best})
    fit = next(r for r in rows if f"{r['arch']}:{r['preset']} seq {r['seq_len']} batch "
               f"{r['batch']}" == rows[0]["fit"])
    for r in rows:
        for col, tag in (("fastest_s", "fastest"), ("median_s", "median")):
            mfu = fit[col] * r["train_flops"] / fit["train_flops"]
            r[f"predicted_mfu_{tag}_s"] = mfu
            r[f"mfu_error_{tag}_pct"] = 100 * (mfu - r[col]) / r[col]
    errors(rows)
    return rows


def errors(rows) -> None:
    for r in rows:
        r["error_fastest_pct"] = 100 * (r["predicted_s"] - r["fastest_s"]) / r["fastest_s"]
        r["error_median_pct"] = 100 * (r["predicted_s"] - r["median_s"]) / r["median_s"]


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
    print(f"flat MFU (fitted on {rows[0]['fit']}) against the fastest round:",
          stats(r["mfu_error_fastest_pct"] for r in rows), "; against the median of rounds:",
          stats(r["mfu_error_median_pct"] for r in rows))
    for which, mcol in (("fastest round", "fastest_s"), ("median of rounds", "median_s")):
        rf = [x for x in ratio_rows(rows, mcol) if x["arch"] == "reformer"]
        if rf:
            print(f"Reformer/Transformer ratios against the {which} within 20%: "
                  f"{sum(abs(x['error_pct']) <= 20 for x in rf)} of {len(rf)}, worst "
                  f"{max(abs(x['error_pct']) for x in rf):.1f}%")
        worst = sorted(ratio_rows(rows, mcol), key=lambda x: -abs(x["error_pct"]))[:3]
        print(f"largest ratio errors against the {which}: " + "; ".join(
            f"{x['arch']} d{x['d_model']} at {x['seq_len']}: measured {x['measured']:.2f}, "
            f"predicted {x['predicted']:.2f} ({x['error_pct']:+.0f}%)" for x in worst))
    for d in sorted({r["d_model"] for r in rows}, key=str):
        for arch in sorted({r["arch"] for r in rows} - {"transformer"}):
            m, p = crossover(rows, arch, d, "fastest_s")
            print(f"crossover {arch} < transformer at d_model {d}: measured {m}, predicted {p}")


def repredict(rows, path: str) -> None:
    """Each row's ``predicted_s`` and time-model errors from the current code on the
    profile at ``path`` (the flat MFU's, fitted on a measured point, are kept)."""
    import architectures
    from comparator.cost.profile import load
    from comparator.cost.regions import step_regions
    from comparator.cost.timemodel import predict
    from comparator.run.sweep import resized, resolve
    profile = load(path)
    for r in rows:
        _, name, cfg = resolve(r["arch"], r["preset"].split("@")[0])
        m = resized(r["arch"], name, cfg, (r["d_model"], r["n_layers"], None, None))
        r["predicted_s"] = predict(step_regions(architectures.get(r["arch"]), m.cfg,
                                                r["seq_len"], r["batch"], "fp32"),
                                   profile).total_s
    errors(rows)


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
    ap.add_argument("--repredict", metavar="PROFILE",
                    help="predict every point again with the current code on PROFILE")
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
    if args.repredict:
        repredict(rows, args.repredict)
    report(rows)


if __name__ == "__main__":
    main()
