"""Measured training steps: jit-compile a model's real training step and time it.

``bench_step(mod, cfg, seq, batch)`` compiles ``Program.train_step`` (loss and gradients
of every parameter, fp32) for real parameters and random token inputs, runs ``warmup``
steps, then times ``steps`` more (each waited on with ``block_until_ready``) and reports:

* time per step (median, min, max), tokens per second;
* achieved FLOP/s = the traced training FLOPs of the step (``matmul`` scope, the model
  FLOPs utilisation convention; ``all`` reported too) / median step time;
* utilisation = achieved / peak, where the peak on CPU is *measured* here
  (``matmul_peak``: a jitted fp32 matmul of ``PEAK_N`` x ``PEAK_N``), not a datasheet
  figure; on an accelerator the catalogue's dense peak for the dtype;
* XLA's compiled memory analysis of the step (arguments, outputs, temporaries).

Before compiling, the memory the step needs is estimated (parameters, gradients and the
saved activations of the analytic model, fp32); a point above ``memory_limit`` bytes is
skipped with the reason instead of crashing.  Only fp32 steps are benchmarked: the models
are written in fp32, and a mixed-precision step is not modelled yet.
"""
from __future__ import annotations

import statistics
import time

PEAK_N = 1024
FP32 = 4


def available_memory() -> int | None:
    """Bytes of physical memory available now (Linux), else None."""
    try:
        import os
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def estimate_bytes(mod, cfg, seq: int, batch: int) -> int:
    """fp32 parameters + gradients + saved activations of one training step."""
    return 2 * FP32 * mod.params(cfg, seq) + mod.activation_bytes(cfg, seq, batch)


def matmul_peak(n: int = PEAK_N, repeat: int = 5) -> float:
    """FLOP/s of a jitted fp32 ``n x n`` matmul on the default device (best of ``repeat``)."""
    import jax
    import jax.numpy as jnp
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    f = jax.jit(lambda x, y: x @ y)
    f(a, a).block_until_ready()
    best = min(_timed(lambda: f(a, a).block_until_ready()) for _ in range(repeat))
    return 2 * n ** 3 / best


def device_peak() -> float | None:
    """The peak utilisation is measured against: on CPU ``matmul_peak()``; elsewhere None
    (no catalogue entry is matched to the device yet)."""
    import jax
    return matmul_peak(repeat=10) if jax.devices()[0].platform == "cpu" else None


def peak_source() -> str:
    import jax
    if jax.devices()[0].platform == "cpu":
        return f"measured: the best of 10 jitted fp32 {PEAK_N}x{PEAK_N} matmuls on this machine"
    return "none (utilisation not computed off CPU yet)"


def machine() -> str:
    """Where a benchmark runs, part of its key: host, CPU count, JAX backend and device."""
    import os
    import platform

    import jax
    dev = jax.devices()[0]
    return (f"{platform.node()} {platform.machine()} cpus={os.cpu_count()} "
            f"{jax.default_backend()}:{dev.device_kind} x{jax.device_count()}")


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_step(mod, cfg, seq: int, batch: int = 1, *, steps: int = 5, warmup: int = 1,
               memory_limit: int | None = None, peak: float | None = None,
               seed: int = 0, compile_options: dict | None = None) -> dict:
    """One measured point (see the module docstring); ``skipped`` says why when it is.
    ``compile_options``: XLA options for the step's compilation (tests lower them)."""
    import jax
    import numpy as np

    from .fasttrace import traced_counts

    need = estimate_bytes(mod, cfg, seq, batch)
    rec = {"seq_len": seq, "batch": batch, "tokens": seq * batch, "dtype": "fp32",
           "estimated_bytes": need, "memory_limit": memory_limit, "skipped": None}
    if memory_limit is not None and need > memory_limit:
        rec["skipped"] = (f"needs about {need / 1e9:.3g} GB (fp32 parameters, gradients and "
                          f"saved activations) > the {memory_limit / 1e9:.3g} GB limit")
        return rec
    prog = mod.model(cfg)
    rng = np.random.default_rng(seed)
    data = {k: rng.integers(0, bound, sds.shape).astype(sds.dtype)
            for k, (sds, bound) in prog.spec(batch, seq).items()}
    key = jax.random.PRNGKey(seed)
    params = jax.jit(lambda r: prog.init(r, batch, seq))(key)
    t0 = time.perf_counter()
    compiled = jax.jit(prog.train_step).lower(params, data, key).compile(compile_options)
    rec["compile_s"] = time.perf_counter() - t0
    ma = compiled.memory_analysis()
    if ma is not None:
        rec["xla_argument_bytes"] = int(ma.argument_size_in_bytes)
        rec["xla_output_bytes"] = int(ma.output_size_in_bytes)
        rec["xla_temp_bytes"] = int(ma.temp_size_in_bytes)
    for _ in range(warmup):
        jax.block_until_ready(compiled(params, data, key))
    times = [_timed(lambda: jax.block_until_ready(compiled(params, data, key)))
             for _ in range(steps)]
    fc = traced_counts(mod, cfg, [seq], batch)[seq]
    med = statistics.median(times)
    rec.update({
        "steps": steps, "step_s": med, "step_s_min": min(times), "step_s_max": max(times),
        "tokens_per_s": seq * batch / med,
        "train_flops": fc.train.flops("matmul"), "train_flops_all": fc.train.flops("all"),
        "achieved_flops": fc.train.flops("matmul") / med,
        "params": fc.params, "device": jax.devices()[0].platform,
    })
    source = "given by the caller" if peak is not None else peak_source()
    if peak is None:
        peak = device_peak()
    rec["peak_flops"] = peak
    rec["peak_source"] = source
    rec["utilisation"] = rec["achieved_flops"] / peak if peak else None
    return rec


__all__ = ["available_memory", "bench_step", "device_peak", "estimate_bytes", "machine",
           "matmul_peak", "peak_source"]
