"""Where a compiled training step spends its time, by term: the profile behind BENCHMARKS.md.

    python benches/profile_step.py [--model reformer|bert] [--steps 3] [--xla-defaults]
                                   [--xla-option KEY=VALUE] [--top 25]

Compiles the step of ``bench_reference.py``'s model as ``comparator bench`` does (or with
XLA's defaults), runs it ``--steps`` times under ``jax.profiler`` with XLA:CPU's per-thunk
trace events on, and sums each compiled op's time by the term of its named scope
(``lsh/sort``, ``ffn/in``, ...; ``(dot)`` where a contraction's metadata names none),
split into forward (with the reversible recomputation) and backward (``transpose``).
Shares are of the summed op time, which counts every thread that ran an op: read them as
proportions, not as wall time.  Caveat: with ``CPU_COMPILE_OPTIONS`` XLA runs the dense
(2-D) matmuls as asynchronous Eigen contractions, whose events cover only their launch
(well under a millisecond for a 2 GFLOP product), so they are missing from the sum; the
batched (chunked) matmuls and everything else run synchronously and are counted.  Under
XLA's defaults (``--xla-defaults``) the matmuls are YNNPACK fusions and are counted.
Timings on a shared machine are noisy; the proportions are steadier.
"""
from __future__ import annotations

import argparse
import collections
import glob
import re
import sys
import tempfile

import architectures
from comparator.measure import bench
from comparator.run.hfconfig import from_hf

from bench_reference import BERT, REFORMER, parse_options

MODELS = {"reformer": (REFORMER, 1, 4096), "bert": (BERT, 8, 512)}
TERM = re.compile(r"((?:lsh|attn|ffn|norm|head|loss|embed|rev)/\w+)")


def op_terms(hlo_text: str) -> dict:
    """``{op name: (term, 'fwd'|'bwd', shape)}`` from a compiled module's text (its
    metadata; XLA:CPU's Eigen dots keep none, so they are ``(dot)``, told by shape)."""
    out = {}
    for line in hlo_text.splitlines():
        m = re.match(r"\s*(?:ROOT )?%([\w.\-]+) = (\([^)]*\)|\S+) (\w[\w\-]*)\(", line)
        if not m:
            continue
        on = re.search(r'op_name="([^"]*)"', line)
        name = on.group(1) if on else ""
        terms = TERM.findall(name)
        term = terms[-1] if terms else ("(dot)" if "dot" in m.group(3) or "dot_general"
                                        in name else "(other)")
        out[m.group(1)] = (term, "bwd" if "transpose(" in name else "fwd",
                           m.group(2).split("{")[0])
    return out


def profile(compiled, args, steps: int) -> collections.Counter:
    """Nanoseconds per op name summed over ``steps`` profiled runs (XLA thunk events)."""
    import jax
    from jax._src.lib import _profile_data
    jax.block_until_ready(compiled(*args))
    with tempfile.TemporaryDirectory() as d:
        with jax.profiler.trace(d):
            for _ in range(steps):
                jax.block_until_ready(compiled(*args))
        data = _profile_data.ProfileData.from_file(
            glob.glob(f"{d}/**/*.xplane.pb", recursive=True)[0])
    ns = collections.Counter()
    for plane in data.planes:
        for line in plane.lines:
            if line.name.startswith("tf_XLA"):
                for ev in line.events:
                    if not ev.name.startswith("ThunkExecutor"):
                        ns[ev.name] += ev.duration_ns
    return ns


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=sorted(MODELS), default="reformer")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--xla-option", action="append", metavar="KEY=VALUE")
    ap.add_argument("--xla-defaults", action="store_true")
    a = ap.parse_args(argv)
    print("$ python benches/profile_step.py " + " ".join(sys.argv[1:] if argv is None
                                                        else argv))
    data, batch, seq = MODELS[a.model]
    arch, _, cfg = from_hf(data, a.model)
    options = {"xla_cpu_enable_xprof_traceme": True, **parse_options(a.xla_option)}
    compiled, args, info = bench.prepare_step(architectures.get(arch), cfg, seq, batch,
                                              compile_options=options,
                                              cpu_defaults=not a.xla_defaults)
    terms = op_terms(compiled.as_text())
    ns = profile(compiled, args, a.steps)
    by_term, by_op = collections.Counter(), collections.Counter()
    for op, t in ns.items():
        term, side, shape = terms.get(op, ("(runtime)", "", ""))
        if term == "(dot)":   # batched [.., chunks, L, K]: LSH/local chunks; else dense
            term = "(dot) chunked" if shape.count(",") >= 3 else "(dot) dense"
        by_term[term, "" if term.startswith("(dot)") else side] += t
        by_op[op, term, side, shape] += t
    total = sum(by_term.values())
    print(f"{a.model}: batch {batch} x seq {seq}; XLA options {info['xla_options']}; "
          f"summed op time {total / a.steps / 1e6:.0f} ms per step")
    for (term, side), t in by_term.most_common(a.top):
        print(f"   {term:18s} {side:4s} {100 * t / total:5.1f}%")
    print("slowest ops:")
    for (op, term, side, shape), t in by_op.most_common(12):
        print(f"   {op:28s} {term:14s} {side:4s} {shape:24s} {t / a.steps / 1e6:7.1f} ms/step")


if __name__ == "__main__":
    main()
