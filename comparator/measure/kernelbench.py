"""Measured attention kernels across sequence length (``comparator bench --kernel attention``).

For each length, over ``batch`` x ``heads`` heads of width ``d_head`` (random inputs,
fp32), each variant is jit-compiled twice -- forward, and forward + backward (the gradient
of the output's sum with respect to every input), with the XLA options ``bench`` compiles
training steps with (``bench.CPU_COMPILE_OPTIONS`` on CPU) -- warmed up and timed (median
of ``steps`` runs):

* ``dense``: softmax attention over the whole sequence (``kernels.attention``);
* ``chunked``: the same product ``chunk`` queries at a time (same FLOPs, less memory);
* ``lsh-N``: shared-QK LSH attention with N hash rounds, chunks of ``chunk`` and the
  default bucket count ``2 n / chunk`` (``kernels.lsh``).

The FLOPs of each compiled function are traced from the same function (``matmul`` scope
and ``all``).  For each LSH variant the **measured crossover** is the first length from
which it is faster than dense attention and stays so over the lengths run, the **FLOP
crossover** the same for traced FLOPs.  A point whose dense score matrices (``batch x
heads x n x n`` fp32, times 3 for the backward) exceed ``memory_limit`` is skipped.
"""
from __future__ import annotations

import statistics
import time

FP32 = 4


def _variants(hashes, chunk):
    return ["dense", "chunked"] + [f"lsh-{h}" for h in hashes]


def _kernel(variant: str, n: int, d_head: int, chunk: int):
    """``f(q, k, v)`` for one head, and the arguments it differentiates."""
    import jax

    from kernels.attention import chunked_attention, dense_attention
    from architectures.reformer import bucket_rule
    from kernels.lsh import lsh_attention, make_rotations
    if variant == "dense":
        return lambda q, k, v: dense_attention(q, k, v)
    if variant == "chunked":
        return lambda q, k, v: chunked_attention(q, k, v, chunk=min(chunk, n))
    h = int(variant.split("-")[1])
    factors = bucket_rule(n, chunk)     # the reference rule (max_position_embeddings 4096)
    rot = make_rotations(jax.random.PRNGKey(1), d_head, h, factors)
    return lambda q, k, v: lsh_attention(q, v, rot, chunk_len=chunk, factors=factors)  # shared QK


def _timed_median(fn, steps: int) -> float:
    import jax
    jax.block_until_ready(fn())   # warm-up (compiled already)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_point(variant: str, n: int, *, batch: int = 1, heads: int = 4, d_head: int = 64,
                chunk: int = 64, steps: int = 3) -> dict:
    import jax
    import jax.numpy as jnp

    from comparator.count.trace import trace
    one = _kernel(variant, n, d_head, chunk)
    f = jax.vmap(jax.vmap(one))                          # over batch, then heads
    loss = lambda q, k, v: jnp.sum(f(q, k, v))
    grad = jax.grad(loss, argnums=(0, 2) if variant.startswith("lsh") else (0, 1, 2))
    shape = (batch, heads, n, d_head)
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    q, k, v = (jax.random.normal(key, shape, jnp.float32) for key in keys)
    abstract = [jax.ShapeDtypeStruct(shape, jnp.float32)] * 3
    rec = {"variant": variant, "seq_len": n, "batch": batch, "heads": heads,
           "d_head": d_head, "chunk": chunk if variant != "dense" else None}
    from comparator.cost.compiled import compile_options_for
    options = compile_options_for()   # as the training steps of ``bench`` are compiled
    for name, fn in (("fwd", f), ("train", grad)):
        compiled = jax.jit(fn).lower(q, k, v).compile(options or None)
        rec[f"{name}_s"] = _timed_median(lambda: compiled(q, k, v), steps)
        t = trace(fn, *abstract)
        rec[f"{name}_flops"] = t.flops("matmul")
        rec[f"{name}_flops_all"] = t.flops("all")
        rec[f"{name}_unsupported"] = dict(t.unsupported)
    return rec


def dense_bytes(n: int, batch: int, heads: int) -> int:
    """Scores and probabilities of dense attention, kept for the backward (fp32)."""
    return 3 * batch * heads * n * n * FP32


def crossover(recs, variant: str, key: str):
    """First length from which ``variant`` beats dense on ``key`` and stays ahead over
    every longer length run; None when it never does (or dense was skipped there)."""
    by = {(r["variant"], r["seq_len"]): r for r in recs if not r.get("skipped")}
    seqs = sorted({r["seq_len"] for r in recs})
    ahead = [s for s in seqs if (variant, s) in by and ("dense", s) in by
             and by[(variant, s)][key] < by[("dense", s)][key]]
    compared = [s for s in seqs if (variant, s) in by and ("dense", s) in by]
    for i, s in enumerate(compared):
        if all(t in ahead for t in compared[i:]):
            return s
    return None


def run(seqs, *, batch=1, heads=4, d_head=64, chunk=64, hashes=(1, 2, 4, 8), steps=3,
        memory_limit=None, progress=None) -> tuple[list, dict]:
    """Records for every (length, variant) and the crossovers of every LSH variant."""
    recs = []
    variants = _variants(hashes, chunk)
    total = len(seqs) * len(variants)
    for s in seqs:
        for var in variants:
            need = dense_bytes(s, batch, heads) if var == "dense" else 0
            if s % chunk or (memory_limit is not None and need > memory_limit):
                why = (f"length {s} is not a multiple of the chunk {chunk}" if s % chunk else
                       f"dense scores need about {need / 1e9:.3g} GB > the "
                       f"{memory_limit / 1e9:.3g} GB limit")
                recs.append({"variant": var, "seq_len": s, "skipped": why})
            else:
                recs.append({**bench_point(var, s, batch=batch, heads=heads, d_head=d_head,
                                           chunk=chunk, steps=steps), "skipped": None})
            if progress:
                progress(len(recs), total)
    cross = {v: {"measured_train": crossover(recs, v, "train_s"),
                 "measured_fwd": crossover(recs, v, "fwd_s"),
                 "flops_train": crossover(recs, v, "train_flops")}
             for v in variants if v.startswith("lsh")}
    return recs, cross


__all__ = ["bench_point", "crossover", "dense_bytes", "run"]
