"""Activation memory: the analytic residual counts equal the traced ones, term by term.

The traced side (comparator/count/memory.py) reads the residuals off the jaxpr of
``jax.vjp`` of the real pre-training step on abstract inputs; the analytic
side (``activation_terms`` of each architecture) is a closed form of the same
set.  Both exclude parameters, inputs, parameter views and broadcast scalars.
"""
import dataclasses
import functools

import numpy as np
import pytest

from architectures import albert as al, electra as el, reformer as rf, transformer as tr
from comparator.count.memory import model_activations

TINY_TR = dict(vocab=50, d_model=24, n_heads=2, ff_dim=40, max_len=16)
TINY_RF = dict(vocab=50, d_model=16, n_layers=2, n_heads=2, n_hashes=2, lsh_chunk=4,
               local_chunk=4, axial_shape=(4, 4), axial_dims=(8, 8))
TINY = {
    "bert": (tr, tr.Config(n_layers=2, **TINY_TR), 12),
    "bert-pretraining": (tr, tr.Config(n_layers=2, head="pretraining", **TINY_TR), 12),
    "bert-tanh-3heads": (tr, tr.Config(n_layers=2, act="gelu_tanh", **{**TINY_TR, "n_heads": 3}), 12),
    "gpt2": (tr, tr.Config(kind="decoder", n_layers=2, type_vocab=0, act="gelu_tanh", **TINY_TR), 10),
    "t5": (tr, tr.Config(kind="encdec", n_layers=1, n_dec_layers=2, type_vocab=0, act="relu",
                         rel_buckets=8, **{**TINY_TR, "max_len": 0}), 20),
    "albert": (al, al.Config(vocab=50, d_model=16, n_layers=2, n_heads=2, emb_dim=8, max_len=16), 8),
    "albert-attn-shared": (al, al.Config(vocab=50, d_model=16, n_layers=3, n_heads=2, emb_dim=16,
                                         max_len=16, share="attention", act="gelu"), 8),
    "electra": (el, el.Config(vocab=50, d_model=16, n_layers=1, n_heads=2, emb_dim=8, max_len=16,
                              gen_fraction=0.5), 8),
    "electra-gen-proj": (el, el.Config(vocab=50, d_model=128, n_layers=2, n_heads=2, emb_dim=128,
                                       max_len=16, gen_fraction=0.5), 8),
    "reformer": (rf, rf.Config(attn_layers=("lsh", "local"), **TINY_RF), 16),
    "reformer-causal": (rf, rf.Config(**{**TINY_RF, "n_layers": 3, "n_hashes": 1}, causal=True,
                                      ffn_chunk=8), 16),
}


@functools.lru_cache(maxsize=None)
def traced(mod, cfg, seq, batch):
    return model_activations(mod, cfg, seq, batch)


# batch 2 where something is shared by the batch (masks, index maps, rotations) or sampled
TINY_POINTS = [(name, 1) for name in sorted(TINY)] + [
    (name, 2) for name in ("gpt2", "t5", "electra", "reformer", "reformer-causal",
                           "bert-pretraining")]


@pytest.mark.parametrize("name,batch", TINY_POINTS, ids=[f"{n}-b{b}" for n, b in TINY_POINTS])
def test_tiny_analytic_equals_traced_term_by_term(name, batch):
    mod, cfg, seq = TINY[name]
    r = traced(mod, cfg, seq, batch)
    assert r.by_term() == mod.activation_terms(cfg, seq, batch)
    assert r.total == mod.activation_bytes(cfg, seq, batch)
    assert "other" not in r.by_term()  # every residual is attributed to a term


PRESET_POINTS = [(tr, "bert-base", 4096, 1), (tr, "bert-base-pretraining", 512, 2),
                 (tr, "gpt2-small", 512, 2), (tr, "t5-small", 512, 1),
                 (al, "albert-base", 512, 1), (el, "electra-small", 512, 2),
                 (rf, "reformer-base", 2048, 1), (rf, "reformer-enwik8", 512, 2)]


@pytest.mark.parametrize("mod,preset,seq,batch", PRESET_POINTS,
                         ids=[f"{p}-{s}-b{b}" for _, p, s, b in PRESET_POINTS])
def test_presets_analytic_equals_traced(mod, preset, seq, batch):
    cfg = mod.preset(preset)
    r = traced(mod, cfg, seq, batch)
    assert r.total == mod.activation_bytes(cfg, seq, batch)
    assert r.by_term() == mod.activation_terms(cfg, seq, batch)


def test_bert_layer_by_hand():
    # one post-LN layer, b=1, n=512, d=768, h=12, dh=64, f=3072, fp32:
    # q,k,v 3 x n*d; exp + probs 2 x h*n*n; row sums 2 x h*n; context n*d;
    # 2 norms of 3 n*d + 2n, the first's output n*d; GELU 3 + output 1 x n*f
    n, d, h, f = 512, 768, 12, 3072
    one = 4 * (3 * n * d + 2 * h * n * n + 2 * h * n + n * d + 2 * (3 * n * d + 2 * n) + n * d
               + 4 * n * f)
    cfg = tr.preset("bert-base")
    two, single = (dataclasses.replace(cfg, n_layers=L) for L in (2, 1))
    # ... and the first layer's output becomes read by the added layer's qkv: + n*d
    assert tr.activation_bytes(two, n) - tr.activation_bytes(single, n) == one + 4 * n * d


