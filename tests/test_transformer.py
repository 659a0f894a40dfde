import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from architectures import transformer as tr
from architectures.config import ConfigError, mask_count, target_len
from helpers import (assert_counts_agree, fast_traced, flax_param_count, init_and_train_step,
                     traced)

TINY = {
    "encoder": tr.Config(vocab=101, d_model=32, n_layers=2, n_heads=4, max_len=64),
    "decoder": dataclasses.replace(tr.preset("gpt2-small"), vocab=101, d_model=32, n_layers=2,
                                   n_heads=4, max_len=64),
    "encdec": dataclasses.replace(tr.preset("t5-small"), vocab=101, d_model=32, n_layers=2,
                                  n_dec_layers=3, n_heads=4, ff_dim=48, rel_buckets=8),
}
TINY_PT = dataclasses.replace(TINY["encoder"], head="pretraining")   # + pooler and NSP

# Hugging Face BertForPreTraining (MLM + NSP heads and the pooler), unique tensors (the
# tied decoder once): 110,106,428 for bert-base -- the count issue 13 quotes, and the
# parameter count of the bert-base-uncased safetensors checkpoint on the Hub (which holds
# those heads).  bert-large by arithmetic: its BertForMaskedLM count 335,174,458 (asserted
# below) + pooler 1024 x 1024 + 1024 + NSP classifier 1024 x 2 + 2 = 336,226,108.  Both are
# also BertModel's counts as transformers reports them for bert-base-uncased / bert-large-
# uncased, 109,482,240 / 335,141,888 (pooler included), + the MLM head (H x H + H,
# LayerNorm 2H, decoder bias 30,522) + the classifier (2H + 2).
BERT_FOR_PRETRAINING = {"bert-base-pretraining": 110_106_428,
                        "bert-large-pretraining": 336_226_108}


@pytest.mark.parametrize("kind", sorted(TINY))
@pytest.mark.parametrize("batch,seq", [(1, 8), (3, 32)])
def test_tiny_counts_agree_exactly_in_both_scopes(kind, batch, seq):
    _, _, a, al = assert_counts_agree(tr, TINY[kind], batch, seq, all_rtol=0)
    assert a.train >= a.fwd and al.train >= al.fwd


@pytest.mark.parametrize("name", ["bert-base", "gpt2-small", "t5-small"])
def test_presets_agree_exactly(name):
    """Traced by ``fast_traced``: the full model at 128, shallow and symbolic-length
    traces equal to it there, for the other lengths (test_fasttrace checks them too)."""
    seqs = [128, 512, 2048, 4096]
    counts = fast_traced(tr, tr.preset(name), 1, seqs)
    for s in seqs:
        assert_counts_agree(tr, tr.preset(name), 1, s, counts=counts[s])


def test_bert_large_traces_long_sequences_without_allocating():
    # 16384 tokens: the real step would need ~200 GB of activations; tracing needs none.
    cfg = tr.preset("bert-large")
    fwd, train, a, _ = assert_counts_agree(tr, cfg, 1, 16384)
    # the learned position table grows to the sequence: 16384 rows instead of 512
    assert tr.params(cfg, 16384) == tr.params(cfg) + (16384 - 512) * 1024


def test_bert_base_matmul_terms_by_hand():
    cfg, b, s = tr.preset("bert-base"), 2, 128
    f = tr.flops(cfg, s, b, "matmul")
    t, d, L, p = b * s, 768, 12, mask_count(s, 0.15)
    assert p == 20  # BERT: 20 predictions per 128-token sequence
    bd = f.breakdown
    assert bd["attn/qkv"] == L * 2 * t * d * 3 * d
    assert bd["attn/scores"] == L * 2 * b * 12 * s * s * 64
    assert bd["attn/context"] == bd["attn/scores"]
    assert bd["attn/out"] == L * 2 * t * d * d
    assert bd["ffn/in"] == bd["ffn/out"] == L * 2 * t * d * 4 * d
    assert bd["head/transform"] == 2 * b * p * d * d
    assert bd["head/logits"] == 2 * b * p * d * 30522
    assert f.train == 3 * f.fwd  # no reversible layers, every contraction needs both grads


