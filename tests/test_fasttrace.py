"""The fast traced counts equal full traces: totals, per-term breakdown, unsupported,
flagged and parameters, for both the forward and the training step.

The saved activation bytes (``memory=True``) equal ``memory.model_activations`` of the
full model too.  ``MIN_SYMBOLIC`` is lowered to 2 so two lengths of one region already go through a
symbolic trace (one is checked concretely, the other evaluated from the program).
The reference is ``tests.helpers.traced``, the same inputs as ``sweep.traced``.
"""
import dataclasses
import os
import warnings

import jax
import jax.numpy as jnp
import pytest
from helpers import flax_param_count, traced

import architectures
from comparator.count import fasttrace as ft
from comparator.count import jaxcompat
from comparator.count.memory import model_activations
from comparator.count.symbolic import symbolic_tracing
from comparator.count.trace import count_jaxpr, trace

S = jax.ShapeDtypeStruct
f32 = jnp.float32


@pytest.fixture(autouse=True)
def _small_regions(monkeypatch):
    monkeypatch.setattr(ft, "MIN_SYMBOLIC", 2)
    ft.clear_cache()
    yield
    ft.clear_cache()


def assert_same(a, b, what):
    assert a.total == b.total, (what, a.total, b.total)
    assert a.by_term == b.by_term, what
    assert a.unsupported == b.unsupported, what
    assert a.flagged == b.flagged, what


def _at_depth(cfg, layers):
    """The preset at ``layers`` layers (enc and dec for T5): every width kept, the full
    trace cheap enough to be the reference of a unit test."""
    dec = {"n_dec_layers": layers} if getattr(cfg, "n_dec_layers", 0) else {}
    return dataclasses.replace(cfg, n_layers=layers, **dec)


def check(arch, cfg, seqs, symbolic, depth):
    mod = architectures.get(arch)
    fast = ft.traced_counts(mod, cfg, list(seqs), batch=1, memory=True)
    for s in seqs:
        fwd, train = traced(mod, cfg, 1, s)
        assert_same(fast[s].fwd, fwd, (s, "fwd"))
        assert_same(fast[s].train, train, (s, "train"))
        assert fast[s].activation_bytes == model_activations(mod, cfg, s).total, s
    assert fast[s].params == flax_param_count(mod, cfg, 1, s)   # the table grows with s
    methods = " ".join(fast[s].method for s in seqs)
    assert ("depth" in methods) == depth, methods
    if not symbolic:
        assert "symbolic" not in methods, methods
    elif "symbolic" not in methods:   # JAX compares a varying set of dims (cache state, set
        # order): rarely a logged one vanishes at every length and all are traced concretely
        warnings.warn(f"no symbolic program used for {seqs}: {methods}")
    return fast


# Depth: each preset at 4 layers (enc and dec for T5) against its full trace at one
# length.  (enwik8 repeats a period of 4 layers: only 16 or more would be reduced; its
# plan is checked in test_depth_plans.)  BERT, GPT-2 and ELECTRA call jitted layers: they
# are traced at full depth (one layer's cost), and must equal the full trace as well.
DEPTH = [("transformer", "bert-base", (1024,), False),
         ("transformer", "gpt2-small", (2048,), False),
         ("transformer", "t5-small", (512,), True), ("albert", "albert-base", (1024,), True),
         ("electra", "electra-small", (1024,), False),
         ("reformer", "reformer-base", (2048,), True)]


@pytest.mark.parametrize("arch,preset,seqs,reduced", DEPTH, ids=[c[1] for c in DEPTH])
def test_depth_extrapolation_equals_full_traces(arch, preset, seqs, reduced):
    cfg = _at_depth(architectures.get(arch).PRESETS[preset][0], 4)
    check(arch, cfg, seqs, symbolic=False, depth=reduced)


# Length: each preset at one layer (one period of 4 for enwik8), two or three lengths of
# one region traced once symbolically: past max_len (the position table grows with s) /
# below it, 512 risky (the table slice is elided there) / Reformer's axial rows grown.
# T5's symbolic trace fails (NumPy relative buckets): its lengths are traced concretely;
# so are reformer-base's, whose LSH buckets follow the reference's length rule (a power of
# two of n // chunk: the rotations' shape is no polynomial in a symbolic length).
SYMBOLIC = [("transformer", "bert-base", (1024, 2048, 4096)),
            ("transformer", "gpt2-small", (256, 512, 768)),
            ("transformer", "t5-small", (128, 512)),
            ("albert", "albert-base", (256, 384, 512)),
            ("electra", "electra-small", (1536, 2048)),
            ("reformer", "reformer-base", (2048, 4096, 8192)),
            ("reformer", "reformer-enwik8", (8192, 16384))]


@pytest.mark.parametrize("arch,preset,seqs", SYMBOLIC, ids=[c[1] for c in SYMBOLIC])
def test_symbolic_lengths_equal_full_traces(arch, preset, seqs):
    cfg = architectures.get(arch).PRESETS[preset][0]
    cfg = _at_depth(cfg, 4 if preset == "reformer-enwik8" else 1)
    check(arch, cfg, seqs, symbolic=preset not in ("t5-small", "reformer-base"), depth=False)


