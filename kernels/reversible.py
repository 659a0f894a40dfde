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

``keep``: per layer, whether ``F_i`` hands data from its forward to its recomputation
(the reference Reformer stores each LSH layer's buckets and the backward does not hash
again).  Such an ``F_i`` is called ``F_i(params, x, aux, saved)`` and returns ``(y, s)``:
the forward passes ``saved=None`` and keeps ``s`` (non-differentiable, e.g. int32
buckets) as a residual beside the outputs; the recomputation passes the kept ``s``.

The same stack under the other memory policies: ``reversible_stack_reference`` (plain
autodiff: every layer's activations kept, "store all") and ``checkpointed_stack`` (each
layer under ``jax.checkpoint``: its inputs kept, its forward recomputed in the backward).
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable, Sequence

import jax

Fn = Callable[[Any, jax.Array, Any], jax.Array]


def _layers(fs: Sequence[Fn], gs: Sequence[Fn], params: Sequence[Any], aux: Any, keep=None):
    """Normalise the per-layer arguments: (fs, gs, aux, keep) as tuples of equal length."""
    fs, gs = tuple(fs), tuple(gs)
    if aux is None:
        aux = (None,) * len(fs)
    aux = tuple(aux)
    keep = tuple(bool(k) for k in keep) if keep is not None else (False,) * len(fs)
    if not len(fs) == len(gs) == len(params) == len(aux) == len(keep):
        raise ValueError(f"layer count mismatch: {len(fs)} F, {len(gs)} G, "
                         f"{len(params)} params, {len(aux)} aux, {len(keep)} keep")
    return fs, gs, aux, keep


def _forward(fs, gs, params, x1, x2, aux, keep):
    """The stack's forward; also returns what each keeping ``F`` saved (else None)."""
    saved = []
    for f, g, (pf, pg), a, k in zip(fs, gs, params, aux, keep):
        if k:
            fx, s = f(pf, x2, a, None)
            saved.append(jax.lax.stop_gradient(s))
        else:
            fx, s = f(pf, x2, a), None
            saved.append(None)
        x1 = x1 + fx
        x2 = x2 + g(pg, x1, a)
    return x1, x2, tuple(saved)


def reversible_stack_reference(fs: Sequence[Fn], gs: Sequence[Fn], params: Sequence[Any],
                               x1: jax.Array, x2: jax.Array, aux: Any = None, keep=None):
    """The plain forward of ``reversible_stack``; ordinary autodiff stores activations."""
    fs, gs, aux, keep = _layers(fs, gs, params, aux, keep)
    return _forward(fs, gs, params, x1, x2, aux, keep)[:2]


def checkpointed_stack(fs: Sequence[Fn], gs: Sequence[Fn], params: Sequence[Any],
                       x1: jax.Array, x2: jax.Array, aux: Any = None, keep=None):
    """The plain forward of ``reversible_stack`` with each layer under ``jax.checkpoint``:
    ordinary autodiff keeps only every layer's inputs ``(x1, x2)`` (and what keeping layers
    save) and recomputes one layer's forward inside its backward -- per-layer gradient
    checkpointing of the same stack, without the inversion."""
    fs, gs, aux, keep = _layers(fs, gs, params, aux, keep)

    def layer(f, g, k, p, x1, x2, a):
        return _forward((f,), (g,), (p,), x1, x2, (a,), (k,))[:2]

    for f, g, p, a, k in zip(fs, gs, params, aux, keep):
        x1, x2 = jax.checkpoint(partial(layer, f, g, k))(p, x1, x2, a)
    return x1, x2


def reversible_stack(fs: Sequence[Fn], gs: Sequence[Fn], params: Sequence[Any],
                     x1: jax.Array, x2: jax.Array, aux: Any = None, keep=None):
    """Apply ``L`` reversible layers; returns ``(y1, y2)`` shaped like ``(x1, x2)``.

    ``fs``, ``gs``: ``L`` callables each (layers may differ); ``params``: a
    sequence of ``L`` pairs ``(pf_i, pg_i)`` of arbitrary pytrees; ``aux``: a
    sequence of ``L`` per-layer extras (or ``None``).  Gradients flow to
    ``params``, ``x1`` and ``x2`` through a backward pass that recomputes the
    activations instead of storing them.
    """
    fs, gs, aux, keep = _layers(fs, gs, params, aux, keep)
    return _reversible(fs, gs, keep, params, x1, x2, aux)


@partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _reversible(fs, gs, keep, params, x1, x2, aux):
    return _forward(fs, gs, params, x1, x2, aux, keep)[:2]


def _reversible_fwd(fs, gs, keep, params, x1, x2, aux):
    y1, y2, saved = _forward(fs, gs, params, x1, x2, aux, keep)
    # residuals: the outputs and what keeping layers saved (e.g. buckets), no activations
    return (y1, y2), (params, aux, saved, y1, y2)


def _reversible_bwd(fs, gs, keep, residuals, cotangents):
    params, aux, saved, y1, y2 = residuals
    dy1, dy2 = cotangents
    grads = []
    for i in reversed(range(len(fs))):
        g, (pf, pg), a, s = gs[i], params[i], aux[i], saved[i]
        f = (lambda p, x, a, f=fs[i], s=s: f(p, x, a, s)[0]) if keep[i] else fs[i]
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
