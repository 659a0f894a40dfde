"""Flax models of the Transformer's three pre-training setups (see transformer.py)."""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import flax.linen as nn

from kernels.nn import cross_entropy
from kernels.rope import rope_tables
from .blocks import INIT, Norm, draw_features, jit_layers, layer_class
from .heads import Embeddings, MLMHead, SentenceHead
from . import zoo
from .config import mask_count, target_len
from .program import Program, int_spec, spec_structs


def _layer(cfg, causal=False, cross=False, name=None, remat=False):
    layer = layer_class(shared_inputs=cfg.kind == "encdec", remat=remat)  # (blocks.JitLayer)
    return layer(cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_ff, cfg.act, cfg.eps,
                 pre_norm=cfg.pre_norm, causal=causal, cross=cross, use_bias=cfg.use_bias,
                 rms=cfg.rms, attn=cfg.attn, n_kv_heads=cfg.kv_heads,
                 qkv_bias=cfg.use_qkv_bias, gated=cfg.ffn == "glu", parallel=cfg.parallel,
                 moe=cfg.moe, name=name)


def relative_buckets(n: int, m: int, buckets: int, max_distance: int, bidirectional: bool):
    """T5's relative-position bucket of every (query, key) pair; a static NumPy array."""
    rel = np.arange(m)[None, :] - np.arange(n)[:, None]
    out = np.zeros((n, m), np.int32)
    if bidirectional:
        buckets //= 2
        out += (rel > 0).astype(np.int32) * buckets
        rel = np.abs(rel)
    else:
        rel = -np.minimum(rel, 0)
    exact = buckets // 2
    with np.errstate(divide="ignore"):
        large = exact + (np.log(np.maximum(rel, 1) / exact) / np.log(max_distance / exact)
                         * (buckets - exact)).astype(np.int32)
    large = np.minimum(large, buckets - 1)
    return out + np.where(rel < exact, rel, large)


class RelativeBias(nn.Module):
    buckets: int
    max_distance: int
    n_heads: int
    bidirectional: bool

    @nn.compact
    def __call__(self, n, m):
        table = self.param("table", INIT, (self.buckets, self.n_heads))
        idx = relative_buckets(n, m, self.buckets, self.max_distance, self.bidirectional)
        with jax.named_scope("attn/relbias"):
            return jnp.take(table, jnp.asarray(idx), axis=0).transpose(2, 0, 1)


class EncoderMLM(nn.Module):
    """BERT: MLM head on the masked positions; with ``cfg.nsp`` (head "pretraining") also
    the pooler and next-sentence head on the first token, its loss added to the MLM's.
    ``remat``: every layer checkpointed (the ``checkpoint`` policy)."""
    cfg: object
    remat: bool = False

    @nn.compact
    def __call__(self, ids, type_ids, mask_pos, labels, nsp_labels=None, rng=None):
        c = self.cfg
        emb = Embeddings(c.vocab, c.d_model, c.d_model, c.max_len, c.type_vocab, True, c.eps,
                         name="embeddings")
        h = emb(ids, type_ids)
        for i in range(c.n_layers):
            h = _layer(c, name=f"layer_{i}", remat=self.remat)(
                h, features=draw_features(c.attn, rng, i, c.d_head))
        with jax.named_scope("head/gather"):
            hm = jnp.take_along_axis(h, mask_pos[..., None], axis=1)
        logits = MLMHead(c.d_model, c.d_model, c.vocab, c.act, c.eps, name="mlm")(hm, emb)
        with jax.named_scope("loss/mlm"):
            mlm = cross_entropy(logits.reshape(-1, c.vocab), labels.reshape(-1))
        if not c.nsp:
            return mlm
        return SentenceHead(c.d_model, "nsp", name="nsp")(h, nsp_labels, mlm)


class DecoderLM(nn.Module):
    """GPT-2, and the modern decoders: rotary tables computed once a step (``attn/rope``)
    and read by every layer; an untied head (``lm_head``, d x V) when not tied."""
    cfg: object
    remat: bool = False

    @nn.compact
    def __call__(self, ids, labels, rng=None):
        c = self.cfg
        learned = c.positions == "learned"
        emb = Embeddings(c.vocab, c.d_model, c.d_model, c.max_len if learned else 0, 0, False,
                         c.eps, name="embeddings")
        h = emb(ids)
        rope = None
        if c.rope:
            with jax.named_scope("attn/rope"):
                rope = rope_tables(ids.shape[1], c.rope)
        for i in range(c.n_layers):
            h = _layer(c, causal=True, name=f"layer_{i}", remat=self.remat)(
                h, features=draw_features(c.attn, rng, i, c.d_head), rope=rope)
        with jax.named_scope("norm/final"):
            h = Norm(c.d_model, c.eps, c.rms, name="final_norm")(h)
        with jax.named_scope("head/logits"):
            if c.tie_embeddings:
                logits = emb.attend(h)
            else:
                logits = jnp.einsum("...d,dv->...v", h,
                                    self.param("lm_head", INIT, (c.d_model, c.vocab)))
        with jax.named_scope("loss/lm"):
            return cross_entropy(logits.reshape(-1, c.vocab), labels.reshape(-1))


