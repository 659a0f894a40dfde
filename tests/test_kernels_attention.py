"""Dense/chunked attention and FFN kernels against their plain references.

Tolerances: float32 with different summation orders (chunked vs whole rows,
einsum vs matmul) agree to ~1e-6 relative; we allow atol=1e-5, rtol=1e-5.
"""
import jax
import numpy as np
import pytest

from kernels.attention import attention_reference, chunked_attention, dense_attention
from kernels.ffn import chunked_ffn, ffn, ffn_reference

TOL = dict(atol=1e-5, rtol=1e-5)


def _qkv(n=16, m=16, dh=8, seed=0):
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(seed), 3)
    return (jax.random.normal(k1, (n, dh)), jax.random.normal(k2, (m, dh)),
            jax.random.normal(k3, (m, dh)))


@pytest.mark.parametrize("causal", [False, True])
def test_dense_matches_reference(causal):
    q, k, v = _qkv()
    np.testing.assert_allclose(jax.jit(dense_attention, static_argnames="causal")(q, k, v, causal=causal),
                               attention_reference(q, k, v, causal=causal), **TOL)


@pytest.mark.parametrize("causal", [False, True])
def test_chunked_matches_dense_values_and_grads(causal):
    q, k, v = _qkv(n=32, m=32)
    bias = jax.random.normal(jax.random.PRNGKey(9), (32, 32))
    dense = lambda q, k, v: dense_attention(q, k, v, causal=causal, bias=bias)
    chunk = lambda q, k, v: chunked_attention(q, k, v, chunk=8, causal=causal, bias=bias)
    np.testing.assert_allclose(chunk(q, k, v), dense(q, k, v), **TOL)
    gd = jax.grad(lambda *a: dense(*a).sum(), argnums=(0, 1, 2))(q, k, v)
    gc = jax.grad(lambda *a: chunk(*a).sum(), argnums=(0, 1, 2))(q, k, v)
    for a, b in zip(gc, gd):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)


def test_causal_output_ignores_future_tokens():
    q, k, v = _qkv()
    out = dense_attention(q, k, v, causal=True)
    v2 = v.at[10:].set(100.0)
    k2 = k.at[10:].set(-3.0)
    np.testing.assert_allclose(dense_attention(q, k2, v2, causal=True)[:10], out[:10], **TOL)


def test_vmapped_over_heads_and_batch():
    q = jax.random.normal(jax.random.PRNGKey(1), (2, 3, 16, 8))
    out = jax.vmap(jax.vmap(dense_attention))(q, q, q)
    np.testing.assert_allclose(out[1, 2], attention_reference(q[1, 2], q[1, 2], q[1, 2]), **TOL)


@pytest.mark.parametrize("act", ["gelu", "gelu_tanh", "relu"])
def test_ffn_whole_and_chunked_match_reference(act):
    ks = jax.random.split(jax.random.PRNGKey(2), 5)
    x = jax.random.normal(ks[0], (32, 8))
    w1, w2 = jax.random.normal(ks[1], (8, 24)), jax.random.normal(ks[2], (24, 8))
    b1, b2 = jax.random.normal(ks[3], (24,)), jax.random.normal(ks[4], (8,))
    ref = ffn_reference(x, w1, b1, w2, b2, act=act)
    np.testing.assert_allclose(ffn(x, w1, b1, w2, b2, act=act), ref, atol=1e-4, rtol=1e-5)
    np.testing.assert_allclose(chunked_ffn(x, w1, b1, w2, b2, chunk=8, act=act), ref,
                               atol=1e-4, rtol=1e-5)


def test_chunk_must_divide_length():
    q, k, v = _qkv(n=12)
    with pytest.raises(ValueError, match="multiple of chunk"):
        chunked_attention(q, k, v, chunk=5)
