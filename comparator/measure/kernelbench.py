"""Measured attention kernels across sequence length (``comparator bench --kernel attention``).

For each length, over ``batch`` x ``heads`` heads of width ``d_head`` (random inputs,
fp32), each variant is jit-compiled twice -- forward, and forward + backward (the gradient
of the output's sum with respect to every input), with the XLA options ``bench`` compiles
training steps with (``bench.CPU_COMPILE_OPTIONS`` on CPU) -- warmed up and timed (median
of ``steps`` runs):

* ``dense``: softmax attention over the whole sequence (``kernels.attention``);
* ``chunked``: the same product ``chunk`` queries at a time (same FLOPs, less memory);
* ``flash``: the same product fused, ``block`` x ``block`` with an online softmax and a
  recomputing backward (``kernels.flash``);
* ``local``: blocks of ``window`` attending to themselves and both neighbours
  (``kernels.lsh.local_attention``, as the Transformer's ``local`` choice);
* ``linformer``: keys and values projected to ``proj_len`` rows (``kernels.linformer``;
  E and F fixed random, as the other kernels' inputs, not differentiated);
* ``performer``: FAVOR+ with ``features`` random features (``kernels.performer``);
* ``dense-causal`` and ``flash-causal``: causal attention, dense counting the masked half
  as computed, flash skipping its masked blocks;
* ``lsh-N``: shared-QK LSH attention with N hash rounds, chunks of ``chunk`` and the
  default bucket count ``2 n / chunk`` (``kernels.lsh``).

A block, window or chunk longer than the sequence is the whole sequence.  The FLOPs of
each compiled function are traced from the same function (``matmul`` scope and ``all``).
For each variant the **measured crossover** is the first length from which it is faster
than dense attention (the causal ones: than ``dense-causal``) and stays so over the
lengths run, the **FLOP crossover** the same for traced FLOPs.  A point whose dense score
matrices (``batch x heads x n x n`` fp32, times 3 for the backward) exceed
``memory_limit`` is skipped, as is a length the variant cannot cut into its blocks.
"""
from __future__ import annotations

import statistics
import time

FP32 = 4


ZOO = ("flash", "local", "linformer", "performer")
CAUSAL = ("dense-causal", "flash-causal")
SIZES = {"block": 128, "window": 256, "proj_len": 256, "features": 256}   # zoo.Attn()'s
# the scopes the kernels name their work with (regions are attributed to them)
KERNEL_TERMS = ("attn/scores", "attn/softmax", "attn/context", "attn/proj_k", "attn/proj_v",
                "attn/features", "attn/normalizer", "lsh/hash", "lsh/sort", "lsh/scores",
                "lsh/softmax", "lsh/context", "lsh/unsort", "lsh/combine")
PARAMETER = {"flash": "block", "local": "window", "linformer": "proj_len",
             "performer": "features"}


def _variants(hashes, chunk):
    return ["dense", "chunked", *ZOO, *CAUSAL] + [f"lsh-{h}" for h in hashes]


def baseline_of(variant: str) -> str:
    """What a variant is compared with: dense attention, causal or not."""
    return "dense-causal" if variant.endswith("-causal") else "dense"


def _cut(variant: str, n: int, chunk: int, sizes: dict):
    """``(name, size)`` of the block ``variant`` cuts ``n`` into, or None (dense)."""
    if variant == "chunked" or variant.startswith("lsh"):
        return "chunk", chunk
    if variant.startswith("flash"):
        return "block", min(sizes["block"], n)
    if variant == "local":
        return "window", min(sizes["window"], n)
    return None


def _kernel(variant: str, n: int, d_head: int, chunk: int, sizes: dict | None = None):
    """``f(q, k, v)`` for one head (fixed random projections and features drawn here)."""
    import jax

    from kernels.attention import chunked_attention, dense_attention
    from architectures.reformer import bucket_rule
    from kernels.flash import flash_attention
    from kernels.linformer import linformer_attention
    from kernels.lsh import local_attention, lsh_attention, make_rotations
    from kernels.performer import performer_attention
    sizes = {**SIZES, **(sizes or {})}
    causal = variant.endswith("-causal")
    if variant in ("dense", "dense-causal"):
        return lambda q, k, v: dense_attention(q, k, v, causal=causal)
    if variant == "chunked":
        return lambda q, k, v: chunked_attention(q, k, v, chunk=min(chunk, n))
    if variant.startswith("flash"):
        block = min(sizes["block"], n)
        return lambda q, k, v: flash_attention(q, k, v, block=block, causal=causal)
    if variant == "local":
        w = min(sizes["window"], n)
        return lambda q, k, v: local_attention(q, k, v, chunk_len=w, n_chunks_before=1,
                                               n_chunks_after=1)
    if variant == "linformer":
        e, f = (jax.random.normal(jax.random.PRNGKey(i), (sizes["proj_len"], n)) * n ** -0.5
                for i in (2, 3))
        return lambda q, k, v: linformer_attention(q, k, v, e, f)
    if variant == "performer":
        w = jax.random.normal(jax.random.PRNGKey(4), (sizes["features"], d_head))
        return lambda q, k, v: performer_attention(q, k, v, w)
    h = int(variant.split("-")[1])
    factors = bucket_rule(n, chunk)     # the reference rule (max_position_embeddings 4096)
    rot = make_rotations(jax.random.PRNGKey(1), d_head, h, factors)
    return lambda q, k, v: lsh_attention(q, v, rot, chunk_len=chunk, factors=factors)  # shared QK


