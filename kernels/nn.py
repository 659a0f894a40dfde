"""Small building blocks shared by every model: projections, norms, activations, loss.

Callers wrap each call in ``jax.named_scope(<term>)``; these functions add no
scope of their own so one block can serve several terms.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def lift(v: jax.Array, ndim: int) -> jax.Array:
    """A [k] vector as [1, ..., 1, k] of rank ``ndim`` (explicit, no rank promotion)."""
    return v.reshape((1,) * (ndim - 1) + v.shape[-1:])


def linear(x: jax.Array, w: jax.Array, b: jax.Array | None = None) -> jax.Array:
    """x [..., din] @ w [din, dout] (+ b [dout])."""
    y = jnp.einsum("...i,io->...o", x, w)
    return y if b is None else y + lift(b, y.ndim)


def layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array | None, eps: float) -> jax.Array:
    """LayerNorm over the last axis (bias=None: RMSNorm as in T5, no centring)."""
    if bias is None:
        var = jnp.mean(jnp.square(x), axis=-1, keepdims=True)
        return x * jax.lax.rsqrt(var + eps) * lift(scale, x.ndim)
    mean = jnp.mean(x, axis=-1, keepdims=True)
    xc = x - mean
    var = jnp.mean(jnp.square(xc), axis=-1, keepdims=True)
    return xc * jax.lax.rsqrt(var + eps) * lift(scale, x.ndim) + lift(bias, x.ndim)


ACTIVATIONS = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),   # BERT, ALBERT, ELECTRA
    "gelu_tanh": lambda x: jax.nn.gelu(x, approximate=True),  # GPT-2 ("gelu_new")
    "relu": jax.nn.relu,                                     # T5 v1.0, Reformer
    "silu": jax.nn.silu,                                     # x sigmoid(x): SwiGLU (Llama)
}


def activation(name: str, x: jax.Array) -> jax.Array:
    return ACTIVATIONS[name](x)


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy; logits [n, V], integer labels [n].  Computed in fp32
    whatever the logits' dtype (a bf16 step keeps an fp32 loss)."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    picked = jnp.take_along_axis(logp, labels[:, None], axis=-1)[:, 0]
    return -jnp.mean(picked)


def sigmoid_bce(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean binary cross-entropy with logits (ELECTRA's replaced-token detection), fp32."""
    logits = logits.astype(jnp.float32)
    t = targets.astype(logits.dtype)
    return jnp.mean(jnp.maximum(logits, 0.0) - logits * t + jnp.log1p(jnp.exp(-jnp.abs(logits))))
