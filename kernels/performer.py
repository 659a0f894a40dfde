"""Performer attention, FAVOR+ (Choromanski et al. 2021, "Rethinking Attention with
Performers"), for one head of one example, bidirectional.

``performer_attention(q [n, dh], k [n, dh], v [n, dv], w [m, dh]) -> [n, dv]``: the
softmax kernel ``exp(q.k / sqrt(dh))`` is estimated with ``m`` positive random features
(the paper's Lemma 1), ``phi(x) = exp(w x' - |x'|^2 / 2)`` for ``x' = x / dh^(1/4)`` and
rows of ``w`` drawn from N(0, I) (``attn/features``: the projections ``x' w^T`` are
contractions).  Attention is then linear in n: ``phi(q) (phi(k)^T v)`` normalised by
``phi(q) (phi(k)^T 1)`` (``attn/context``, ``attn/normalizer``), O(n m d) instead of
O(n^2 d).  Constant factors of ``phi`` cancel between numerator and normaliser, so
``phi`` leaves out the paper's ``1/sqrt(m)`` and is shifted for range: by each query's
own largest exponent, and by the largest over all keys (a common factor of every key);
the shifts carry no gradient (they cancel exactly).  Features ``w`` are drawn by the
caller (one draw a layer and step, shared by the heads); orthogonal features (the "O"
of FAVOR+) would need a QR decomposition, not drawn here.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax


def _features(x, wt, *, keys: bool):
    """Positive random features of the rows of ``x``, ``[n, m]`` (shifted, see above);
    ``wt [dh, m]``: the drawn features, transposed."""
    xs = x * (x.shape[-1] ** -0.25)
    proj = xs @ wt                                              # [n, m]
    half = 0.5 * jnp.sum(xs * xs, axis=-1)                      # |x'|^2 / 2, [n]
    top = lax.stop_gradient(proj)
    shift = jnp.max(top) if keys else jnp.max(top, axis=-1)
    return jnp.exp(proj - (half + shift)[:, None])


def performer_attention(q: jax.Array, k: jax.Array, v: jax.Array, w: jax.Array) -> jax.Array:
    """FAVOR+ estimate of softmax(q k^T / sqrt(dh)) v for one head, ``w [m, dh]``."""
    if w.shape[-1] != q.shape[-1]:
        raise ValueError(f"features {w.shape} must be [m, {q.shape[-1]}]")
    with jax.named_scope("attn/features"):
        wt = w.T
        qf = _features(q, wt, keys=False)
        kf = _features(k, wt, keys=True)
    with jax.named_scope("attn/context"):
        num = qf @ jnp.einsum("nm,nd->md", kf, v)               # [n, dv]
    with jax.named_scope("attn/normalizer"):
        den = qf @ jnp.sum(kf, axis=0)                          # [n]
        return num / den[:, None]


def performer_reference(q, k, v, w):
    """The same estimate through the explicit ``n x n`` matrix ``phi(q) phi(k)^T`` of
    unshifted features (no scopes): ``A v / A 1``."""
    def phi(x):
        xs = x / x.shape[-1] ** 0.25
        return jnp.exp(xs @ w.T - 0.5 * jnp.sum(xs * xs, axis=-1, keepdims=True))
    a = phi(q) @ phi(k).T
    return (a @ v) / jnp.sum(a, axis=-1, keepdims=True)
