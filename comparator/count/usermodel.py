"""A user's own model, as the commands take it (``--model FILE.py:FACTORY``): the factory
protocol, its counts and what compiling or running its training step needs.

The factory is called as ``FACTORY(seq_len, batch)`` and returns a ``UserModel``
(``comparator.UserModel``) or a dict of its fields, one of two forms:

* ``UserModel(module=M, inputs=(x, ...))``: a Flax linen module applied to the inputs.  The
  training step is ``loss(M.apply(variables, *inputs), *inputs)`` -- ``loss`` default the
  mean of the outputs -- and its gradients with respect to the parameters (``M.init``
  abstractly: nothing is allocated); ``rngs``: random streams the module draws
  (``("dropout",)``), ``apply_kwargs``: keyword arguments of ``init`` and ``apply``;
* ``UserModel(fn=f, params=p, inputs=(x, ...))``: a loss ``f(p, *inputs) -> scalar``; the
  training step is ``jax.value_and_grad(f)(p, *inputs)``.

``inputs``: arrays or ``jax.ShapeDtypeStruct``s (or pytrees of them) of ``batch``
sequences of ``seq_len``.  ``seq_axis``: the sequence axis -- an int for every input that
has it (default 1: inputs shaped (batch, length, ...)), a tuple of an axis or None per
input, or None: no sequence axis.  ``name``: the model's name in the records.

Counting is ``usercount``'s: terms are the user's ``jax.named_scope``s where they start at a
term root (``attn/scores``), else the primitive; along the sequence axis the length is
traced symbolic and the counts at other lengths are that program's.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, fields
from typing import Callable

import jax
import jax.numpy as jnp

from comparator.count.targets import abstract, function_target, module_target
from comparator.count.usercount import CountError, CountRecord, count_target

FORMS = ("UserModel(module=<a flax.linen.Module>, inputs=(...), [loss=, seq_axis=, rngs=, "
         "apply_kwargs=, name=]) or UserModel(fn=<loss(params, *inputs)>, params=..., "
         "inputs=(...), [seq_axis=, name=]), or a dict of those fields")


def _is_module(x) -> bool:
    try:
        import flax.linen as nn
    except ImportError:    # pragma: no cover -- flax is a dependency
        return False
    return isinstance(x, nn.Module)


def _arrays(tree) -> bool:
    leaves = jax.tree_util.tree_leaves(tree)
    return bool(leaves) and all(hasattr(x, "shape") and hasattr(x, "dtype") for x in leaves)


@dataclass(frozen=True, eq=False)
class UserModel:
    """A user's model and example inputs at one length (see the module docstring)."""
    module: object = None
    fn: Callable | None = None
    inputs: tuple = ()
    params: object = None
    loss: Callable | None = None
    seq_axis: object = 1
    rngs: tuple = ()
    apply_kwargs: dict | None = None
    name: str | None = None

    def __post_init__(self):
        if (self.module is None) == (self.fn is None):
            raise CountError("module", self.module, "exactly one of module (a Flax linen "
                             "module) and fn (a loss function of params and inputs)")
        if self.module is not None and not _is_module(self.module):
            raise CountError("module", type(self.module).__name__, "a flax.linen.Module")
        if self.fn is not None:
            if not callable(self.fn):
                raise CountError("fn", type(self.fn).__name__, "a function "
                                 "fn(params, *inputs) returning a scalar loss")
            if self.params is None or not _arrays(self.params):
                raise CountError("params", type(self.params).__name__, "with fn: the "
                                 "parameters (a pytree of arrays or jax.ShapeDtypeStruct)")
            if self.loss is not None:
                raise CountError("loss", self.loss, "only with module (fn is the loss)")
        elif self.params is not None:
            raise CountError("params", type(self.params).__name__, "only with fn (a "
                             "module's parameters come from its init)")
        inputs = self.inputs
        if not isinstance(inputs, (tuple, list)):
            inputs = (inputs,)
        if not inputs or not all(_arrays(x) for x in inputs):
            raise CountError("inputs", inputs if not inputs else type(self.inputs).__name__
                             if not isinstance(self.inputs, (tuple, list)) else
                             tuple(type(x).__name__ for x in inputs), "a tuple of arrays or "
                             "jax.ShapeDtypeStruct (or pytrees of them): the example batch")
        object.__setattr__(self, "inputs", tuple(inputs))
        if self.loss is not None and not callable(self.loss):
            raise CountError("loss", type(self.loss).__name__, "a function "
                             "loss(outputs, *inputs) returning a scalar")
        ax = self.seq_axis
        ok = ax is None or (isinstance(ax, int) and not isinstance(ax, bool)) or (
            isinstance(ax, (tuple, list)) and len(ax) == len(inputs) and all(
                a is None or (isinstance(a, int) and not isinstance(a, bool)) for a in ax))
        if not ok:
            raise CountError("seq_axis", ax, f"an axis (an int), None, or a tuple of "
                             f"{len(inputs)} entries: an axis or None per input")
        if isinstance(ax, list):
            object.__setattr__(self, "seq_axis", tuple(ax))
        object.__setattr__(self, "rngs", tuple([self.rngs] if isinstance(self.rngs, str)
                                               else self.rngs or ()))
        if self.apply_kwargs is not None and not isinstance(self.apply_kwargs, dict):
            raise CountError("apply_kwargs", self.apply_kwargs, "a dict of keyword arguments")
        if self.name is not None and (not isinstance(self.name, str) or not self.name):
            raise CountError("name", self.name, "a non-empty string")

    @property
    def label(self) -> str:
        """Its own name: ``name``, else the module's class or the function's name."""
        if self.name:
            return self.name
        f = self.module if self.module is not None else self.fn
        return getattr(f, "__name__", None) or type(f).__name__