def test_parameter_counts_equal_reference_implementations():
    # Hugging Face BertForMaskedLM (no pooler), GPT2LMHeadModel, T5ForConditionalGeneration
    V, d = 30522, 768
    bert_layer = 4 * (d * d + d) + 2 * d + (d * 4 * d + 4 * d) + (4 * d * d + d) + 2 * d
    bert = (V + 512 + 2) * d + 2 * d + 12 * bert_layer + (d * d + d) + 2 * d + V
    assert bert == 109_514_298 == tr.params(tr.preset("bert-base"))
    assert tr.params(tr.preset("bert-large")) == 335_174_458
    assert tr.params(tr.preset("gpt2-small")) == 124_439_808
    assert tr.params(tr.preset("gpt2-medium")) == 354_823_168
    assert tr.params(tr.preset("gpt2-large")) == 774_030_080
    assert tr.params(tr.preset("gpt2-xl")) == 1_557_611_200
    assert tr.params(tr.preset("t5-small")) == 60_506_624
    assert tr.params(tr.preset("t5-base")) == 222_903_552
    assert tr.params(tr.preset("t5-11b")) == 11_307_321_344


def test_pretraining_head_parameters_equal_bert_for_pretraining():
    for name, ref in BERT_FOR_PRETRAINING.items():
        mlm = tr.preset(name.replace("-pretraining", ""))
        d = mlm.d_model
        assert tr.params(tr.preset(name)) == ref == tr.params(mlm) + (d * d + d) + (d * 2 + 2)
    # the reference arithmetic of the comment above: BertModel + MLM head + classifier
    for (d, bert_model), ref in zip(((768, 109_482_240), (1024, 335_141_888)),
                                    BERT_FOR_PRETRAINING.values()):
        assert bert_model + (d * d + d + 2 * d + 30522) + (2 * d + 2) == ref


@pytest.mark.parametrize("name", sorted(tr.PRESETS))
def test_analytic_params_equal_flax_tree(name):
    cfg = tr.preset(name)
    assert flax_param_count(tr, cfg) == tr.params(cfg)


def test_t5_11b_preset_is_the_published_shape():
    c = tr.preset("t5-11b")
    assert (c.d_model, c.d_ff, c.n_heads, c.d_head, c.n_layers, c.n_dec_layers, c.vocab) == (
        1024, 65536, 128, 128, 24, 24, 32128)


@pytest.mark.parametrize("kind", sorted(TINY))
def test_training_step_runs_on_cpu(kind):
    loss, grads = init_and_train_step(tr.model(TINY[kind]), 2, 16)
    # cross-entropy over 101 tokens, near uniform at initialisation
    assert np.isfinite(float(loss)) and abs(float(loss) - np.log(101)) < 0.5
    leaves = jax.tree_util.tree_leaves(grads)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert any(float(jnp.abs(g).max()) > 0 for g in leaves)


def test_causal_decoder_counts_the_full_masked_product():
    cfg = TINY["decoder"]
    dense = tr.flops(cfg, 64, 1).breakdown["attn/scores"]
    assert dense == cfg.n_layers * 2 * cfg.n_heads * 64 * 64 * cfg.d_head


def test_dense_attention_grows_quadratically():
    cfg = tr.preset("bert-base")
    att = [tr.flops(cfg, s).train_breakdown["attn/scores"] for s in (512, 1024, 2048, 4096)]
    assert [b / a for a, b in zip(att, att[1:])] == [4.0, 4.0, 4.0]


@pytest.mark.parametrize("batch,seq", [(1, 8), (3, 32)])
def test_pretraining_head_counts_agree_exactly_in_both_scopes(batch, seq):
    fwd, train, a, al = assert_counts_agree(tr, TINY_PT, batch, seq, all_rtol=0)
    nonzero = lambda d: {k: v for k, v in d.items() if v}
    assert nonzero(fwd.breakdown("all")) == nonzero(al.breakdown)          # term by term
    assert nonzero(train.breakdown("all")) == nonzero(al.train_breakdown)
    assert {"head/pooler", "head/nsp", "loss/nsp"} <= set(nonzero(al.breakdown))


def test_pretraining_presets_agree_exactly_at_two_lengths():
    cfg = tr.preset("bert-base-pretraining")
    counts = fast_traced(tr, cfg, 2, [128, 512])
    for s in (128, 512):
        assert_counts_agree(tr, cfg, 2, s, counts=counts[s])


