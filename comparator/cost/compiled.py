"""The training step as ``comparator bench`` compiles it, shared by the bench (which runs it)
and the time model (which reads its compiled regions, ``cost.regions``).

``DTYPES``: the training dtypes (``pricing.DTYPE_BYTES``).  ``step_function(prog, dtype)``:
``(params, data, rng) -> (loss, grads)``; fp32 is the model as written, bf16/fp16 keep fp32
master parameters and cast them inside the loss, tf32 is fp32 with TensorFloat-32 matmuls
(see ``comparator.measure.bench``).  ``compile_step`` compiles it for arrays or abstract
``jax.ShapeDtypeStruct`` inputs with ``compile_options_for()`` (``CPU_COMPILE_OPTIONS`` on a
CPU backend).  jax is imported inside the functions only.
"""
from __future__ import annotations

DTYPES = ("fp32", "tf32", "bf16", "fp16")   # costmodel.DTYPE_BYTES: the training dtypes
# XLA:CPU options every benchmarked step is compiled with on CPU: XLA's own emitters and
# Eigen's matmuls instead of the experimental YNNPACK fusions, whose reductions and small
# batched matmuls were the slowest ops of the Reformer step (BENCHMARKS.md: 1.1-1.3x on
# its whole step); results equal up to summation order.  And JAX's remat barriers kept
# through scheduling, as XLA:GPU keeps them (its barrier expander runs after scheduling):
# XLA:CPU's expander runs before layout assignment, and its later CSE and breadth-first
# schedule then merge part of a checkpointed layer's recomputation with the forward and run
# the rest early, undoing per-layer checkpointing at some sizes (BENCHMARKS.md, issue 18);
# without barriers (no jax.checkpoint) the option changes nothing
BARRIERS_KEPT = {"xla_disable_hlo_passes": "cse_barrier_expander"}
CPU_COMPILE_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "", **BARRIERS_KEPT}


def check_dtype(dtype: str) -> str:
    """The catalogue's name for a training dtype (``costmodel.dtype_key``), or ValueError."""
    from comparator.cost.pricing import dtype_key
    key = dtype_key(dtype)
    if key not in DTYPES:
        raise ValueError(f"dtype {dtype!r}: benchmarked training dtypes are "
                         + ", ".join(DTYPES))
    return key


def compute_dtype(dtype: str):
    """The array dtype the step computes in: float32 for fp32/tf32, else 16-bit."""
    import jax.numpy as jnp
    return {"fp32": jnp.float32, "tf32": jnp.float32, "bf16": jnp.bfloat16,
            "fp16": jnp.float16}[check_dtype(dtype)]


def matmul_precision(dtype: str) -> str | None:
    """``jax.default_matmul_precision`` for the dtype: tensorfloat32 for tf32, else None."""
    return "tensorfloat32" if check_dtype(dtype) == "tf32" else None


def step_function(prog, dtype: str = "fp32"):
    """``(params, data, rng) -> (loss, grads)`` in ``dtype`` (see the module docstring):
    ``prog.train_step`` for fp32/tf32; for 16-bit, fp32 parameters cast inside the loss."""
    import jax
    import jax.numpy as jnp
    ct = compute_dtype(dtype)
    if ct == jnp.float32:
        return prog.train_step

    def low(x):
        return x.astype(ct) if jnp.issubdtype(x.dtype, jnp.floating) else x

    def loss(params, data, rng):
        return prog.loss(jax.tree.map(low, params), data, rng).astype(jnp.float32)

    return jax.value_and_grad(loss)


def compile_options_for(options: dict | None = None, cpu_defaults: bool = True) -> dict:
    """``CPU_COMPILE_OPTIONS`` on a CPU backend (unless ``cpu_defaults`` is False), updated
    with ``options``."""
    import jax
    base = dict(CPU_COMPILE_OPTIONS) if cpu_defaults and jax.default_backend() == "cpu" else {}
    return {**base, **(options or {})}


def compile_step(prog, args, dtype: str = "fp32", compile_options: dict | None = None):
    """``prog``'s training step in ``dtype`` compiled for ``args`` (arrays, or
    ``jax.ShapeDtypeStruct``s: compiling allocates nothing) with these XLA options."""
    import jax
    with jax.default_matmul_precision(matmul_precision(dtype)):
        return jax.jit(step_function(prog, dtype)).lower(*args).compile(compile_options or None)
