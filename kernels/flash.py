"""Fused exact attention (FlashAttention, Dao et al. 2022) for one head of one example.

``flash_attention(q [n, dh], k [m, dh], v [m, dv], block=B) -> [n, dv]``, the same
numbers as ``kernels.attention.dense_attention`` without ever holding an ``n x m``
matrix: queries and keys are cut into blocks of ``B``, and a ``lax.scan`` runs over a
static *schedule* of (query block, key block) pairs, ``W`` pairs a step (distinct query
blocks within a step, so their running statistics are updated side by side).  Each
pair computes its ``B x B`` scores and folds them into its query block's running max
``m``, normaliser ``l`` and unnormalised output ``acc`` (the online softmax of the
paper's Algorithm 1); the output is ``acc / l``.  The forward keeps only the scaled
queries, ``k``, ``v``, the output and the row log-sum-exp ``m + log l`` (linear in n).

The backward (a ``jax.custom_vjp``, Algorithm 4 of the paper) runs the same schedule:
it *recomputes* each pair's scores and probabilities ``exp(s - lse)`` from those, and
accumulates ``dv += p^T do``, ``dp = do v^T``, ``ds = p (dp - D)`` with ``D =
rowsum(do * o)``, ``dq += ds k``, ``dk += ds^T q``.  Its contractions are five per pair
against the dense backward's four: the recomputed scores are counted as computed.

Causal attention (``causal=True``, ``n == m``) really skips the key blocks that lie
wholly after a query block: query block ``i`` meets key blocks ``0..i`` only, ``nq (nq
+ 1) / 2`` pairs of ``nq = n / B``.  The triangle is folded into a rectangle so every
step has the same width: query blocks ``p`` and ``nq - 1 - p`` share a lane (``p + 1``
and ``nq - p`` pairs: ``nq + 1`` steps of ``nq / 2`` lanes; for odd ``nq``, blocks ``p -
1`` and ``nq - 1 - p``, ``nq`` steps of ``(nq + 1) / 2`` lanes, block ``-1`` empty).
Within a pair the position mask is applied to every pair, diagonal or not (computed,
then kept).  Scopes: ``attn/scores``, ``attn/softmax``, ``attn/context``.
"""
from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .attention import MASK_VALUE


def schedule(nq: int, nk: int, causal: bool, block: int = 1):
    """``(rows, cols, offsets)``, each ``[steps, lanes]``: at step ``t`` lane ``p`` pairs
    query block ``rows[t, p]`` with key block ``cols[t, p]`` (rows distinct within a step;
    unsigned, so indexing needs no wrap-around of negative indices); ``offsets`` is
    ``(row - col) * block``, the positions' gap the causal mask compares with."""
    if not causal:
        rows = np.broadcast_to(np.arange(nq), (nk, nq))
        cols = np.broadcast_to(np.arange(nk)[:, None], (nk, nq))
    else:
        if nq != nk:
            raise ValueError(f"causal attention needs as many key blocks as query blocks, "
                             f"got {nk} and {nq}")
        odd = nq % 2
        lanes, steps = (nq + 1) // 2, nq + 1 - odd
        t, p = np.arange(steps)[:, None], np.arange(lanes)[None, :]
        first = t < p + 1 - odd                       # still on the lane's first block row
        rows = np.where(first, p - odd, nq - 1 - p)
        cols = np.where(first, t, t - p - 1 + odd)
    rows, cols = np.ascontiguousarray(rows), np.ascontiguousarray(cols)
    return (rows.astype(np.uint32), cols.astype(np.uint32),
            ((rows - cols) * block).astype(np.int32))


def pairs(nq: int, nk: int, causal: bool) -> int:
    """(query block, key block) pairs the kernel computes: ``nq nk``, or ``nq (nq + 1) / 2``
    causal (the schedule's steps x lanes)."""
    return nq * (nq + 1) // 2 if causal else nq * nk