class EncoderDecoder(nn.Module):
    cfg: object
    remat: bool = False

    @nn.compact
    def __call__(self, enc_ids, dec_ids, labels):
        c = self.cfg
        emb = Embeddings(c.vocab, c.d_model, c.d_model, 0, 0, False, c.eps, name="shared")
        n, t = enc_ids.shape[1], dec_ids.shape[1]
        with jax.named_scope("enc"):
            bias = RelativeBias(c.rel_buckets, c.rel_max_distance, c.n_heads, True,
                                name="enc_relbias")(n, n)
            h = emb(enc_ids)
            for i in range(c.n_layers):
                h = _layer(c, name=f"enc_{i}", remat=self.remat)(h, self_bias=bias)
            with jax.named_scope("norm/final"):
                mem = Norm(c.d_model, c.eps, rms=True, name="enc_norm")(h)
        with jax.named_scope("dec"):
            bias = RelativeBias(c.rel_buckets, c.rel_max_distance, c.n_heads, False,
                                name="dec_relbias")(t, t)
            h = emb(dec_ids)
            for i in range(c.n_dec_layers):
                h = _layer(c, causal=True, cross=True, name=f"dec_{i}",
                           remat=self.remat)(h, mem, self_bias=bias)
            with jax.named_scope("norm/final"):
                h = Norm(c.d_model, c.eps, rms=True, name="dec_norm")(h)
            with jax.named_scope("head/logits"):
                logits = emb.attend(h * (c.d_model ** -0.5))
            with jax.named_scope("loss/lm"):
                return cross_entropy(logits.reshape(-1, c.vocab), labels.reshape(-1))


def for_length(cfg, seq: int):
    """The config whose learned position table covers ``seq`` (extended past max_len)."""
    if cfg.max_len and seq > cfg.max_len:
        return dataclasses.replace(cfg, max_len=seq)
    return cfg


def build(cfg, policy: str = "store_all") -> Program:
    """The pre-training step of ``cfg.kind``; ``policy`` ``checkpoint`` puts every layer
    under ``jax.checkpoint``."""
    program = _build(cfg, policy == "checkpoint")
    return dataclasses.replace(program, spec=lambda b, s: zoo.check_seq(cfg.attn, s)
                               or program.spec(b, s))


def _build(cfg, remat: bool) -> Program:
    if cfg.kind == "encoder":
        net = lambda s: EncoderMLM(for_length(cfg, s), remat)

        keys = ("ids", "type_ids", "mask_pos", "labels") + (("nsp_labels",) if cfg.nsp else ())

        def spec(b, s):
            p = mask_count(s, cfg.mask_prob)
            out = {"ids": int_spec((b, s), cfg.vocab), "type_ids": int_spec((b, s), cfg.type_vocab),
                   "mask_pos": int_spec((b, p), s), "labels": int_spec((b, p), cfg.vocab)}
            if cfg.nsp:
                out["nsp_labels"] = int_spec((b,), 2)   # is-next / not-next
            return out

        call = lambda p, d, rng: net(d["ids"].shape[1]).apply(p, *(d[k] for k in keys),
                                                              rng=rng)
    elif cfg.kind == "decoder":
        net = lambda s: DecoderLM(for_length(cfg, s), remat)

        def spec(b, s):
            return {"ids": int_spec((b, s), cfg.vocab), "labels": int_spec((b, s), cfg.vocab)}

        call = lambda p, d, rng: net(d["ids"].shape[1]).apply(p, d["ids"], d["labels"], rng)
    else:
        net = lambda s: EncoderDecoder(cfg, remat)

        def spec(b, s):
            t = target_len(s)
            return {"enc_ids": int_spec((b, s), cfg.vocab), "dec_ids": int_spec((b, t), cfg.vocab),
                    "labels": int_spec((b, t), cfg.vocab)}

        call = lambda p, d, rng: net(0).apply(p, *(d[k] for k in ("enc_ids", "dec_ids",
                                                                   "labels")))

    def init(rng, b, s):
        d = {k: jnp.zeros(v.shape, v.dtype) for k, v in spec_structs(spec(b, s)).items()}
        return net(s).init(rng, *d.values())

    return Program(init=init, loss=lambda p, d, rng=None: call(p, d, rng), spec=spec,
                   jitted_layers=cfg.kind != "encdec" and jit_layers())
