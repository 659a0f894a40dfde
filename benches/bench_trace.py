"""Traced counts: re-tracing the whole model per point vs the reuse ``sweep`` does.

    python benches/bench_trace.py [--preset bert-large] [--sweep-preset bert-base]
                                  [--seqs 128:262144:x2] [--repeat 3]

Three ways, in this process, on the same inputs:
- **plain, full** (the baseline): every point traced whole the obvious way -- plain
  layers (``architectures.blocks.plain_layers()``), ``trace(prog.loss)``,
  ``trace(prog.train_step)`` and, for memory, ``memory.saved_activation_bytes`` each
  tracing the model on its own: no reuse at all;
- **full**: every point traced whole, as ``--trace full`` does: the layers are jitted
  calls (``blocks.JitLayer``), so JAX traces one layer and reuses it for the others, and
  the model's Python runs once per point (``comparator.count.step``: the training step and
  its residuals from the forward jaxpr);
- **fast**: ``comparator.count.fasttrace.traced_counts``, sweep's default: jitted layers, each
  region of lengths traced once with the length symbolic (plus depth extrapolation for
  the architectures whose layers are not jitted).

1. One configuration (forward + training step): ``--preset`` at ``--seq`` (bert-large,
   512), median of ``--repeat`` runs once JAX is imported and warm (fast: empty cache).
2. A sweep of ``--sweep-preset`` over ``--seqs`` (12 lengths), counts; then counts and
   saved activation memory, what ``sweep --method traced`` runs.
Every count is checked equal to the baseline's (totals, terms, unsupported, flagged,
parameters, activation bytes).  Before each timed run JAX's caches are cleared and JAX is
warmed up again on a narrower gpt2-small (other shapes), so no run reuses another's
traces.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time

import jax

import architectures
from architectures.blocks import plain_layers
from comparator.count import fasttrace as ft
from comparator.count.memory import saved_activation_bytes
from comparator.count.trace import trace


def seq_list(text: str) -> list[int]:
    if ":x" in text:
        lo, rest = text.split(":", 1)
        hi, factor = rest.split(":x")
        out, s = [], int(lo)
        while s <= int(hi):
            out.append(s)
            s *= int(factor)
        return out
    return [int(x) for x in text.split(",")]


def fresh():
    """Forget every trace (JAX's caches, the fast path's), then warm JAX up again on other
    shapes: each timed run starts as the first trace of its shapes in a warm process."""
    jax.clear_caches()
    ft.clear_cache()
    tr = architectures.get("transformer")
    warm = dataclasses.replace(tr.PRESETS["gpt2-small"][0], d_model=192, n_heads=3)
    ft.full_count(tr, warm, 96, 1, True)
    ft.clear_cache()


def timed(fn):
    fresh()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def full(mod, cfg, seqs, memory=False):
    return {s: ft.full_count(mod, cfg, s, 1, memory) for s in seqs}


def plain(mod, cfg, seqs, memory=False):
    """The baseline: each point traced whole, the obvious way -- plain layers, the loss,
    the training step and (with ``memory``) the pullback each traced on their own."""
    out = {}
    with plain_layers():
        for s in seqs:
            prog, params, data, rng = ft.abstract_inputs(mod, cfg, 1, s)
            n = sum(int(x.size) for x in jax.tree_util.tree_leaves(params))
            mem = saved_activation_bytes(prog, params, data, rng) if memory else None
            out[s] = ft.FastCount(trace(prog.loss, params, data, rng),
                                  trace(prog.train_step, params, data, rng), n, "plain", mem)
    return out


def fast(mod, cfg, seqs, verify="point", memory=False):
    ft.clear_cache()
    return ft.traced_counts(mod, cfg, seqs, 1, verify=verify, memory=memory)


def check(ref, got):
    for s in ref:
        a, b = ref[s], got[s]
        assert ft.same(a.fwd, b.fwd) and ft.same(a.train, b.train), s
        assert (a.params, a.activation_bytes) == (b.params, b.activation_bytes), s


def row(label, t, base=None):
    ratio = f"   x{base / t:.1f}" if base else "   (baseline)"
    print(f"   {label:44s} {t:8.3f} s{ratio}")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="bert-large")
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--sweep-preset", default="bert-base")
    ap.add_argument("--seqs", default="128:262144:x2")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args(argv)
    print("$ python benches/bench_trace.py " + " ".join(sys.argv[1:] if argv is None else argv))
    tr = architectures.get("transformer")

    def median(fn):
        runs = [timed(fn) for _ in range(a.repeat)]
        return statistics.median(t for t, _ in runs), runs[0][1]

    cfg1 = tr.PRESETS[a.preset][0]
    t1_plain, ref1 = median(lambda: plain(tr, cfg1, [a.seq]))
    t1_full, got1 = median(lambda: full(tr, cfg1, [a.seq]))
    t1_fast, fast1 = median(lambda: fast(tr, cfg1, [a.seq]))
    check(ref1, got1), check(ref1, fast1)

    seqs = seq_list(a.seqs)
    cfg = tr.PRESETS[a.sweep_preset][0]
    t_plain, ref = timed(lambda: plain(tr, cfg, seqs))
    t_full, got_full = timed(lambda: full(tr, cfg, seqs))
    t_fast, got = timed(lambda: fast(tr, cfg, seqs))
    check(ref, got_full), check(ref, got)
    t_mplain, ref_m = timed(lambda: plain(tr, cfg, seqs, memory=True))
    t_mfull, got_mfull = timed(lambda: full(tr, cfg, seqs, memory=True))
    t_mfast, got_m = timed(lambda: fast(tr, cfg, seqs, memory=True))
    check(ref_m, got_mfull), check(ref_m, got_m)

    print(f"\n1. one configuration, forward + training step: {a.preset}, seq {a.seq}, batch 1 "
          f"(median of {a.repeat})")
    row("plain layers, full trace", t1_plain)
    row("jitted layers, full trace (--trace full)", t1_full, t1_plain)
    row(f"fast ({fast1[a.seq].method})", t1_fast, t1_plain)
    n = len(seqs)
    print(f"\n2. {n}-length sweep: {a.sweep_preset}, seqs {seqs[0]}..{seqs[-1]}, batch 1")
    print("   counts:")
    row(f"plain layers, {n} full traces", t_plain)
    row(f"jitted layers, {n} full traces (--trace full)", t_full, t_plain)
    row("fast (default)", t_fast, t_plain)
    print("   counts and activation memory, as `sweep --method traced` runs it:")
    row(f"plain layers, {n} full traces", t_mplain)
    row(f"jitted layers, {n} full traces (--trace full)", t_mfull, t_mplain)
    row("fast (default)", t_mfast, t_mplain)
    for s in seqs:
        print(f"     seq {s:7d}  {got[s].method}")
    print("   every count equals the baseline's (fwd and train: totals, terms, unsupported, "
          "flagged; parameters; activation bytes)")


if __name__ == "__main__":
    main()
