"""kernels.reversible: the recomputing custom VJP against plain autodiff.

Tolerances: the forward is the same float32 arithmetic (outputs agree to
rounding, ``atol=1e-6``).  The backward rebuilds each layer's inputs as
``y - F(x)``, which is exact only up to float32 rounding of O(1) activations
(~1e-7 per layer), and that error is pulled through the Jacobians; with the
small, well-conditioned layers below the gradients agree to ~1e-6, so
``atol=1e-5, rtol=1e-4`` is tight enough to catch a wrong cotangent (O(0.1)).
Checks on residuals and recomputation only trace (``eval_shape``/``make_jaxpr``),
which costs no compilation; value checks are jitted with XLA's backend
optimisation off to compile faster.
"""
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels.lsh import lsh_attention
from kernels.reversible import reversible_stack, reversible_stack_reference

TOL = dict(atol=1e-5, rtol=1e-4)   # see module docstring
_jit = partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})
N, D, H = 16, 8, 12                # tokens, model width, FFN width


def _normal(seed, *shape, scale=1.0):
    rng = np.random.default_rng(seed)
    return (scale * rng.standard_normal(shape)).astype(np.float32)


# ---- heterogeneous layers: each F/G is (params, x [N, D], aux) -> [N, D]

def mlp(p, x, aux):
    with jax.named_scope("ffn/in"):
        h = jnp.tanh(x @ p["w1"] + p["b1"][None, :])
    with jax.named_scope("ffn/out"):
        return h @ p["w2"]


def lsh_block(p, x, rotations):
    """Shared-QK LSH attention; aux = rotations (float, non-differentiable)."""
    with jax.named_scope("attn/qkv"):
        qk, v = x @ p["wqk"], x @ p["wv"]
    o = lsh_attention(qk, v, rotations, chunk_len=4, causal=True)
    with jax.named_scope("attn/out"):
        return o @ p["wo"]


def permuted_sin(p, x, perm):
    """aux = an integer permutation of the tokens."""
    return jnp.sin(x[perm] @ p)


def dropped(p, x, key):
    """aux = a PRNG key (fixed dropout mask, so F stays a function)."""
    keep = jax.random.bernoulli(key, 0.8, x.shape)
    return jnp.where(keep, jnp.tanh(x @ p), 0.0)


def _mlp_params(seed):
    return {"w1": _normal(seed, D, H, scale=0.3), "b1": _normal(seed + 1, H, scale=0.1),
            "w2": _normal(seed + 2, H, D, scale=0.3)}


def _stack():
    """(fs, gs, params, aux) of a 3-layer stack mixing every kind of layer and aux."""
    fs = (lsh_block, permuted_sin, dropped)
    gs = (mlp, mlp, mlp)
    attn = {"wqk": _normal(10, D, D, scale=0.4), "wv": _normal(11, D, D, scale=0.4),
            "wo": _normal(12, D, D, scale=0.3)}
    params = [(attn, _mlp_params(20)),
              (_normal(30, D, D, scale=0.3), _mlp_params(40)),
              (_normal(50, D, D, scale=0.3), _mlp_params(60))]
    aux = [_normal(70, D, 2, 4),                                         # LSH rotations
           np.random.default_rng(80).permutation(N).astype(np.int32),
           jax.random.key(90)]
    return fs, gs, params, aux


def _loss(stack, fs, gs, params, x1, x2, aux):
    y1, y2 = stack(fs, gs, params, x1, x2, aux)
    return jnp.sum(y1 * _normal(1, N, D)) + jnp.sum(y2 * _normal(2, N, D))


def test_outputs_and_gradients_match_plain_autodiff():
    fs, gs, params, aux = _stack()
    x1, x2 = _normal(3, N, D), _normal(4, N, D)

    def run(stack, p, a, b):
        outs = stack(fs, gs, p, a, b, aux)
        grads = jax.grad(partial(_loss, stack, fs, gs), (0, 1, 2))(p, a, b, aux)
        return outs, grads

    both = _jit(lambda p, a, b: (run(reversible_stack, p, a, b),
                                 run(reversible_stack_reference, p, a, b)))
    (outs, grads), (want_outs, want_grads) = both(params, x1, x2)
    for got, want in zip(outs, want_outs):
        np.testing.assert_allclose(got, want, atol=1e-6)
    flat, flat_want = jax.tree.leaves(grads), jax.tree.leaves(want_grads)
    assert len(flat) == len(flat_want) == 3 + 1 + 1 + 3 * 3 + 2   # attn, sin, drop, 3 mlps, x1, x2
    for got, want in zip(flat, flat_want):
        np.testing.assert_allclose(got, want, **TOL)
    assert jax.tree.structure(grads[0]) == jax.tree.structure(params)


def test_aux_gets_zero_gradient():
    fs, gs, params, aux = _stack()
    x = _normal(5, N, D)
    g = _jit(jax.grad(partial(_loss, reversible_stack, fs, gs), argnums=3, allow_int=True))(
        params, x, x, aux)
    assert not np.any(g[0])                                  # float rotations: zeros
    assert g[1].dtype == jax.dtypes.float0 and g[2].dtype == jax.dtypes.float0