def as_user_model(value) -> UserModel:
    """A factory's return value as a ``UserModel`` (a dict: its fields)."""
    if isinstance(value, UserModel):
        return value
    if isinstance(value, dict):
        names = {f.name for f in fields(UserModel)}
        extra = sorted(set(value) - names)
        if extra:
            raise CountError(extra[0], value[extra[0]], "a field of UserModel: "
                             + ", ".join(sorted(names)))
        return UserModel(**value)
    raise CountError("returned", type(value).__name__, FORMS)


def _function_axes(um: UserModel):
    ax = um.seq_axis
    return (None, *ax) if isinstance(ax, tuple) else ax


def target(um: UserModel, symbolic: bool = True):
    """The ``usercount.Target`` of the model's forward and training step; ``symbolic``
    False: no sequence axis (the counts at the example's length only)."""
    if um.module is not None:
        return module_target(um.module, um.inputs, train=True, loss=um.loss,
                             seq_axis=um.seq_axis if symbolic else None, rngs=um.rngs,
                             apply_kwargs=um.apply_kwargs)
    return function_target(um.fn, (um.params, *um.inputs), train=True, argnums=0,
                           seq_axis=_function_axes(um) if symbolic else None)


def count(um: UserModel, scope: str = "matmul", symbolic: bool = True) -> CountRecord:
    """Its counts at the example's length (with a sequence axis and ``symbolic``: the
    closed forms in n and ``at(n)``)."""
    return count_target(target(um, symbolic), scope)


def _same_fn(f, g) -> bool:
    """The same function: one object, equal, or the same code over equal captured values
    (a loss defined inside the factory is a new object at every call)."""
    if f is g:
        return True
    try:
        if f == g:
            return True
        cf, cg = getattr(f, "__code__", None), getattr(g, "__code__", None)
        if cf is None or cf is not cg or f.__defaults__ != g.__defaults__:
            return False
        a, b = f.__closure__ or (), g.__closure__ or ()
        return len(a) == len(b) and all(x.cell_contents is y.cell_contents or bool(
            x.cell_contents == y.cell_contents) for x, y in zip(a, b))
    except Exception:  # noqa: BLE001 -- values that do not compare: not the same
        return False


def same(a: UserModel, b: UserModel) -> bool:
    """The factory built the same model at two lengths: everything but the inputs'
    length along the sequence axis is equal (so one symbolic trace counts both)."""
    try:
        if not ((a.module is None) == (b.module is None) and _same_fn(a.fn, b.fn)
                and (a.module is None or a.module == b.module) and _same_fn(a.loss, b.loss)
                and a.seq_axis == b.seq_axis and a.rngs == b.rngs
                and a.apply_kwargs == b.apply_kwargs and a.name == b.name
                and abstract(a.params) == abstract(b.params)):
            return False
        ta, tb = target(a), target(b)
        return ta.length is not None and tb.length is not None and \
            abstract(ta.args(tb.length)[-len(b.inputs):]) == abstract(tuple(b.inputs))
    except Exception:  # noqa: BLE001 -- what cannot be compared is counted apart
        return False


def loss_parts(um: UserModel):
    """``(loss, split)``: ``split(args)`` of the target's arguments is ``(params, rest)``
    and ``loss(params, *rest)`` the scalar the training step differentiates."""
    if um.fn is not None:
        return um.fn, lambda args: (args[0], tuple(args[1:]))
    module, names, kw = um.module, um.rngs, dict(um.apply_kwargs or {})
    objective = um.loss or (lambda out, *xs: sum(jnp.mean(x)
                                                 for x in jax.tree_util.tree_leaves(out)))

    def loss(params, rest, keys, *xs):
        out = module.apply({**rest, "params": params}, *xs,
                           rngs=dict(zip(names, keys)) or None, **kw)
        return objective(out, *xs)

    def split(args):
        variables, keys, *xs = args
        rest = {k: v for k, v in variables.items() if k != "params"}
        return variables.get("params", {}), (rest, keys, *xs)

    return loss, split


