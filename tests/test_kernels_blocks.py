"""The modern blocks' kernels against their plain references, forward and gradient: rotary
embedding (kernels/rope.py), gated FFN (kernels/ffn.py), mixture of experts dropless and
with capacity (kernels/moe.py), Mistral's sliding window (kernels/lsh.local_attention with
``max_distance``); and the cost rules they need (ragged_dot_general, top_k).

Tolerances: float32, the same sums in another order (pairs rotated vs rotate_half, experts
grouped vs every expert on every token); observed <= 1e-6 on O(1) values; we allow
``atol=rtol=1e-5`` (a wrong pair, expert or dropped slot moves outputs by O(0.1)).
"""
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from comparator.count.trace import trace
from kernels.ffn import ffn_reference, glu_ffn
from kernels.lsh import local_attention, local_attention_reference
from kernels.moe import moe_ffn, moe_reference
from kernels.rope import rope, rope_reference, rope_tables

TOL = dict(atol=1e-5, rtol=1e-5)   # see module docstring
_jit = partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})


def _normal(seed, *shape, scale=1.0):
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


def _agree(fn, ref, *args, seed=9):
    """Outputs and the gradients of <out, a fixed cotangent> for every argument agree."""
    @partial(_jit, static_argnums=(0,))
    def run(f, *a):
        out, pull = jax.vjp(f, *a)
        return out, pull(jnp.asarray(_normal(seed, *out.shape)))

    out, grads = run(fn, *args)
    want, want_grads = run(ref, *args)
    np.testing.assert_allclose(out, want, **TOL)
    for got, expect in zip(grads, want_grads):
        np.testing.assert_allclose(got, expect, **TOL)


# -- rotary embedding ---------------------------------------------------------------

@pytest.mark.parametrize("dims", [8, 4, 2])          # the whole head, half (NeoX), one pair
def test_rope_matches_rotate_half_reference(dims):
    x = _normal(1, 2, 12, 3, 8)                       # [b, n, heads, dh]
    cos, sin = rope_tables(12, dims)
    _agree(lambda t: rope(t, cos, sin), partial(rope_reference, dims=dims), x)


def test_rope_rotates_pairs_by_position():
    """Position 0 is unrotated; a rotation keeps each pair's norm; relative position is
    what q.k sees (RoFormer's property): shifting both by 3 leaves the dot products."""
    x = _normal(2, 1, 10, 1, 8)
    cos, sin = rope_tables(10, 8)
    y = np.asarray(rope(x, cos, sin))
    np.testing.assert_allclose(y[0, 0], x[0, 0], **TOL)
    pair = lambda a: a[..., :4] ** 2 + a[..., 4:] ** 2
    np.testing.assert_allclose(pair(y), pair(x), **TOL)
    same = np.broadcast_to(x[:, :1], x.shape)         # one vector at every position
    r = np.asarray(rope(same, cos, sin))[0, :, 0]
    np.testing.assert_allclose(r[2] @ r[5], r[5] @ r[8], **TOL)


# -- gated FFN ------------------------------------------------------------------------

@pytest.mark.parametrize("act", ["silu", "gelu", "gelu_tanh", "relu"])
def test_glu_matches_reference(act):
    x, w1, w2 = _normal(1, 6, 8), _normal(2, 8, 2 * 12, scale=0.3), _normal(3, 12, 8, scale=0.3)
    b1, b2 = _normal(4, 2 * 12), _normal(5, 8)
    _agree(partial(glu_ffn, act=act), partial(ffn_reference, act=act, gated=True),
           x, w1, b1, w2, b2)


# -- mixture of experts ------------------------------------------------------------------

T, D, E, F = 24, 8, 4, 6


def _experts(gated=True):
    return (_normal(1, T, D), _normal(2, D, E), _normal(3, E, D, (2 if gated else 1) * F,
                                                          scale=0.3),
            _normal(4, E, F, D, scale=0.3))


@pytest.mark.parametrize("top_k,capacity,gated,renormalize", [
    (2, None, True, True),       # Mixtral: dropless top-2, SwiGLU experts
    (1, None, False, False),     # Switch-like top-1, full softmax weight, dropless
    (2, 3, True, True),          # capacity 3 of the 12 each expert would need: drops
    (2, 12, False, True),        # capacity = every assignment of one expert: drops none
    (1, 6, True, False)])        # Switch: top-1, capacity factor 1 (T / E slots)
