"""kernels.lsh: the chunked LSH and local kernels against their dense references.

Tolerances: float32 throughout.  Kernel and reference add the same terms in a
different order (chunk windows vs dense rows, log-count weights vs repeated
keys), so results agree to a few float32 ulps of O(1) values (observed <= 3e-7);
``atol=1e-5, rtol=1e-4`` leaves head-room without hiding a wrong mask, which
moves outputs by O(0.1).

Speed: inputs come from NumPy and kernel calls go through ``_jit`` (jit with
XLA's backend optimisation off, which compiles ~3x faster; the numbers checked
here do not depend on it), since eager execution compiles every primitive
separately.  ``test_jit_and_vmap_over_batch_and_heads`` uses the default jit.
"""
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels.lsh import (MASK_VALUE, SELF_MASK_VALUE, hash_buckets, local_attention,
                         local_attention_reference,
                         lsh_attention, lsh_attention_reference, make_rotations)

TOL = dict(atol=1e-5, rtol=1e-4)   # see module docstring
_jit = partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})
DH, DV = 8, 6                       # dv != dh on purpose


def _normal(seed, *shape):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _with(x, index, value):
    """NumPy copy of x with x[index] = value (no eager jax op, nothing to compile)."""
    y = np.array(x)
    y[index] = value
    return y


