"""Position-wise feed-forward: x -> act(x W1 + b1) W2 + b2, whole or in chunks, or gated.

The chunked variant (Reformer) runs the same computation ``chunk`` positions at
a time with lax.map, so the [n, d_ff] hidden activation is never held whole;
FLOPs are identical.  The gated variant (GLU, Shazeer 2020: SwiGLU with SiLU, GeGLU
with GELU) multiplies ``act(x W_gate)`` by a second projection ``x W_up`` before
``W_down``; ``W1 = [W_gate | W_up]`` is one ``[d, 2 d_ff]`` matrix.  Scopes: ``ffn/in``,
``ffn/act``, ``ffn/out``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from .nn import activation, linear


def ffn(x: jax.Array, w1, b1, w2, b2, *, act: str = "gelu") -> jax.Array:
    """x [n, d] -> [n, d]; b1/b2 may be None (T5 has no biases)."""
    return _two_layers(x, w1, b1, w2, b2, lambda h: activation(act, h))


def _two_layers(x, w1, b1, w2, b2, middle):
    """``middle(x W1 + b1) W2 + b2`` in the scopes the FLOP terms name."""
    with jax.named_scope("ffn/in"):
        h = linear(x, w1, b1)
    with jax.named_scope("ffn/act"):
        h = middle(h)
    with jax.named_scope("ffn/out"):
        return linear(h, w2, b2)


def glu(h: jax.Array, act: str) -> jax.Array:
    """``act(gate) * up`` of ``h = [gate | up]`` (the last axis split in halves)."""
    gate, up = jnp.split(h, 2, axis=-1)
    return activation(act, gate) * up


def glu_ffn(x: jax.Array, w1, b1, w2, b2, *, act: str = "silu") -> jax.Array:
    """x [n, d] -> [n, d] through ``glu(x W1 + b1) W2 + b2``; W1 [d, 2 d_ff], W2 [d_ff, d]."""
    return _two_layers(x, w1, b1, w2, b2, lambda h: glu(h, act))


def chunked_ffn(x: jax.Array, w1, b1, w2, b2, *, chunk: int, act: str = "gelu") -> jax.Array:
    n, d = x.shape
    if n % chunk:
        raise ValueError(f"sequence length {n} is not a multiple of chunk {chunk}")
    xs = x.reshape(n // chunk, chunk, d)
    out = jax.lax.map(lambda xc: ffn(xc, w1, b1, w2, b2, act=act), xs)
    return out.reshape(n, d)


def ffn_reference(x, w1, b1, w2, b2, *, act="gelu", gated=False):
    """x [n, d]: the textbook formula, one matmul at a time (gated: the GLU paper's
    ``(act(x W) * x V) W2`` with W, V the halves of w1)."""
    h = x @ w1 + (0 if b1 is None else b1[None, :])
    if gated:
        f = h.shape[-1] // 2
        h = activation(act, h[:, :f]) * h[:, f:]
    else:
        h = activation(act, h)
    return h @ w2 + (0 if b2 is None else b2[None, :])
