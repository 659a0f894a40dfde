"""Mixture-of-experts feed-forward: a router picks ``top_k`` of ``E`` expert FFNs per token.

``moe_ffn(x [T, d], router [d, E], w1 [E, d, F], w2 [E, f, d], top_k=, act=, gated=,
renormalize=, capacity=)`` -> ``[T, d]`` for the ``T`` tokens of one step (callers flatten
batch and length: one routing group).  ``F = 2 f`` for gated experts (``[W_gate | W_up]``,
``kernels.ffn.glu``), ``f`` otherwise.

* ``ffn/router``: logits ``x R``, softmax over the experts, the ``top_k`` largest
  probabilities and their experts; ``renormalize`` divides the k weights by their sum
  (Mixtral: the same as a softmax over the k chosen logits), else they stay the full
  softmax's (Switch Transformer).
* Dropless (``capacity=None``; Mixtral, MegaBlocks): the ``A = T k`` (token, expert)
  assignments are sorted by expert (``ffn/dispatch``: a stable argsort, the tokens'
  rows gathered, the group sizes counted) and each expert multiplies exactly its own
  rows: a grouped matrix product (``jax.lax.ragged_dot``, ``ffn/in`` and ``ffn/out``),
  ``2 A d F + 2 A f d`` FLOPs whatever the routing.  ``ffn/combine`` puts the rows back
  in token order and sums each token's k outputs weighted by the router.
* Capacity (``capacity=C``; GShard, Switch): each expert has ``C`` slots.  Assignments
  take slots in priority order, every token's first choice before any second choice
  (GShard's), in token order within a choice; an assignment past its expert's ``C`` is
  dropped (the token keeps its other experts' outputs and the residual).  Slots are
  filled by a scatter (``ffn/dispatch``), every expert multiplies all its ``C`` slots,
  used or not (``[E, C, d]`` batched products, ``2 E C d F + 2 E C f d``), and the
  outputs are gathered back (``ffn/combine``).

Grouped products on hardware: TPUs and grouped-GEMM kernels run ``ragged_dot`` as
counted; XLA's CPU and GPU fallbacks may lower it to a masked dense product (``E``
times the FLOPs).  The count is the algorithm's.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from .ffn import glu
from .nn import activation


def route(x: jax.Array, router: jax.Array, top_k: int, renormalize: bool):
    """(weights [T, k], experts [T, k] int32) of every token (``ffn/router``)."""
    with jax.named_scope("ffn/router"):
        probs = jax.nn.softmax(jnp.einsum("td,de->te", x, router), axis=-1)
        weights, experts = jax.lax.top_k(probs, top_k)
        if renormalize:
            weights = weights / jnp.sum(weights, axis=-1, keepdims=True)
    return weights, experts


def _hidden(h: jax.Array, act: str, gated: bool) -> jax.Array:
    with jax.named_scope("ffn/act"):
        return glu(h, act) if gated else activation(act, h)


def moe_ffn(x: jax.Array, router: jax.Array, w1: jax.Array, w2: jax.Array, *, top_k: int,
            act: str = "silu", gated: bool = True, renormalize: bool = True,
            capacity: int | None = None) -> jax.Array:
    """The routed experts' output for ``x [T, d]`` (see the module docstring)."""
    weights, experts = route(x, router, top_k, renormalize)
    if capacity is None:
        return _dropless(x, weights, experts, w1, w2, act, gated)
    return _with_capacity(x, weights, experts, w1, w2, act, gated, capacity)


def _dropless(x, weights, experts, w1, w2, act, gated):
    T, d = x.shape
    k, E = weights.shape[1], w1.shape[0]
    with jax.named_scope("ffn/dispatch"):
        flat = experts.reshape(T * k)                      # token-major assignments
        order = jnp.argsort(flat, stable=True)             # grouped by expert
        rows = x.at[jax.lax.div(order, k)].get(mode="promise_in_bounds")
        sizes = jnp.bincount(flat, length=E).astype(jnp.int32)
    with jax.named_scope("ffn/in"):
        h = jax.lax.ragged_dot(rows, w1, sizes)
    h = _hidden(h, act, gated)
    with jax.named_scope("ffn/out"):
        y = jax.lax.ragged_dot(h, w2, sizes)
    with jax.named_scope("ffn/combine"):
        y = jnp.zeros_like(y).at[order].set(y, unique_indices=True, mode="promise_in_bounds")
        return jnp.sum(y.reshape(T, k, d) * weights[:, :, None], axis=1)


def _with_capacity(x, weights, experts, w1, w2, act, gated, C):
    T, d = x.shape
    k, E = weights.shape[1], w1.shape[0]
    A = T * k
    with jax.named_scope("ffn/dispatch"):
        flat = experts.T.reshape(A)                        # choice-major: priority order
        hot = (flat[:, None] == jnp.arange(E, dtype=flat.dtype)[None, :]).astype(jnp.int32)
        pos = jnp.sum(jnp.cumsum(hot, axis=0) * hot, axis=1) - 1   # rank within expert
        # a kept assignment's slot e C + pos; a dropped one a distinct index past the end
        slot = jnp.where(pos < C, flat * C + pos, E * C + jnp.arange(A, dtype=flat.dtype))
        rows = jnp.broadcast_to(x[None], (k, T, d)).reshape(A, d)
        buf = jnp.zeros((E * C, d), x.dtype).at[slot].set(rows, unique_indices=True,
                                                          mode="drop")
    with jax.named_scope("ffn/in"):
        h = jnp.einsum("ecd,edf->ecf", buf.reshape(E, C, d), w1)
    h = _hidden(h, act, gated)
    with jax.named_scope("ffn/out"):
        y = jnp.einsum("ecf,efd->ecd", h, w2).reshape(E * C, d)
    with jax.named_scope("ffn/combine"):
        ya = y.at[slot].get(mode="fill", fill_value=0, unique_indices=True)
        return jnp.sum(ya.reshape(k, T, d) * weights.T[:, :, None], axis=0)


def moe_reference(x, router, w1, w2, *, top_k, act="silu", gated=True, renormalize=True,
                  capacity=None):
    """Every expert on every token, then each token's kept experts summed with their
    weights; an assignment is kept when fewer than ``capacity`` assignments before it in
    priority order (first choices, then second, in token order) chose its expert (an
    A x A comparison, not the kernel's running count)."""
    probs = jax.nn.softmax(x @ router, axis=-1)
    weights, experts = jax.lax.top_k(probs, top_k)
    if renormalize:
        weights = weights / weights.sum(axis=-1, keepdims=True)
    T, E = x.shape[0], router.shape[1]
    keep = jnp.ones((T, top_k), weights.dtype)
    if capacity is not None:
        flat = experts.T.reshape(-1)
        A = flat.shape[0]
        before = jnp.tril(jnp.ones((A, A), bool), -1)
        rank = jnp.sum((flat[:, None] == flat[None, :]) & before, axis=1)
        keep = (rank < capacity).astype(weights.dtype).reshape(top_k, T).T
    outs = []
    for e in range(E):
        h = x @ w1[e]
        if gated:
            f = h.shape[-1] // 2
            h = activation(act, h[:, :f]) * h[:, f:]
        else:
            h = activation(act, h)
        outs.append(h @ w2[e])
    outs = jnp.stack(outs, axis=1)                          # [T, E, d]
    picked = jnp.take_along_axis(outs, experts[:, :, None], axis=1)   # [T, k, d]
    return jnp.sum(picked * (weights * keep)[:, :, None], axis=1)
