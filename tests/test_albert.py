import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import architectures
from architectures import albert as al
from architectures.config import ConfigError, mask_count
from helpers import assert_counts_agree, flax_param_count, init_and_train_step

TINY = {
    "h16": al.Config(vocab=97, d_model=16, n_layers=3, n_heads=2, emb_dim=8, ff_dim=24, max_len=32),
    "h32": al.Config(vocab=101, d_model=32, n_layers=2, n_heads=4, emb_dim=16, max_len=64,
                     act="gelu"),
}


def test_registers_with_the_common_interface():
    mod = architectures.get("albert")
    assert mod is al and mod.NAME == "albert" and mod.DEFAULT_PRESET == "albert-base"
    assert set(mod.PRESETS) == {"albert-base", "albert-large", "albert-xlarge", "albert-xxlarge"}
    assert all(src for _, src in mod.PRESETS.values())


CASES = ([("h16", sh, 1, 8) for sh in al.SHARES]
         + [("h32", sh, b, s) for sh in ("all", "none") for b, s in ((2, 12), (3, 20))])


@pytest.mark.parametrize("size,share,batch,seq", CASES)
def test_tiny_counts_agree_exactly_in_both_scopes(size, share, batch, seq):
    cfg = dataclasses.replace(TINY[size], share=share)
    fwd, train, a, al_ = assert_counts_agree(al, cfg, batch, seq, all_rtol=0)
    nonzero = lambda d: {k: v for k, v in d.items() if v}
    assert nonzero(fwd.breakdown("all")) == nonzero(al_.breakdown)          # term by term
    assert nonzero(train.breakdown("all")) == nonzero(al_.train_breakdown)


def test_base_preset_widths_agree_exactly():
    # albert-base's widths at depth 2 (depth only repeats layers; all presets at full depth
    # agree too, it just takes longer to trace)
    cfg = dataclasses.replace(al.preset("albert-base"), n_layers=2)
    assert_counts_agree(al, cfg, 1, 512, all_rtol=0)


def test_counts_agree_past_max_len_and_table_grows():
    cfg = TINY["h16"]  # max_len 32
    assert_counts_agree(al, cfg, 2, 40, all_rtol=0)
    assert flax_param_count(al, cfg, 1, 40) == al.params(cfg, 40) == al.params(cfg) + 8 * 8


def test_base_matmul_terms_by_hand():
    cfg, b, s = al.preset("albert-base"), 2, 128
    f = al.flops(cfg, s, b, "matmul")
    t, H, E, V, L, p = b * s, 768, 128, 30000, 12, mask_count(s, 0.15)
    bd = f.breakdown
    assert bd["embed/proj"] == 2 * t * E * H                 # factorised embedding E -> H
    assert bd["attn/qkv"] == L * 2 * t * H * 3 * H           # every layer runs, shared or not
    assert bd["ffn/in"] == bd["ffn/out"] == L * 2 * t * H * 4 * H
    assert bd["head/transform"] == 2 * b * p * H * E
    assert bd["head/logits"] == 2 * b * p * E * V            # tied to the E-wide word table
    assert bd["head/pooler"] == 2 * b * H * H
    assert bd["head/sop"] == 2 * b * H * 2
    assert f.train == 3 * f.fwd


def test_sharing_changes_parameters_not_forward_flops():
    base = al.preset("albert-base")
    counts = {sh: al.flops(dataclasses.replace(base, share=sh), 128, 1, "all") for sh in al.SHARES}
    assert len({c.fwd for c in counts.values()}) == 1
    # the backward sums a shared parameter's L gradients: (L - 1) x its size more adds
    H, F, L = 768, 3072, 12
    attn = 4 * (H * H + H) + 2 * H
    ffn = H * F + F + F * H + H + 2 * H
    assert counts["all"].train - counts["none"].train == (L - 1) * (attn + ffn)
    assert counts["attention"].train - counts["none"].train == (L - 1) * attn


def test_parameter_counts_equal_hugging_face_albert_for_pretraining():
    # transformers.AlbertForPreTraining(AlbertConfig(...)) built offline from the released
    # v2 configs, unique tensors counted (tied decoder weight and bias once).
    V, E, H, F, P = 30000, 128, 768, 3072, 512
    emb = (V + P + 2) * E + 2 * E                            # word, position, type, LayerNorm(E)
    mapping = E * H + H                                      # embedding_hidden_mapping_in
    layer = 4 * (H * H + H) + 2 * H + (H * F + F) + (F * H + H) + 2 * H  # ONE shared layer
    pooler = H * H + H
    mlm = (H * E + E) + 2 * E + V                            # dense, LayerNorm(E), decoder bias
    sop = H * 2 + 2
    assert emb + mapping + layer + pooler + mlm + sop == 11_813_810
    assert al.params(al.preset("albert-base")) == 11_813_810
    assert al.params(al.preset("albert-large")) == 17_847_474
    assert al.params(al.preset("albert-xlarge")) == 59_021_490
    assert al.params(al.preset("albert-xxlarge")) == 223_158_450


def test_share_ablations_match_the_paper_table_4():
    # Lan et al. 2020, Table 4, ALBERT-base E=128: 12M / 64M / 38M / 89M
    paper = {"all": 12e6, "attention": 64e6, "ffn": 38e6, "none": 89e6}
    for sh, n in paper.items():
        ours = al.params(dataclasses.replace(al.preset("albert-base"), share=sh))
        assert abs(ours - n) < 1e6, (sh, ours)


@pytest.mark.parametrize("name", sorted(al.PRESETS))
def test_analytic_params_equal_flax_tree(name):
    cfg = al.preset(name)
    assert flax_param_count(al, cfg) == al.params(cfg)


def test_flax_tree_holds_one_layer_when_all_shared():
    params = al.model(TINY["h16"]).abstract_params(1, 8)["params"]
    assert sorted(params["encoder"]) == ["attn_0", "attn_norm_0", "ffn_0", "ffn_norm_0"]
    none = al.model(dataclasses.replace(TINY["h16"], share="none")).abstract_params(1, 8)
    assert len(none["params"]["encoder"]) == 4 * 3


def test_training_step_runs_on_cpu():
    cfg = TINY["h32"]
    loss, grads = init_and_train_step(al.model(cfg), 2, 16)
    # MLM over 101 tokens + SOP over 2 classes, near uniform at initialisation
    assert np.isfinite(float(loss)) and abs(float(loss) - (np.log(101) + np.log(2))) < 0.5
    leaves = jax.tree_util.tree_leaves(grads)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    g = grads["params"]["encoder"]["attn_0"]["qkv"]["kernel"]   # the one shared layer learns
    assert float(jnp.abs(g).sum()) > 0


@pytest.mark.parametrize("field,value", [("share", "layers"), ("emb_dim", 0), ("type_vocab", 0),
                                         ("n_heads", 5), ("act", "swish")])
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ConfigError) as e:
        dataclasses.replace(al.Config(), **{field: value})
    assert e.value.field == field