def test_nsp_and_pooler_terms_by_hand():
    b, s, d = 2, 128, 768
    mlm, pt = tr.preset("bert-base"), tr.preset("bert-base-pretraining")
    f, g = tr.flops(pt, s, b, "matmul"), tr.flops(pt, s, b, "all")
    assert f.breakdown["head/pooler"] == 2 * b * d * d      # first token of each sequence
    assert f.breakdown["head/nsp"] == 2 * b * d * 2
    assert f.train_breakdown["head/pooler"] == 3 * 2 * b * d * d   # + both gradients
    assert f.fwd - tr.flops(mlm, s, b, "matmul").fwd == 2 * b * d * d + 2 * b * d * 2
    # all scope: + bias b d and tanh b d; backward: bias grad (b-1) d, tanh' 4 b d
    assert g.breakdown["head/pooler"] == 2 * b * d * d + b * d + b * d
    assert g.train_breakdown["head/pooler"] == (3 * 2 * b * d * d + b * d + b * d
                                                + (b - 1) * d + 4 * b * d)
    assert g.breakdown["head/nsp"] == 2 * b * d * 2 + b * 2
    # 2-way cross-entropy over b rows: 3 r V + 2 r (V-1) + (r-1) + 5 r + 2, + the MLM add
    assert g.breakdown["loss/nsp"] == 3 * b * 2 + 2 * b * 1 + (b - 1) + 5 * b + 2 + 1
    # the encoder output, read by the MLM gather and the pooler: one gradient add b n d
    assert (g.train_breakdown["head/gather"] - tr.flops(mlm, s, b, "all").train_breakdown[
        "head/gather"]) == b * s * d


def test_pretraining_training_step_runs_on_cpu():
    loss, grads = init_and_train_step(tr.model(TINY_PT), 2, 16)
    # MLM over 101 tokens + NSP over 2 classes, near uniform at initialisation
    assert abs(float(loss) - np.log(101) - np.log(2)) < 0.5
    assert float(jnp.abs(grads["params"]["nsp"]["pooler"]["kernel"]).max()) > 0
    assert float(jnp.abs(grads["params"]["nsp"]["classifier"]["kernel"]).max()) > 0


def test_sizing_rules():
    assert mask_count(100, 0.15) == 15 and mask_count(128, 0.15) == 20 and mask_count(1, 0.15) == 1
    assert target_len(512) == 114


@pytest.mark.parametrize("field,value", [("d_model", 0), ("n_heads", 5), ("act", "swish"),
                                         ("kind", "rnn"), ("mask_prob", 1.5), ("vocab", 2.5),
                                         ("head", "nsp"), ("head", None)])
def test_invalid_configs_name_the_field(field, value):
    with pytest.raises(ConfigError) as e:
        dataclasses.replace(tr.preset("bert-base"), **{field: value})
    assert e.value.field == field and field in str(e.value)


@pytest.mark.parametrize("name", ["gpt2-small", "t5-small"])
def test_pretraining_head_is_an_encoders(name):
    with pytest.raises(ConfigError) as e:
        dataclasses.replace(tr.preset(name), head="pretraining")
    assert e.value.field == "head" and "encoder" in e.value.allowed


def test_breakdown_terms_are_named_per_design():
    names = set(tr.flops(tr.preset("t5-small"), 128).breakdown)
    assert names and all(n.split("/")[0] in ("enc", "dec") for n in names)
    assert "dec/attn/kv" in names and "enc/attn/relbias" in names
    _, train = traced(tr, TINY["encoder"], 1, 8)
    assert "other" not in {k for k, v in train.breakdown("all").items() if v}


@pytest.mark.parametrize("arch,preset,seq", [("transformer", "bert-base", 256),
                                             ("transformer", "gpt2-small", 256),
                                             ("electra", "electra-small", 128)])
def test_jitted_layers_count_as_plain_layers(arch, preset, seq):
    """Each layer is a jitted call (blocks.JitLayer): the same FLOPs term by term, the
    same parameters and the same saved activations, term by term, as plain layers."""
    import architectures
    from architectures.blocks import plain_layers
    from comparator.count import fasttrace as ft
    from comparator.count.memory import model_activations
    mod = architectures.get(arch)
    cfg = dataclasses.replace(mod.preset(preset), n_layers=3)
    assert mod.model(cfg).jitted_layers
    jit = ft.full_count(mod, cfg, seq, 2, memory=True)
    jit_mem = model_activations(mod, cfg, seq, 2).by_term()
    with plain_layers():
        assert not mod.model(cfg).jitted_layers
        plain = ft.full_count(mod, cfg, seq, 2, memory=True)
        plain_mem = model_activations(mod, cfg, seq, 2).by_term()
    assert ft.same(jit.fwd, plain.fwd) and ft.same(jit.train, plain.train)
    assert (jit.params, jit.activation_bytes) == (plain.params, plain.activation_bytes)
    assert jit_mem == plain_mem
    bodies = []   # the bodies of every call in the jaxpr: one body, called once a layer

    def calls(jaxpr):
        for e in jaxpr.eqns:
            if e.primitive.name in ("pjit", "jit"):
                bodies.append(id(e.params["jaxpr"].jaxpr))
                calls(e.params["jaxpr"].jaxpr)
    calls(jax.make_jaxpr(mod.model(cfg).loss)(*ft.abstract_inputs(mod, cfg, 2, seq)[1:]).jaxpr)
    assert max(bodies.count(b) for b in bodies) >= 3
