"""A model's forward loss, training step and saved activations from one Flax trace.

``step_counts(prog, params, data, rng, memory)`` gives what ``trace(prog.loss)``,
``trace(prog.train_step)`` and ``memory.saved_activations`` give, with the model's
Python (Flax modules, kernels) run once instead of three times:

1. the forward loss is traced to a jaxpr;
2. the training step is ``jax.vjp`` of *that jaxpr* (evaluated as a function; JAX
   keeps each equation's named scopes, so terms are attributed as before), its
   pullback applied to a unit cotangent as ``jax.value_and_grad`` does, traced
   once with the pullback's leaves -- the residuals, what ``memory`` reads -- as
   extra outputs;
3. the training-step count walks that jaxpr for (loss, gradients) only: the
   residual outputs are dropped and dead code removed, so it is the jaxpr of
   ``value_and_grad``; the memory reads the residual outputs.

Equal to the three separate traces, term by term (tests/test_step.py).
"""
from __future__ import annotations

import jax
from jax import lax

from comparator.count.jaxcompat import jaxpr_as_fun
from comparator.count.memory import MemoryResult, residuals_of
from comparator.count.trace import TraceResult, count_jaxpr


def step_jaxprs(prog, params, data, rng):
    """(forward closed jaxpr, step closed jaxpr, number of parameter leaves, number of
    residuals): the step jaxpr returns the loss, the gradient leaves, then the residuals."""
    fwd = jax.make_jaxpr(prog.loss)(params, data, rng)
    loss = jaxpr_as_fun(fwd)

    def step(p, d, r):
        out, pullback = jax.vjp(lambda q: loss(*jax.tree_util.tree_leaves((q, d, r)))[0], p)
        grads = pullback(lax.full_like(out, 1, shape=()))
        return (out, grads), pullback

    closed, shape = jax.make_jaxpr(step, return_shape=True)(params, data, rng)
    n_par = len(jax.tree_util.tree_leaves(params))
    n_res = len(jax.tree_util.tree_leaves(shape[1]))
    return fwd, closed, n_par, n_res


def train_jaxpr(closed, n_par: int):
    """The step jaxpr returning only (loss, gradients): ``value_and_grad``'s jaxpr once dead
    code is removed (``trace.count_jaxpr`` and ``CostProgram`` remove it)."""
    return closed.replace(jaxpr=closed.jaxpr.replace(outvars=closed.jaxpr.outvars[:1 + n_par]))


def step_memory(closed, n_par: int, n_res: int) -> MemoryResult:
    """The saved activations: the step jaxpr's residual outputs, classified."""
    jaxpr = closed.jaxpr
    return residuals_of(jaxpr, jaxpr.outvars[len(jaxpr.outvars) - n_res:], n_par)


def step_counts(prog, params, data, rng, memory: bool = False
                ) -> tuple[TraceResult, TraceResult, MemoryResult | None]:
    """(forward count, training-step count, saved activations or None)."""
    fwd, closed, n_par, n_res = step_jaxprs(prog, params, data, rng)
    return (count_jaxpr(fwd), count_jaxpr(train_jaxpr(closed, n_par)),
            step_memory(closed, n_par, n_res) if memory else None)


__all__ = ["step_counts", "step_jaxprs", "step_memory", "train_jaxpr"]
