"""Traced counts: full traces (what ``sweep.traced`` does per point) vs ``comparator.fasttrace``.

    python benches/bench_trace.py [--preset bert-large] [--sweep-preset bert-base]
                                  [--seqs 128:262144:x2] [--repeat 3]

1. One configuration (forward + training step): ``--preset`` at ``--seq`` (bert-large,
   512), median of ``--repeat`` runs once JAX is imported and warm.  Full: the whole
   model traced.  Fast, cold: ``traced_counts`` with an empty cache (two shallow models
   traced); fast, in a sweep: the per-length time of part 2.
2. A sweep of ``--sweep-preset`` over ``--seqs`` (12 lengths): 12 full traces vs one
   ``traced_counts`` call (empty cache), in this process, same inputs; every fast count
   is checked equal to its full trace (totals, terms, unsupported, flagged, parameters);
   then the same with the saved activation memory, what ``sweep --method traced`` runs.
JAX is warmed first by a full trace and a fast sweep of gpt2-small (other shapes).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import architectures
from comparator import fasttrace as ft


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


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def full(mod, cfg, seqs, memory=False):
    return {s: ft.full_count(mod, cfg, s, 1, memory) for s in seqs}


def fast(mod, cfg, seqs, verify="point", memory=False):
    ft.clear_cache()
    return ft.traced_counts(mod, cfg, seqs, 1, verify=verify, memory=memory)


def check(ref, got):
    for s in ref:
        a, b = ref[s], got[s]
        assert ft.same(a.fwd, b.fwd) and ft.same(a.train, b.train), s
        assert (a.params, a.activation_bytes) == (b.params, b.activation_bytes), s


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
    warm = tr.PRESETS["gpt2-small"][0]
    full(tr, warm, [256])
    fast(tr, warm, [256, 384, 512, 640])

    def one(preset, seq):
        mod, cfg = tr, tr.PRESETS[preset][0]
        t_full = statistics.median(timed(lambda: full(mod, cfg, [seq]))[0]
                                   for _ in range(a.repeat))
        runs = [timed(lambda: fast(mod, cfg, [seq])) for _ in range(a.repeat)]
        check(full(mod, cfg, [seq]), runs[0][1])
        return t_full, statistics.median(t for t, _ in runs), runs[0][1][seq].method

    seqs = seq_list(a.seqs)
    cfg = tr.PRESETS[a.sweep_preset][0]
    t_sweep_full, ref = timed(lambda: full(tr, cfg, seqs))
    t_sweep_fast, got = timed(lambda: fast(tr, cfg, seqs))
    t_sweep_none, got_none = timed(lambda: fast(tr, cfg, seqs, verify="none"))
    check(ref, got), check(ref, got_none)
    # what `sweep --method traced` runs: counts and saved activation memory
    t_mem_full, ref_mem = timed(lambda: full(tr, cfg, seqs, memory=True))
    t_mem_fast, got_mem = timed(lambda: fast(tr, cfg, seqs, memory=True))
    check(ref_mem, got_mem)
    t_full, t_cold, method = one(a.preset, a.seq)

    print(f"\n1. one configuration, forward + training step: {a.preset}, seq {a.seq}, batch 1 "
          f"(median of {a.repeat})")
    print(f"   {'full trace':36s} {t_full:8.3f} s")
    print(f"   {'fast, cold (' + method + ')':36s} {t_cold:8.3f} s   x{t_full / t_cold:.1f}")
    print(f"   {'fast, per length in a 12-length sweep':36s} "
          f"{t_sweep_fast / len(seqs):8.3f} s   ({a.sweep_preset}, part 2)")
    print(f"\n2. {len(seqs)}-length sweep: {a.sweep_preset}, seqs {seqs[0]}..{seqs[-1]}, batch 1")
    print(f"   {'12 full traces' if len(seqs) == 12 else 'full traces':36s} {t_sweep_full:8.3f} s")
    print(f"   {'fast (verify=point, default)':36s} {t_sweep_fast:8.3f} s   "
          f"x{t_sweep_full / t_sweep_fast:.1f}")
    print(f"   {'fast (verify=none)':36s} {t_sweep_none:8.3f} s   "
          f"x{t_sweep_full / t_sweep_none:.1f}")
    print("   with activation memory, as `sweep --method traced` runs it:")
    print(f"   {'full traces':36s} {t_mem_full:8.3f} s")
    print(f"   {'fast (verify=point, default)':36s} {t_mem_fast:8.3f} s   "
          f"x{t_mem_full / t_mem_fast:.1f}")
    for s in seqs:
        print(f"     seq {s:7d}  {got[s].method}")
    print("   every fast count equals its full trace (fwd and train: totals, terms, "
          "unsupported, flagged; parameters; activation bytes)")


if __name__ == "__main__":
    main()
