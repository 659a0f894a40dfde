"""A traced count as a whole process: cold, building a program and warm, against JAX's own
analysis (issue 20).

    python benches/bench_programs.py [--repeat 5] [--models bert-large,reformer-base]

For bert-large at 4,096 tokens and reformer-base at 16,384, each command a whole process
(``python -m comparator ...``), run in turn -- jax, cold, build, warm, jax, cold, ... --
so that the machine's drift reaches every kind alike:

- **jax**: the one-liner that imports JAX and asks XLA,
  ``jax.jit(train_step).lower(*abstract inputs).cost_analysis()["flops"]``;
- **cold**: ``comparator sweep --method traced`` on an empty results store (first use);
- **build**: a second length of the model, the store holding the first's counts: the
  program in the length is traced, checked on them and stored;
- **warm**: a length not computed before, the program stored: answered from it, without
  importing jax.

Each run's ratio is taken to the jax run of its round; medians (min-max) of wall and CPU
seconds (the child's user + sys, from ``os.wait4``).  Every store a run starts from is a
copy made before the clock starts.  The subprocesses write and read bytecode in a
temporary ``PYTHONPYCACHEPREFIX``, as an installed Python does, after one untimed run of
each kind.  At the end the warm record is checked against a fresh trace of its length.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = {"bert-large": ("transformer", 4096, 64, 8),       # arch, cold length, build and
          "reformer-base": ("reformer", 16384, 64, 64)}      # warm length steps
ONE_LINER = ("import jax, architectures as A; m = A.get({arch!r}); "
             "p = m.model(m.PRESETS[{preset!r}][0]); "
             "print(jax.jit(p.train_step).lower(*p.abstract_inputs(1, {seq})).cost_analysis()"
             "['flops'])")
KINDS = ("jax", "cold", "build", "warm")


def env(cache: str) -> dict:
    out = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    path = out.get("PYTHONPATH")
    out["PYTHONPATH"] = ROOT + (os.pathsep + path if path else "")
    out["PYTHONPYCACHEPREFIX"] = cache
    return out


def timed(args, environ) -> tuple[float, float, str]:
    """(wall, CPU seconds of the child, its stdout)."""
    out = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *args], stdout=out, stderr=subprocess.DEVNULL,
                            env=environ, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    text = out.read().decode()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime, text


def copy_store(src: str, dst: str) -> None:
    """A copy of a results store through SQLite's backup (the write-ahead log included)."""
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        a.backup(b)
    finally:
        a.close()
        b.close()


def sweep(arch, preset, seq, db):
    return ["-m", "comparator", "sweep", "--arch", arch, "--preset", preset, "--seq",
            str(seq), "--method", "traced", "--format", "json", "--quiet",
            *(["--db", db] if db else ["--no-cache"])]


def bench(preset, repeat, work, environ) -> dict:
    arch, seq, build_step, warm_step = MODELS[preset]
    jax_cmd = ["-c", ONE_LINER.format(arch=arch, preset=preset, seq=seq)]
    first, built = os.path.join(work, f"{preset}-first.db"), os.path.join(work, f"{preset}.db")
    timed(sweep(arch, preset, seq, first), environ)                 # the first length's counts
    copy_store(first, built)
    timed(sweep(arch, preset, seq + build_step, built), environ)    # and the program
    times = {k: [] for k in KINDS}
    last = None
    for i in range(-1, repeat):                                      # -1: untimed warm-up
        dbs = {k: os.path.join(work, f"{preset}-{k}-{i}.db") for k in ("cold", "build", "warm")}
        copy_store(first, dbs["build"])
        copy_store(built, dbs["warm"])
        runs = {"jax": jax_cmd, "cold": sweep(arch, preset, seq, dbs["cold"]),
                "build": sweep(arch, preset, seq + build_step * (i + 3), dbs["build"]),
                "warm": sweep(arch, preset, seq + warm_step * (2 * i + 5), dbs["warm"])}
        for k in KINDS:
            wall, cpu, text = timed(runs[k], environ)
            if i >= 0:
                times[k].append((wall, cpu))
            if k == "warm":
                last = json.loads(text)[0]
    assert last["trace"].startswith("stored program ("), last["trace"]
    _, _, fresh = timed(sweep(arch, preset, last["seq_len"], None), environ)
    fresh = json.loads(fresh)[0]
    same = all(fresh[f] == last[f] for f in fresh if f not in ("trace", "program"))
    return {"times": times, "warm_equals_fresh": same, "warm_record": last}


def median_ratio(xs, ys, i) -> tuple[float, float, float]:
    r = [x[i] / y[i] for x, y in zip(xs, ys)]
    return statistics.median(r), min(r), max(r)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--models", default=",".join(MODELS))
    a = ap.parse_args(argv)
    print(f"$ python benches/bench_programs.py --repeat {a.repeat} --models {a.models}")
    work = tempfile.mkdtemp(prefix="bench-programs-")
    try:
        environ = env(os.path.join(work, "pycache"))
        for preset in a.models.split(","):
            arch, seq = MODELS[preset][:2]
            got = bench(preset, a.repeat, work, environ)
            t = got["times"]
            print(f"\n{preset} ({arch}), cold at {seq:,} tokens; medians of {a.repeat} "
                  "rounds, ratio to the jax run of the same round (min-max)")
            print(f"{'':6} {'wall s':>8} {'cpu s':>8}   {'wall / jax':>22}   {'cpu / jax':>22}")
            for k in KINDS:
                w = statistics.median(x[0] for x in t[k])
                c = statistics.median(x[1] for x in t[k])
                rw, rc = median_ratio(t[k], t["jax"], 0), median_ratio(t[k], t["jax"], 1)
                print(f"{k:6} {w:8.3f} {c:8.3f}   {rw[0]:6.3f} ({rw[1]:.3f}-{rw[2]:.3f})"
                      f"     {rc[0]:6.3f} ({rc[1]:.3f}-{rc[2]:.3f})")
            rec = got["warm_record"]
            print(f"warm record at {rec['seq_len']:,}: {rec['trace']}; equal to a fresh trace: "
                  f"{got['warm_equals_fresh']}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
