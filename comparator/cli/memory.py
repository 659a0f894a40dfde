"""``comparator memory``: our memory estimate of the real training step beside XLA's
analysis of the compiled step (and, with ``--run``, the measured peak), per point and
policy, with the median and worst ratio per architecture and policy."""
from __future__ import annotations

import sys

from comparator.cost.compiled import DTYPES
from comparator.report import tables
from comparator.run.measurerequests import MemoryRequest
from comparator.run.memory import check, summary
from comparator.cli.args import (ATTENTION_HELP, add_output_options, add_size_options,
                                 arch_list, build, int_list, seq_list, size_grid)

MB = 1e6


def register(sub, commands: dict) -> None:
    """Add the ``memory`` parser to ``sub`` and its handler to ``commands``."""
    m = sub.add_parser("memory", help="memory of the real training step (Adam, parameters "
                       "and moments donated): our estimate beside XLA's buffer assignment, "
                       "and with --run the measured peak, per policy")
    m.add_argument("--arch", default="all", help="transformer, albert, electra, reformer, "
                   "a comma-separated list, or all (default)")
    m.add_argument("--preset", help="preset name(s), comma separated (default: each "
                   "architecture's BERT-base-sized preset)")
    m.add_argument("--seq", required=True, help="sequence lengths: 512,1024 or 512:4096:x2")
    m.add_argument("--batch", default="1", help="sequences per step, comma separated "
                   "(default 1)")
    add_size_options(m)
    m.add_argument("--policy", default="all", help="store_all, checkpoint, reversible "
                   "(comma separated) or all (default): each architecture's own")
    m.add_argument("--attention", help=ATTENTION_HELP)
    m.add_argument("--dtype", default="fp32", choices=DTYPES, help="training dtype "
                   "(default fp32; 16-bit: fp32 master parameters cast inside the loss)")
    m.add_argument("--run", action="store_true", help="also run each step (random inputs, "
                   "one process each) and report its measured peak")
    m.add_argument("--summary", action="store_true", help="only the median and worst ratio "
                   "per architecture and policy")
    add_output_options(m, tables.FORMATS)
    commands["memory"] = cmd_memory


def memory_request(a) -> MemoryRequest:
    """The ``MemoryRequest`` of the memory command's options, parsed."""
    return build(MemoryRequest, a, archs=arch_list(a.arch), sizes=size_grid(a),
                 presets=[p for p in (a.preset or "").split(",") if p], seqs=seq_list(a.seq),
                 batches=[b for b in int_list("--batch", a.batch) if b is not None],
                 policies=a.policy, dtype=a.dtype, run=a.run,
                 attentions=tuple(x for x in (a.attention or "").split(",") if x))


def cmd_memory(a) -> str:
    req = memory_request(a)
    for note in req.notes:
        sys.stderr.write(f"comparator memory: note: {note}\n")
    recs = check(req)
    rows = summary(recs)
    if a.format == "json":
        return tables.render(rows if a.summary else recs, "json")
    device = recs[0]["device"] if recs else ""
    cap = (f"Ratio = our estimate / XLA's total (arguments + temporaries + outputs - "
           f"aliases) of the compiled step on {device}, {a.dtype}: loss, gradients and an "
           f"Adam update with parameters and moments donated; our estimate is the peak of "
           f"the traced step's live buffers under XLA's fusion and the {device} schedule."
           + (" A checkpointed step keeps JAX's remat barriers through scheduling, as "
              "XLA:GPU does (XLA:CPU's default drops them early and partly undoes the "
              "checkpointing; its total is the JSON field xla_cpu_default_bytes)."
              if device == "cpu" else ""))
    table = [{"arch": r["arch"], "policy": r["policy"], "points": r["points"],
              "median": r["median"], "worst": r["worst"], "worst at": r["worst_at"]}
             for r in rows]
    if a.summary:
        return tables.render(table, a.format, cap, label="tab:memory-summary")
    points = []
    for r in recs:
        row = {"arch": r["arch"], "preset": r["preset"], "seq": r["seq_len"],
               "batch": r["batch"], "policy": r["policy"],
               "ours MB": r["estimated_bytes"] / MB,
               "saved+working MB": (r["estimate"]["saved"] + r["estimate"]["working"]) / MB}
        if r.get("xla_bytes") is not None:
            row.update({"XLA args MB": r["xla_argument_bytes"] / MB,
                        "temps MB": r["xla_temp_bytes"] / MB,
                        "outs MB": r["xla_output_bytes"] / MB,
                        "aliases MB": r["xla_alias_bytes"] / MB,
                        "XLA MB": r["xla_bytes"] / MB, "ratio": r["ratio"]})
        if a.run:
            peak = r.get("measured_peak_bytes")
            row["measured MB"] = peak / MB if peak else r.get("measured_error", "")
        points.append(row)
    cap += (" Measured: " + recs[0].get("measured_how", "") + "." if a.run and recs else "")
    return (tables.render(points, a.format, cap, label="tab:memory")
            + "\n" + tables.render(table, a.format, "", label="tab:memory-summary"))


__all__ = ["cmd_memory", "memory_request", "register"]
