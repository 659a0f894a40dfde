"""Flax model of ELECTRA's pre-training step (see electra.py).

Parameter tree: ``embeddings`` (word/position/type tables + their LayerNorm,
shared by both networks), ``generator`` (its E->H projection when needed, its
layers, its MLM head) and ``discriminator`` (projection, layers, RTD head).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import flax.linen as nn

from kernels.nn import activation, cross_entropy, sigmoid_bce
from .blocks import Dense, draw_features, jit_layers, layer_class
from .heads import Embeddings, MLMHead
from . import zoo
from .config import mask_count
from .program import Program, int_spec, spec_structs
from .transformer_model import for_length


class Tower(nn.Module):
    """E->H projection (when E != H) and ``n_layers`` post-LN layers (each checkpointed
    with ``remat``); Performer's features drawn from the step's key folded with ``first``
    + the layer's index."""
    emb_dim: int
    hidden: int
    n_layers: int
    n_heads: int
    d_ff: int
    act: str
    eps: float
    attn: zoo.Attn = zoo.Attn()
    first: int = 0
    remat: bool = False

    @nn.compact
    def __call__(self, x, rng=None):
        if self.emb_dim != self.hidden:
            with jax.named_scope("embed/proj"):
                x = Dense(self.emb_dim, self.hidden, name="proj")(x)
        dh = self.hidden // self.n_heads
        for i in range(self.n_layers):
            feats = draw_features(self.attn, rng, self.first + i, dh)
            x = layer_class(remat=self.remat)(self.hidden, self.n_heads, dh, self.d_ff,
                                              self.act, self.eps, attn=self.attn,
                                              name=f"layer_{i}")(x, features=feats)
        return x


class Generator(nn.Module):
    cfg: object
    remat: bool = False

    @nn.compact
    def __call__(self, emb, ids, type_ids, mask_pos, rng=None):
        c = self.cfg
        h = Tower(c.emb_dim, c.gen_hidden, c.n_layers, c.gen_heads, c.gen_ff, c.act, c.eps,
                  c.attn, remat=self.remat, name="tower")(emb(ids, type_ids), rng)
        with jax.named_scope("head/gather"):
            h = jnp.take_along_axis(h, mask_pos[..., None], axis=1)
        return MLMHead(c.gen_hidden, c.emb_dim, c.vocab, c.act, c.eps, name="mlm")(h, emb)


class Discriminator(nn.Module):
    cfg: object
    remat: bool = False

    @nn.compact
    def __call__(self, emb, ids, type_ids, rng=None):
        c = self.cfg
        h = Tower(c.emb_dim, c.d_model, c.n_layers, c.n_heads, c.d_ff, c.act, c.eps, c.attn,
                  c.n_layers, self.remat, name="tower")(emb(ids, type_ids), rng)
        with jax.named_scope("head/rtd_dense"):
            h = Dense(c.d_model, c.d_model, name="rtd_dense")(h)
        with jax.named_scope("head/rtd_act"):
            h = activation(c.act, h)
        with jax.named_scope("head/rtd_logits"):
            return Dense(c.d_model, 1, name="rtd_logits")(h)[..., 0]


def _scatter_rows(x, pos, values):
    """x[i, pos[i, j]] = values[i, j] for every row i."""
    return jax.vmap(lambda r, p, v: r.at[p].set(v))(x, pos, values)


class ElectraPretraining(nn.Module):
    """Generator MLM -> sampled replacements -> discriminator RTD; tied embeddings."""
    cfg: object
    remat: bool = False

    @nn.compact
    def __call__(self, ids, type_ids, mask_pos, labels, rng):
        c = self.cfg
        emb = Embeddings(c.vocab, c.emb_dim, c.emb_dim, c.max_len, c.type_vocab, True, c.eps,
                         name="embeddings")
        with jax.named_scope("gen"):
            logits = Generator(c, self.remat, name="generator")(emb, ids, type_ids, mask_pos,
                                                                rng)
            with jax.named_scope("loss/mlm"):
                gen_loss = cross_entropy(logits.reshape(-1, c.vocab), labels.reshape(-1))
            with jax.named_scope("head/sample"):
                sampled = jax.random.categorical(rng, jax.lax.stop_gradient(logits))
                corrupted = _scatter_rows(ids, mask_pos, sampled)
        with jax.named_scope("disc"):
            disc_logits = Discriminator(c, self.remat, name="discriminator")(emb, corrupted,
                                                                         type_ids, rng)
            with jax.named_scope("loss/rtd"):
                replaced = _scatter_rows(jnp.zeros(ids.shape, bool), mask_pos, sampled != labels)
                disc_loss = sigmoid_bce(disc_logits, replaced)
                return gen_loss + c.disc_weight * disc_loss


def build(cfg, policy: str = "store_all") -> Program:
    """The pre-training step; ``policy`` ``checkpoint``: every layer of both networks
    checkpointed."""
    remat = policy == "checkpoint"
    net = lambda s: ElectraPretraining(for_length(cfg, s), remat)  # position table covers s

    def spec(b, s):
        zoo.check_seq(cfg.attn, s)
        p = mask_count(s, cfg.mask_prob)
        return {"ids": int_spec((b, s), cfg.vocab), "type_ids": int_spec((b, s), cfg.type_vocab),
                "mask_pos": int_spec((b, p), s), "labels": int_spec((b, p), cfg.vocab)}

    keys = ("ids", "type_ids", "mask_pos", "labels")

    def init(rng, b, s):
        d = spec_structs(spec(b, s))
        return net(s).init(rng, *(jnp.zeros(d[k].shape, d[k].dtype) for k in keys), rng)

    def loss(p, d, rng=None):
        """``rng`` draws the generator's samples; None uses a fixed key (same counts)."""
        rng = jax.random.PRNGKey(0) if rng is None else rng
        return net(d["ids"].shape[1]).apply(p, *(d[k] for k in keys), rng)

    return Program(init=init, loss=loss, spec=spec, jitted_layers=jit_layers())