def _blocks(x, block):
    return x.reshape(x.shape[0] // block, block, *x.shape[1:])


def _check(n: int, m: int, block: int) -> None:
    if block <= 0 or n % block or m % block:
        raise ValueError(f"lengths {n} and {m} are not multiples of the block {block}")


def _scores(qr, kc, off, block, causal):
    """``[lanes, B, B]`` scores of each lane's pair; causal: keys after the query masked."""
    s = jnp.einsum("wqd,wkd->wqk", qr, kc)
    if causal:
        gap = np.arange(block)[None, :] - np.arange(block)[:, None]   # key - query, in block
        s = jnp.where(gap[None] <= off[:, None, None], s, MASK_VALUE)
    return s


def _forward(q, k, v, block, causal):
    n, dh = q.shape
    dv = v.shape[-1]
    nq, nk = n // block, k.shape[0] // block
    rows, cols, offs = schedule(nq, nk, causal, block)
    with jax.named_scope("attn/scores"):
        qs = q * (1.0 / math.sqrt(dh))
    qb, kb, vb = _blocks(qs, block), _blocks(k, block), _blocks(v, block)

    def step(carry, xs):
        mx, l, acc = carry
        r, c, off = xs
        with jax.named_scope("attn/scores"):
            s = _scores(qb[r], kb[c], off, block, causal)
        with jax.named_scope("attn/softmax"):
            m_old = mx[r]
            m_new = jnp.maximum(m_old, jnp.max(s, axis=-1))
            p = jnp.exp(s - m_new[..., None])
            corr = jnp.exp(m_old - m_new)
            l_new = l[r] * corr + jnp.sum(p, axis=-1)
        with jax.named_scope("attn/context"):
            a_new = acc[r] * corr[..., None] + jnp.einsum("wqk,wkd->wqd", p, vb[c])
        return (mx.at[r].set(m_new, unique_indices=True), l.at[r].set(l_new, unique_indices=True),
                acc.at[r].set(a_new, unique_indices=True)), None

    init = (jnp.full((nq, block), -jnp.inf, q.dtype), jnp.zeros((nq, block), q.dtype),
            jnp.zeros((nq, block, dv), q.dtype))
    (mx, l, acc), _ = lax.scan(step, init, (rows, cols, offs))
    with jax.named_scope("attn/context"):
        o = (acc / l[..., None]).reshape(n, dv)
    with jax.named_scope("attn/softmax"):
        lse = mx + jnp.log(l)
    return o, (qs, k, v, o, lse)


@partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _flash(q, k, v, block, causal):
    return _forward(q, k, v, block, causal)[0]


def _flash_fwd(q, k, v, block, causal):
    return _forward(q, k, v, block, causal)


def _flash_bwd(block, causal, res, do):
    qs, k, v, o, lse = res
    n, dh = qs.shape
    nq, nk = n // block, k.shape[0] // block
    rows, cols, offs = schedule(nq, nk, causal, block)
    with jax.named_scope("attn/softmax"):
        big_d = _blocks(jnp.sum(do * o, axis=-1), block)            # D = rowsum(do * o)
    qb, kb, vb, dob = _blocks(qs, block), _blocks(k, block), _blocks(v, block), _blocks(do, block)

    def step(carry, xs):
        dq, dk, dv = carry
        r, c, off = xs
        qr, kc = qb[r], kb[c]
        with jax.named_scope("attn/scores"):
            s = _scores(qr, kc, off, block, causal)                 # recomputed
        with jax.named_scope("attn/softmax"):
            p = jnp.exp(s - lse[r][..., None])
        with jax.named_scope("attn/context"):
            dor = dob[r]
            dv = dv.at[c].add(jnp.einsum("wqk,wqd->wkd", p, dor))
            dp = jnp.einsum("wqd,wkd->wqk", dor, vb[c])
        with jax.named_scope("attn/softmax"):
            ds = p * (dp - big_d[r][..., None])
        with jax.named_scope("attn/scores"):
            dq = dq.at[r].add(jnp.einsum("wqk,wkd->wqd", ds, kc), unique_indices=True)
            dk = dk.at[c].add(jnp.einsum("wqk,wqd->wkd", ds, qr))
        return (dq, dk, dv), None

    zeros = lambda x: jnp.zeros((x.shape[0] // block, block, x.shape[1]), x.dtype)
    (dq, dk, dv), _ = lax.scan(step, (zeros(qs), zeros(k), zeros(v)), (rows, cols, offs))
    with jax.named_scope("attn/scores"):
        dq = dq.reshape(n, dh) * (1.0 / math.sqrt(dh))
    return dq, dk.reshape(k.shape), dv.reshape(v.shape)


_flash.defvjp(_flash_fwd, _flash_bwd)


def flash_attention(q: jax.Array, k: jax.Array, v: jax.Array, *, block: int,
                    causal: bool = False) -> jax.Array:
    """softmax(q k^T / sqrt(dh), causal-masked) v for one head, ``block`` x ``block`` at a
    time (both lengths multiples of ``block``; causal: ``n == m``, masked blocks skipped)."""
    _check(q.shape[0], k.shape[0], block)
    return _flash(q, k, v, block, causal)
