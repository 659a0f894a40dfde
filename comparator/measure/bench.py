"""Measured training steps: jit-compile a model's real training step and time it.

``bench_step(mod, cfg, seq, batch, dtype=...)`` compiles the training step (loss and
gradients of every parameter) for real parameters and random token inputs, runs
``warmup`` steps, then times ``steps`` more (each waited on with ``block_until_ready``)
and reports:

* time per step (median, min, max), tokens per second;
* achieved FLOP/s = the traced training FLOPs of the step (``matmul`` scope, the model
  FLOPs utilisation convention; ``all`` reported too) / median step time;
* utilisation = achieved / peak, where the peak on CPU is *measured* here
  (``matmul_peak``: a jitted ``PEAK_N`` x ``PEAK_N`` matmul in the step's dtype), not a
  datasheet figure; on an accelerator the catalogue's dense peak for the dtype;
* XLA's compiled memory analysis of the step (arguments, outputs, temporaries) and, where
  the device reports them (GPUs, TPUs; not the CPU), its memory statistics after the
  timed steps (``device_peak_bytes``: the peak bytes in use, ``device_bytes_limit``).

Dtypes (``cost.compiled.DTYPES``, the training dtypes ``cost.pricing`` prices): ``fp32`` is the models as
written.  ``bf16`` and ``fp16`` are mixed precision: the parameters stay fp32 (master
weights, their gradients fp32), each step casts them to the 16-bit dtype inside the loss,
so every matmul, activation and saved residual is 16-bit, and the loss itself is taken in
fp32 (``kernels.nn`` upcasts the logits).  ``tf32`` is fp32 storage with matmuls at
TensorFloat-32 precision (``jax.default_matmul_precision``); the CPU has no such mode and
runs it as fp32.  The Reformer is not run in fp16: its finite masks (-1e9, -1e5) overflow
fp16 (``kernels.lsh``).  The FLOPs are the same in every dtype.

Before compiling, the memory the step needs is estimated (parameters, gradients and the
saved activations of the analytic model, fp32: an upper bound for the 16-bit steps); a
point above ``memory_limit`` bytes is skipped with the reason instead of crashing.
"""
from __future__ import annotations

import statistics
import time

from comparator.cost.compiled import (check_dtype, compile_options_for, compile_step, compute_dtype,
                                      matmul_precision)

PEAK_N = 1024
FP32 = 4
def available_memory() -> int | None:
    """Bytes a step may use: on a device that reports its memory (GPUs, TPUs) its limit
    less what is in use; on the CPU the physical memory available now (Linux); else None."""
    import jax
    stats = jax.devices()[0].memory_stats() or {}
    if "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    try:
        import os
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def estimate_bytes(mod, cfg, seq: int, batch: int) -> int:
    """fp32 parameters + gradients + saved activations of one training step."""
    return 2 * FP32 * mod.params(cfg, seq) + mod.activation_bytes(cfg, seq, batch)


def matmul_peak(n: int = PEAK_N, repeat: int = 5, dtype: str = "fp32") -> float:
    """FLOP/s of a jitted ``n x n`` matmul in ``dtype`` on the default device (best of
    ``repeat``; tf32 at TensorFloat-32 precision), compiled with the steps' options."""
    import jax
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), compute_dtype(dtype))
    with jax.default_matmul_precision(matmul_precision(dtype)):
        f = jax.jit(lambda x, y: x @ y).lower(a, a).compile(compile_options_for() or None)
    f(a, a).block_until_ready()
    best = min(_timed(lambda: f(a, a).block_until_ready()) for _ in range(repeat))
    return 2 * n ** 3 / best


def device_peak(dtype: str = "fp32") -> float | None:
    """The peak utilisation is measured against: on CPU ``matmul_peak()`` in ``dtype``;
    elsewhere None (name the device with ``--accelerator`` for its catalogue peak)."""
    import jax
    return matmul_peak(repeat=10, dtype=dtype) if jax.devices()[0].platform == "cpu" else None


def peak_source(dtype: str = "fp32") -> str:
    import jax
    if jax.devices()[0].platform == "cpu":
        return (f"measured: the best of 10 jitted {check_dtype(dtype)} {PEAK_N}x{PEAK_N} "
                "matmuls on this machine")
    return "none (off CPU, name the device with --accelerator for its catalogue peak)"


