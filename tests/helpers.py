"""Shared helpers for the tests: abstract tracing of an architecture's real step."""
from __future__ import annotations

import jax

from architectures.program import spec_structs
from comparator.trace import trace


def traced(mod, cfg, batch, seq):
    """(forward TraceResult, training TraceResult) of ``mod.model(cfg)`` on abstract inputs."""
    prog = mod.model(cfg)
    params = prog.abstract_params(batch, seq)
    data = spec_structs(prog.spec(batch, seq))
    rng = jax.ShapeDtypeStruct((2,), jax.numpy.uint32)
    return trace(prog.loss, params, data, rng), trace(prog.train_step, params, data, rng)


def flax_param_count(mod, cfg, batch=1, seq=8) -> int:
    params = mod.model(cfg).abstract_params(batch, seq)
    return sum(int(x.size) for x in jax.tree_util.tree_leaves(params))


def assert_counts_agree(mod, cfg, batch, seq, all_rtol=0.01):
    """analytic == traced exactly (matmul scope, fwd and train); ``all`` within all_rtol."""
    fwd, train = traced(mod, cfg, batch, seq)
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
