"""Linformer attention (Wang et al. 2020, "Linformer: Self-Attention with Linear
Complexity") for one head of one example.

``linformer_attention(q [n, dh], k [n, dh], v [n, dv], e [k, n], f [k, n]) -> [n, dv]``:
the keys and values are projected along the *sequence* to ``k`` rows, ``K' = E K``
(``attn/proj_k``) and ``V' = F V`` (``attn/proj_v``), then attended to densely,
``softmax(q K'^T / sqrt(dh)) V'`` (``kernels.attention.dense_attention``: ``attn/scores``,
``attn/softmax``, ``attn/context``): O(n k) instead of O(n^2).  ``E`` and ``F`` are
learned (the paper's Sec. 4); callers share them across heads (the paper's "headwise
sharing") by vmapping with them unbatched.  Not causal: every projected row mixes the
whole sequence.
"""
from __future__ import annotations

import jax

from .attention import attention_reference, dense_attention


def linformer_attention(q: jax.Array, k: jax.Array, v: jax.Array, e: jax.Array,
                        f: jax.Array) -> jax.Array:
    """softmax(q (E k)^T / sqrt(dh)) (F v) for one head."""
    if e.shape != f.shape or e.shape[1] != k.shape[0]:
        raise ValueError(f"projections {e.shape} and {f.shape} must both be [k, {k.shape[0]}]")
    with jax.named_scope("attn/proj_k"):
        kp = e @ k
    with jax.named_scope("attn/proj_v"):
        vp = f @ v
    return dense_attention(q, kp, vp)


def linformer_reference(q, k, v, e, f):
    """The paper's formula, one matrix product at a time (no scopes)."""
    return attention_reference(q, e @ k, f @ v)
