import jax
import jax.numpy as jnp
import pytest

from comparator.count import rules
from comparator.count.value import Cost
from comparator.count.trace import abstract, term_of, trace

f32 = jnp.float32
S = jax.ShapeDtypeStruct


def test_dot_general_is_two_flops_per_multiply_add():
    r = trace(lambda a, b: a @ b, S((3, 5), f32), S((5, 7), f32))
    assert r.flops("matmul") == 2 * 3 * 5 * 7
    assert r.total.bytes == 4 * (3 * 5 + 5 * 7 + 3 * 7)


def test_batched_einsum_and_conv():
    r = trace(lambda a, b: jnp.einsum("bhqd,bhkd->bhqk", a, b), S((2, 4, 8, 16), f32),
              S((2, 4, 9, 16), f32))
    assert r.flops("matmul") == 2 * 2 * 4 * 8 * 9 * 16
    conv = lambda x, w: jax.lax.conv_general_dilated(x, w, (1,), "VALID")
    r = trace(conv, S((1, 3, 10), f32), S((6, 3, 4), f32))  # NCH, OIH
    assert r.flops("matmul") == 2 * (1 * 6 * 7) * 3 * 4


def test_elementwise_reductions_and_transcendentals():
    r = trace(lambda x: jnp.exp(x).sum(axis=1), S((4, 10), f32))
    assert r.total.transcendentals == 40
    assert r.flops("all") == 40 + 4 * 9 and r.flops("matmul") == 0


def test_scan_multiplies_by_length_and_cond_is_flagged():
    def f(x, w):
        def body(c, _):
            return c @ w, None
        return jax.lax.scan(body, x, None, length=5)[0]
    r = trace(f, S((2, 3), f32), S((3, 3), f32))
    assert r.flops("matmul") == 5 * 2 * 2 * 3 * 3

    g = lambda p, x, w: jax.lax.cond(p, lambda: x @ w, lambda: x)
    r = trace(g, S((), jnp.bool_), S((2, 3), f32), S((3, 3), f32))
    assert r.flops("matmul") == 2 * 2 * 3 * 3  # the costlier branch
    assert any("cond" in k for k in r.flagged)


def test_while_loop_is_reported_not_guessed():
    f = lambda x: jax.lax.while_loop(lambda c: c.sum() < 10, lambda c: c * 2.0, x)
    r = trace(f, S((4,), f32))
    assert any("while" in k for k in r.flagged)


def test_unknown_primitive_is_reported_never_zero_silently():
    r = trace(lambda a: jnp.linalg.cholesky(a), S((4, 4), f32))
    assert r.unsupported and "cholesky" in r.unsupported


def test_dead_code_is_not_counted():
    r = trace(lambda a, b: (a @ b, b @ b.T)[0], S((3, 5), f32), S((5, 7), f32))
    assert r.flops("matmul") == 2 * 3 * 5 * 7


def test_named_scopes_map_to_terms():
    def f(x, w):
        with jax.named_scope("attn/qkv"):
            y = x @ w
        with jax.named_scope("gen"):
            with jax.named_scope("ffn/in"):
                z = y @ w
        return z
    r = trace(f, S((2, 4), f32), S((4, 4), f32))
    assert r.breakdown("matmul") == {"attn/qkv": 2 * 2 * 4 * 4, "gen/ffn/in": 2 * 2 * 4 * 4}
    assert term_of(("Model", "layer_0", "norm/attn", "norm_attn")) == "norm/attn"
    assert term_of(("Model", "norm")) == "other"  # a module name is never a term


def test_grad_backward_is_twice_forward_for_a_weight_and_input():
    loss = lambda w, x: jnp.sum(jnp.tanh(x @ w) @ w)
    r = trace(jax.value_and_grad(loss, argnums=(0, 1)), S((4, 4), f32), S((2, 4), f32))
    assert r.flops("matmul") == 3 * 2 * (2 * 2 * 4 * 4)
    # jax.grad alone never needs the last product's value: XLA would not run it
    r = trace(jax.grad(loss, argnums=(0, 1)), S((4, 4), f32), S((2, 4), f32))
    assert r.flops("matmul") == 5 * (2 * 2 * 4 * 4)


def test_rules_registry_refuses_duplicates_and_cost_adds():
    with pytest.raises(ValueError):
        rules.register("dot_general")(lambda e: Cost())
    c = Cost(flops=3, matmul=2, transcendentals=1, bytes=8)
    assert c + c == 2 * c == Cost(6, 4, 2, 16)
    assert sum([c, c, c]) == c * 3
    assert rules.integer_pow_mults(2) == 1 and rules.integer_pow_mults(3) == 2
    assert rules.integer_pow_mults(-2) == 2 and rules.sort_comparisons(2, 8) == 2 * 8 * 3


def test_abstract_allocates_nothing():
    tree = {"w": jnp.zeros((2, 3))}
    assert abstract(tree)["w"] == S((2, 3), jnp.float32)