def device_memory() -> dict:
    """The default device's memory statistics (``Device.memory_stats()``: GPUs and TPUs
    report them, the CPU does not): peak and current bytes in use, and the limit."""
    import jax
    stats = jax.devices()[0].memory_stats() or {}
    names = {"peak_bytes_in_use": "device_peak_bytes", "bytes_in_use": "device_bytes_in_use",
             "bytes_limit": "device_bytes_limit"}
    return {ours: int(stats[k]) for k, ours in names.items() if k in stats}


def machine() -> str:
    """Where a benchmark runs, part of its key: host, CPU count, JAX backend and device."""
    import os
    import platform

    import jax
    dev = jax.devices()[0]
    return (f"{platform.node()} {platform.machine()} cpus={os.cpu_count()} "
            f"{jax.default_backend()}:{dev.device_kind} x{jax.device_count()}")


def cpu_ticks() -> tuple | None:
    """(CPU ticks busy on the whole machine, ticks of this process, all ticks) from
    /proc (Linux), or None."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            v = [int(x) for x in fh.readline().split()[1:]]
        with open("/proc/self/stat", encoding="ascii") as fh:
            own = fh.read().rsplit(")", 1)[1].split()
        return sum(v) - v[3] - v[4], int(own[11]) + int(own[12]), sum(v)
    except (OSError, ValueError, IndexError):
        return None


def other_share(before, after) -> float | None:
    """The share of all CPUs that other processes kept busy between two ``cpu_ticks``."""
    if before is None or after is None or after[2] <= before[2]:
        return None
    busy, own = after[0] - before[0], after[1] - before[1]
    return max(0.0, busy - own) / (after[2] - before[2])


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def prepare_step(mod, cfg, seq: int, batch: int = 1, *, dtype: str = "fp32", seed: int = 0,
                 compile_options: dict | None = None, cpu_defaults: bool = True):
    """``(compiled, args, info)``: the model's training step in ``dtype``, compiled for
    random inputs; ``compiled(*args)`` runs one step.  ``info``: compile seconds, the XLA
    options used and XLA's memory analysis.  ``compile_options``: XLA options for the
    compilation, over ``cost.compiled.CPU_COMPILE_OPTIONS`` on CPU (``cpu_defaults=False``: XLA's own)."""
    import jax
    import numpy as np
    compile_options = compile_options_for(compile_options, cpu_defaults)
    prog = mod.model(cfg)
    rng = np.random.default_rng(seed)
    data = {k: rng.integers(0, bound, sds.shape).astype(sds.dtype)
            for k, (sds, bound) in prog.spec(batch, seq).items()}
    key = jax.random.PRNGKey(seed)
    params = jax.jit(lambda r: prog.init(r, batch, seq))(key)
    compiled, info = compile_timed(prog, (params, data, key), dtype, compile_options)
    return compiled, (params, data, key), info


def compile_timed(prog, args, dtype: str, compile_options: dict) -> tuple:
    """``(compiled, info)``: ``prog``'s step compiled for ``args``; ``info``: compile
    seconds, the XLA options and XLA's memory analysis."""
    t0 = time.perf_counter()
    compiled = compile_step(prog, args, dtype, compile_options)
    info = {"compile_s": time.perf_counter() - t0, "xla_options": compile_options}
    ma = compiled.memory_analysis()
    if ma is not None:
        info["xla_argument_bytes"] = int(ma.argument_size_in_bytes)
        info["xla_output_bytes"] = int(ma.output_size_in_bytes)
        info["xla_temp_bytes"] = int(ma.temp_size_in_bytes)
    return compiled, info


def bench_step(mod, cfg, seq: int, batch: int = 1, *, steps: int = 5, warmup: int = 1,
               memory_limit: int | None = None, peak: float | None = None,
               seed: int = 0, compile_options: dict | None = None,
               dtype: str = "fp32", on_compiled=None) -> dict:
    """One measured point (see the module docstring); ``skipped`` says why when it is.
    ``compile_options``: XLA options for the step's compilation (tests lower them);
    ``peak``: FLOP/s to measure utilisation against (default: ``device_peak(dtype)``);
    ``on_compiled``: called with the compiled step before it runs.  ``other_cpu_share``:
    the share of the CPUs other processes used while the steps were timed (Linux; None
    elsewhere) -- a busy machine slows the steps."""
    from comparator.count.fasttrace import traced_counts

    dtype = check_dtype(dtype)
    need = estimate_bytes(mod, cfg, seq, batch)
    rec = {"seq_len": seq, "batch": batch, "tokens": seq * batch, "dtype": dtype,
           "estimated_bytes": need, "memory_limit": memory_limit, "skipped": None}
    if dtype == "fp16" and getattr(mod, "NAME", "") == "reformer":
        rec["skipped"] = "fp16 cannot hold the Reformer's finite masks (-1e9, -1e5)"
        return rec
    if memory_limit is not None and need > memory_limit:
        rec["skipped"] = _too_big(need, memory_limit)
        return rec
    compiled, args, info = prepare_step(mod, cfg, seq, batch, dtype=dtype, seed=seed,
                                        compile_options=compile_options)
    rec.update(info)
    if on_compiled is not None:
        on_compiled(compiled)

    def flops():
        fc = traced_counts(mod, cfg, [seq], batch)[seq]
        return fc.train.flops("matmul"), fc.train.flops("all"), fc.params

    return _run(rec, compiled, args, steps, warmup, flops, peak, dtype)


def _too_big(need: int, limit: int) -> str:
    return (f"needs about {need / 1e9:.3g} GB (fp32 parameters, gradients and saved "
            f"activations) > the {limit / 1e9:.3g} GB limit")


def _run(rec: dict, compiled, args, steps: int, warmup: int, flops, peak, dtype: str) -> dict:
    """``rec`` with the timed steps of ``compiled(*args)`` after ``warmup`` runs, the
    training FLOPs (``flops()``: matmul scope, all scope, parameters) per median second
    and the utilisation against ``peak`` (default: ``device_peak(dtype)``)."""
    import jax
    for _ in range(warmup):
        jax.block_until_ready(compiled(*args))
    before = cpu_ticks()
    times = [_timed(lambda: jax.block_until_ready(compiled(*args))) for _ in range(steps)]
    rec["other_cpu_share"] = other_share(before, cpu_ticks())
    rec.update(device_memory())
    matmul, every, params = flops()
    med = statistics.median(times)
    seq, batch = rec["seq_len"], rec["batch"]
    rec.update({
        "steps": steps, "step_s": med, "step_s_min": min(times), "step_s_max": max(times),
        "tokens_per_s": seq * batch / med,
        "train_flops": matmul, "train_flops_all": every,
        "achieved_flops": matmul / med,
        "params": params, "device": jax.devices()[0].platform,
    })
    source = "given by the caller" if peak is not None else peak_source(dtype)
    if peak is None:
        peak = device_peak(dtype)
    rec["peak_flops"] = peak
    rec["peak_source"] = source
    rec["utilisation"] = rec["achieved_flops"] / peak if peak else None
    return rec


def bench_program(prog, make_args, seq: int, batch: int, *, train_flops: int,
                  train_flops_all: int, params: int, need: int, steps: int = 5,
                  warmup: int = 1, memory_limit: int | None = None, peak: float | None = None,
                  dtype: str = "fp32", compile_options: dict | None = None) -> dict:
    """``bench_step`` of any training step ``prog`` (a user's: ``loss`` and
    ``train_step``) on the arrays ``make_args()`` gives, its counts given (traced by the
    caller); ``need``: the bytes it is estimated to take (a point above ``memory_limit``
    is skipped before its arguments are made)."""
    dtype = check_dtype(dtype)
    rec = {"seq_len": seq, "batch": batch, "tokens": seq * batch, "dtype": dtype,
           "estimated_bytes": need, "memory_limit": memory_limit, "skipped": None}
    if memory_limit is not None and need > memory_limit:
        rec["skipped"] = _too_big(need, memory_limit)
        return rec
    args = make_args()
    compiled, info = compile_timed(prog, args, dtype, compile_options_for(compile_options))
    rec.update(info)
    return _run(rec, compiled, args, steps, warmup,
                lambda: (train_flops, train_flops_all, params), peak, dtype)


__all__ = ["available_memory", "bench_program", "bench_step", "compile_timed", "cpu_ticks", "other_share", "device_memory", "device_peak", "estimate_bytes", "machine", "matmul_peak", "peak_source", "prepare_step"]
