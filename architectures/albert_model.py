"""Flax model of ALBERT's pre-training step (see albert.py)."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import flax.linen as nn

from kernels.nn import cross_entropy
from .blocks import Attention, FeedForward, Norm, draw_features, residual_sublayer
from .heads import Embeddings, MLMHead, SentenceHead
from . import zoo
from .config import mask_count
from .program import Program, int_spec, spec_structs
from .transformer_model import for_length


class SharedEncoder(nn.Module):
    """``n_layers`` post-LN layers over as few parameter sets as ``cfg.share`` allows.

    A shared sublayer (attention with its norm, or FFN with its norm) is ONE
    module called by every layer, so the parameter tree holds it once while
    the FLOPs scale with ``n_layers``; an unshared one has a module per layer.
    ``remat``: each layer (its two sublayers) under ``jax.checkpoint``.
    """
    cfg: object
    remat: bool = False

    def setup(self):
        c = self.cfg
        na = 1 if c.shares_attention else c.n_layers
        nf = 1 if c.shares_ffn else c.n_layers
        self.attn = [Attention(c.d_model, c.n_heads, c.d_head, attn=c.attn) for _ in range(na)]
        self.attn_norm = [Norm(c.d_model, c.eps) for _ in range(na)]
        self.ffn = [FeedForward(c.d_model, c.d_ff, c.act) for _ in range(nf)]
        self.ffn_norm = [Norm(c.d_model, c.eps) for _ in range(nf)]

    def __call__(self, h, rng=None):
        c = self.cfg
        for i in range(c.n_layers):
            a = min(i, len(self.attn) - 1)
            f = min(i, len(self.ffn) - 1)
            feats = draw_features(c.attn, rng, i, c.d_head)
            layer = functools.partial(_layer, a=a, f=f)
            h = (nn.checkpoint(layer) if self.remat else layer)(self, h, feats)
        return h


def _layer(enc, h, feats, a, f):
    """One post-LN layer of ``SharedEncoder`` ``enc`` with its ``a``-th attention and
    ``f``-th FFN; ``feats``: Performer's features of this layer (else None)."""
    h = residual_sublayer(lambda x: enc.attn[a](x, features=feats), h, enc.attn_norm[a],
                          False, "attn/out", "norm/attn")
    return residual_sublayer(enc.ffn[f], h, enc.ffn_norm[f], False, "ffn/out", "norm/ffn")


class AlbertPretraining(nn.Module):
    """Factorised embeddings, shared encoder, MLM head on the masked positions, SOP head."""
    cfg: object
    remat: bool = False

    @nn.compact
    def __call__(self, ids, type_ids, mask_pos, labels, sop_labels, rng=None):
        c = self.cfg
        emb = Embeddings(c.vocab, c.emb_dim, c.d_model, c.max_len, c.type_vocab, True, c.eps,
                         name="embeddings")
        h = SharedEncoder(c, self.remat, name="encoder")(emb(ids, type_ids), rng)
        with jax.named_scope("head/gather"):
            hm = jnp.take_along_axis(h, mask_pos[..., None], axis=1)
        logits = MLMHead(c.d_model, c.emb_dim, c.vocab, c.act, c.eps, name="mlm")(hm, emb)
        with jax.named_scope("loss/mlm"):
            mlm = cross_entropy(logits.reshape(-1, c.vocab), labels.reshape(-1))
        return SentenceHead(c.d_model, "sop", name="sop")(h, sop_labels, mlm)


def build(cfg, policy: str = "store_all") -> Program:
    """The pre-training step; ``policy`` ``checkpoint``: every layer checkpointed."""
    remat = policy == "checkpoint"
    net = lambda s: AlbertPretraining(for_length(cfg, s), remat)  # position table covers s

    def spec(b, s):
        zoo.check_seq(cfg.attn, s)
        p = mask_count(s, cfg.mask_prob)
        return {"ids": int_spec((b, s), cfg.vocab), "type_ids": int_spec((b, s), cfg.type_vocab),
                "mask_pos": int_spec((b, p), s), "labels": int_spec((b, p), cfg.vocab),
                "sop_labels": int_spec((b,), 2)}

    keys = ("ids", "type_ids", "mask_pos", "labels", "sop_labels")

    def init(rng, b, s):
        d = spec_structs(spec(b, s))
        return net(s).init(rng, *(jnp.zeros(d[k].shape, d[k].dtype) for k in keys))

    def loss(p, d, rng=None):
        return net(d["ids"].shape[1]).apply(p, *(d[k] for k in keys), rng=rng)

    return Program(init=init, loss=loss, spec=spec)
