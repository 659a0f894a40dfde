"""What the Python API counts: a JAX function (``count_function``) or a Flax linen module
(``count_module``), as a ``usercount.Target`` -- the example arguments made abstract
(``jax.ShapeDtypeStruct``: nothing is allocated) and, along a sequence axis, of any length.

``seq_axis``: an int is that axis of every array argument (of a function: those not
differentiated, with ``train=True``; of a module: its inputs) that has it; a tuple gives
one axis or None per positional argument.  The example's sizes along it must agree: that
size is the example's length ``n``.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from comparator.count.usercount import CountError, CountRecord, Target, count_target


def abstract(tree):
    """ShapeDtypeStructs for every array of a pytree; other leaves (Python numbers) kept."""
    def one(x):
        if isinstance(x, jax.ShapeDtypeStruct) or not (hasattr(x, "shape")
                                                      and hasattr(x, "dtype")):
            return x
        return jax.ShapeDtypeStruct(tuple(x.shape), x.dtype)
    return jax.tree_util.tree_map(one, tree)


def _axis(x, axis: int):
    """``axis`` of the array leaf ``x`` (negative counted from the end), or None."""
    nd = len(getattr(x, "shape", ()) or ())
    ax = axis if axis >= 0 else nd + axis
    return ax if hasattr(x, "shape") and 0 <= ax < nd else None


def _axes(n_args: int, seq_axis, skip=()) -> list:
    if seq_axis is None:
        return [None] * n_args
    if isinstance(seq_axis, int) and not isinstance(seq_axis, bool):
        return [None if i in skip else seq_axis for i in range(n_args)]
    if isinstance(seq_axis, (tuple, list)) and len(seq_axis) == n_args and all(
            a is None or (isinstance(a, int) and not isinstance(a, bool)) for a in seq_axis):
        return list(seq_axis)
    raise CountError("seq_axis", seq_axis, f"an axis (an int), or a tuple of {n_args} entries: "
                                           "an axis or None per example argument")


def _length(args, axes, seq_axis):
    """The example's length along the axes (None without any), its sizes checked equal."""
    if all(a is None for a in axes):
        return None
    sizes = {x.shape[_axis(x, a)] for arg, a in zip(args, axes) if a is not None
             for x in jax.tree_util.tree_leaves(arg) if _axis(x, a) is not None}
    if not sizes:
        raise CountError("seq_axis", seq_axis, "an axis one of the example arguments has")
    if len(sizes) > 1:
        raise CountError("seq_axis", seq_axis, f"one length: the example arguments have "
                         f"sizes {sorted(sizes)} along it; give an axis or None per argument, "
                         "e.g. (1, None)")
    return sizes.pop()


def _lengthen(args, axes, n) -> tuple:
    """``args`` with the axes of ``axes`` of size ``n`` (None: as they are)."""
    if n is None:
        return tuple(args)

    def one(x, a):
        ax = _axis(x, a)
        if ax is None:
            return x
        shape = list(x.shape)
        shape[ax] = n
        return jax.ShapeDtypeStruct(tuple(shape), x.dtype)

    return tuple(arg if a is None else jax.tree_util.tree_map(lambda x: one(x, a), arg)
                 for arg, a in zip(args, axes))


def count_function(fn, args, kwargs=None, *, train: bool = False, argnums=0, seq_axis=None,
                   scope: str = "matmul") -> CountRecord:
    """Counts of ``fn(*args, **kwargs)`` (``kwargs`` static) and, with ``train``, of
    ``jax.value_and_grad(fn, argnums)`` (``fn`` returns a scalar loss)."""
    return count_target(function_target(fn, args, kwargs, train=train, argnums=argnums,
                                        seq_axis=seq_axis), scope)