def _saved(um: UserModel, t, n) -> object:
    """Bytes the training step saves for its backward at length ``n`` (None: the
    example's; a symbolic dim: a dim expression): ``memory.residuals``, the activations
    autodiff keeps."""
    from comparator.count.memory import residuals
    loss, split = loss_parts(um)
    params, rest = split(t.args(n))
    return residuals(loss, params, *rest).total


def activation_bytes(um: UserModel) -> int:
    """Bytes the training step saves for its backward at the example's length."""
    return int(_saved(um, target(um, symbolic=False), None))


def activation_bytes_in_n(um: UserModel, lengths) -> dict | None:
    """``{n: bytes}`` saved for the backward at each of ``lengths`` from one trace with the
    length symbolic, checked at the example's length; None where that fails (count each
    length's own model with ``activation_bytes``)."""
    from comparator.count.symbolic import ev
    t = target(um)
    if t.length is None:
        return None
    try:
        total = _saved(um, t, jax.export.symbolic_shape("n")[0])
        if ev(total, {"n": t.length}, {}) != _saved(um, t, None):
            return None
        return {k: ev(total, {"n": k}, {}) for k in lengths}
    except Exception:  # noqa: BLE001 -- the caller counts each length concretely
        return None


class StepProgram:
    """The training step of a user's model in the shape ``cost.compiled`` compiles and
    ``measure.bench`` runs: ``loss(params, data, rng)`` with ``data`` the other arguments
    of the loss, and ``train_step`` its value and gradients."""

    def __init__(self, loss):
        self._loss = loss

    def loss(self, params, data, rng=None):
        return self._loss(params, *data)

    def train_step(self, params, data, rng=None):
        return jax.value_and_grad(self.loss)(params, data, rng)


def _cast(tree, dtype):
    """Floating leaves of ``tree`` in ``dtype`` (abstract or concrete)."""
    def one(x):
        if not (hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating)):
            return x
        if isinstance(x, jax.ShapeDtypeStruct):
            return jax.ShapeDtypeStruct(x.shape, dtype)
        return x.astype(dtype)
    return jax.tree_util.tree_map(one, tree)


def step_program(um: UserModel, compute_dtype=None) -> tuple[StepProgram, tuple]:
    """``(program, (params, data, rng))``: the training step and its abstract arguments at
    the example's length, floating inputs in ``compute_dtype`` (a 16-bit step computes in
    it; the parameters stay fp32 and are cast inside the loss)."""
    loss, split = loss_parts(um)
    params, rest = split(target(um, symbolic=False).args(None))
    if compute_dtype is not None:
        rest = _cast(rest, compute_dtype)
    return StepProgram(loss), (abstract(params), rest,
                               jax.ShapeDtypeStruct((2,), jnp.uint32))


def concrete(tree, seed: int = 0):
    """Arrays for a pytree of arrays and ``jax.ShapeDtypeStruct``s: abstract floating
    leaves drawn from a normal distribution (x 0.02), other abstract ones zeros."""
    import numpy as np
    rng = np.random.default_rng(seed)
    leaves, tdef = jax.tree_util.tree_flatten(tree)
    out = []
    for x in leaves:
        if isinstance(x, jax.ShapeDtypeStruct):
            x = jnp.asarray(0.02 * rng.standard_normal(x.shape), x.dtype) \
                if jnp.issubdtype(x.dtype, jnp.floating) else jnp.zeros(x.shape, x.dtype)
        out.append(x)
    return jax.tree_util.tree_unflatten(tdef, out)


def step_arguments(um: UserModel, compute_dtype=None, seed: int = 0) -> tuple:
    """``(params, data, rng)`` as arrays to run the step on: the module's parameters
    initialised (``init``), given arrays kept, abstract ones drawn (``concrete``)."""
    key = jax.random.PRNGKey(seed)
    inputs = concrete(um.inputs, seed + 1)
    if um.fn is not None:
        params, rest = concrete(um.params, seed + 2), tuple(inputs)
    else:
        kw, keys = dict(um.apply_kwargs or {}), tuple(key for _ in um.rngs)
        variables = jax.jit(lambda k, *xs: um.module.init(
            {"params": k, **{s: k for s in um.rngs}}, *xs, **kw))(key, *inputs)
        _, split = loss_parts(um)
        params, rest = split((variables, keys, *inputs))
    if compute_dtype is not None:
        rest = _cast(rest, compute_dtype)
    return params, rest, key


def factory_arity(factory) -> str | None:
    """Why ``factory`` cannot be called as ``factory(seq_len, batch)``, or None."""
    try:
        inspect.signature(factory).bind(1, 1)
    except TypeError as err:
        return str(err)
    except ValueError:   # no signature (a builtin): try the call
        return None
    return None


__all__ = ["FORMS", "StepProgram", "UserModel", "activation_bytes", "activation_bytes_in_n",
           "as_user_model",
           "concrete", "count", "factory_arity", "loss_parts", "same", "step_arguments",
           "step_program", "target"]
