"""The Reformer's backward with the forward's buckets (the reference's way, default) against
hashing again (``rehash_in_backward=True``): training FLOPs of both and measured step
times, interleaved step by step in one process so that load drifts hit both alike.

    python benches/bench_rehash.py [--seq 4096] [--rounds 7] [--d-model 256] [--layers 4]

Prints each configuration's hashing and total training FLOPs, the median of its measured
steps, and the ratio rehash / reuse (the baseline is reuse, measured in the same process).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seq", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hashes", type=int, default=2)
    a = ap.parse_args(argv)

    import jax

    from architectures import reformer as rf
    from comparator.measure import bench

    base = rf.resize(rf.preset("reformer-base"), d_model=a.d_model, n_layers=a.layers,
                     n_heads=max(1, a.d_model // 64))
    base = dataclasses.replace(base, n_hashes=a.hashes)
    steps, times = {}, {}
    for rehash in (False, True):
        cfg = dataclasses.replace(base, rehash_in_backward=rehash)
        compiled, args, _ = bench.prepare_step(rf, cfg, a.seq, 1)
        jax.block_until_ready(compiled(*args))                       # warm-up
        steps[rehash], times[rehash] = (compiled, args), []
    for _ in range(a.rounds):                                        # A B A B ...
        for rehash, (compiled, args) in steps.items():
            t0 = time.perf_counter()
            jax.block_until_ready(compiled(*args))
            times[rehash].append(time.perf_counter() - t0)
    print(f"reformer d_model {a.d_model}, {a.layers} layers, {a.hashes} hashes, seq {a.seq}, "
          f"buckets {base.bucket_factors(a.seq)}; load average {os.getloadavg()[0]:.2f}")
    med = {}
    for rehash in (False, True):
        f = rf.flops(dataclasses.replace(base, rehash_in_backward=rehash), a.seq)
        med[rehash] = statistics.median(times[rehash])
        print(f"  {'rehash' if rehash else 'reuse (baseline)':17s} hashing "
              f"{f.train_breakdown['lsh/hash'] / 1e9:8.3f} GFLOP  training {f.train / 1e9:8.2f} "
              f"GFLOP  step median {med[rehash]:.3f} s (min {min(times[rehash]):.3f})")
    print(f"  rehash / reuse: {med[True] / med[False]:.3f}x time, "
          f"{rf.flops(dataclasses.replace(base, rehash_in_backward=True), a.seq).train / rf.flops(base, a.seq).train:.4f}x FLOPs")


if __name__ == "__main__":
    main()
