"""Shared helpers for the tests: abstract tracing of an architecture's real step."""
from __future__ import annotations

import jax
import numpy as np

from comparator.count.trace import trace


def traced(mod, cfg, batch, seq):
    """(forward TraceResult, training TraceResult) of ``mod.model(cfg)`` on abstract inputs."""
    prog = mod.model(cfg)
    args = prog.abstract_inputs(batch, seq)
    return trace(prog.loss, *args), trace(prog.train_step, *args)


def flax_param_count(mod, cfg, batch=1, seq=8) -> int:
    params = mod.model(cfg).abstract_params(batch, seq)
    return sum(int(x.size) for x in jax.tree_util.tree_leaves(params))


def fast_traced(mod, cfg, batch, seqs) -> dict:
    """``{seq: (fwd, train)}`` from ``comparator.count.fasttrace`` with ``verify="full"``: the
    full model is traced at the smallest length and must equal the shallow and symbolic
    traces there (a fallback to full traces is a failure here, not a warning)."""
    import warnings

    from comparator.count import fasttrace as ft
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        return {s: (fc.fwd, fc.train)
                for s, fc in ft.traced_counts(mod, cfg, seqs, batch, verify="full").items()}


def assert_counts_agree(mod, cfg, batch, seq, all_rtol=0.01, counts=None):
    """analytic == traced exactly (matmul scope, fwd and train); ``all`` within all_rtol.
    ``counts``: the traced (fwd, train) pair when already computed (else a full trace)."""
    fwd, train = counts or traced(mod, cfg, batch, seq)
    assert not fwd.unsupported and not train.unsupported, (fwd.unsupported, train.unsupported)
    a = mod.flops(cfg, seq, batch, "matmul")
    assert fwd.flops("matmul") == a.fwd
    assert train.flops("matmul") == a.train
    nonzero = lambda d: {k: v for k, v in d.items() if v}
    assert nonzero(train.breakdown("matmul")) == nonzero(a.train_breakdown)  # term by term
    assert nonzero(fwd.breakdown("matmul")) == nonzero(a.breakdown)
    al = mod.flops(cfg, seq, batch, "all")
    assert abs(fwd.flops("all") - al.fwd) <= all_rtol * al.fwd
    assert abs(train.flops("all") - al.train) <= all_rtol * al.train
    return fwd, train, a, al


# XLA CPU compile dominates a tiny real step; these options cut it ~5x (same results).
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True,
                "xla_cpu_use_fusion_emitters": False, "xla_cpu_parallel_codegen_split_count": 1}


def example_np(prog, batch, seq, seed=0) -> dict:
    """Random inputs of ``prog.spec`` drawn with NumPy (no per-field XLA compiles)."""
    r = np.random.default_rng(seed)
    return {k: r.integers(0, bound, sds.shape).astype(sds.dtype)
            for k, (sds, bound) in prog.spec(batch, seq).items()}


def run_compiled(fn, *args):
    """``fn(*args)`` compiled once as one program with the FAST_COMPILE options."""
    lowered = jax.jit(fn).lower(*args)
    try:
        compiled = lowered.compile(FAST_COMPILE)
    except Exception:  # an XLA without these options: compile as usual
        compiled = lowered.compile()
    return compiled(*args)


def init_and_train_step(prog, batch, seq, seed=0):
    """(loss, grads) of a real init + training step, compiled once as one program."""
    data = example_np(prog, batch, seq, seed)
    step = lambda rng, d: prog.train_step(prog.init(rng, batch, seq), d, rng)
    return run_compiled(step, jax.random.PRNGKey(seed), data)
