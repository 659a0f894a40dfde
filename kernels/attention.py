"""Dense softmax attention for one head of one example, and a query-chunked variant.

``q [n, dh], k [m, dh], v [m, dh] -> [n, dh]``; callers vmap over heads and
batch.  The chunked variant computes the same product ``chunk`` queries at a
time (lax.map), so peak memory holds ``chunk x m`` scores instead of ``n x m``;
its FLOPs are identical.  Masked positions get a large finite negative, so a
fully masked row stays finite.  Causal attention is counted as computed: the
full masked product.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

MASK_VALUE = -1e9


def _scores(q, k, bias, causal, q_offset):
    with jax.named_scope("attn/scores"):
        s = jnp.einsum("qd,kd->qk", q * (1.0 / math.sqrt(q.shape[-1])), k)
        if bias is not None:
            s = s + bias
        if causal:
            qi = jnp.arange(q.shape[0])[:, None] + q_offset
            ki = jnp.arange(k.shape[0])[None, :]
            s = jnp.where(ki <= qi, s, MASK_VALUE)
    return s


def _softmax_context(s, v):
    with jax.named_scope("attn/softmax"):
        p = jax.nn.softmax(s, axis=-1)
    with jax.named_scope("attn/context"):
        return jnp.einsum("qk,kd->qd", p, v)


def dense_attention(q: jax.Array, k: jax.Array, v: jax.Array, *, causal: bool = False,
                    bias: jax.Array | None = None) -> jax.Array:
    """softmax(q k^T / sqrt(dh) + bias, masked) v for one head."""
    return _softmax_context(_scores(q, k, bias, causal, 0), v)


def chunked_attention(q: jax.Array, k: jax.Array, v: jax.Array, *, chunk: int,
                      causal: bool = False, bias: jax.Array | None = None) -> jax.Array:
    """Same result as ``dense_attention``, ``chunk`` queries at a time."""
    n = q.shape[0]
    if n % chunk:
        raise ValueError(f"query length {n} is not a multiple of chunk {chunk}")
    qs = q.reshape(n // chunk, chunk, q.shape[-1])
    offsets = jnp.arange(n // chunk) * chunk
    if bias is not None:
        bs = bias.reshape(n // chunk, chunk, bias.shape[-1])

        def one(args):
            qc, off, bc = args
            return _softmax_context(_scores(qc, k, bc, causal, off), v)

        out = jax.lax.map(one, (qs, offsets, bs))
    else:
        def one(args):
            qc, off = args
            return _softmax_context(_scores(qc, k, None, causal, off), v)

        out = jax.lax.map(one, (qs, offsets))
    return out.reshape(n, v.shape[-1])


def attention_reference(q, k, v, *, causal=False, bias=None):
    """Plain NumPy-style reference (float64-friendly, no scopes, no tricks)."""
    s = (q @ k.T) / math.sqrt(q.shape[-1])
    if bias is not None:
        s = s + bias
    if causal:
        s = jnp.where(jnp.tril(jnp.ones(s.shape, bool)), s, MASK_VALUE)
    s = s - s.max(axis=-1, keepdims=True)
    p = jnp.exp(s)
    p = p / p.sum(axis=-1, keepdims=True)
    return p @ v