def _activation_residuals(stack, n_layers):
    """Shapes of the [N, D] arrays jax keeps between forward and backward."""
    layer = lambda p, x, a: jnp.tanh(x @ p)                              # noqa: E731
    params = [(_normal(i, D, D), _normal(i + 100, D, D)) for i in range(n_layers)]
    x = _normal(0, N, D)
    loss = lambda p, a, b: jnp.sum(stack((layer,) * n_layers, (layer,) * n_layers,  # noqa: E731
                                         p, a, b, None)[1])
    # the linearised function closes over exactly the saved residuals
    saved = jax.eval_shape(lambda *args: jax.linearize(loss, *args)[1], params, x, x)
    return [leaf.shape for leaf in jax.tree.leaves(saved) if leaf.shape == (N, D)]


@pytest.mark.parametrize("n_layers", [2, 5])
def test_forward_saves_no_per_layer_activations(n_layers):
    # reversible: only the final (y1, y2); params are saved too, but they are [D, D]
    assert len(_activation_residuals(reversible_stack, n_layers)) == 2
    # plain autodiff keeps activations of every layer (input, tanh, ...), growing with depth
    assert len(_activation_residuals(reversible_stack_reference, n_layers)) >= 2 * n_layers


def _count(jaxpr, primitive):
    n = 0
    for e in jaxpr.eqns:
        n += e.primitive.name == primitive
        for v in e.params.values():
            for sub in (v if isinstance(v, (tuple, list)) else (v,)):
                if hasattr(sub, "eqns") or hasattr(sub, "consts"):
                    n += _count(getattr(sub, "jaxpr", sub), primitive)
    return n


def test_backward_recomputes_each_function_exactly_once():
    n_layers = 3
    layer = lambda p, x, a: jnp.tanh(x @ p)                              # noqa: E731
    params = [(_normal(i, D, D), _normal(i + 100, D, D)) for i in range(n_layers)]
    x = _normal(0, N, D)

    def dots(stack):
        def loss(p, a, b):   # both outputs, so every function gets a cotangent
            y1, y2 = stack((layer,) * n_layers, (layer,) * n_layers, p, a, b, None)
            return jnp.sum(y1) + jnp.sum(y2)
        return _count(jax.make_jaxpr(jax.grad(loss, (0, 1, 2)))(params, x, x).jaxpr,
                      "dot_general")

    # per function: forward 1, transposes 2 (wrt params and input); reversible adds 1 recompute
    assert dots(reversible_stack_reference) == 2 * n_layers * (1 + 2)
    assert dots(reversible_stack) == 2 * n_layers * (1 + 1 + 2)


def test_jit_vmap_over_batch():
    fs, gs, params, aux = (part[1:2] for part in _stack())   # integer aux under vmap
    x1, x2 = _normal(6, 3, N, D), _normal(7, 3, N, D)

    def batched(stack):
        f = jax.vmap(lambda a, b: stack(fs, gs, params, a, b, aux))
        return _jit(jax.grad(lambda a, b: sum(jnp.sum(jnp.sin(y)) for y in f(a, b)), (0, 1)))

    got = batched(reversible_stack)(x1, x2)
    want = batched(reversible_stack_reference)(x1, x2)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, **TOL)


def test_layer_count_mismatch_raises():
    with pytest.raises(ValueError):
        reversible_stack((mlp,), (mlp, mlp), [(None, None)], jnp.zeros(1), jnp.zeros(1))


def test_scopes_survive_recomputation_and_its_transpose():
    fs, gs, params, aux = _stack()
    fs, gs, params, aux = fs[:1], gs[:1], params[:1], aux[:1]          # the LSH layer
    x = _normal(8, N, D)
    jaxpr = jax.make_jaxpr(jax.grad(partial(_loss, reversible_stack, fs, gs), (0, 1, 2)))(
        params, x, x, aux)
    heavy = {"dot_general", "sort", "gather", "scatter-add", "argmax"}
    found = {}

    def walk(jp, prefix):
        for e in jp.eqns:
            stack = "/".join(p for p in (prefix, str(e.source_info.name_stack)) if p)
            for name, v in e.params.items():
                for sub in (v if isinstance(v, (tuple, list)) else (v,)):
                    if name != "update_jaxpr" and (hasattr(sub, "eqns") or hasattr(sub, "consts")):
                        walk(getattr(sub, "jaxpr", sub), stack)
            if e.primitive.name in heavy:
                scope = [s for s in ("lsh/", "attn/", "ffn/") if s in stack]
                assert scope, f"{e.primitive.name} under {stack!r} carries no scope"
                term = stack[stack.index(scope[0]):].split("/")[:2]
                key = ("/".join(term).rstrip(")"), e.primitive.name)
                found[key] = found.get(key, 0) + 1

    walk(jaxpr.jaxpr, "")
    # forward 1 + recompute 1 + transpose 2 for every differentiable contraction
    for term in ("attn/qkv", "attn/out", "ffn/in", "ffn/out"):
        per_call = 2 if term == "attn/qkv" else 1
        assert found[term, "dot_general"] == 4 * per_call, term
    assert found["lsh/scores", "dot_general"] == 4
    assert found["lsh/context", "dot_general"] == 4
    # hashing and sorting: forward + recompute only (no gradient)
    assert found["lsh/hash", "dot_general"] == 2
    assert found["lsh/sort", "sort"] == 2   # one sort of the key, forward + recompute
    assert found["lsh/sort", "gather"] == 2 * 2 and found["lsh/sort", "scatter-add"] == 2
