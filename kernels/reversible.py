"""Reversible residual stack (RevNet; Reformer, Kitaev et al. 2020) with a recomputing VJP.

Layer ``i`` maps ``(x1, x2) -> (y1, y2)``::

    y1 = x1 + F_i(pf_i, x2, aux_i)
    y2 = x2 + G_i(pg_i, y1, aux_i)

and is inverted exactly (up to rounding) by ``x2 = y2 - G_i(y1)``,
``x1 = y1 - F_i(x2)``.  ``reversible_stack`` is one ``jax.custom_vjp`` over the
whole stack: its forward keeps only the final ``(y1, y2)`` (plus the params and
aux it was given) -- no per-layer activations -- and its backward walks the
layers in reverse, recomputing each ``G_i`` and ``F_i`` exactly once under
``jax.vjp`` to rebuild the inputs and pull the cotangents through.  A traced
training step therefore contains, per function, one forward evaluation, one
recomputation and the transpose of the recomputation: the extra forward that
Reformer pays for O(1)-in-depth activation memory.

``F_i`` / ``G_i`` are pure functions ``(params, x, aux) -> like x`` supplied by
the caller (static Python callables; they may close over constants or
jit-traced values, but not over values being differentiated -- pass those in
the params, else JAX raises ``UnexpectedTracerError``).  Named
scopes inside them are kept on the recomputation and its transpose.  ``aux`` is
per-layer non-differentiable data (LSH rotations, PRNG keys, integer arrays,
``None``); the backward returns a symbolic zero (``None``) for it, so
``jax.grad`` with respect to aux gives zeros (``float0`` for integer leaves).
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable, Sequence

import jax

Fn = Callable[[Any, jax.Array, Any], jax.Array]


def _layers(fs: Sequence[Fn], gs: Sequence[Fn], params: Sequence[Any], aux: Any):
    """Normalise the per-layer arguments: (fs, gs, aux) as tuples of equal length."""
    fs, gs = tuple(fs), tuple(gs)
    if aux is None:
        aux = (None,) * len(fs)
    aux = tuple(aux)
    if not len(fs) == len(gs) == len(params) == len(aux):
        raise ValueError(f"layer count mismatch: {len(fs)} F, {len(gs)} G, "
                         f"{len(params)} params, {len(aux)} aux")
    return fs, gs, aux


def _forward(fs, gs, params, x1, x2, aux):
    for f, g, (pf, pg), a in zip(fs, gs, params, aux):
        x1 = x1 + f(pf, x2, a)
        x2 = x2 + g(pg, x1, a)
    return x1, x2


def reversible_stack_reference(fs: Sequence[Fn], gs: Sequence[Fn], params: Sequence[Any],
                               x1: jax.Array, x2: jax.Array, aux: Any = None):
    """The plain forward of ``reversible_stack``; ordinary autodiff stores activations."""
    fs, gs, aux = _layers(fs, gs, params, aux)
    return _forward(fs, gs, params, x1, x2, aux)


def reversible_stack(fs: Sequence[Fn], gs: Sequence[Fn], params: Sequence[Any],
                     x1: jax.Array, x2: jax.Array, aux: Any = None):
    """Apply ``L`` reversible layers; returns ``(y1, y2)`` shaped like ``(x1, x2)``.

    ``fs``, ``gs``: ``L`` callables each (layers may differ); ``params``: a
    sequence of ``L`` pairs ``(pf_i, pg_i)`` of arbitrary pytrees; ``aux``: a
    sequence of ``L`` per-layer extras (or ``None``).  Gradients flow to
    ``params``, ``x1`` and ``x2`` through a backward pass that recomputes the
    activations instead of storing them.
    """
    fs, gs, aux = _layers(fs, gs, params, aux)
    return _reversible(fs, gs, params, x1, x2, aux)


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _reversible(fs, gs, params, x1, x2, aux):
    return _forward(fs, gs, params, x1, x2, aux)


def _reversible_fwd(fs, gs, params, x1, x2, aux):
    y1, y2 = _forward(fs, gs, params, x1, x2, aux)
    return (y1, y2), (params, aux, y1, y2)   # residuals: outputs only, no activations


def _reversible_bwd(fs, gs, residuals, cotangents):
    params, aux, y1, y2 = residuals
    dy1, dy2 = cotangents
    grads = []
    for i in reversed(range(len(fs))):
        f, g, (pf, pg), a = fs[i], gs[i], params[i], aux[i]
        # undo y2 = x2 + G(y1): recompute G once, pull dy2 through it
        gy, g_vjp = jax.vjp(lambda p, x: g(p, x, a), pg, y1)
        x2 = y2 - gy
        dpg, dy1_from_g = g_vjp(dy2)
        dy1 = dy1 + dy1_from_g                # total cotangent of y1 (= of x1)
        # undo y1 = x1 + F(x2): recompute F once, pull dy1 through it
        fx, f_vjp = jax.vjp(lambda p, x: f(p, x, a), pf, x2)
        dpf, dx2_from_f = f_vjp(dy1)
        dy2 = dy2 + dx2_from_f                # total cotangent of x2
        grads.append((dpf, dpg))
        if i:                                 # layer 0's x1 would be dead code
            y1, y2 = y1 - fx, x2
    grads.reverse()
    dparams = jax.tree.unflatten(jax.tree.structure(params), jax.tree.leaves(grads))
    return dparams, dy1, dy2, None           # None: aux gets a symbolic zero cotangent


_reversible.defvjp(_reversible_fwd, _reversible_bwd)
