"""Memory of a real training step, from its trace: what XLA allocates for it.

The step is the one ``tests/test_memory_xla.py`` and ``comparator memory`` compile:
loss and gradients (``cost.compiled.step_function``: fp32 as written, 16-bit dtypes with
fp32 master parameters cast inside the loss), then an Adam update, the parameters and
both moments donated (their updated values take over their buffers).  ``estimate``
traces it on abstract inputs (nothing is allocated) under a memory policy and returns
the peak of ``comparator.count.liveness`` as named parts:

* ``parameters``, ``optimizer`` (Adam's two moments), ``data`` (token inputs): the step's
  arguments, alive throughout;
* ``saved`` (forward values kept for the backward), ``working`` (the backward's own
  buffers, recomputed layers included), ``gradient`` (buffers an update reads), ``copy``
  (donated buffers XLA copies): the temporaries alive at the peak;
* ``outputs``: outputs that take over no argument (the loss).

``estimated_bytes`` is their sum, comparable with XLA's ``memory_analysis()`` (arguments +
temporaries + outputs - aliases).  The allocator's and framework's own memory is not part
of it: ``cost.pricing`` keeps a stated share of each device for it (its headroom).
"""
from __future__ import annotations

import functools

from comparator.count.liveness import KINDS, peak

ADAM = (0.9, 0.999, 1e-3, 1e-8)    # b1, b2, learning rate, eps: the update's arithmetic


def adam_step(grad_fn):
    """``(params, m, v, data, rng) -> (params, m, v, loss)``: ``grad_fn(params, data, rng)``
    -> (loss, grads), then Adam (no bias correction: the same buffers and arithmetic)."""
    import jax
    import jax.numpy as jnp
    b1, b2, lr, eps = ADAM

    def step(params, m, v, data, rng):
        loss, g = grad_fn(params, data, rng)
        m = jax.tree_util.tree_map(lambda a, b: b1 * a + (1 - b1) * b, m, g)
        v = jax.tree_util.tree_map(lambda a, b: b2 * a + (1 - b2) * b * b, v, g)
        params = jax.tree_util.tree_map(lambda p, a, b: p - lr * a / (jnp.sqrt(b) + eps),
                                        params, m, v)
        return params, m, v, loss
    return step


def step_args(prog, batch: int, seq: int) -> tuple:
    """Abstract (params, m, v, data, rng) of the step; the first three are donated."""
    params, data, rng = prog.abstract_inputs(batch, seq)
    return params, params, params, data, rng


def step_of(prog, dtype: str = "fp32"):
    from comparator.cost.compiled import step_function
    return adam_step(step_function(prog, dtype))


def step_jaxpr(prog, batch: int, seq: int, dtype: str = "fp32"):
    """(closed jaxpr of the step, indices of its donated inputs)."""
    import jax
    from comparator.cost.compiled import matmul_precision
    args = step_args(prog, batch, seq)
    with jax.default_matmul_precision(matmul_precision(dtype)):
        closed = jax.make_jaxpr(step_of(prog, dtype))(*args)
    n = len(jax.tree_util.tree_leaves(args[0]))
    return closed, tuple(range(3 * n))


def estimate(mod, cfg, seq: int, batch: int = 1, policy: str | None = None,
             dtype: str = "fp32", schedule: str = "cpu") -> dict:
    """The step's peak memory and its parts (module doc); ``schedule``: ``cpu`` (XLA:CPU's
    own) or ``memory`` (a memory-minimising one, as accelerators' compilers use)."""
    out = _estimate(mod, cfg, seq, batch, policy or mod.DEFAULT_POLICY, dtype, schedule)
    return {**out, "by_term": dict(out["by_term"])}


@functools.lru_cache(maxsize=256)
def _estimate(mod, cfg, seq, batch, policy, dtype, schedule) -> dict:
    import jax
    from comparator.cost.compiled import check_dtype
    dtype = check_dtype(dtype)
    prog = mod.model(cfg, policy)
    closed, donated = step_jaxpr(prog, batch, seq, dtype)
    pk = peak(closed, donated, schedule)
    args = step_args(prog, batch, seq)
    size = lambda tree: sum(int(x.size) * x.dtype.itemsize for x in jax.tree_util.tree_leaves(tree))
    params, data = size(args[0]), size(args[3]) + size(args[4])
    out = {"parameters": params, "optimizer": 2 * params, "data": data,
           **{k: pk.by_kind.get(k, 0) for k in KINDS}, "outputs": pk.outputs}
    # consts folded into the jaxpr (small tables) count as arguments, as XLA's do
    out["data"] += pk.arguments - 3 * params - data
    out["estimated_bytes"] = pk.total
    assert sum(v for k, v in out.items() if k != "estimated_bytes") == pk.total
    out.update({"by_term": pk.by_term, "peak_at": pk.at, "policy": policy, "dtype": dtype,
                "schedule": schedule})
    return out


PARTS = ("parameters", "optimizer", "data") + KINDS + ("outputs",)

__all__ = ["ADAM", "PARTS", "adam_step", "estimate", "step_args", "step_jaxpr", "step_of"]
