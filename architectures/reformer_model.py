"""Flax model of the Reformer pre-training step (see reformer.py).

Parameters live in Flax modules; the layers themselves are pure functions
``F(params, x, aux)`` / ``G(params, x, aux)`` handed to
``kernels.reversible.reversible_stack``, whose custom VJP stores no per-layer
activations and recomputes each sublayer once in the backward (the ``reversible``
policy; ``store_all`` differentiates the same layers plainly, ``checkpoint`` puts each
layer under ``jax.checkpoint``).  LSH rotations
are drawn once per step from the step's PRNG key (term ``lsh/rotations``) and
passed as non-differentiable ``aux``.  As in the reference implementations, the forward
keeps each LSH layer's buckets and the backward's recomputation reuses them instead of
hashing again (``rehash_in_backward=True``: it hashes again, with the same rotations, to
the same buckets).  A sequence of one LSH chunk or less runs plain attention: no
rotations, no hashing.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import flax.linen as nn

from kernels.ffn import chunked_ffn, ffn
from kernels.lsh import local_attention, lsh_attention
from kernels.nn import cross_entropy, layer_norm, linear
from kernels.reversible import checkpointed_stack, reversible_stack, reversible_stack_reference
from .blocks import INIT, ONES, ZEROS, Dense, Norm
from .config import mask_count
from .program import Program, int_spec, spec_structs


def _heads(x, h, dh):
    b, n, _ = x.shape
    return x.reshape(b, n, h, dh).transpose(0, 2, 1, 3)          # [b, h, n, dh]


def _merge(x):
    b, h, n, dh = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, n, h * dh)


def attention_sublayer(cfg, kind, p, x, rot, saved=None, keep=False):
    """F: pre-LN LSH or local self-attention, x [b, n, d] -> [b, n, d]; with ``keep``
    (an LSH layer keeping its buckets for the recomputation) ``(y, buckets)``, reusing
    ``saved`` buckets when given."""
    h, dh = cfg.n_heads, cfg.d_head
    with jax.named_scope("norm/attn"):
        y = layer_norm(x, p["ln_scale"], p["ln_bias"], cfg.eps)
    with jax.named_scope("attn/qkv"):
        proj = linear(y, p["w_qkv"])
    win = dict(causal=cfg.causal, n_chunks_before=cfg.chunks_before,
               n_chunks_after=cfg.chunks_after)
    buckets = None
    if kind == "lsh":
        qk, v = (_heads(t, h, dh) for t in jnp.split(proj, 2, axis=-1))
        n = x.shape[1]
        factors = None if cfg.single_chunk(n) else cfg.bucket_factors(n)
        one = functools.partial(lsh_attention, chunk_len=cfg.lsh_chunk, factors=factors,
                                return_buckets=True, **win)
        # vmapped over batch (the rotations shared) and heads (one rotation each)
        ctx, buckets = jax.vmap(jax.vmap(lambda a, b, r, s: one(a, b, r, buckets=s)),
                                in_axes=(0, 0, None, 0))(qk, v, rot, saved)
    else:
        q, k, v = (_heads(t, h, dh) for t in jnp.split(proj, 3, axis=-1))
        one = functools.partial(local_attention, chunk_len=cfg.local_chunk, **win)
        ctx = jax.vmap(jax.vmap(one))(q, k, v)
    with jax.named_scope("attn/out"):
        y = linear(_merge(ctx), p["w_out"])
    return (y, buckets) if keep else y


def ffn_sublayer(cfg, p, x, aux):
    """G: pre-LN (chunked) feed-forward, x [b, n, d] -> [b, n, d]."""
    with jax.named_scope("norm/ffn"):
        y = layer_norm(x, p["ln_scale"], p["ln_bias"], cfg.eps)
    args = (p["w_in"], p["b_in"], p["w_out"], p["b_out"])
    if cfg.ffn_chunk:
        one = lambda xi: chunked_ffn(xi, *args, chunk=cfg.ffn_chunk, act=cfg.act)
    else:
        one = lambda xi: ffn(xi, *args, act=cfg.act)
    return jax.vmap(one)(y)


class AttnParams(nn.Module):
    d: int
    inner: int
    n_proj: int

    @nn.compact
    def __call__(self):
        return {"ln_scale": self.param("ln_scale", ONES, (self.d,)),
                "ln_bias": self.param("ln_bias", ZEROS, (self.d,)),
                "w_qkv": self.param("w_qkv", INIT, (self.d, self.n_proj * self.inner)),
                "w_out": self.param("w_out", INIT, (self.inner, self.d))}


class FFNParams(nn.Module):
    d: int
    d_ff: int

    @nn.compact
    def __call__(self):
        return {"ln_scale": self.param("ln_scale", ONES, (self.d,)),
                "ln_bias": self.param("ln_bias", ZEROS, (self.d,)),
                "w_in": self.param("w_in", INIT, (self.d, self.d_ff)),
                "b_in": self.param("b_in", ZEROS, (self.d_ff,)),
                "w_out": self.param("w_out", INIT, (self.d_ff, self.d)),
                "b_out": self.param("b_out", ZEROS, (self.d,))}


STACKS = {"reversible": reversible_stack, "store_all": reversible_stack_reference,
          "checkpoint": checkpointed_stack}


class Reformer(nn.Module):
    cfg: object
    seq: int
    policy: str = "reversible"

    @nn.compact
    def __call__(self, ids, mask_pos, labels, rng):
        c, n = self.cfg, ids.shape[1]
        d, (d1, d2), n2 = c.d_model, c.axial_dims, c.axial_shape[1]
        rows = c.axial_rows(self.seq)
        word = self.param("word", INIT, (c.vocab, d))
        e1 = self.param("axial_1", INIT, (rows, d1))
        e2 = self.param("axial_2", INIT, (n2, d2))
        with jax.named_scope("embed/axial"):
            need = -(-n // n2)
            a = jnp.broadcast_to(e1[:need, None, :], (need, n2, d1))
            b = jnp.broadcast_to(e2[None, :, :], (need, n2, d2))
            pos = jnp.concatenate([a, b], axis=-1).reshape(need * n2, d)[:n]
        with jax.named_scope("embed/lookup"):
            h = jnp.take(word, ids, axis=0) + pos[None]

        fs, gs, params, aux, keep = [], [], [], [], []
        hashing = not c.single_chunk(n)
        for i in range(c.n_layers):
            kind = c.kind(i)
            pa = AttnParams(d, c.inner, 2 if kind == "lsh" else 3, name=f"layer_{i}_attn")()
            pf = FFNParams(d, c.d_ff, name=f"layer_{i}_ffn")()
            keep.append(kind == "lsh" and hashing and not c.rehash_in_backward)
            fs.append(functools.partial(attention_sublayer, c, kind, keep=keep[-1]))
            gs.append(functools.partial(ffn_sublayer, c))
            params.append((pa, pf))
            if kind == "lsh" and hashing:
                with jax.named_scope("lsh/rotations"):
                    key = jax.random.fold_in(rng, i)
                    shape = (c.n_heads, c.d_head, c.n_hashes, c.rotation_size(n) // 2)
                    aux.append(jax.random.normal(key, shape))
            else:
                aux.append(None)
        with jax.named_scope("rev/residual"):  # the stack's own adds; sublayers keep their terms
            y1, y2 = STACKS[self.policy](tuple(fs), tuple(gs), params, h, h, aux, keep)
        y = jnp.concatenate([y1, y2], axis=-1)
        with jax.named_scope("norm/final"):
            y = Norm(2 * d, c.eps, name="final_norm")(y)
        if not c.causal:
            with jax.named_scope("head/gather"):
                y = jnp.take_along_axis(y, mask_pos[..., None], axis=1)
        with jax.named_scope("head/logits"):
            logits = Dense(2 * d, c.vocab, name="lm_head")(y)
        with jax.named_scope("loss/lm" if c.causal else "loss/mlm"):
            return cross_entropy(logits.reshape(-1, c.vocab), labels.reshape(-1))


def build(cfg, policy: str = "reversible") -> Program:
    """The pre-training step; ``policy`` (``reformer.POLICIES``) picks the stack's autodiff:
    the reversible custom VJP, plain autodiff of the same layers (``store_all``) or each
    layer under ``jax.checkpoint`` (``checkpoint``)."""
    def spec(b, s):
        cfg.check_seq(s)
        p = s if cfg.causal else mask_count(s, cfg.mask_prob)
        return {"ids": int_spec((b, s), cfg.vocab), "mask_pos": int_spec((b, p), s),
                "labels": int_spec((b, p), cfg.vocab)}

    def loss(params, d, rng):
        if rng is None:
            raise ValueError("the Reformer step needs a PRNG key: LSH rotations are drawn per step")
        s = d["ids"].shape[1]
        return Reformer(cfg, s, policy).apply(params, d["ids"], d["mask_pos"], d["labels"], rng)

    def init(rng, b, s):
        d = {k: jnp.zeros(v.shape, v.dtype) for k, v in spec_structs(spec(b, s)).items()}
        return Reformer(cfg, s, policy).init(rng, d["ids"], d["mask_pos"], d["labels"], rng)

    return Program(init=init, loss=loss, spec=spec)
