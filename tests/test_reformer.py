import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from architectures import reformer as rf
from architectures import transformer as tr
from architectures.config import ConfigError
from helpers import assert_counts_agree, fast_traced, flax_param_count, init_and_train_step

TINY = rf.Config(vocab=50, d_model=32, n_layers=3, n_heads=2, ff_dim=48,
                 attn_layers=("lsh", "local"), n_hashes=2, n_buckets=4, lsh_chunk=4,
                 local_chunk=8, axial_shape=(2, 4), axial_dims=(8, 24))


@pytest.mark.parametrize("causal,n_hashes,after", [(False, 2, 1), (True, 4, 0), (False, 1, 0)])
@pytest.mark.parametrize("batch,seq", [(1, 16), (2, 32)])
def test_tiny_counts_agree_exactly_in_both_scopes(causal, n_hashes, after, batch, seq):
    cfg = dataclasses.replace(TINY, causal=causal, n_hashes=n_hashes, chunks_after=after,
                              ffn_chunk=8)
    assert_counts_agree(rf, cfg, batch, seq, all_rtol=0)


@pytest.mark.parametrize("name,seqs", [("reformer-base", [128, 512, 2048, 4096, 16384]),
                                       ("reformer-enwik8", [512, 2048, 4096, 16384])])
def test_presets_agree_exactly(name, seqs):
    # reformer-base through the fast path (the full model traced at seqs[0]); enwik8's 12
    # layers repeat a period of 4, too few to reduce: traced in full at every length
    counts = fast_traced(rf, rf.preset(name), 1, seqs) if name == "reformer-base" else {}
    for s in seqs:
        assert_counts_agree(rf, rf.preset(name), 1, s, counts=counts.get(s))


def test_a_second_size_agrees():
    cfg = dataclasses.replace(rf.preset("reformer-base"), d_model=512, n_heads=8, n_layers=4,
                              axial_dims=(256, 256))
    for s in (128, 512, 2048, 4096):
        assert_counts_agree(rf, cfg, 2, s)


def test_training_is_linear_in_length_at_fixed_chunk_and_buckets():
    cfg = rf.preset("reformer-enwik8")  # 512 buckets, chunks of 256 and 128
    seqs = [4096, 8192, 16384, 32768, 65536]
    train = [rf.flops(cfg, s).train for s in seqs]
    assert [b / a for a, b in zip(train, train[1:])] == [2.0] * 4
    # dense attention at the same widths grows faster than linearly
    dense = tr.Config(vocab=258, d_model=1024, n_layers=12, n_heads=8, max_len=0, type_vocab=0)
    dense_train = [tr.flops(dense, s).train for s in seqs]
    assert all(b / a > 2.5 for a, b in zip(dense_train[2:], dense_train[3:]))


def test_training_includes_the_recomputation():
    cfg, s = rf.preset("reformer-base"), 1024
    f = rf.flops(cfg, s)
    t, d, L = s, 768, 12
    ffn_in = 2 * t * d * 3072
    # forward + recomputed forward + 2x backward, every layer
    assert f.breakdown["ffn/in"] == L * ffn_in
    assert f.train_breakdown["ffn/in"] == L * (ffn_in + ffn_in + 2 * ffn_in)
    # hashing has no backward (argmax), and the recomputation reuses the forward's buckets
    assert f.train_breakdown["lsh/hash"] == f.breakdown["lsh/hash"]
    # ... unless told to hash again
    again = rf.flops(dataclasses.replace(cfg, rehash_in_backward=True), s)
    assert again.train_breakdown["lsh/hash"] == 2 * f.breakdown["lsh/hash"]
    assert again.breakdown == f.breakdown
    # the first layer never needs its output projection's value again
    out = 2 * t * d * d
    assert f.train_breakdown["attn/out"] == L * 4 * out - out


