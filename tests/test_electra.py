import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import architectures
from architectures import electra as el
from architectures import terms as T
from architectures.config import ConfigError, mask_count
from architectures.program import spec_structs
from comparator.count.rules import THREEFRY_OPS
from comparator.count.trace import trace
from helpers import assert_counts_agree, flax_param_count, init_and_train_step, traced

TINY = {
    # generator 8 wide (1 head) with its own E->H projection; discriminator projects 16 -> 32
    "h32": el.Config(vocab=97, d_model=32, n_layers=2, n_heads=2, emb_dim=16, max_len=32,
                     gen_fraction=0.25),
    # generator as wide as the discriminator (2 heads of 64), E = H: no projections
    "h128": el.Config(vocab=61, d_model=128, n_layers=1, n_heads=4, emb_dim=128, max_len=32,
                      gen_fraction=1.0, act="gelu_tanh", mask_prob=0.25),
}


def test_registers_with_the_common_interface():
    mod = architectures.get("electra")
    assert mod is el and mod.NAME == "electra" and mod.DEFAULT_PRESET == "electra-base"
    assert set(mod.PRESETS) == {"electra-small", "electra-base", "electra-large"}


@pytest.mark.parametrize("size", sorted(TINY))
@pytest.mark.parametrize("batch,seq", [(1, 8), (3, 20)])
def test_tiny_counts_agree_exactly_in_both_scopes(size, batch, seq):
    fwd, train, a, al = assert_counts_agree(el, TINY[size], batch, seq, all_rtol=0)
    nonzero = lambda d: {k: v for k, v in d.items() if v}
    assert nonzero(fwd.breakdown("all")) == nonzero(al.breakdown)            # term by term
    assert nonzero(train.breakdown("all")) == nonzero(al.train_breakdown)
    assert all(k.startswith(("gen/", "disc/")) for k in al.breakdown)


def test_small_preset_widths_agree_exactly():
    # electra-small's widths (E=128 projected to 256 and to the 64-wide generator) at depth 2
    cfg = dataclasses.replace(el.preset("electra-small"), n_layers=2)
    assert_counts_agree(el, cfg, 1, 128, all_rtol=0)


def test_counts_agree_past_max_len_and_table_grows():
    cfg = TINY["h32"]  # max_len 32
    assert_counts_agree(el, cfg, 1, 36, all_rtol=0)
    assert flax_param_count(el, cfg, 1, 36) == el.params(cfg, 36) == el.params(cfg) + 4 * 16


def test_sampling_is_counted_in_the_all_scope_only():
    cfg, b, s = TINY["h32"], 2, 16
    rows, V = b * mask_count(s, cfg.mask_prob), cfg.vocab
    assert T.THREEFRY_OPS == THREEFRY_OPS
    fwd, train = traced(el, cfg, b, s)
    # Gumbel-max: random bits + uniform (6) + -log(-log u) (4) + add (1) per logit, the
    # range once, argmax over V, 3 index checks per scattered token; no backward
    expect = rows * V * (THREEFRY_OPS + 11) + 1 + rows * (V - 1) + 3 * rows
    assert fwd.breakdown("all")["gen/head/sample"] == expect
    assert train.breakdown("all")["gen/head/sample"] == expect
    assert fwd.breakdown("matmul").get("gen/head/sample", 0) == 0


def test_base_matmul_terms_by_hand():
    cfg, b, s = el.preset("electra-base"), 1, 128
    f = el.flops(cfg, s, b, "matmul")
    t, H, Hg, E, V, L, p = b * s, 768, 256, 768, 30522, 12, mask_count(s, 0.15)
    bd = f.breakdown
    assert (cfg.gen_hidden, cfg.gen_heads, cfg.gen_ff) == (256, 4, 1024)
    assert bd["gen/embed/proj"] == 2 * t * E * Hg             # generator projects 768 -> 256
    assert "disc/embed/proj" not in bd                         # E = H for base
    assert bd["gen/attn/qkv"] == L * 2 * t * Hg * 3 * Hg
    assert bd["disc/attn/qkv"] == L * 2 * t * H * 3 * H
    assert bd["gen/attn/scores"] == L * 2 * b * 4 * s * s * 64
    assert bd["gen/ffn/in"] == L * 2 * t * Hg * 4 * Hg
    assert bd["gen/head/logits"] == 2 * b * p * E * V         # tied decoder, masked positions
    assert bd["disc/head/rtd_dense"] == 2 * t * H * H
    assert bd["disc/head/rtd_logits"] == 2 * t * H
    assert f.train == 3 * f.fwd


