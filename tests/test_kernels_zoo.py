"""The attention zoo's kernels against their plain references, forward and gradient.

Tolerances: float32 throughout; kernel and reference add the same terms in another order
(blocks and an online softmax vs whole rows; E k before the scores; features summed before
the division).  Observed differences are <= 5e-7 on O(1) values and gradients; we allow
``atol=1e-5, rtol=1e-5`` (a wrong mask, block or skipped pair moves outputs by O(0.1)).
Performer's estimate of *softmax* attention is statistical: its error falls as the
features grow (checked at a fixed seed, see ``test_performer_estimates_softmax``).

Inputs come from NumPy; kernel calls go through ``_jit`` (XLA's backend optimisation off,
~3x faster to compile, same numbers).
"""
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from comparator.count.trace import trace
from kernels.attention import attention_reference, dense_attention
from kernels.flash import flash_attention, pairs, schedule
from kernels.linformer import linformer_attention, linformer_reference
from kernels.lsh import local_attention, local_attention_reference
from kernels.performer import performer_attention, performer_reference

TOL = dict(atol=1e-5, rtol=1e-5)   # see module docstring
_jit = partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})


def _normal(seed, *shape, scale=1.0):
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


@partial(_jit, static_argnums=(0,))
def _run(fn, cotangent, *args):
    """(fn(*args), gradients of <fn(*args), cotangent> with respect to every arg)."""
    out, pull = jax.vjp(fn, *args)
    return out, pull(cotangent)


def _agree(fn, ref, *args, seed=9):
    out, grads = _run(fn, _normal(seed, args[0].shape[0], args[2].shape[-1]), *args)
    want, want_grads = _run(ref, _normal(seed, args[0].shape[0], args[2].shape[-1]), *args)
    np.testing.assert_allclose(out, want, **TOL)
    for got, expect in zip(grads, want_grads):
        np.testing.assert_allclose(got, expect, **TOL)


# -- flash --------------------------------------------------------------------------

@pytest.mark.parametrize("nq", range(1, 8))
def test_causal_schedule_covers_the_triangle_once(nq):
    rows, cols, offs = schedule(nq, nq, True, block=4)
    got = sorted(zip(rows.ravel().tolist(), cols.ravel().tolist()))
    assert got == [(i, j) for i in range(nq) for j in range(i + 1)]   # each pair once
    assert all(len(set(r)) == len(r) for r in rows.tolist())         # rows distinct per step
    assert rows.size == pairs(nq, nq, True) == nq * (nq + 1) // 2
    assert (offs == (rows.astype(int) - cols.astype(int)) * 4).all()


def test_bidirectional_schedule_is_every_pair():
    rows, cols, _ = schedule(3, 5, False)
    assert rows.shape == (5, 3) and pairs(3, 5, False) == 15
    assert sorted(zip(rows.ravel().tolist(), cols.ravel().tolist())) == [
        (i, j) for i in range(3) for j in range(5)]


# (n, m, block, causal, dv): even and odd block counts, one block, n != m, dv != dh
FLASH_CASES = [(16, 16, 4, False, 8), (16, 16, 4, True, 8), (20, 20, 4, True, 6),
               (8, 8, 8, True, 8), (8, 24, 4, False, 6), (24, 24, 8, False, 8)]


@pytest.mark.parametrize("n,m,block,causal,dv", FLASH_CASES)
def test_flash_matches_dense_reference(n, m, block, causal, dv):
    q, k, v = _normal(1, n, 8), _normal(2, m, 8), _normal(3, m, dv)
    _agree(partial(flash_attention, block=block, causal=causal),
           partial(attention_reference, causal=causal), q, k, v)


def test_flash_vmapped_over_batch_and_heads():
    q = _normal(4, 2, 3, 16, 8)
    out = _jit(jax.vmap(jax.vmap(partial(flash_attention, block=4, causal=True))))(q, q, q)
    np.testing.assert_allclose(out[1, 2], attention_reference(q[1, 2], q[1, 2], q[1, 2],
                                                              causal=True), **TOL)


def _scores_flops(fn, n, dh=8):
    s = jax.ShapeDtypeStruct((n, dh), jnp.float32)
    fwd = trace(fn, s, s, s).breakdown("matmul")
    train = trace(jax.grad(lambda *a: jnp.sum(fn(*a)), argnums=(0, 1, 2)), s, s, s)
    return fwd["attn/scores"], train.breakdown("matmul")