def test_pretraining_head_by_hand():
    # pooler on the first token of each sequence: its input, tanh and 1 - tanh^2 (b x d
    # floats each); NSP loss over b rows of 2: log-probabilities 2b, one float per row, b
    # int32 labels.  Nothing else changes (the encoder output is kept by neither reader).
    b, d, n = 2, 768, 512
    mlm, pt = tr.preset("bert-base"), tr.preset("bert-base-pretraining")
    extra = tr.activation_bytes(pt, n, b) - tr.activation_bytes(mlm, n, b)
    assert extra == 4 * 3 * b * d + (4 * 2 * b + 4 * b + 4 * b)
    assert tr.activation_terms(pt, n, b)["head/pooler"] == 4 * 3 * b * d


def test_dense_attention_is_quadratic():
    cfg = tr.preset("bert-base")
    a2, a4 = tr.activation_bytes(cfg, 2048), traced(tr, cfg, 4096, 1).total
    assert a4 > 2 * a2
    # what grows as n^2: exp(s) and the probabilities, 2 x L x h x n^2 floats
    t4 = tr.activation_terms(cfg, 4096)
    assert t4["attn/softmax"] == 4 * cfg.n_layers * cfg.n_heads * (2 * 4096 ** 2 + 2 * 4096)


def test_reformer_flat_in_depth():
    """The reversible stack keeps only its outputs: depth adds only each LSH layer's
    random rotations (h x dh x n_hashes x rot/2 floats) and the buckets it hands to the
    recomputation (int32, b x h x n_hashes x n, as the reference keeps them)."""
    base = rf.preset("reformer-base")
    seq = 2048
    got = {}
    for rehash in (False, True):
        for L in (4, 8, 12):
            cfg = dataclasses.replace(base, n_layers=L, rehash_in_backward=rehash)
            r = traced(rf, cfg, seq, 1)
            assert r.total == rf.activation_bytes(cfg, seq)
            got[rehash, L] = (r.total - r.by_term()["lsh/rotations"], r.by_term()["lsh/rotations"])
    rot = base.n_heads * base.d_head * base.n_hashes * (base.rotation_size(seq) // 2) * 4
    buckets = 1 * base.n_heads * base.n_hashes * seq * 4
    assert got[True, 4][0] == got[True, 8][0] == got[True, 12][0]   # rehashing: flat
    assert [got[False, L][0] - got[True, L][0] for L in (4, 8, 12)] == [
        L * buckets for L in (4, 8, 12)]
    for rehash in (False, True):
        assert [got[rehash, L][1] for L in (4, 8, 12)] == [L * rot for L in (4, 8, 12)]
        # 3x the layers: +5% rehashing, +7% keeping buckets (0.375 MiB a layer at 2,048)
        assert sum(got[rehash, 12]) < (1.05 if rehash else 1.1) * sum(got[rehash, 4])
    # ... and far below the dense Transformer of the same widths
    assert rf.activation_bytes(base, seq) * 20 < tr.activation_bytes(rf.transformer_baseline(base), seq)


def test_albert_sharing_does_not_reduce_activation_memory():
    cfg = al.preset("albert-base")
    bert = al.transformer_baseline(cfg)  # same widths and activation, E = H, no sharing
    a, b = al.activation_terms(cfg, 512), tr.activation_terms(bert, 512)
    layer = [k for k in b if k.split("/")[0] in ("attn", "ffn") or k in ("norm/attn", "norm/ffn")]
    assert {k: a[k] for k in layer} == {k: b[k] for k in layer}
    assert abs(sum(a.values()) - sum(b.values())) < 0.01 * sum(b.values())
    # every sharing mode keeps the same activations (traced, tiny)
    mod, tiny, seq = TINY["albert"]
    totals = {s: traced(al, dataclasses.replace(tiny, share=s), seq, 1).total
              for s in ("all", "none")}
    assert totals["all"] == totals["none"]


def test_batch_and_bytes_per():
    cfg = tr.preset("bert-base")
    assert tr.activation_bytes(cfg, 512, batch=2) == 2 * tr.activation_bytes(cfg, 512)
    # bf16 halves the floats; int32 indices and boolean masks keep their size
    t4, t2 = tr.activation_terms(cfg, 512), tr.activation_terms(cfg, 512, bytes_per=2)
    assert t2["embed/lookup"] == t4["embed/lookup"]
    assert t2["attn/softmax"] * 2 == t4["attn/softmax"]


@pytest.mark.parametrize("mod", [tr, al, el, rf], ids=lambda m: m.NAME)
def test_vectorised_over_lengths(mod):
    cfg = mod.preset(mod.DEFAULT_PRESET)
    seqs = [512, 1024, 4096]
    arr = mod.activation_bytes(cfg, np.array(seqs, dtype=np.float64))
    assert list(arr) == [mod.activation_bytes(cfg, s) for s in seqs]
    assert all(isinstance(mod.activation_bytes(cfg, s), int) for s in seqs)
