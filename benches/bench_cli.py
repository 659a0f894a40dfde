"""Wall time of the main job, `comparator sweep --arch reformer --seq 4096`.

    python benches/bench_cli.py [--repeat N]

Baseline, in the same session: starting the interpreter and importing numpy
(`python -c "import numpy"`), the floor of any Python CLI that uses it.
Prints medians and the ratio.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

JOB = ["-m", "comparator.cli.app", "sweep", "--arch", "reformer", "--seq", "4096"]
BASE = ["-c", "import numpy"]


def wall(args, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, *args], check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args(argv)
    print(f"$ python benches/bench_cli.py --repeat {a.repeat}")
    base, job = wall(BASE, a.repeat), wall(JOB, a.repeat)
    print(f"python -c 'import numpy'                      {base:.3f} s (baseline)")
    print(f"comparator sweep --arch reformer --seq 4096   {job:.3f} s ({job / base:.2f}x baseline)")


if __name__ == "__main__":
    sys.exit(main())