def test_lsh_hash_and_attention_terms_by_hand():
    cfg, b, s = rf.preset("reformer-base"), 2, 2048
    f = rf.flops(cfg, s, b).breakdown
    H, dh, r, c = b * 12, 64, 4, 64
    nb = 2 * s // c                                   # 64: a power of two, below 128
    assert f["lsh/hash"] == 12 * H * s * dh * r * nb  # 2 * n * dh * r * nb/2, 12 layers
    assert f["lsh/scores"] == f["lsh/context"] == 12 * H * 2 * (r * s) * (2 * c) * dh


def test_parameters_equal_flax_tree_and_reference():
    for name in rf.PRESETS:
        cfg = rf.preset(name)
        assert flax_param_count(rf, cfg, 1, 512) == rf.params(cfg, 512)
    e = rf.preset("reformer-enwik8")
    d, ff, V = 1024, 4096, 258
    local = 3 * d * d + d * d + 2 * 2 * d + (d * ff + ff) + (ff * d + d)
    lsh = 2 * d * d + d * d + 2 * 2 * d + (d * ff + ff) + (ff * d + d)
    emb = V * d + 128 * 256 + 512 * 768
    head = 2 * (2 * d) + (2 * d * V + V)
    # Hugging Face ReformerModelWithLMHead with its output bias shared (149,182,722)
    assert emb + 9 * local + 3 * lsh + head == 149_182_722 == rf.params(e)


def test_axial_table_grows_past_its_grid():
    cfg = rf.preset("reformer-base")  # 16 x 32 grid
    assert rf.params(cfg, 4096) - rf.params(cfg, 512) == (4096 // 32 - 16) * 256


def test_training_step_runs_on_cpu():
    cfg = dataclasses.replace(TINY, causal=True, n_layers=2)
    loss, grads = init_and_train_step(rf.model(cfg), 2, 16)
    assert np.isfinite(float(loss)) and abs(float(loss) - np.log(50)) < 0.5
    leaves = jax.tree_util.tree_leaves(grads)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert sum(float(jnp.abs(g).sum()) for g in leaves) > 0


@pytest.mark.parametrize("field,value", [("attn_layers", ("lsh", "dense")), ("n_buckets", 7),
                                         ("axial_dims", (100, 100)), ("lsh_chunk", 0)])
def test_invalid_configs_name_the_field(field, value):
    with pytest.raises(ConfigError) as e:
        dataclasses.replace(rf.preset("reformer-base"), **{field: value})
    assert e.value.field == field


def test_sequence_must_fit_the_chunks():
    with pytest.raises(ConfigError) as e:
        rf.flops(rf.preset("reformer-base"), 100)
    assert e.value.field == "seq"


def test_reusing_the_forward_buckets_gives_the_gradients_of_hashing_again():
    """The backward's recomputation with the forward's buckets (the reference's way) and
    hashing again with the same rotations give the same loss and gradients; the first
    traces one hashing product a layer fewer."""
    cfg = dataclasses.replace(TINY, n_buckets=(2, 4), causal=True)
    got = {}
    for rehash in (False, True):
        c = dataclasses.replace(cfg, rehash_in_backward=rehash)
        loss, grads = init_and_train_step(rf.model(c), 1, 16)
        got[rehash] = (float(loss), jax.tree_util.tree_leaves(grads))
    assert got[False][0] == pytest.approx(got[True][0], rel=1e-6)
    for a, b in zip(got[False][1], got[True][1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # TINY's two LSH layers (0 and 2 of 3) hash b x h = 2 heads each:
    # 2 * n * dh * n_hashes * (2 + 4) / 2 per head, dh = 32 / 2
    once = 2 * 2 * (2 * 16 * 16 * 2 * (2 + 4) // 2)
    assert rf.flops(cfg, 16, 1).train_breakdown["lsh/hash"] == once
    twice = rf.flops(dataclasses.replace(cfg, rehash_in_backward=True), 16, 1)
    assert twice.train_breakdown["lsh/hash"] == 2 * once
