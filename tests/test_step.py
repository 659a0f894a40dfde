"""comparator.count.step: forward, training step and saved activations from one Flax trace equal
the three separate traces (trace(prog.loss), trace(prog.train_step), memory.residuals)."""
import dataclasses

import jax
import numpy as np
import pytest

import architectures
from architectures.blocks import JitLayer, shapes_only
from comparator.count import fasttrace as ft
from comparator.count.memory import saved_activations
from comparator.count.step import step_counts
from comparator.count.trace import trace
from helpers import example_np, run_compiled

TINY = dict(d_model=64, n_layers=2, n_heads=2, d_ff=None)


@pytest.mark.parametrize("arch,preset,seq", [("transformer", "bert-base", 32),
                                             ("transformer", "gpt2-small", 32),
                                             ("transformer", "t5-small", 32),
                                             ("albert", "albert-base", 32),
                                             ("electra", "electra-small", 32),
                                             ("reformer", "reformer-base", 128)])
def test_one_trace_equals_three(arch, preset, seq):
    mod = architectures.get(arch)
    cfg = mod.resize(mod.preset(preset), **TINY)
    prog, params, data, rng = ft.abstract_inputs(mod, cfg, 2, seq)
    fwd, train, mem = step_counts(prog, params, data, rng, memory=True)
    assert ft.same(fwd, trace(prog.loss, params, data, rng))
    assert ft.same(train, trace(prog.train_step, params, data, rng))
    ref = saved_activations(prog, params, data, rng)
    assert mem.residuals == ref.residuals and mem.total == ref.total > 0
    assert train.flops("matmul") > fwd.flops("matmul") > 0


def test_shapes_only_init_has_the_real_shapes_and_real_init_draws():
    """Abstract parameters come from zeros initialisers (no random draws traced); a real
    init of the same jitted layer still draws random weights (its own jit: not the
    shapes-only trace, which is cached under another key)."""
    mod = architectures.get("transformer")
    cfg = dataclasses.replace(mod.resize(mod.preset("bert-base"), **TINY), vocab=97)
    prog = mod.model(cfg)
    assert prog.jitted_layers
    abstract = prog.abstract_params(1, 16)
    with shapes_only():   # (two functions: JAX caches a trace by the function traced)
        zeros = run_compiled(lambda rng: prog.init(rng, 1, 16), jax.random.PRNGKey(0))
    real = run_compiled(lambda rng: prog.init(rng, 1, 16), jax.random.PRNGKey(0))
    shapes = lambda t: jax.tree_util.tree_map(lambda x: (x.shape, x.dtype), t)
    assert shapes(abstract) == shapes(zeros) == shapes(real)
    w = real["params"]["layer_1"]["ffn"]["w_in"]
    assert float(np.std(np.asarray(w))) == pytest.approx(0.02, rel=0.2)   # normal(0.02)
    assert not np.any(np.asarray(zeros["params"]["layer_1"]["ffn"]["w_in"]))
    assert issubclass(JitLayer, architectures.blocks.Layer)
    data = example_np(prog, 1, 16)
    assert np.isfinite(float(run_compiled(prog.loss, real, data, None)))


def test_loss_of_a_plain_layer_model_is_unchanged_by_the_jit():
    """The jitted layers compute what the plain layers compute (same parameters)."""
    from architectures.blocks import plain_layers
    mod = architectures.get("transformer")
    cfg = dataclasses.replace(mod.resize(mod.preset("gpt2-small"), **TINY), vocab=97)
    prog = mod.model(cfg)
    params = run_compiled(lambda rng: prog.init(rng, 1, 16), jax.random.PRNGKey(0))
    data = example_np(prog, 1, 16)
    with plain_layers():
        plain = mod.model(cfg)
        plain_loss = float(run_compiled(plain.loss, params, data, None))
    np.testing.assert_allclose(float(run_compiled(prog.loss, params, data, None)), plain_loss,
                               rtol=1e-5)