def _inputs(seed, n, n_hashes, n_buckets, dh=DH, dv=DV):
    """qk [n, dh], v [n, dv], rotations [dh, n_hashes, n_buckets // 2]."""
    return (_normal(seed, n, dh), _normal(seed + 1, n, dv),
            _normal(seed + 2, dh, n_hashes, n_buckets // 2))


@partial(_jit, static_argnums=(0, 1))
def _vjp_run(fn, kw_items, cotangent, *args):
    out, pull = jax.vjp(partial(fn, **dict(kw_items)), *args)
    return out, pull(cotangent)


def _out_and_grads(fn, cotangent, *args, **kw):
    """(fn(*args, **kw), grads of <fn(...), cotangent> wrt every arg), jitted once per
    (fn, kw, shapes) -- tests that repeat a case's arguments reuse its compilation."""
    return _vjp_run(fn, tuple(sorted(kw.items())), cotangent, *args)


# (n, chunk_len, n_hashes, n_buckets, causal, n_chunks_before, n_chunks_after)
LSH_CASES = [
    (16, 4, 2, 8, True, 1, 0),     # two rounds, causal
    (8, 8, 2, 2, True, 1, 0),      # one chunk per round: window wraps into the other round,
                                   # and spans every slot, so each key is seen twice
    (24, 4, 3, 6, False, 2, 1),    # three rounds, wider window
]


@pytest.mark.parametrize("n,chunk_len,n_hashes,n_buckets,causal,before,after", LSH_CASES)
def test_lsh_matches_reference(n, chunk_len, n_hashes, n_buckets, causal, before, after):
    qk, v, rot = _inputs(n * 100 + n_hashes, n, n_hashes, n_buckets)
    kw = dict(chunk_len=chunk_len, causal=causal, n_chunks_before=before, n_chunks_after=after)
    w = _normal(7, n, DV)   # a generic output cotangent
    out, grads = _out_and_grads(lsh_attention, w, qk, v, rot, **kw)
    want, want_grads = _out_and_grads(lsh_attention_reference, w, qk, v, rot, **kw)
    assert out.shape == (n, DV)
    np.testing.assert_allclose(out, want, **TOL)
    for got, ref in zip(grads[:2], want_grads[:2]):   # qk, v (rotations get zeros in both)
        np.testing.assert_allclose(got, ref, **TOL)
    assert not np.any(grads[2])


def test_helpers():
    key = jax.random.key(0)
    rot = jax.eval_shape(lambda k: make_rotations(k, 8, 3, 10), key)   # shapes only, no compile
    assert rot.shape == (8, 3, 5) and rot.dtype == jnp.float32
    # a factorised hash: a/2 + b/2 columns a round, not ab/2
    rot = jax.eval_shape(lambda k: make_rotations(k, 8, 3, (4, 8)), key)
    assert rot.shape == (8, 3, 2 + 4)
    with pytest.raises(ValueError):
        make_rotations(key, 8, 3, 7)
    with pytest.raises(ValueError):
        make_rotations(key, 8, 3, (4, 5))
    qk, v, rot = _inputs(0, 12, 1, 4)
    with pytest.raises(ValueError):
        lsh_attention(qk, v, rot, chunk_len=5)


def test_token_never_attends_to_itself_when_others_visible():
    n = 16
    qk, _, rot = _inputs(1, n, 2, 4)
    # v = I, so row i of the output holds query i's attention weights
    probs = np.asarray(_jit(partial(lsh_attention, chunk_len=4))(qk, np.eye(n, dtype=np.float32),
                                                                 rot))
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, **TOL)
    assert np.max(np.diag(probs)) < 1e-30   # exp(SELF_MASK_VALUE) underflows
    assert SELF_MASK_VALUE > MASK_VALUE


def test_token_attends_to_itself_when_alone():
    n = 12
    qk, v, rot = _inputs(2, n, 1, 4)
    # chunks of one token and no neighbours: every window holds only the token itself
    run = _jit(partial(lsh_attention, chunk_len=1, n_chunks_before=0, n_chunks_after=0))
    alone = run(qk, v, rot)
    np.testing.assert_allclose(alone, v, **TOL)
    # causal: position 0 may only see itself, in every round
    qk, v, rot = _inputs(3, n, 3, 6)
    out = _jit(partial(lsh_attention, chunk_len=4, causal=True))(qk, v, rot)
    np.testing.assert_allclose(out[0], v[0], **TOL)


def test_causal_lsh_never_reads_later_positions():
    n, t = 16, 9
    qk, v, rot = _inputs(4, n, 2, 8)   # the shapes of LSH_CASES[0]: same compilation
    kw = dict(chunk_len=4, causal=True, n_chunks_before=1, n_chunks_after=0)
    w = _with(np.zeros((n, DV), np.float32), t, _normal(5, DV))   # cotangent on row t only
    out, (gqk, gv, _) = _out_and_grads(lsh_attention, w, qk, v, rot, **kw)
    v_later = _with(v, slice(t + 1, None), 100.0)
    changed, _ = _out_and_grads(lsh_attention, w, qk, v_later, rot, **kw)
    np.testing.assert_array_equal(changed[: t + 1], out[: t + 1])
    # locally, output t has no derivative wrt any later qk or v (hashes are piecewise constant;
    # they may move chunk boundaries, see kernels.lsh's docstring, but carry no gradient)
    assert not np.any(gqk[t + 1:]) and not np.any(gv[t + 1:])
    assert np.any(gv[: t + 1])


LOCAL_CASES = [(16, 4, False, 1, 1),    # look one back and one ahead
               (12, 4, True, 3, 0)]     # window reaches past the start: all of it masked


@pytest.mark.parametrize("n,chunk_len,causal,before,after", LOCAL_CASES)
def test_local_matches_reference(n, chunk_len, causal, before, after):
    q, k, v = _normal(n + before, n, DH), _normal(n + before + 1, n, DH), _normal(5, n, DV)
    kw = dict(chunk_len=chunk_len, causal=causal, n_chunks_before=before, n_chunks_after=after)
    w = _normal(6, n, DV)
    out, grads = _out_and_grads(local_attention, w, q, k, v, **kw)
    want, want_grads = _out_and_grads(local_attention_reference, w, q, k, v, **kw)
    np.testing.assert_allclose(out, want, **TOL)
    for got, ref in zip(grads, want_grads):
        np.testing.assert_allclose(got, ref, **TOL)


def test_local_first_chunk_does_not_wrap_and_causal_is_causal():
    n, t = 16, 5
    q, k, v = _normal(8, n, DH), _normal(9, n, DH), _normal(10, n, DH)
    # non-causal: chunk 0 (positions 0..3) must not see the last chunk (12..15)
    run = _jit(partial(local_attention, chunk_len=4))
    last = slice(12, None)
    np.testing.assert_array_equal(run(q, _with(k, last, 9.0), _with(v, last, 9.0))[:4],
                                  run(q, k, v)[:4])
    # causal: nothing at a later position changes an earlier output
    run = _jit(partial(local_attention, chunk_len=4, causal=True))
    later = slice(t + 1, None)
    changed = run(_with(q, later, 3.0), _with(k, later, 3.0), _with(v, later, 3.0))
    np.testing.assert_array_equal(changed[: t + 1], run(q, k, v)[: t + 1])


def test_jit_and_vmap_over_batch_and_heads():
    b, h, n, n_hashes = 2, 3, 16, 2
    qk, v = _normal(11, b, h, n, DH), _normal(12, b, h, n, DV)
    rot = _normal(13, h, DH, n_hashes, 2)                                # per-head rotations
    per_head = jax.vmap(partial(lsh_attention, chunk_len=4, causal=True))
    out = jax.jit(jax.vmap(per_head, in_axes=(0, 0, None)))(qk, v, rot)
    assert out.shape == (b, h, n, DV)
    ref = _jit(partial(lsh_attention_reference, chunk_len=4, causal=True))
    for i in range(b):
        for j in range(h):
            np.testing.assert_allclose(out[i, j], ref(qk[i, j], v[i, j], rot[j]), **TOL)
    local = jax.jit(jax.vmap(jax.vmap(lambda a, c: local_attention(a, a, c, chunk_len=4))))
    want = _jit(partial(local_attention_reference, chunk_len=4))(qk[1, 2], qk[1, 2], v[1, 2])
    np.testing.assert_allclose(local(qk, v)[1, 2], want, **TOL)


# ----------------------------------------------------------------- scopes in traced jaxprs

_CALLS = {"pjit", "jit", "custom_jvp_call", "custom_vjp_call", "closed_call"}


def walk(jaxpr, prefix=""):
    """Yield (eqn, full name stack) for every eqn, descending into sub-jaxprs
    (whose name stacks are relative to the calling eqn)."""
    for e in jaxpr.eqns:
        full = "/".join(p for p in (prefix, str(e.source_info.name_stack)) if p)
        subs = [x for name, v in e.params.items() if name != "update_jaxpr"
                for x in (v if isinstance(v, (tuple, list)) else (v,))
                if hasattr(x, "eqns") or hasattr(x, "consts")]
        for s in subs:
            yield from walk(getattr(s, "jaxpr", s), full)
        if e.primitive.name not in _CALLS:
            yield e, full


HEAVY = {"dot_general", "sort", "gather", "scatter-add", "argmax", "exp", "log", "rsqrt"}


def scoped_counts(closed_jaxpr, scopes):
    """{(scope, primitive): count} for heavy primitives; fails on an unscoped one."""
    counts = {}
    for e, stack in walk(closed_jaxpr.jaxpr):
        if e.primitive.name not in HEAVY:
            continue
        hit = [s for s in scopes if s in stack]
        assert len(hit) == 1, f"{e.primitive.name} under {stack!r} has no unique scope"
        counts[hit[0], e.primitive.name] = counts.get((hit[0], e.primitive.name), 0) + 1
    return counts


LSH_SCOPES = ["lsh/hash", "lsh/sort", "lsh/scores", "lsh/softmax", "lsh/context",
              "lsh/unsort", "lsh/combine"]


def test_every_heavy_op_is_scoped_forward_and_backward():
    qk, v, rot = _inputs(10, 16, 2, 8)
    f = lambda a, b: lsh_attention(a, b, rot, chunk_len=4, causal=True)   # noqa: E731
    fwd = scoped_counts(jax.make_jaxpr(f)(qk, v), LSH_SCOPES)
    assert fwd == {("lsh/hash", "dot_general"): 1, ("lsh/hash", "argmax"): 1,
                   ("lsh/sort", "sort"): 1, ("lsh/sort", "gather"): 2,   # one sort of the key
                   ("lsh/scores", "rsqrt"): 1, ("lsh/scores", "dot_general"): 1,
                   ("lsh/softmax", "exp"): 2, ("lsh/softmax", "log"): 1,
                   ("lsh/context", "dot_general"): 1, ("lsh/unsort", "gather"): 2,
                   ("lsh/combine", "exp"): 2, ("lsh/combine", "log"): 1}
    train = scoped_counts(jax.make_jaxpr(jax.grad(lambda a, b: f(a, b).sum(), (0, 1)))(qk, v),
                          LSH_SCOPES)
    # backward: each contraction transposes into two (wrt both operands); hashing none
    assert train["lsh/scores", "dot_general"] == 1 + 2
    assert train["lsh/context", "dot_general"] == 1 + 2
    assert train["lsh/hash", "dot_general"] == 1
    assert train["lsh/sort", "scatter-add"] == 2 and train["lsh/unsort", "scatter-add"] == 2
    scopes = ["attn/scores", "attn/softmax", "attn/context"]
    local = jax.make_jaxpr(jax.grad(lambda q: local_attention(q, q, q, chunk_len=4).sum()))(qk)
    counts = scoped_counts(local, scopes)
    # q and k are the same array here: scores' transpose still makes two products
    assert counts["attn/scores", "dot_general"] == 3 and counts["attn/context", "dot_general"] == 3


def test_scores_are_unit_keys_over_sqrt_dh():
    # one round, one chunk spanning everything, no neighbours: every query sees every key
    # once, so the kernel is plain softmax(q k_hat^T / sqrt(dh), self masked) v  -- in NumPy
    n = 4
    qk, v, rot = _inputs(11, n, 1, 2)
    q, vv = np.asarray(qk, np.float64), np.asarray(v, np.float64)
    k_hat = q / np.linalg.norm(q, axis=-1, keepdims=True)
    s = np.where(np.eye(n, dtype=bool), SELF_MASK_VALUE, q @ k_hat.T / math.sqrt(DH))
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    want = (p / p.sum(axis=-1, keepdims=True)) @ vv
    got = _jit(partial(lsh_attention, chunk_len=n, n_chunks_before=0))(qk, v, rot)
    np.testing.assert_allclose(got, want, **TOL)


def test_factorised_hash_matches_reference():
    """Buckets (a, b) = (4, 6): a/2 + b/2 = 5 rotation columns a round, 24 buckets; the
    kernel's digits b0 + 4 b1 equal the reference's, outputs and gradients too."""
    n, n_hashes, factors = 24, 2, (4, 6)
    qk, v, _ = _inputs(41, n, n_hashes, 2)
    rot = _normal(43, DH, n_hashes, sum(factors) // 2)
    kw = dict(chunk_len=4, causal=False, n_chunks_before=1, n_chunks_after=0, factors=factors)
    w = _normal(7, n, DV)
    out, grads = _out_and_grads(lsh_attention, w, qk, v, rot, **kw)
    want, want_grads = _out_and_grads(lsh_attention_reference, w, qk, v, rot, **kw)
    np.testing.assert_allclose(out, want, **TOL)
    for got, ref in zip(grads[:2], want_grads[:2]):
        np.testing.assert_allclose(got, ref, **TOL)
    # every bucket id of a round lies in [0, 24), round r offset by 24 r
    b = np.asarray(jax.jit(partial(hash_buckets, factors=factors))(qk, rot)).reshape(2, n)
    assert b.min() >= 0 and b[0].max() < 24 and (b[1] >= 24).all() and b[1].max() < 48
    # the digits: the first factor's argmax over its own 2 columns [x, -x], plus 4 x the
    # second's over its 3
    proj = qk @ rot[:, 0, :]
    first = np.argmax(np.concatenate([proj[:, :2], -proj[:, :2]], -1), -1)
    second = np.argmax(np.concatenate([proj[:, 2:], -proj[:, 2:]], -1), -1)
    np.testing.assert_array_equal(b[0], first + 4 * second)


@pytest.mark.parametrize("causal", [False, True])
def test_one_chunk_is_plain_attention(causal):
    """n <= chunk_len: no hashing, one round, n x n shared-QK attention with the self-mask
    (the reference's standard path); rotations are not needed."""
    n = 8
    qk, v, _ = _inputs(51, n, 1, 2)
    kw = dict(chunk_len=8, causal=causal)
    w = _normal(7, n, DV)
    out, grads = _out_and_grads(lsh_attention, w, qk, v, None, **kw)
    want, want_grads = _out_and_grads(lsh_attention_reference, w, qk, v, None, **kw)
    np.testing.assert_allclose(out, want, **TOL)
    for got, ref in zip(grads[:2], want_grads[:2]):
        np.testing.assert_allclose(got, ref, **TOL)
    # by hand: row 0 of a causal model sees only itself
    if causal:
        np.testing.assert_allclose(out[0], v[0], **TOL)


def test_given_buckets_skip_hashing_and_give_the_same_output():
    n, n_hashes = 16, 2
    qk, v, rot = _inputs(4, n, n_hashes, 8)
    kw = dict(chunk_len=4, causal=True)
    out, buckets = _jit(partial(lsh_attention, return_buckets=True, **kw))(qk, v, rot)
    again = _jit(partial(lsh_attention, **kw))(qk, v, rot, buckets=buckets)
    np.testing.assert_array_equal(out, again)
    # with buckets given the hashing product is gone from the program
    jaxpr = jax.make_jaxpr(partial(lsh_attention, **kw))(qk, v, rot, buckets=buckets)
    assert "lsh/hash" not in str(jaxpr.jaxpr.pretty_print(name_stack=True))
