"""Rotary position embedding (RoPE; Su et al. 2021, "RoFormer", Sec. 3.4) of queries or
keys, in the half-split layout of GPT-NeoX and Hugging Face's Llama (``rotate_half``).

``rope_tables(n, dims, theta)`` -> ``(cos, sin)``, each ``[n, dims // 2]``: position ``p``
and pair ``i`` turn by the angle ``p theta^(-2i / dims)``; ``rope(x [b, n, heads, dh], cos,
sin)`` rotates the first ``dims`` features of every head (``dims <= dh``, even; the rest
pass through: GPT-NeoX's partial ``rotary_pct``) pairwise, feature ``i`` with ``i + dims /
2``:

    out_1 = x_1 cos - x_2 sin,   out_2 = x_2 cos + x_1 sin

Per rotated pair: 4 multiplies and 2 adds (3 FLOPs a rotated feature); the tables cost
a multiply, a cosine and a sine per (position, pair), once a step, shared by the layers
and the batch.  The inverse frequencies are a NumPy constant (``dims / 2`` numbers, no
length in them).  Callers wrap the calls in ``jax.named_scope`` (``attn/rope``).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def inverse_frequencies(dims: int, theta: float = 10000.0) -> np.ndarray:
    """``theta^(-2i / dims)`` for the ``dims // 2`` pairs, float32."""
    return (theta ** (-np.arange(0, dims, 2, dtype=np.float64) / dims)).astype(np.float32)


def rope_tables(n: int, dims: int, theta: float = 10000.0):
    """(cos, sin) of the angles of positions ``0..n-1`` and the ``dims // 2`` pairs."""
    pos = jnp.arange(n, dtype=jnp.float32)
    angles = pos[:, None] * jnp.asarray(inverse_frequencies(dims, theta))[None, :]
    return jnp.cos(angles), jnp.sin(angles)


def rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """``x [b, n, heads, dh]`` with its first ``2 * cos.shape[-1]`` features of every head
    rotated by position; one ``split`` (a free view, no gradient sum) into the two halves
    and the features that pass through.  The tables broadcast over batch and heads (one
    view each, which the backward keeps: ``n r/2`` floats per table and call)."""
    half = cos.shape[-1]
    dh = x.shape[-1]
    parts = jnp.split(x, [half, 2 * half], axis=-1) if 2 * half < dh else \
        jnp.split(x, [half], axis=-1)
    x1, x2 = parts[0], parts[1]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    out = [x1 * c - x2 * s, x2 * c + x1 * s] + list(parts[2:])
    return jnp.concatenate(out, axis=-1)


def rope_reference(x, dims: int, theta: float = 10000.0):
    """Hugging Face's formula: ``x cos + rotate_half(x) sin`` on the rotated features,
    with the duplicated ``[n, dims]`` tables; ``x [b, n, heads, dh]``."""
    n = x.shape[1]
    freqs = np.outer(np.arange(n), inverse_frequencies(dims, theta).astype(np.float64))
    emb = np.concatenate([freqs, freqs], axis=-1)
    cos, sin = (jnp.asarray(f(emb), x.dtype)[None, :, None, :] for f in (np.cos, np.sin))
    xr, xp = x[..., :dims], x[..., dims:]
    rot = jnp.concatenate([-xr[..., dims // 2:], xr[..., :dims // 2]], axis=-1)
    return jnp.concatenate([xr * cos + rot * sin, xp], axis=-1)