def test_generator_sizes_follow_the_reference():
    # hidden = round(H x fraction), heads = max(1, hidden // 64), FFN = 4 x hidden
    sizes = {n: (c.gen_hidden, c.gen_heads, c.gen_ff) for n, (c, _) in el.PRESETS.items()}
    assert sizes == {"electra-small": (64, 1, 256), "electra-base": (256, 4, 1024),
                     "electra-large": (256, 4, 1024)}
    assert el.preset("electra-large").mask_prob == 0.25


def test_parameter_counts_equal_hugging_face():
    # transformers.ElectraForPreTraining / ElectraForMaskedLM built offline from hand-made
    # configs, unique tensors counted (the generator's decoder weight is the word table).
    V, P, E, H, F = 30522, 512, 128, 256, 1024
    emb = (V + P + 2) * E + 2 * E                              # word, position, type, LayerNorm
    layer = lambda h, f: 4 * (h * h + h) + 2 * h + (h * f + f) + (f * h + h) + 2 * h
    disc = emb + (E * H + H) + 12 * layer(H, F) + (H * H + H) + (H + 1)
    assert disc == 13_549_057 == el.discriminator_params(el.preset("electra-small"))
    Hg = 64                                                    # the paper's 1/4 generator
    gen_hf = emb + (E * Hg + Hg) + 12 * layer(Hg, 4 * Hg) + (Hg * E + E) + 2 * E + V
    assert gen_hf == 4_620_026
    assert el.generator_params(el.preset("electra-small")) == gen_hf - emb == 647_162
    assert el.discriminator_params(el.preset("electra-base")) == 109_483_009
    assert el.generator_params(el.preset("electra-base")) == 33_740_602 - (23_835_648 + 1536)
    assert el.discriminator_params(el.preset("electra-large")) == 335_142_913
    assert el.generator_params(el.preset("electra-large")) == 51_295_290 - (31_780_864 + 2048)
    # the pre-training model counts the shared embeddings once
    assert el.params(el.preset("electra-small")) == 13_549_057 + 647_162


@pytest.mark.parametrize("name", sorted(el.PRESETS))
def test_analytic_params_equal_flax_tree(name):
    cfg = el.preset(name)
    tree = el.model(cfg).abstract_params(1, 8)["params"]
    n = lambda t: sum(int(x.size) for x in jax.tree_util.tree_leaves(t))
    assert sorted(tree) == ["discriminator", "embeddings", "generator"]  # one set of tables
    assert n(tree) == el.params(cfg)
    assert n(tree["embeddings"]) + n(tree["discriminator"]) == el.discriminator_params(cfg)
    assert n(tree["generator"]) == el.generator_params(cfg)


def test_training_step_runs_on_cpu():
    cfg = dataclasses.replace(TINY["h32"], n_layers=1)
    loss, grads = init_and_train_step(el.model(cfg), 2, 16)
    # MLM over 97 tokens + 50 x binary cross-entropy (about log 2) at initialisation
    assert np.isfinite(float(loss)) and abs(float(loss) - (np.log(97) + 50 * np.log(2))) < 5
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree_util.tree_leaves(grads))
    g = grads["params"]
    for part in ("generator", "discriminator", "embeddings"):
        assert float(sum(jnp.abs(x).sum() for x in jax.tree_util.tree_leaves(g[part]))) > 0


def test_forward_without_a_key_counts_the_same():
    cfg, b, s = TINY["h32"], 1, 8
    prog = el.model(cfg)
    P, D = prog.abstract_params(b, s), spec_structs(prog.spec(b, s))
    keyless = trace(lambda p, d: prog.loss(p, d), P, D)   # fixed default key
    assert keyless.flops("all") == el.flops(cfg, s, b, "all").fwd


@pytest.mark.parametrize("field,value", [("gen_fraction", 0.0), ("gen_fraction", 1.5),
                                         ("disc_weight", -1.0), ("type_vocab", 0),
                                         ("n_heads", 5)])
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ConfigError) as e:
        dataclasses.replace(el.Config(), **{field: value})
    assert e.value.field == field


def test_generator_heads_must_divide_its_width():
    with pytest.raises(ConfigError) as e:  # 768 * 0.25 = 192 -> 3 heads: fine; 200 -> 3: not
        el.Config(d_model=800, n_heads=8, emb_dim=128, gen_fraction=0.25)
    assert e.value.field == "gen_fraction"