def test_moe_matches_every_expert_reference(top_k, capacity, gated, renormalize):
    kw = dict(top_k=top_k, gated=gated, renormalize=renormalize, capacity=capacity)
    _agree(partial(moe_ffn, **kw), partial(moe_reference, **kw), *_experts(gated))


def test_capacity_keeps_first_choices_before_second_choices():
    """One slot per expert; token 0 prefers experts (0, 1), every other token (1, 0).  First
    choices take the slots first (GShard): token 0 keeps expert 0, token 1 expert 1, the
    rest (and both second choices) are dropped.  Token-major order would instead give
    expert 1 to token 0's second choice and drop token 1."""
    n = 4
    x = np.tile(np.array([[1.0, 2.0, 0.0, 0.0]], np.float32), (n, 1))
    x[0] = [2.0, 1.0, 0.0, 0.0]
    r = np.eye(4, dtype=np.float32)                       # logits = x
    w1, w2 = _normal(3, 4, 4, 2 * F, scale=0.3), _normal(4, 4, F, 4, scale=0.3)
    both = _jit(lambda *a: (moe_ffn(*a, top_k=2, capacity=1),
                            moe_reference(*a, top_k=2, capacity=1)))
    out, want = (np.asarray(o) for o in both(x, r, w1, w2))
    kept = np.abs(out).sum(axis=1) > 0
    assert kept.tolist() == [True, True, False, False]
    np.testing.assert_allclose(out, want, **TOL)


def test_dropless_expert_flops_do_not_depend_on_routing():
    """A grouped product multiplies each assignment once: 2 T k d F a matrix, whatever the
    group sizes (traced on abstract inputs: no routing is known)."""
    x, r, w1, w2 = (jax.ShapeDtypeStruct(a.shape, jnp.float32) for a in _experts())
    fwd = trace(partial(moe_ffn, top_k=2), x, r, w1, w2).breakdown("matmul")
    assert fwd["ffn/in"] == 2 * T * 2 * D * 2 * F       # 2 x assignments x d x 2f
    assert fwd["ffn/out"] == 2 * T * 2 * F * D
    assert fwd["ffn/router"] == 2 * T * D * E
    cap = trace(partial(moe_ffn, top_k=2, capacity=5), x, r, w1, w2).breakdown("matmul")
    assert cap["ffn/in"] == 2 * E * 5 * D * 2 * F       # every slot, used or not


def test_ragged_dot_rule_counts_each_row_once():
    m, k, n, g = 12, 4, 5, 3
    x, w = jax.ShapeDtypeStruct((m, k), jnp.float32), jax.ShapeDtypeStruct((g, k, n),
                                                                           jnp.float32)
    sizes = jax.ShapeDtypeStruct((g,), jnp.int32)
    f = lambda a, b, s: jnp.sum(jax.lax.ragged_dot(a, b, s))
    assert trace(f, x, w, sizes).flops("matmul") == 2 * m * k * n
    # the gradients alone (a sum's gradient needs no forward product): the lhs gradient
    # (rows by their group's matrix) and the rhs gradient (each row into its group's
    # k x n, not g times): 2 m k n each
    grad = trace(jax.grad(f, argnums=(0, 1)), x, w, sizes)
    assert grad.flops("matmul") == 2 * 2 * m * k * n and not grad.unsupported


def test_top_k_rule_is_a_sort_of_each_row():
    x = jax.ShapeDtypeStruct((10, 8), jnp.float32)
    t = trace(lambda a: jax.lax.top_k(a, 2)[0], x)
    assert t.flops("all") == 10 * 8 * 3 and not t.unsupported     # k ceil(log2 k), k = 8


# -- sliding window --------------------------------------------------------------------

@pytest.mark.parametrize("n,window", [(16, 4), (24, 8)])
def test_sliding_window_matches_reference(n, window):
    """Blocks of ``window`` with the block before, keys ``window`` or more back masked:
    each query sees exactly its ``window`` latest keys (itself included)."""
    kw = dict(chunk_len=window, causal=True, n_chunks_before=1, max_distance=window)
    q, k, v = _normal(5, n, 8), _normal(6, n, 8), _normal(7, n, 6)
    _agree(partial(local_attention, **kw), partial(local_attention_reference, **kw), q, k, v)
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    scores = np.where((j <= i) & (i - j < window), (q @ k.T) / np.sqrt(8), -np.inf)
    p = np.exp(scores - scores.max(axis=1, keepdims=True))
    np.testing.assert_allclose(_jit(partial(local_attention, **kw))(q, k, v),
                               (p / p.sum(axis=1, keepdims=True)) @ v, **TOL)
