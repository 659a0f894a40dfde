"""``comparator.count`` and ``comparator.count_module`` on user-written JAX functions and
Flax modules: the counts equal the arithmetic of the shapes (written beside each
assertion), terms come from the user's term scopes or else the primitive, primitives
without a rule are named with their counts, and along a sequence axis the closed form in n
is the exact polynomial -- or None, said why, where it is not one."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

import comparator
from comparator.count.polyfit import fit, formula, interpolate

B, N, D, F, H = 2, 64, 32, 128, 4


def sds(*shape):
    return jax.ShapeDtypeStruct(shape, jnp.float32)


def attention(x, p, heads=H):
    """Multi-head self-attention, written as a user would, with our term scopes."""
    b, n, d = x.shape

    def split(t):
        return t.reshape(b, n, heads, d // heads)
    with jax.named_scope("attn/qkv"):
        q, k, v = (split(x @ p[w]) for w in "qkv")
    with jax.named_scope("attn/scores"):
        s = jnp.einsum("bqhe,bkhe->bhqk", q, k)
    with jax.named_scope("attn/softmax"):
        s = jax.nn.softmax(s / jnp.sqrt(d // heads))
    with jax.named_scope("attn/context"):
        c = jnp.einsum("bhqk,bkhe->bqhe", s, v).reshape(b, n, d)
    with jax.named_scope("attn/out"):
        return c @ p["o"]


P = {w: sds(D, D) for w in "qkvo"}


def loss(p, x):
    return jnp.mean(attention(x, p))


def test_attention_counts_by_term_and_the_exact_polynomial_in_n():
    r = comparator.count(attention, sds(B, N, D), P, seq_axis=(1, None))
    assert r.breakdown == {"attn/qkv": 3 * (2 * B * N * D * D),
                           "attn/scores": 2 * B * N * N * D,       # h heads x 2*n*n*(d/h)
                           "attn/context": 2 * B * N * N * D,
                           "attn/out": 2 * B * N * D * D}
    assert r.fwd_flops == 8 * B * N * D * D + 4 * B * N * N * D
    # scores + context quadratic, the four projections linear in n
    assert r.formula == f"{4 * B * D}*n**2 + {8 * B * D * D}*n"
    assert r.breakdown_formula == {"attn/context": f"{2 * B * D}*n**2",
                                   "attn/out": f"{2 * B * D * D}*n",
                                   "attn/qkv": f"{6 * B * D * D}*n",
                                   "attn/scores": f"{2 * B * D}*n**2"}
    assert r.seq_len == N and r.trace == "symbolic" and r.unsupported == {}
    assert "fitted on n = 64..70" in r.formula_note
    assert r.train_flops is None and r.params is None


def test_training_step_of_attention_in_n():
    r = comparator.count(loss, P, sds(B, N, D), train=True, seq_axis=1)   # argnums=0: P
    # forward 8bnd^2 + 4bn^2d; backward: the 4 weight gradients (2bnd^2 each), the input
    # gradient of the output projection (2bnd^2; x is not differentiated, the projections'
    # input gradients are dead code), and two gradients of each attention matmul (8bn^2d)
    assert r.train_formula == f"{12 * B * D}*n**2 + {18 * B * D * D}*n"
    assert r.train_flops == 12 * B * D * N ** 2 + 18 * B * D * D * N
    assert r.params == 4 * D * D                         # the differentiated arguments
    assert r.train_breakdown["attn/scores"] == 3 * (2 * B * N * N * D)


def test_at_another_length_equals_a_concrete_count_there():
    r = comparator.count(loss, P, sds(B, N, D), train=True, seq_axis=1, scope="all")
    at = r.at(3 * N + 8)
    fresh = comparator.count(loss, P, sds(B, 3 * N + 8, D), train=True, scope="all")
    keep = ("fwd_flops", "train_flops", "breakdown", "train_breakdown", "fwd_bytes",
            "train_bytes", "fwd_transcendentals", "train_transcendentals", "unsupported")
    assert {k: getattr(at, k) for k in keep} == {k: getattr(fresh, k) for k in keep}
    assert at.seq_len == 3 * N + 8 and at.formula == r.formula
    # softmax: one exp per score in the forward; and the sqrt of the head width
    assert r.fwd_transcendentals == B * H * N * N + 1


def test_unattributed_work_is_named_by_its_primitive():
    def mlp(x, w1, w2):
        return jnp.tanh(x @ w1) @ w2
    r = comparator.count(mlp, sds(B, N, D), sds(D, F), sds(F, D), scope="all")
    assert r.breakdown == {"dot_general": 2 * (2 * B * N * D * F), "tanh": B * N * F}
    assert r.fwd_transcendentals == B * N * F                # one tanh per hidden unit
    assert r.fwd_bytes == 4 * (B * N * D + D * F + B * N * F   # operands read + results
                               + B * N * F + B * N * F         # tanh
                               + B * N * F + F * D + B * N * D)


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(D)(nn.relu(nn.Dense(F)(x)))


def test_a_flax_module_counts_its_parameters_forward_and_training_step():
    r = comparator.count_module(MLP(), sds(B, N, D), train=True, seq_axis=1)
    assert r.params == D * F + F + F * D + D
    assert r.fwd_flops == 2 * (2 * B * N * D * F)
    # + 2 weight gradients + the second layer's input gradient (x is not differentiated)
    assert r.train_flops == 5 * (2 * B * N * D * F)
    assert r.formula == f"{4 * B * D * F}*n" and r.train_formula == f"{10 * B * D * F}*n"
    assert r.at(2 * N).params == r.params
    custom = comparator.count_module(MLP(), sds(B, N, D), train=True, scope="all",
                                     loss=lambda out, x: jnp.sum((out - x) ** 2))
    assert custom.train_flops > custom.fwd_flops > 0


class Drop(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        return nn.Dropout(0.5, deterministic=not train)(nn.Dense(F)(x))


def test_a_module_drawing_random_numbers_gets_its_stream_and_arguments():
    on = comparator.count_module(Drop(), sds(B, N, D), rngs=("dropout",),
                                 apply_kwargs={"train": True}, scope="all")
    off = comparator.count_module(Drop(), sds(B, N, D), apply_kwargs={"train": False},
                                  scope="all")
    assert on.breakdown["dot_general"] == off.breakdown["dot_general"] == 2 * B * N * D * F
    assert on.breakdown["random_bits"] > 0 and "random_bits" not in off.breakdown
    assert on.params == off.params == D * F + F


def test_unsupported_primitives_are_named_with_their_counts():
    def solve(a, y):
        return jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(a), y) @ a
    r = comparator.count(solve, sds(D, D), sds(D, D))
    # one factorisation, two triangular solves (L then L^T): no cost rule, named
    assert r.unsupported == {"cholesky": 1, "triangular_solve": 2}
    assert r.breakdown == {"dot_general": 2 * D * D * D}     # the counted matmul is kept


def test_n_log_n_has_no_formula_but_counts_at_every_length():
    def sort_rows(x):
        return jnp.sort(x, axis=1)
    r = comparator.count(sort_rows, sds(B, N, D), seq_axis=1, scope="all")
    assert r.formula is None and "not a polynomial" in r.formula_note
    # sort of a k-long axis: k * ceil(log2 k) comparisons per row (rules.py)
    assert r.fwd_flops == B * D * N * 6
    assert r.at(1000).fwd_flops == B * D * 1000 * 10


def test_a_failed_symbolic_trace_falls_back_to_concrete_traces_and_says_so():
    def branchy(x):
        if x.shape[1] > 100:     # Python on the length: no symbolic trace
            return x @ x.transpose(0, 2, 1)
        return x.sum()
    r = comparator.count(branchy, sds(B, N, D), seq_axis=1)
    assert r.formula is None and "symbolic trace failed" in r.formula_note
    assert r.fwd_flops == 0 and r.trace.startswith("concrete")
    assert r.at(2 * N).fwd_flops == 2 * B * (2 * N) * (2 * N) * D


@pytest.mark.parametrize("call,field", [
    (lambda: comparator.count(attention, sds(B, N, D), P, seq_axis=1), "seq_axis"),
    (lambda: comparator.count(attention, sds(B, N, D), P, seq_axis=(1,)), "seq_axis"),
    (lambda: comparator.count(attention, sds(B, N, D), P, train=True, argnums=1), "train"),
    (lambda: comparator.count(loss, P, sds(B, N, D), train=True, argnums=5), "argnums"),
    (lambda: comparator.count(attention, sds(B, N, D), P, scope="some"), "scope"),
    (lambda: comparator.count(loss, P, sds(B, N, D)).at(128), "seq_axis"),
])
def test_bad_arguments_name_the_argument(call, field):
    with pytest.raises(comparator.CountError) as e:
        call()
    assert e.value.field == field


def test_polynomials_are_exact_and_refused_when_they_are_not():
    assert interpolate([1, 2, 3], [3, 7, 13]) == (1, 1, 1)        # n^2 + n + 1
    assert formula((0, 0, 3)) == "3*n**2" and formula((0,)) == "0"
    assert formula(interpolate(range(1, 8), [k * (k + 1) // 2 for k in range(1, 8)])) == \
        "1/2*n**2 + 1/2*n"                                        # a triangle: rational
    assert fit({k: k * k for k in range(300)}, 7) == (0, 0, 1)
    assert fit({k: k // 4 for k in range(300)}, 7) is None       # a floor division
