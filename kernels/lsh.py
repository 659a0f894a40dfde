"""Reformer attention kernels for one head of one example: LSH and local (chunked).

``lsh_attention(qk [n, dh], v [n, dv], rotations [dh, n_hashes, n_buckets // 2])
-> [n, dv]``; callers vmap over heads and batch.  The semantics follow Reformer
(Kitaev et al. 2020) as trax implements it:

1. hash (``lsh/hash``): ``rotated = qk @ R`` per round, bucket = argmax of
   ``[rotated, -rotated]``; round ``r`` adds ``r * n_buckets`` so all rounds
   share one key space of ``n_hashes * n`` *slots* (slot ``r * n + i`` is token
   ``i`` in round ``r``).
2. sort (``lsh/sort``): slots sorted by ``bucket * n + position`` -- one sort of that
   key alone, which encodes the slot (the round is ``bucket // n_buckets``), its inverse
   permutation by a scatter -- queries and
   values gathered into that order and cut into ``n_hashes * n / chunk_len``
   chunks.  The chunk axis spans all rounds, so looking back wraps: the first
   chunk of round ``r`` sees the last chunk of round ``r - 1`` (and chunk 0 the
   very last chunk).
3. attend (``lsh/scores``, ``lsh/softmax``, ``lsh/context``): shared-QK, keys are
   the unit-length queries; each chunk attends to itself plus
   ``n_chunks_before`` / ``n_chunks_after`` neighbours.  A token never attends
   to itself (score replaced by ``SELF_MASK_VALUE``) unless nothing else is
   visible; causal masking replaces later keys by ``MASK_VALUE``.
4. unsort (``lsh/unsort``) each round back to token order, then combine
   (``lsh/combine``) the rounds with weights softmax over the rounds'
   logsumexps -- i.e. the exact softmax over the union of all rounds' keys
   (keys seen in several rounds or windows count with their multiplicity).

Causal LSH masks keys at later positions, so values and gradients never flow
backwards; but later tokens' *hashes* decide where the chunk boundaries fall, so
changing a later ``qk`` can change which earlier keys share a window with token
``t`` (and hence its output).  That is Reformer's semantics, not a bug.

Masks use large *finite* negatives (as trax), so a fully masked row stays
finite; float16 cannot hold them (use float32 or bfloat16).  The slow
``*_reference`` functions compute the same numbers with dense ``[n, n]``
matrices in original order; tests hold the kernels to them.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

MASK_VALUE = -1e9        # causal / out-of-range keys
SELF_MASK_VALUE = -1e5   # a token's own key: loses to any real key, wins over masked ones
_NORM_EPS = 1e-6         # added to |qk|^2 before the rsqrt that makes unit keys


# ----------------------------------------------------------------- helpers

def make_rotations(key: jax.Array, dh: int, n_hashes: int, factors,
                   dtype=jnp.float32) -> jax.Array:
    """Random-normal LSH rotations ``[dh, n_hashes, sum(factors) // 2]``.

    ``factors``: the bucket count (an even int) or its factors ``(a, b)`` (each even): a
    factorised hash takes a/2 + b/2 rotations a round, not ab/2."""
    factors = _factors(factors)
    return jax.random.normal(key, (dh, n_hashes, sum(factors) // 2), dtype)


def _factors(factors) -> tuple:
    factors = (factors,) if isinstance(factors, int) else tuple(factors)
    if not factors or any(f < 2 or f % 2 for f in factors):
        raise ValueError(f"bucket factors must be even integers >= 2, got {factors}")
    return factors


def hash_buckets(qk: jax.Array, rotations: jax.Array, factors=None) -> jax.Array:
    """Bucket of every token in every round, ``[n_hashes * n]`` int32, round ``r`` offset by
    ``r * prod(factors)`` (slot ``r * n + i``).

    Per factor ``f``, its ``f / 2`` columns of ``qk @ R`` give the bucket ``argmax([x, -x])``
    in ``[0, f)``; factors combine as digits, ``b0 + f0 * b1`` (Hugging Face
    ``_hash_vectors``).  ``factors`` defaults to one factor of ``2 * R.shape[-1]``."""
    n = qk.shape[0]
    n_hashes, half = rotations.shape[1], rotations.shape[2]
    factors = _factors(factors if factors is not None else 2 * half)
    if sum(factors) != 2 * half:
        raise ValueError(f"rotations have {half} columns a round; factors {factors} need "
                         f"{sum(factors) // 2}")
    rotated = jnp.einsum("nd,dhb->hnb", lax.stop_gradient(qk), rotations)
    buckets, start, base = None, 0, 1
    for f in factors:
        part = rotated[..., start:start + f // 2] if len(factors) > 1 else rotated
        part = jnp.argmax(jnp.concatenate([part, -part], axis=-1), axis=-1).astype(jnp.int32)
        buckets = part if buckets is None else buckets + base * part
        start, base = start + f // 2, base * f
    offsets = jnp.arange(n_hashes, dtype=jnp.int32)[:, None] * base
    return (buckets + offsets).reshape(n_hashes * n)


def _shift_and_log_sum(x: jax.Array, axis: int):
    """``(x - m, m, log(sum(exp(x - m))))`` along ``axis`` (kept), ``m`` the max.

    ``logsumexp = m + log_sum``; probabilities are ``exp(shifted - log_sum)``,
    not ``exp(x - logsumexp)``: near a masked score (|x| ~ 1e5) a float32
    logsumexp is only good to ~4e-3, which would leak into the probabilities.
    The max shift carries no gradient (it cancels exactly).
    """
    m = jnp.max(lax.stop_gradient(x), axis=axis, keepdims=True)   # no JVP of the max
    shifted = x - m
    return shifted, m, jnp.log(jnp.sum(jnp.exp(shifted), axis=axis, keepdims=True))


def _look_adjacent(x: jax.Array, before: int, after: int) -> jax.Array:
    """``[c, L, ...] -> [c, (before + 1 + after) * L, ...]``: chunk ``j`` followed
    by chunks ``j - before .. j + after`` taken modulo ``c`` (wrapping)."""
    c = x.shape[0]
    parts = []
    for off in range(-before, after + 1):
        s = off % c
        parts.append(x if s == 0 else jnp.concatenate([x[s:], x[:s]], axis=0))
    return parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=1)


def _check(n: int, chunk_len: int, before: int, after: int) -> None:
    if chunk_len <= 0 or n % chunk_len:
        raise ValueError(f"sequence length {n} is not a multiple of chunk_len {chunk_len}")
    if before < 0 or after < 0:
        raise ValueError("n_chunks_before and n_chunks_after must be >= 0")


# ----------------------------------------------------------------- LSH attention

def lsh_attention(qk: jax.Array, v: jax.Array, rotations: jax.Array | None, *,
                  chunk_len: int, causal: bool = False, n_chunks_before: int = 1,
                  n_chunks_after: int = 0, factors=None, buckets: jax.Array | None = None,
                  return_buckets: bool = False):
    """Shared-QK LSH self-attention for one head: ``qk [n, dh], v [n, dv] -> [n, dv]``.

    ``rotations [dh, n_hashes, sum(factors) // 2]`` (see ``make_rotations``) fixes the
    number of hash rounds; ``factors`` the buckets (default one factor, ``2 * columns``;
    ``(a, b)``: a factorised hash of ``a * b`` buckets); hashing carries no gradient.
    ``buckets`` (``[n_hashes * n]`` from an earlier call's ``return_buckets=True``) skips
    the hashing, as the reference's reversible backward reuses the forward's buckets.
    ``n`` must be a multiple of ``chunk_len``; at ``n <= chunk_len`` the reference runs
    plain attention (``standard_attention``: no hashing, one round) and so does this.
    Work is tagged with the ``lsh/{hash,sort,scores,softmax,context,unsort,combine}``
    scopes.  Returns the output, or ``(output, buckets)`` with ``return_buckets``
    (``None`` for the buckets of the plain path).
    """
    n, dh = qk.shape
    dv = v.shape[-1]
    if n <= chunk_len:
        out = standard_attention(qk, v, causal=causal)
        return (out, None) if return_buckets else out
    n_hashes, half = rotations.shape[1], rotations.shape[2]
    factors = _factors(factors if factors is not None else 2 * half)
    n_buckets = math.prod(factors)
    _check(n, chunk_len, n_chunks_before, n_chunks_after)
    n_slots = n_hashes * n
    n_chunks = n_slots // chunk_len
    if n_hashes * n_buckets * n >= 2**31:   # the int32 sort key bucket * n + position
        raise ValueError(f"n_hashes * n_buckets * n = {n_hashes * n_buckets * n} overflows int32")

    if buckets is None:
        with jax.named_scope("lsh/hash"):
            buckets = hash_buckets(qk, rotations, factors)
    hashed = buckets

    with jax.named_scope("lsh/sort"):
        ticker = jnp.arange(n_slots, dtype=jnp.int32)
        sort_key = buckets * n + lax.rem(ticker, n)                   # unique per slot
        skey = lax.sort(sort_key)                                     # one sort, keys only
        spos = lax.rem(skey, n)                                       # token at each place
        sticker = lax.div(skey, n * n_buckets) * n + spos             # sorted place -> slot
        undo_sort = jnp.zeros(n_slots, jnp.int32).at[sticker].set(    # slot -> sorted place
            ticker, unique_indices=True)
        sq = jnp.take(qk, spos, axis=0, mode="clip")                  # [h*n, dh]
        sv = jnp.take(v, spos, axis=0, mode="clip")                   # [h*n, dv]

    with jax.named_scope("lsh/scores"):
        q = sq.reshape(n_chunks, chunk_len, dh)
        qpos = spos.reshape(n_chunks, chunk_len)
        # unit-length keys, pre-divided by sqrt(dh): dots = q . k_hat / sqrt(dh)
        sumsq = jnp.sum(q * q, axis=-1, keepdims=True)
        inv = lax.rsqrt(sumsq + _NORM_EPS) * (1.0 / math.sqrt(dh))   # [c, L, 1]
        k = _look_adjacent(q * inv, n_chunks_before, n_chunks_after)  # [c, w*L, dh]
        kpos = _look_adjacent(qpos, n_chunks_before, n_chunks_after)  # [c, w*L]
        dots = jnp.einsum("cqd,ckd->cqk", q, k)                       # [c, L, w*L]
        if causal:
            dots = jnp.where(kpos[:, None, :] > qpos[:, :, None], MASK_VALUE, dots)
        dots = jnp.where(kpos[:, None, :] == qpos[:, :, None], SELF_MASK_VALUE, dots)

    with jax.named_scope("lsh/softmax"):
        shifted, m, log_sum = _shift_and_log_sum(dots, axis=-1)
        probs = jnp.exp(shifted - log_sum)                            # [c, L, w*L]
        if n_hashes > 1:   # needed only to weigh the rounds
            lse = m + log_sum                                         # [c, L, 1]

    with jax.named_scope("lsh/context"):
        vals = sv.reshape(n_chunks, chunk_len, dv)
        vals = _look_adjacent(vals, n_chunks_before, n_chunks_after)  # [c, w*L, dv]
        so = jnp.einsum("cqk,ckd->cqd", probs, vals)                  # [c, L, dv]

    with jax.named_scope("lsh/unsort"):
        o = jnp.take(so.reshape(n_slots, dv), undo_sort, axis=0, mode="clip")
        if n_hashes == 1:
            return (o, hashed) if return_buckets else o
        o = o.reshape(n_hashes, n, dv)
        logits = jnp.take(lse.reshape(n_slots), undo_sort, axis=0, mode="clip")
        logits = logits.reshape(n_hashes, n, 1)

    with jax.named_scope("lsh/combine"):
        shifted, _, log_sum = _shift_and_log_sum(logits, axis=0)
        weights = jnp.exp(shifted - log_sum)                          # [h, n, 1]
        # the rounds added one by one, not reduce_sum(axis=0): the same adds, but XLA:CPU
        # lowers a reduction over the leading axis to a slow strided loop (YNNPACK); split
        # (not indexing) so the backward concatenates instead of adding padded copies
        outs, ws = jnp.split(o, n_hashes, axis=0), jnp.split(weights, n_hashes, axis=0)
        out = outs[0] * ws[0]
        for r in range(1, n_hashes):
            out = out + outs[r] * ws[r]
        return (out[0], hashed) if return_buckets else out[0]


def standard_attention(qk: jax.Array, v: jax.Array, *, causal: bool = False) -> jax.Array:
    """Shared-QK attention over the whole sequence (``[n, n]``), self-masked, one round:
    what the reference's LSH layer runs when the sequence fits in one chunk."""
    n, dh = qk.shape
    with jax.named_scope("lsh/scores"):
        sumsq = jnp.sum(qk * qk, axis=-1, keepdims=True)
        inv = lax.rsqrt(sumsq + _NORM_EPS) * (1.0 / math.sqrt(dh))    # [n, 1]
        dots = jnp.einsum("qd,kd->qk", qk, qk * inv)                  # [n, n]
        pos = jnp.arange(n, dtype=jnp.int32)
        if causal:
            dots = jnp.where(pos[None, :] > pos[:, None], MASK_VALUE, dots)
        dots = jnp.where(pos[None, :] == pos[:, None], SELF_MASK_VALUE, dots)
    with jax.named_scope("lsh/softmax"):
        shifted, _, log_sum = _shift_and_log_sum(dots, axis=-1)
        probs = jnp.exp(shifted - log_sum)
    with jax.named_scope("lsh/context"):
        return jnp.einsum("qk,kd->qd", probs, v)


def lsh_attention_reference(qk: jax.Array, v: jax.Array, rotations: jax.Array | None, *,
                            chunk_len: int, causal: bool = False, n_chunks_before: int = 1,
                            n_chunks_after: int = 0, factors=None) -> jax.Array:
    """Slow dense equivalent of ``lsh_attention`` (same signature, same numbers).

    For each round, an explicit ``[n, n]`` count matrix in original order says
    how many times query ``i`` sees key ``j`` in the chunked windows; attention
    is then a dense softmax where key ``j`` weighs ``count[i, j]`` (log-count
    added to its score, ``-inf`` where the count is 0).  No scopes; builds
    ``[n_hashes * n]^2`` matrices, so it is for tests at small ``n`` only.
    Factorised buckets are computed digit by digit from each factor's own columns.
    """
    n, dh = qk.shape
    i = jnp.arange(n)[:, None]
    j = jnp.arange(n)[None, :]
    keys = qk / jnp.sqrt(jnp.sum(qk * qk, axis=-1, keepdims=True) + _NORM_EPS)
    scores = (qk @ keys.T) / math.sqrt(dh)
    if causal:
        scores = jnp.where(j > i, MASK_VALUE, scores)
    scores = jnp.where(i == j, SELF_MASK_VALUE, scores)
    if n <= chunk_len:          # one chunk: plain attention, one round
        return jax.nn.softmax(scores, axis=-1) @ v
    n_hashes, half = rotations.shape[1], rotations.shape[2]
    factors = _factors(factors if factors is not None else 2 * half)
    _check(n, chunk_len, n_chunks_before, n_chunks_after)
    n_slots = n_hashes * n
    n_chunks = n_slots // chunk_len

    # buckets, round by round; slot s = r * n + i
    buckets = []
    for r in range(n_hashes):
        proj = qk @ rotations[:, r, :]
        digit, start, base = 0, 0, 1
        for f in factors:
            cols = proj[:, start:start + f // 2]
            digit = digit + base * jnp.argmax(jnp.concatenate([cols, -cols], axis=-1), axis=-1)
            start, base = start + f // 2, base * f
        buckets.append(digit + r * base)
    buckets = jnp.concatenate(buckets)
    slot = jnp.arange(n_slots)
    order = jnp.argsort(buckets * n + slot % n)        # sorted place -> slot
    place = jnp.argsort(order)                          # slot -> sorted place
    chunk = place // chunk_len                          # chunk of each slot

    # seen[a, b]: how many window offsets put slot b's chunk next to slot a's
    gap = (chunk[None, :] - chunk[:, None]) % n_chunks
    seen = sum((gap == off % n_chunks).astype(jnp.int32)
               for off in range(-n_chunks_before, n_chunks_after + 1))
    token_onehot = (slot[:, None] % n == jnp.arange(n)[None, :]).astype(jnp.int32)
    counts = (seen @ token_onehot).reshape(n_hashes, n, n)   # [round, query i, key j]

    outs, lses = [], []
    for r in range(n_hashes):
        c = counts[r]
        logits = jnp.where(c > 0, scores + jnp.log(jnp.maximum(c, 1).astype(scores.dtype)),
                           -jnp.inf)
        lse = jax.nn.logsumexp(logits, axis=-1)
        outs.append(jnp.exp(logits - lse[:, None]) @ v)
        lses.append(lse)
    w = jax.nn.softmax(jnp.stack(lses), axis=0)          # [h, n]
    return sum(w[r][:, None] * outs[r] for r in range(n_hashes))


# ----------------------------------------------------------------- local attention

def local_attention(q: jax.Array, k: jax.Array, v: jax.Array, *, chunk_len: int,
                    causal: bool = False, n_chunks_before: int = 1,
                    n_chunks_after: int = 0, max_distance: int | None = None) -> jax.Array:
    """Chunked local attention for one head: ``q, k [n, dh], v [n, dv] -> [n, dv]``.

    Queries in chunk ``j`` attend to keys in chunks ``j - n_chunks_before ..
    j + n_chunks_after``; chunks beyond the sequence ends are masked, not
    wrapped.  No self-mask (queries and keys are distinct).  ``max_distance``: keys
    that many positions or more before the query are masked too (a sliding window of
    ``max_distance`` keys, Mistral's).  Scopes ``attn/scores`` (query scaling,
    contraction, masks), ``attn/softmax``, ``attn/context``.  Masked products are
    computed, then discarded.
    """
    n, dh = q.shape
    dv = v.shape[-1]
    _check(n, chunk_len, n_chunks_before, n_chunks_after)
    n_chunks = n // chunk_len

    with jax.named_scope("attn/scores"):
        pos = jnp.arange(n, dtype=jnp.int32).reshape(n_chunks, chunk_len)
        qc = (q * (1.0 / math.sqrt(dh))).reshape(n_chunks, chunk_len, dh)
        kc = _look_adjacent(k.reshape(n_chunks, chunk_len, dh), n_chunks_before, n_chunks_after)
        # unwrapped key positions: outside [0, n) means the window wrapped
        kpos = jnp.concatenate([pos + off * chunk_len
                                for off in range(-n_chunks_before, n_chunks_after + 1)], axis=1)
        dots = jnp.einsum("cqd,ckd->cqk", qc, kc)                    # [c, L, w*L]
        masked = ((kpos < 0) | (kpos >= n))[:, None, :]
        if causal:
            masked = masked | (kpos[:, None, :] > pos[:, :, None])
        if max_distance is not None:
            masked = masked | (pos[:, :, None] - kpos[:, None, :] >= max_distance)
        dots = jnp.where(masked, MASK_VALUE, dots)

    with jax.named_scope("attn/softmax"):
        probs = jax.nn.softmax(dots, axis=-1)

    with jax.named_scope("attn/context"):
        vc = _look_adjacent(v.reshape(n_chunks, chunk_len, dv), n_chunks_before, n_chunks_after)
        return jnp.einsum("cqk,ckd->cqd", probs, vc).reshape(n, dv)


def local_attention_reference(q: jax.Array, k: jax.Array, v: jax.Array, *, chunk_len: int,
                              causal: bool = False, n_chunks_before: int = 1,
                              n_chunks_after: int = 0,
                              max_distance: int | None = None) -> jax.Array:
    """Dense ``[n, n]`` equivalent of ``local_attention``; no scopes."""
    n, dh = q.shape
    _check(n, chunk_len, n_chunks_before, n_chunks_after)
    i = jnp.arange(n)[:, None]
    j = jnp.arange(n)[None, :]
    gap = j // chunk_len - i // chunk_len
    allowed = (gap >= -n_chunks_before) & (gap <= n_chunks_after)
    if causal:
        allowed = allowed & (j <= i)
    if max_distance is not None:
        allowed = allowed & (i - j < max_distance)
    scores = jnp.where(allowed, (q @ k.T) / math.sqrt(dh), -jnp.inf)
    return jax.nn.softmax(scores, axis=-1) @ v