FULL = [("transformer", "bert-base", (128, 256, 512, 1024, 2048)),
        ("transformer", "gpt2-small", (128, 256, 512)), ("transformer", "t5-small", (128, 512)),
        ("albert", "albert-base", (1024, 2048, 4096)),
        ("electra", "electra-small", (128, 256, 384)),
        ("reformer", "reformer-base", (1024, 2048, 4096)),
        ("reformer", "reformer-enwik8", (2048, 4096, 8192))]


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("COMPARATOR_SLOW_TESTS"),
                    reason="full-depth presets: set COMPARATOR_SLOW_TESTS=1 (about 4 minutes)")
@pytest.mark.parametrize("arch,preset,seqs", FULL, ids=[c[1] for c in FULL])
def test_fast_counts_equal_full_traces_of_the_presets(arch, preset, seqs):
    mod = architectures.get(arch)
    fast = ft.traced_counts(mod, mod.PRESETS[preset][0], list(seqs), batch=1)
    for s in seqs:
        fwd, train = traced(mod, mod.PRESETS[preset][0], 1, s)
        assert_same(fast[s].fwd, fwd, (s, "fwd"))
        assert_same(fast[s].train, train, (s, "train"))
    assert fast[s].params == flax_param_count(mod, mod.PRESETS[preset][0], 1, s)


def test_depth_plans():
    tr, rf = architectures.get("transformer"), architectures.get("reformer")
    al = architectures.get("albert")
    plan, _ = ft.depth_plan(al, al.PRESETS["albert-large"][0])
    assert [(c, k.n_layers) for c, k in plan] == [(-22, 1), (23, 2)]   # c(24) = c1 + 23 (c2 - c1)
    bert_large = tr.PRESETS["bert-large"][0]                  # jitted layers: not reduced
    assert ft.depth_plan(tr, bert_large) == ([(1, bert_large)], "full depth")
    plan, _ = ft.depth_plan(tr, tr.PRESETS["t5-small"][0])   # enc and dec stepped together
    assert [(c, k.n_layers, k.n_dec_layers) for c, k in plan] == [(-4, 1, 1), (5, 2, 2)]
    t5 = dataclasses.replace(tr.PRESETS["t5-small"][0], n_dec_layers=8)
    plan, _ = ft.depth_plan(tr, t5)
    assert [(c, k.n_layers, k.n_dec_layers) for c, k in plan] == [(-11, 1, 1), (5, 2, 1), (7, 1, 2)]
    enwik8 = rf.PRESETS["reformer-enwik8"][0]                    # period 4, 3 periods: no gain
    assert ft._period(enwik8.attn_layers) == 4
    assert ft.depth_plan(rf, enwik8)[0] == [(1, enwik8)]
    plan, _ = ft.depth_plan(rf, dataclasses.replace(enwik8, n_layers=18))   # 18 = 4 * 4 + 2
    assert [(c, k.n_layers) for c, k in plan] == [(-2, 6), (3, 10)]


def test_program_of_a_concrete_jaxpr_counts_like_the_walker():
    def f(x, w):
        def body(c, _):
            return jnp.tanh(c @ w), None
        y = jax.lax.scan(body, x, None, length=3)[0]
        y = jax.lax.cond(y.sum() > 0, lambda a: a * 2, lambda a: jnp.exp(a) @ w, y)
        return jax.nn.relu(y).mean()
    closed = jax.make_jaxpr(jax.value_and_grad(f))(S((4, 8), f32), S((8, 8), f32))
    ref, got = count_jaxpr(closed), ft.CostProgram(closed).evaluate()
    assert_same(got, ref, "concrete program")
    assert ft.COND_FLAG in got.flagged and ft.WHILE_FLAG not in got.flagged


@pytest.mark.skipif(not jaxcompat.available(), reason="no symbolic path on this JAX")
def test_symbolic_program_matches_concrete_traces_and_flags_the_elided_slice():
    """A table slice is elided where it spans the whole table: that length is risky."""
    def f(table, x):   # table [512, 8], x [s, 8]
        pos = table[None, :x.shape[0]]
        return jnp.mean(jnp.square(x[None] + pos)) + x[:, 0].sum()
    seqs = [128, 256, 512]
    head, fwd, _, _, risks = _symbolic(f, seqs)
    entry = ft._Symbolic(*head, ft.CostProgram(fwd), ft.CostProgram(fwd), [], risks)
    assert entry.risky(512)
    clean = [s for s in seqs if not entry.risky(s)]
    assert clean   # (JAX may compare more dims than these; never fewer)
    for s in clean:
        assert_same(entry.count(s)[0], trace(f, S((512, 8), f32), S((s, 8), f32)), s)
    assert entry.count(512)[0].total != trace(f, S((512, 8), f32), S((512, 8), f32)).total


def _symbolic(f, seqs):
    """``_trace_symbolic`` for a plain function of (table, x[s, 8])."""
    from jax import export
    g = 128
    k, = export.symbolic_shape("k", constraints=(f"k >= {min(seqs) // g}",
                                                 f"k <= {max(seqs) // g}"))
    log = []
    with symbolic_tracing(tuple(s // g for s in seqs), log):
        closed = jax.make_jaxpr(f)(S((512, 8), f32), S((g * k, 8), f32))
    return (g, tuple(s // g for s in seqs), False), closed, None, [], list(log)


def test_combine_is_linear_term_by_term():
    a = traced(architectures.get("transformer"),
               dataclasses.replace(architectures.get("transformer").PRESETS["gpt2-small"][0],
                                   n_layers=1), 1, 64)[0]
    two = ft.combine([(3, a), (-1, a)])
    assert two.total == a.total * 2
    assert two.by_term == {k: v * 2 for k, v in a.by_term.items()}
