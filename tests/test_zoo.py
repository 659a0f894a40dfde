"""The attention zoo in the Transformer family: every choice's analytic count equals its
traced count exactly, term by term (matmul and all scopes), its activation memory equals
the traced residuals, its parameters the Flax tree; and the formulas say what each kernel
costs (arithmetic written out as the formula)."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from architectures import albert as al, electra as el, transformer as tr, zoo
from architectures.config import ConfigError
from comparator.count.memory import model_activations
from helpers import (assert_counts_agree, fast_traced, flax_param_count, init_and_train_step)

CHOICES = ("flash", "local", "linformer", "performer")
SMALL = dict(window=8, proj_len=6, features=5, block=8)
TINY = {"encoder": tr.Config(vocab=101, d_model=32, n_layers=2, n_heads=4, max_len=64, **SMALL),
        "decoder": dataclasses.replace(tr.preset("gpt2-small"), vocab=101, d_model=32,
                                       n_layers=2, n_heads=4, max_len=64, **SMALL)}
CASES = [("encoder", a) for a in CHOICES] + [("decoder", a) for a in zoo.CAUSAL[1:]]
IDS = [f"{k}-{a}" for k, a in CASES]


def tiny(kind, attention, **kw):
    return dataclasses.replace(TINY[kind], attention=attention, **kw)


@pytest.mark.parametrize("kind,attention", CASES, ids=IDS)
def test_tiny_counts_agree_exactly_in_both_scopes_at_four_lengths(kind, attention):
    """Lengths 8 (one flash block, one local window) to 64, batch 2."""
    cfg = tiny(kind, attention)
    counts = fast_traced(tr, cfg, 2, [8, 16, 32, 64])
    for s, c in counts.items():
        fwd, train, a, al_ = assert_counts_agree(tr, cfg, 2, s, all_rtol=0, counts=c)
        nonzero = lambda d: {k: v for k, v in d.items() if v}
        assert nonzero(train.breakdown("all")) == nonzero(al_.train_breakdown)   # term by term


PRESET_CASES = [("bert-base", a) for a in CHOICES] + [("gpt2-small", a) for a in zoo.CAUSAL[1:]]


@pytest.mark.parametrize("name,attention", PRESET_CASES,
                         ids=[f"{p}-{a}" for p, a in PRESET_CASES])
def test_presets_agree_exactly_at_four_lengths(name, attention):
    """The second size: BERT-base (GPT-2 small for the causal kernels) at 128 to 4096
    tokens, the default parameters (block 128, window 256, k 256, m 256)."""
    cfg = dataclasses.replace(tr.preset(name), attention=attention)
    seqs = [128, 512, 2048, 4096]
    counts = fast_traced(tr, cfg, 1, seqs)
    for s in seqs:
        assert_counts_agree(tr, cfg, 1, s, all_rtol=0, counts=counts[s])


ARCH_TINY = {
    "albert": (al, al.Config(vocab=50, d_model=16, n_layers=3, n_heads=2, emb_dim=8, max_len=16,
                             share="attention", window=4, proj_len=3, features=5, block=4)),
    "electra": (el, el.Config(vocab=50, d_model=16, n_layers=2, n_heads=2, emb_dim=8,
                              max_len=16, gen_fraction=0.5, window=4, proj_len=3, features=5,
                              block=4)),
}


@pytest.mark.parametrize("arch", sorted(ARCH_TINY))
@pytest.mark.parametrize("attention", CHOICES)
def test_albert_and_electra_agree_exactly(arch, attention):
    """ALBERT's attention shared by its 3 layers (Linformer's E, F too: their gradients
    summed), ELECTRA's two networks of different widths; a length past max_len (32 > 16:
    the position table, E and F grow)."""
    mod, cfg = ARCH_TINY[arch]
    cfg = dataclasses.replace(cfg, attention=attention)
    for s in (16, 32):
        assert_counts_agree(mod, cfg, 2, s, all_rtol=0)
    r = model_activations(mod, cfg, 32, 2)
    assert r.by_term() == mod.activation_terms(cfg, 32, 2) and "other" not in r.by_term()
    assert flax_param_count(mod, cfg, 2, 32) == mod.params(cfg, 32)


MEMORY_POINTS = [(k, a, s) for k, a in CASES for s in (8, 24)]   # one block, three


@pytest.mark.parametrize("kind,attention,seq", MEMORY_POINTS,
                         ids=[f"{k}-{a}-{s}" for k, a, s in MEMORY_POINTS])
def test_activation_memory_equals_traced_term_by_term(kind, attention, seq):
    cfg = tiny(kind, attention)
    r = model_activations(tr, cfg, seq, 2)
    assert r.by_term() == tr.activation_terms(cfg, seq, 2)
    assert "other" not in r.by_term()


def test_flash_memory_is_linear_and_dense_quadratic():
    """Attention's activations at 4096 and 8192 tokens: flash keeps b h n (5 dh + 1)
    floats (q scaled, k, v, output, merged output; lse), dense also 2 b h n^2."""
    cfg = tr.preset("bert-base")
    h, dh, L = 12, 64, 12
    att = lambda c, n: sum(v for k, v in tr.activation_terms(c, n).items() if k.startswith("attn"))
    flash = dataclasses.replace(cfg, attention="flash")
    for n in (4096, 8192):
        assert att(flash, n) == L * 4 * h * n * (5 * dh + 1)
    assert att(flash, 8192) == 2 * att(flash, 4096)
    assert att(cfg, 8192) > 3.9 * att(cfg, 4096)


def test_formulas_by_hand():
    b, n, h, dh, L = 2, 4096, 12, 64, 12
    cfg = tr.preset("bert-base")
    f = lambda a, **kw: tr.flops(dataclasses.replace(cfg, attention=a, **kw), n, b)
    dense, flash = f("dense"), f("flash")
    S = 2 * b * h * n * n * dh                       # one contraction over every pair
    assert dense.breakdown["attn/scores"] == flash.breakdown["attn/scores"] == L * S
    assert flash.fwd == dense.fwd                    # the same contractions ...
    assert flash.train - dense.train == L * S        # ... and the scores once more (backward)
    loc = f("local")                                 # windows of 256: 3 x 256 keys a query
    assert loc.breakdown["attn/scores"] == L * 2 * b * h * n * 3 * 256 * dh
    lin = f("linformer")                             # k = 256 projected keys
    assert lin.breakdown["attn/proj_k"] == lin.breakdown["attn/scores"] == L * 2 * b * h * 256 * n * dh
    perf = f("performer")                            # m = 256 features, q and k mapped
    assert perf.breakdown["attn/features"] == L * 2 * 2 * b * h * n * 256 * dh
    assert perf.breakdown["attn/context"] == L * 2 * 2 * b * h * n * 256 * dh
    assert perf.breakdown["attn/normalizer"] == L * 2 * b * h * n * 256


def test_causal_flash_halves_the_work_dense_counts_it_all():
    g = tr.preset("gpt2-small")
    n, B, h, dh, L = 4096, 128, 12, 64, 12
    dense = tr.flops(g, n).breakdown["attn/scores"]
    flash = tr.flops(dataclasses.replace(g, attention="flash"), n).breakdown["attn/scores"]
    nq = n // B
    assert dense == L * 2 * h * n * n * dh                               # masked half included
    assert flash == L * 2 * h * (nq * (nq + 1) // 2) * B * B * dh        # skipped
    assert flash / dense == (nq + 1) / (2 * nq)


def test_linear_choices_grow_linearly():
    cfg = tr.preset("bert-base")
    for a in ("local", "linformer", "performer"):
        c = dataclasses.replace(cfg, attention=a)
        core = lambda n: sum(v for k, v in tr.flops(c, n).train_breakdown.items()
                             if k in ("attn/scores", "attn/context", "attn/proj_k",
                                      "attn/proj_v", "attn/features", "attn/normalizer"))
        assert core(8192) == 2 * core(4096), a


def test_parameters_of_linformer_grow_with_the_position_table():
    cfg = dataclasses.replace(tr.preset("bert-base"), attention="linformer")
    base = tr.params(tr.preset("bert-base"))
    assert tr.params(cfg) == base + 12 * 2 * 256 * 512                  # E, F: k x max_len
    assert tr.params(cfg, 2048) == tr.params(tr.preset("bert-base"), 2048) + 12 * 2 * 256 * 2048
    assert flax_param_count(tr, tiny("encoder", "linformer"), 1, 128) == tr.params(
        tiny("encoder", "linformer"), 128)


def test_array_and_grid_evaluations_equal_the_scalar_formulas():
    from kernels.grid import compile_formula
    seqs = [512, 1024, 4096, 65536]
    for kind, a in CASES:
        cfg = dataclasses.replace(tr.preset("bert-base" if kind == "encoder" else "gpt2-small"),
                                  attention=a)
        vec = tr.flops(cfg, np.array(seqs, dtype=np.float64), 2, "all")
        grid = None
        if (kind, a) in (("decoder", "flash"), ("encoder", "local")):   # numba: ~1 s each
            f = compile_formula(lambda s, b: (tr.flops(cfg, s, b, "all").train,), 1)
            grid = f(np.array(seqs, dtype=np.float64), np.array([2.0]))
        for i, s in enumerate(seqs):
            one = tr.flops(cfg, s, 2, "all").train
            assert vec.train[i] == pytest.approx(one, rel=2 ** -50)
            assert grid is None or grid[0, i] == pytest.approx(one, rel=2 ** -50)


STEPS = [c for c in CASES if c[1] != "local"]   # local: the Reformer's tests run its kernel


@pytest.mark.parametrize("kind,attention", STEPS, ids=[f"{k}-{a}" for k, a in STEPS])
def test_training_step_runs_on_cpu(kind, attention):
    loss, grads = init_and_train_step(tr.model(tiny(kind, attention)), 2, 16)
    assert abs(float(loss) - np.log(101)) < 0.5        # near uniform at initialisation
    leaves = jax.tree_util.tree_leaves(grads)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    if attention == "linformer":                       # E and F learn
        proj = grads["params"]["layer_0"]["self_attn"]["proj_e"]
        assert float(jnp.abs(proj).max()) > 0


@pytest.mark.parametrize("field,value,kind", [
    ("attention", "lsh", "encoder"), ("attention", "sparse", "encoder"),
    ("attention", "linformer", "decoder"), ("attention", "performer", "decoder"),
    ("attention", "flash", "encdec"), ("window", 0, "encoder"), ("block", -1, "encoder"),
    ("proj_len", 2.5, "encoder"), ("features", None, "encoder")])
def test_invalid_choices_name_the_field(field, value, kind):
    base = {"encoder": tr.preset("bert-base"), "decoder": tr.preset("gpt2-small"),
            "encdec": tr.preset("t5-small")}[kind]
    with pytest.raises(ConfigError) as e:
        dataclasses.replace(base, **{field: value})
    assert e.value.field == field and repr(value) in str(e.value)
    for cls in (al.Config, el.Config):                 # the same fields, the same checks
        if kind == "encoder":
            with pytest.raises(ConfigError):
                cls(**{field: value})


@pytest.mark.parametrize("attention,seq", [("flash", 200), ("local", 300)])
def test_lengths_that_do_not_fill_blocks_are_refused(attention, seq):
    cfg = dataclasses.replace(tr.preset("bert-base"), attention=attention)
    with pytest.raises(ConfigError) as e:
        tr.flops(cfg, seq)
    assert e.value.field == "seq" and ("block=128" in e.value.allowed
                                       or "window=256" in e.value.allowed)
    assert tr.flops(cfg, 100).fwd > 0                  # shorter than a block: one block
    with pytest.raises(ConfigError):
        tr.model(cfg).spec(1, seq)


def test_only_the_sequence_mixing_changes():
    cfg = tr.preset("bert-base")
    a, b = tr.flops(cfg, 512, 2), tr.flops(dataclasses.replace(cfg, attention="flash"), 512, 2)
    for term in ("head/logits", "ffn/in", "attn/qkv", "attn/out"):
        assert a.breakdown[term] == b.breakdown[term]
