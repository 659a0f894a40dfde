"""What the counting and benchmarking code needs of a runnable model (imports jax).

A ``Program`` bundles a Flax model's pre-training step in pure functions:
``init(rng, batch, seq)`` -> params, ``loss(params, data, rng)`` -> scalar,
``spec(batch, seq)`` -> the abstract inputs (``jax.ShapeDtypeStruct``), and
``example(rng, batch, seq)`` -> concrete random inputs of that spec.
``train_step`` is loss + gradient, what one optimiser step differentiates.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp

from .blocks import shapes_only

# A raw PRNG key as a shape: what a trace runs on.  ``init`` under ``eval_shape`` takes it
# abstract too -- a concrete ``PRNGKey(0)`` would compile XLA's seeding computation (the
# MLIR context and a compile, about 0.1 s of a cold process) for values no one reads.
RAW_KEY = jax.ShapeDtypeStruct((2,), jnp.uint32)


@dataclass(frozen=True)
class Program:
    init: Callable
    loss: Callable
    spec: Callable
    # every layer a jitted call (blocks.JitLayer): tracing costs about one layer whatever
    # the depth, so counting tools trace the full model rather than reduce its depth
    jitted_layers: bool = False

    def __post_init__(self):
        # Applying a model never uses its initialisers' values, only (in Flax's check of
        # every parameter) their shapes: let them trace zeros, not random draws.
        object.__setattr__(self, "loss", _shapes_only(self.loss))

    def abstract_params(self, batch: int, seq: int):
        """The parameters' shapes and dtypes: ``init`` under ``eval_shape``, its
        initialisers tracing zeros instead of random draws (``blocks.shapes_only``)."""
        with shapes_only():
            return jax.eval_shape(lambda r: self.init(r, batch, seq), RAW_KEY)

    def abstract_inputs(self, batch: int, seq: int) -> tuple:
        """(params, data, PRNG key) as ``jax.ShapeDtypeStruct``s: what a trace runs on."""
        return (self.abstract_params(batch, seq), spec_structs(self.spec(batch, seq)),
                RAW_KEY)

    def example(self, rng, batch: int, seq: int) -> dict:
        """Random token inputs matching ``spec`` (integers drawn below each field's bound)."""
        spec = self.spec(batch, seq)
        out = {}
        for i, (name, (sds, bound)) in enumerate(sorted(spec.items())):
            key = jax.random.fold_in(rng, i)
            out[name] = jax.random.randint(key, sds.shape, 0, bound, dtype=sds.dtype)
        return out

    def forward(self, params, data, rng):
        return self.loss(params, data, rng)

    def train_step(self, params, data, rng):
        return jax.value_and_grad(self.loss)(params, data, rng)


def _shapes_only(fn):
    @functools.wraps(fn)
    def run(*args, **kwargs):
        with shapes_only():
            return fn(*args, **kwargs)
    return run


def int_spec(shape, bound: int):
    """An integer input of ``shape`` whose values lie in [0, bound)."""
    return (jax.ShapeDtypeStruct(tuple(shape), jnp.int32), int(bound))


def spec_structs(spec: dict) -> dict:
    return {k: v[0] for k, v in spec.items()}
