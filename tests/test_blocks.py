"""The modern decoder blocks (architectures/modern.py): every block's analytic count equals
the traced count of the real training step exactly, term by term, in both scopes, at 4
lengths and 2 sizes; its activation memory equals the traced residuals; its parameters the
Flax tree; the formulas say what each block costs (arithmetic written out); bad values
are ConfigErrors naming the field."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from architectures import modern, transformer as tr
from architectures.config import ConfigError
from comparator.count.memory import model_activations
from helpers import assert_counts_agree, fast_traced, flax_param_count, init_and_train_step

_GPT2 = tr.preset("gpt2-small")
SIZES = {"tiny": dataclasses.replace(_GPT2, vocab=101, d_model=32, n_layers=2, n_heads=4,
                                     max_len=64),
         "small": dataclasses.replace(_GPT2, vocab=67, d_model=48, n_layers=3, n_heads=6,
                                      ff_dim=80, max_len=64)}
LLAMA = dict(positions="rope", ffn="glu", act="silu", norm="rmsnorm", bias=False,
             tie_embeddings=False)
BLOCKS = {
    "gqa": dict(n_kv_heads=2),
    "mqa-rope": dict(n_kv_heads=1, positions="rope"),
    "swiglu": dict(ffn="glu", act="silu", bias=False),
    "geglu": dict(ffn="glu", act="gelu"),
    "rmsnorm": dict(norm="rmsnorm"),
    "qkv-bias": dict(bias=False, qkv_bias=True),                       # Qwen2
    "untied": dict(tie_embeddings=False),
    "neox": dict(positions="rope", rope_dim=4, parallel=True, tie_embeddings=False),
    "sliding": dict(LLAMA, attention="sliding", window=16, n_kv_heads=2),   # Mistral
    "moe-dropless": dict(LLAMA, n_kv_heads=2, n_experts=4, top_k=2),        # Mixtral
    "moe-capacity": dict(n_experts=4, top_k=1, capacity_factor=1.25, router="softmax",
                         bias=False),                                   # Switch
}
SEQS = [8, 16, 32, 64]   # the sliding window (16): twice dense, twice in blocks


def block(name, size="tiny", **kw):
    return dataclasses.replace(SIZES[size], **dict(BLOCKS[name], **kw))


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_counts_agree_exactly_at_four_lengths_and_two_sizes(name):
    for size in SIZES:
        cfg = block(name, size)
        counts = fast_traced(tr, cfg, 2, SEQS)
        for s, c in counts.items():
            fwd, train, a, al = assert_counts_agree(tr, cfg, 2, s, all_rtol=0, counts=c)
            nonzero = lambda d: {k: v for k, v in d.items() if v}
            assert nonzero(train.breakdown("all")) == nonzero(al.train_breakdown), (size, s)


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_memory_and_parameters_equal_the_traced_model(name):
    cfg = block(name)
    for s in (16, 32):
        r = model_activations(tr, cfg, s, 2)
        assert r.by_term() == tr.activation_terms(cfg, s, 2) and "other" not in r.by_term()
    assert flax_param_count(tr, cfg, 2, 32) == tr.params(cfg, 32)


def test_training_step_runs_on_cpu():
    """A tiny Mixtral (GQA, RoPE, SwiGLU experts, RMSNorm, untied head): the grouped
    products run, every parameter gets a finite gradient, the router's too."""
    loss, grads = init_and_train_step(tr.model(block("moe-dropless")), 2, 16)
    assert abs(float(loss) - np.log(101)) < 0.5        # near uniform at initialisation
    leaves = jax.tree_util.tree_leaves(grads)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    moe = grads["params"]["layer_0"]["moe"]
    assert float(jnp.abs(moe["router"]).max()) > 0 and float(jnp.abs(moe["w_in"]).max()) > 0


# -- the formulas, by hand ------------------------------------------------------------------