def _functions(variant: str, n: int, d_head: int, chunk: int, sizes: dict):
    """(forward, forward + backward) of ``variant`` over ``[batch, heads, n, d_head]``
    inputs: the gradient of the output's sum with respect to every input (LSH: shared
    QK, so q and v)."""
    import jax
    import jax.numpy as jnp
    f = jax.vmap(jax.vmap(_kernel(variant, n, d_head, chunk, sizes)))  # batch, then heads
    loss = lambda q, k, v: jnp.sum(f(q, k, v))
    return f, jax.grad(loss, argnums=(0, 2) if variant.startswith("lsh") else (0, 1, 2))


def train_regions(variant: str, n: int, *, batch: int = 1, heads: int = 4, d_head: int = 64,
                  chunk: int = 64, sizes: dict | None = None) -> list:
    """The compiled regions (``comparator.cost.regions``) of ``variant``'s forward +
    backward at ``n`` tokens, compiled as ``bench_point`` compiles it but for abstract
    inputs (nothing is allocated or run): what the time model predicts a kernel from."""
    import jax
    import jax.numpy as jnp

    from comparator.cost.compiled import compile_options_for
    from comparator.cost.regions import regions_of_text
    _, grad = _functions(variant, n, d_head, chunk, {**SIZES, **(sizes or {})})
    abstract = [jax.ShapeDtypeStruct((batch, heads, n, d_head), jnp.float32)] * 3
    compiled = jax.jit(grad).lower(*abstract).compile(compile_options_for() or None)
    return regions_of_text(compiled.as_text(), KERNEL_TERMS)[0]


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
                chunk: int = 64, steps: int = 3, sizes: dict | None = None) -> dict:
    import jax
    import jax.numpy as jnp

    from comparator.count.trace import trace
    sizes = {**SIZES, **(sizes or {})}
    f, grad = _functions(variant, n, d_head, chunk, sizes)
    shape = (batch, heads, n, d_head)
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    q, k, v = (jax.random.normal(key, shape, jnp.float32) for key in keys)
    abstract = [jax.ShapeDtypeStruct(shape, jnp.float32)] * 3
    cut = _cut(variant, n, chunk, sizes)
    param = PARAMETER.get(variant.removesuffix("-causal"))
    rec = {"variant": variant, "seq_len": n, "batch": batch, "heads": heads,
           "d_head": d_head, "chunk": chunk if cut and cut[0] == "chunk" else None}
    if param:                                # the zoo kernel's own size, as run
        rec[param] = cut[1] if cut else sizes[param]
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


def crossover(recs, variant: str, key: str, base: str = "dense"):
    """First length from which ``variant`` beats ``base`` on ``key`` and stays ahead over
    every longer length run; None when it never does (or the base was skipped there)."""
    by = {(r["variant"], r["seq_len"]): r for r in recs if not r.get("skipped")}
    seqs = sorted({r["seq_len"] for r in recs})
    ahead = [s for s in seqs if (variant, s) in by and (base, s) in by
             and by[(variant, s)][key] < by[(base, s)][key]]
    compared = [s for s in seqs if (variant, s) in by and (base, s) in by]
    for i, s in enumerate(compared):
        if all(t in ahead for t in compared[i:]):
            return s
    return None


def _skip(variant: str, s: int, chunk: int, sizes: dict, need: int, memory_limit) -> str | None:
    cut = _cut(variant, s, chunk, sizes)
    if cut and s % cut[1]:
        return f"length {s} is not a multiple of the {cut[0]} {cut[1]}"
    if memory_limit is not None and need > memory_limit:
        return (f"dense scores need about {need / 1e9:.3g} GB > the "
                f"{memory_limit / 1e9:.3g} GB limit")
    return None


def run(seqs, *, batch=1, heads=4, d_head=64, chunk=64, hashes=(1, 2, 4, 8), steps=3,
        memory_limit=None, progress=None, sizes: dict | None = None,
        only=None) -> tuple[list, dict]:
    """Records for every (length, variant) and the crossovers of every variant but the
    dense ones against their dense baseline (``baseline_of``).  ``sizes``: the zoo's
    block, window, proj_len and features (default ``SIZES``); ``only``: these variants."""
    recs = []
    sizes = {**SIZES, **(sizes or {})}
    variants = [v for v in _variants(hashes, chunk) if only is None or v in only]
    total = len(seqs) * len(variants)
    for s in seqs:
        for var in variants:
            need = dense_bytes(s, batch, heads) if var.startswith("dense") else 0
            why = _skip(var, s, chunk, sizes, need, memory_limit)
            if why:
                recs.append({"variant": var, "seq_len": s, "skipped": why})
            else:
                recs.append({**bench_point(var, s, batch=batch, heads=heads, d_head=d_head,
                                           chunk=chunk, steps=steps, sizes=sizes),
                             "skipped": None})
            if progress:
                progress(len(recs), total)
    cross = {v: {"baseline": baseline_of(v),
                 "measured_train": crossover(recs, v, "train_s", baseline_of(v)),
                 "measured_fwd": crossover(recs, v, "fwd_s", baseline_of(v)),
                 "flops_train": crossover(recs, v, "train_flops", baseline_of(v))}
             for v in variants if not v.startswith("dense")}
    return recs, cross


__all__ = ["CAUSAL", "KERNEL_TERMS", "SIZES", "ZOO", "baseline_of", "bench_point", "crossover",
           "dense_bytes", "run", "train_regions"]