def function_target(fn, args, kwargs=None, *, train: bool = False, argnums=0,
                    seq_axis=None) -> Target:
    """The ``Target`` of ``count_function``."""
    f = functools.partial(fn, **kwargs) if kwargs else fn
    args = abstract(tuple(args))
    nums = (argnums,) if isinstance(argnums, int) and not isinstance(argnums, bool) \
        else tuple(argnums) if isinstance(argnums, (tuple, list)) else None
    if not nums or not all(isinstance(i, int) and 0 <= i < len(args) for i in nums):
        raise CountError("argnums", argnums, f"positions of example arguments (0 to "
                                             f"{len(args) - 1}), an int or a tuple")
    axes = _axes(len(args), seq_axis, set(nums) if train else ())
    length = _length(args, axes, seq_axis)
    step, params = None, None
    if train:
        out = jax.eval_shape(f, *args)
        if getattr(out, "shape", None) != ():
            raise CountError("train", True, "a function returning a scalar loss (train=True "
                                            "counts jax.value_and_grad(fn, argnums))")
        leaves = [x for i in nums for x in jax.tree_util.tree_leaves(args[i])]
        if not all(jnp.issubdtype(x.dtype, jnp.inexact) for x in leaves):
            raise CountError("argnums", argnums, "positions of floating-point arguments "
                                                 "(the parameters differentiated)")
        step = jax.value_and_grad(f, argnums=argnums)

        def params(a):
            return [x for i in nums for x in jax.tree_util.tree_leaves(a[i])]
    name = getattr(fn, "__name__", type(fn).__name__)
    return Target(name, f, step, lambda n: _lengthen(args, axes, n), params, length)


def _mean(out, *inputs):
    """The default loss of ``count_module``: the mean of the outputs (summed over leaves)."""
    return sum(jnp.mean(x) for x in jax.tree_util.tree_leaves(out))


def count_module(module, inputs, *, train: bool = False, loss=None, seq_axis=None,
                 scope: str = "matmul", rngs=(), apply_kwargs=None) -> CountRecord:
    """Counts of a Flax linen ``module`` applied to ``inputs`` (its variables from
    ``jax.eval_shape(module.init, ...)``, parameters counted from them) and, with
    ``train``, of ``loss(outputs, *inputs)`` (default: the outputs' mean) and its
    gradients with respect to the parameters.  ``rngs``: names of the random streams the
    module draws at apply (``("dropout",)``); ``apply_kwargs``: keyword arguments of
    ``init`` and ``apply`` (``deterministic=True``)."""
    return count_target(module_target(module, inputs, train=train, loss=loss,
                                      seq_axis=seq_axis, rngs=rngs,
                                      apply_kwargs=apply_kwargs), scope)


def module_target(module, inputs, *, train: bool = False, loss=None, seq_axis=None, rngs=(),
                  apply_kwargs=None) -> Target:
    """The ``Target`` of ``count_module``; its arguments at a length are ``(variables,
    random keys, *inputs)``."""
    names, kw = tuple(rngs), dict(apply_kwargs or {})
    inputs = abstract(tuple(inputs))
    axes = _axes(len(inputs), seq_axis)
    length = _length(inputs, axes, seq_axis)
    key = jax.random.key(0)
    keys = tuple(key for _ in names)
    objective = loss or _mean

    def build(n):
        xs = _lengthen(inputs, axes, n)
        variables = jax.eval_shape(
            lambda *x: module.init({"params": key, **{s: key for s in names}}, *x, **kw), *xs)
        return (variables, keys, *xs)

    def forward(variables, ks, *xs):
        return module.apply(variables, *xs, rngs=dict(zip(names, ks)) or None, **kw)

    def step(variables, ks, *xs):
        rest = {k: v for k, v in variables.items() if k != "params"}

        def of(params):
            return objective(forward({**rest, "params": params}, ks, *xs), *xs)
        return jax.value_and_grad(of)(variables.get("params", {}))

    def params(args):
        return jax.tree_util.tree_leaves(args[0].get("params", {}))

    return Target(type(module).__name__, forward, step if train else None, build, params,
                  length)


__all__ = ["abstract", "count_function", "count_module", "function_target", "module_target"]