def test_grouped_query_attention_shrinks_the_kv_projection():
    b, n, d, h, dh, L = 2, 64, 32, 4, 8, 2
    full = tr.flops(SIZES["tiny"], n, b).breakdown["attn/qkv"]
    for g in (2, 1):                                   # GQA, MQA
        got = tr.flops(block("gqa", n_kv_heads=g), n, b).breakdown["attn/qkv"]
        assert got == L * 2 * b * n * d * (h + 2 * g) * dh
    assert full == L * 2 * b * n * d * 3 * h * dh
    assert tr.params(SIZES["tiny"]) - tr.params(block("gqa", n_kv_heads=1)) == L * (
        2 * (h - 1) * dh * d + 2 * (h - 1) * dh)        # k, v weights and biases of 3 heads


def test_rope_is_elementwise_and_learned_positions_go():
    b, n, h, g, r, L = 2, 32, 4, 1, 8, 2
    cfg = block("mqa-rope")
    mm, al = tr.flops(cfg, n, b), tr.flops(cfg, n, b, "all")
    assert "attn/rope" not in mm.breakdown or mm.breakdown["attn/rope"] == 0
    # tables (angle, cos, sin per position and pair, once) + q and k rotated: 3 r a row
    assert al.breakdown["attn/rope"] == 3 * n * r // 2 + L * 3 * r * b * n * (h + g)
    assert tr.params(cfg) == tr.params(block("gqa", n_kv_heads=1)) - 64 * 32   # no table


def test_glu_has_three_matrices():
    b, n, d, f, L = 2, 16, 32, 128, 2
    mlp, glu = tr.flops(SIZES["tiny"], n, b), tr.flops(block("swiglu"), n, b)
    assert glu.breakdown["ffn/in"] == L * 2 * b * n * d * 2 * f == 2 * mlp.breakdown["ffn/in"]
    assert glu.breakdown["ffn/out"] == mlp.breakdown["ffn/out"]
    assert modern.FFNS == ("mlp", "glu")


def test_moe_counts_active_experts_and_the_router():
    """Dropless: every token through k experts, whatever E; the router 2 d E a token."""
    b, n, d, f, L, k = 2, 32, 32, 128, 2, 2
    t = b * n
    c4 = tr.flops(block("moe-dropless"), n, b).breakdown
    c8 = tr.flops(block("moe-dropless", n_experts=8), n, b).breakdown
    assert c4["ffn/in"] == c8["ffn/in"] == L * 2 * t * k * d * 2 * f
    assert c4["ffn/router"] == L * 2 * t * d * 4 and c8["ffn/router"] == L * 2 * t * d * 8
    cfg = block("moe-dropless")
    expert = 3 * d * f                                  # gate, up, down: no biases
    assert tr.params(cfg) - tr.active_params(cfg) == L * (4 - k) * expert