def test_causal_flash_skips_the_masked_blocks():
    n, B, dh = 64, 8, 8
    nq = n // B
    full, _ = _scores_flops(partial(flash_attention, block=B), n)
    half, train = _scores_flops(partial(flash_attention, block=B, causal=True), n)
    assert full == 2 * n * n * dh                                   # every pair
    assert half == 2 * (nq * (nq + 1) // 2) * B * B * dh             # the triangle's pairs
    assert half / full == (nq + 1) / (2 * nq)                        # 9/16: the work halves
    # forward + backward: the scores, recomputed, then dq and dk (4 x); p v and its
    # gradients dp and dv (3 x): dense attention's 3 x and 3 x, plus the recomputation
    assert train["attn/scores"] == 4 * half and train["attn/context"] == 3 * half


def test_dense_causal_counts_the_whole_product():
    full, _ = _scores_flops(partial(dense_attention, causal=True), 64)
    assert full == 2 * 64 * 64 * 8


def test_flash_refuses_ragged_blocks():
    q = _normal(1, 12, 8)
    with pytest.raises(ValueError, match="multiples of the block 8"):
        flash_attention(q, q, q, block=8)
    with pytest.raises(ValueError, match="as many key blocks"):
        schedule(2, 3, True)


# -- local ------------------------------------------------------------------------------

# the Transformer's local choice: one chunk before (and one after, bidirectional);
# a sequence of one chunk (window == n)
@pytest.mark.parametrize("n,window,causal", [(16, 4, False), (16, 4, True), (8, 8, False)])
def test_local_as_the_transformer_uses_it(n, window, causal):
    kw = dict(chunk_len=window, causal=causal, n_chunks_before=1,
              n_chunks_after=0 if causal else 1)
    q, k, v = _normal(5, n, 8), _normal(6, n, 8), _normal(7, n, 6)
    _agree(partial(local_attention, **kw), partial(local_attention_reference, **kw), q, k, v)


# -- linformer -----------------------------------------------------------------------

@pytest.mark.parametrize("n,k", [(32, 6), (8, 12)])     # k < n, and k > n (allowed)
def test_linformer_matches_reference_with_projection_grads(n, k):
    q, key, v = _normal(1, n, 8), _normal(2, n, 8), _normal(3, n, 6)
    e, f = _normal(4, k, n, scale=n ** -0.5), _normal(5, k, n, scale=n ** -0.5)
    _agree(linformer_attention, linformer_reference, q, key, v, e, f)


def test_linformer_with_identity_projections_is_dense_attention():
    q, k, v = _normal(1, 16, 8), _normal(2, 16, 8), _normal(3, 16, 8)
    eye = np.eye(16, dtype=np.float32)
    np.testing.assert_allclose(_jit(linformer_attention)(q, k, v, eye, eye),
                               attention_reference(q, k, v), **TOL)


def test_linformer_refuses_mismatched_projections():
    q = _normal(1, 16, 8)
    with pytest.raises(ValueError, match=r"must both be \[k, 16\]"):
        linformer_attention(q, q, q, _normal(2, 4, 12), _normal(3, 4, 12))


# -- performer ---------------------------------------------------------------------------

def test_performer_matches_its_dense_estimate():
    q, k, v = _normal(1, 32, 8, scale=0.5), _normal(2, 32, 8, scale=0.5), _normal(3, 32, 6)
    w = _normal(4, 16, 8)
    out, grads = _run(performer_attention, _normal(9, 32, 6), q, k, v, w)
    want, want_grads = _run(performer_reference, _normal(9, 32, 6), q, k, v, w)
    np.testing.assert_allclose(out, want, **TOL)
    for got, expect in zip(grads[:3], want_grads[:3]):      # q, k, v (w is drawn, not learned)
        np.testing.assert_allclose(got, expect, **TOL)


def test_performer_estimates_softmax():
    """FAVOR+ is unbiased for the softmax kernel: at a fixed seed, 64x more features cut
    the error to softmax attention by more than 3x (Monte Carlo: ~8x)."""
    q, k, v = _normal(1, 32, 8, scale=0.5), _normal(2, 32, 8, scale=0.5), _normal(3, 32, 8)
    exact = attention_reference(q, k, v)
    err = {m: float(jnp.abs(_jit(performer_attention)(q, k, v, _normal(m, m, 8)) - exact).mean())
           for m in (64, 4096)}
    assert err[4096] < err[64] / 3 and err[4096] < 0.02, err
