"""Grid evaluation rate of the analytic formulas: numba kernel vs NumPy vs plain Python.

    python benches/bench_grid.py [--points N]

Baseline: the same formula (architectures' flops()) evaluated point by point in
Python on exact ints.  All three run in this process, on one core (the numba
kernel is a plain serial loop).  Prints points per second and the ratio to the
baseline, per architecture (default preset, training FLOPs, all scope).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import architectures
from kernels.grid import compile_formula


def best_of(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=10_000_000)
    ap.add_argument("--python-points", type=int, default=5_000)
    a = ap.parse_args(argv)
    print(f"$ python benches/bench_grid.py --points {a.points}")
    print(f"{'arch':12s} {'python pts/s':>13s} {'numpy pts/s':>13s} {'numba pts/s':>13s} "
          f"{'numba/python':>13s} {'compile s':>10s}")
    rng = np.random.default_rng(0)
    for arch in architectures.NAMES:
        mod = architectures.get(arch)
        cfg = mod.preset(mod.DEFAULT_PRESET)
        unit = 256  # a multiple of every chunk length in the presets
        seqs = rng.integers(1, 64, a.points).astype(np.float64) * unit
        batch = rng.integers(1, 33, a.points).astype(np.float64)
        # baseline: point by point, exact ints
        ps, pb = seqs[:a.python_points].astype(int), batch[:a.python_points].astype(int)
        t_py = best_of(lambda: [mod.flops(cfg, int(s), int(b), "all").train
                                for s, b in zip(ps, pb)], 1)
        # NumPy: the same formulas over float64 arrays
        t_np = best_of(lambda: mod.flops(cfg, seqs[:1_000_000], batch[:1_000_000], "all").train)
        t0 = time.perf_counter()
        f = compile_formula(lambda s, b: (mod.flops(cfg, s, b, "all").train,), 1)
        f(seqs[:10], batch[:10])
        t_compile = time.perf_counter() - t0
        t_nb = best_of(lambda: f(seqs, batch))
        exact = f(seqs[:200], batch[:200])[0]
        ref = [mod.flops(cfg, int(s), int(b), "all").train for s, b in zip(seqs[:200], batch[:200])]
        assert all(abs(x - y) <= y * 2 ** -50 for x, y in zip(exact, ref)), "kernel disagrees"
        py, npr, nb = a.python_points / t_py, 1_000_000 / t_np, a.points / t_nb
        print(f"{arch:12s} {py:13.3g} {npr:13.3g} {nb:13.3g} {nb / py:12.0f}x {t_compile:10.2f}")


if __name__ == "__main__":
    sys.exit(main())