def test_capacity_slots_are_computed_not_routed():
    """Switch top-1, capacity factor 1.25: C = ceil(1.25 x T x 1 / 4) slots an expert, all
    multiplied whether used or not."""
    b, n, d, f, L, E = 2, 24, 32, 128, 2, 4
    t = b * n
    C = -(-5 * t // (4 * E))                            # ceil(1.25 t / E) = 15
    assert modern.capacity(block("moe-capacity").moe, t) == C == 15
    got = tr.flops(block("moe-capacity"), n, b).breakdown
    assert got["ffn/in"] == L * 2 * E * C * d * f and got["ffn/out"] == L * 2 * E * C * f * d


def test_sliding_window_is_dense_up_to_the_window_then_linear():
    cfg = block("sliding")                              # window 16
    scores = lambda n: tr.flops(cfg, n, 1).breakdown["attn/scores"]
    dense = lambda n: tr.flops(dataclasses.replace(cfg, attention="dense"), n, 1).breakdown[
        "attn/scores"]
    assert scores(16) == dense(16) == 2 * 2 * 4 * 16 * 16 * 8      # L 2 h n n dh
    assert scores(64) == 2 * 2 * 4 * 64 * 2 * 16 * 8                # 2 windows of keys
    assert scores(128) == 2 * scores(64) and dense(128) == 4 * dense(64)


def test_mlp_and_glu_choices_keep_the_old_models():
    """The defaults are GPT-2's, BERT's and T5's blocks: nothing moved."""
    t5 = tr.preset("t5-small")
    assert t5.rms and not t5.use_bias and t5.kv_heads == t5.n_heads and not t5.rope
    g = tr.preset("gpt2-small")
    assert not g.rms and g.use_bias and g.use_qkv_bias and g.tie_embeddings and g.moe is None


# -- bad values ------------------------------------------------------------------------------

@pytest.mark.parametrize("field,value,others", [
    ("n_kv_heads", 3, {}), ("n_kv_heads", 0, {}), ("n_kv_heads", 2.0, {}),
    ("positions", "alibi", {}), ("rope_dim", 4, {}), ("rope_dim", 3, dict(positions="rope")),
    ("rope_dim", 16, dict(positions="rope")), ("ffn", "moe", {}), ("ffn", None, {}),
    ("act", "swish", {}), ("norm", "batchnorm", {}), ("bias", "yes", {}),
    ("qkv_bias", 1, {}), ("tie_embeddings", None, {}), ("parallel", "true", {}),
    ("n_experts", 1, {}), ("n_experts", -2, {}), ("top_k", 0, dict(n_experts=4, bias=False)),
    ("top_k", 5, dict(n_experts=4, bias=False)), ("router", "top1", {}),
    ("capacity_factor", 0, dict(n_experts=4, bias=False)),
    ("capacity_factor", True, dict(n_experts=4, bias=False)),
    ("capacity_factor", "1.25", dict(n_experts=4, bias=False)),
    ("bias", None, dict(n_experts=4)), ("parallel", True, dict(n_experts=4, bias=False)),
])
def test_bad_block_values_name_the_field(field, value, others):
    with pytest.raises(ConfigError) as e:
        dataclasses.replace(SIZES["tiny"], **others, **{field: value})
    assert e.value.field == field and repr(value) in str(e.value)


@pytest.mark.parametrize("field,value", [("n_kv_heads", 4), ("positions", "rope"),
                                         ("ffn", "glu"), ("tie_embeddings", False),
                                         ("n_experts", 4), ("parallel", True),
                                         ("attention", "sliding")])
def test_encoders_keep_their_blocks(field, value):
    for name in ("bert-base", "t5-small"):
        with pytest.raises(ConfigError) as e:
            dataclasses.replace(tr.preset(name), **{field: value})
        assert e.value.field == field and (field == "attention" or "decoder" in e.value.allowed)
    # a norm or bias other than the kind's is refused; naming the kind's own is not
    for name, field, other, own in (("bert-base", "norm", "rmsnorm", "layernorm"),
                                    ("t5-small", "norm", "layernorm", "rmsnorm"),
                                    ("t5-small", "bias", True, False)):
        with pytest.raises(ConfigError):
            dataclasses.replace(tr.preset(name), **{field: other})
        assert tr.flops(dataclasses.replace(tr.preset(name), **{field: own}), 64).fwd == \
            tr.flops(tr.preset(name), 64).fwd


def test_resize_keeps_the_groups_and_the_rotary_fraction():
    """A size grid (--d-model ...) of a modern preset: heads of 64, query heads per k/v
    head kept where they divide (Mistral's 4), else their common divisor; a partial rotary
    keeps its share of a head."""
    m = tr.resize(tr.preset("mistral-7b"), d_model=1024)          # 16 heads of 64
    assert (m.n_heads, m.kv_heads, m.d_head) == (16, 4, 64)
    q = tr.resize(tr.preset("qwen2-0.5b"), d_model=768)           # 12 heads; group 7 -> 1
    assert (q.n_heads, q.kv_heads) == (12, 1)
    p = tr.resize(tr.preset("pythia-160m"), d_model=1024, n_heads=8)   # heads of 128
    assert (p.d_head, p.rope) == (128, 32)                        # a quarter of the head
    assert tr.params(m) < tr.params(tr.preset("mistral-7b"))
