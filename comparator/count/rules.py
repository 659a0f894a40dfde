"""Per-primitive cost rules for the jaxpr walker.

One registry keyed by primitive name, filled through ``register``; a second
registration of the same name is refused.  Every primitive is in exactly one of
three states:

* counted   -- a rule computes its ``Cost`` from the equation's shapes;
* free      -- deliberately zero FLOPs (layout, copies, dtype changes,
               indexing); its bytes are still counted;
* unknown   -- no rule: the walker reports it in ``unsupported`` with its
               count, never silently as zero.

Call-like primitives (pjit, custom_vjp_call, scan, cond, while ...) are not
here: the walker recurses into them.

The per-element conventions (stated once, used by the analytic formulas too):
  elementwise op            1 FLOP per output element (add, mul, max, select,
                            compare, exp, ...); transcendentals are also
                            counted in ``transcendentals``
  integer_pow x**n          multiplications of square-and-multiply
  reduction over k -> 1     k - 1 FLOPs per output element
  cumulative op             1 FLOP per element
  sort of a k-long axis     k * ceil(log2 k) comparisons per sorted row
  top_k of a k-long axis    the same: XLA's generic TopK sorts the row
  scatter-add               1 FLOP per update element
  random bits (threefry)    THREEFRY_OPS per 32-bit word
  contraction               2 FLOPs per multiply-add; a grouped (ragged) product
                            multiplies each row by its own group's matrix only
"""
from __future__ import annotations

import math
from typing import Callable

from comparator.count.value import Cost

Rule = Callable[[object], Cost]
RULES: dict[str, Rule] = {}


def register(*names: str):
    """Register one rule for one or more primitive names (duplicates refused)."""

    def deco(fn: Rule) -> Rule:
        for name in names:
            if name in RULES:
                raise ValueError(f"a cost rule for primitive {name!r} is already registered")
            RULES[name] = fn
        return fn

    return deco


# -- shapes and bytes -------------------------------------------------------

def _size(aval) -> int:
    shape = getattr(aval, "shape", ())
    return int(math.prod(int(d) for d in shape))


def itemsize(dtype) -> int:
    """Bytes per element of ``dtype``: a stored program's dtype carries them
    (``stored_itemsize``: no NumPy imported to evaluate one); extended dtypes (PRNG keys)
    are two uint32 words per key."""
    stored = getattr(dtype, "stored_itemsize", None)
    if stored is not None:
        return stored
    import numpy as np
    try:
        return np.dtype(dtype).itemsize
    except TypeError:
        return 8


def _nbytes(aval) -> int:
    dtype = getattr(aval, "dtype", None)
    if dtype is None:
        return 0
    return _size(aval) * itemsize(dtype)


def _io_bytes(eqn) -> int:
    ins = sum(_nbytes(v.aval) for v in eqn.invars if hasattr(v, "aval"))
    outs = sum(_nbytes(v.aval) for v in eqn.outvars)
    return ins + outs


def _out_size(eqn) -> int:
    return sum(_size(v.aval) for v in eqn.outvars)


def _in_size(eqn, i: int = 0) -> int:
    return _size(eqn.invars[i].aval)


# -- contractions -------------------------------------------------------------

@register("dot_general")
def _dot_general(eqn) -> Cost:
    (lhs_contract, _), _ = eqn.params["dimension_numbers"]
    lhs_shape = eqn.invars[0].aval.shape
    k = math.prod(int(lhs_shape[d]) for d in lhs_contract)
    flops = 2 * _out_size(eqn) * k
    return Cost(flops=flops, matmul=flops, bytes=_io_bytes(eqn))


@register("ragged_dot_general")
def _ragged_dot(eqn) -> Cost:
    """``jax.lax.ragged_dot``: rows of the lhs in ``g`` groups, each row multiplied by its
    group's matrix.  Ragged rows not contracted (the forward, the lhs gradient): 2 x out x
    contracted size; ragged rows contracted (the rhs gradient, one output per group): each
    row adds into one group's output, 2 x out / g x contracted size."""
    rdn = eqn.params["ragged_dot_dimension_numbers"]
    (lhs_contract, _), _ = rdn.dot_dimension_numbers
    lhs_shape = eqn.invars[0].aval.shape
    k = math.prod(int(lhs_shape[d]) for d in lhs_contract)
    out = _out_size(eqn)
    if any(d in lhs_contract for d in rdn.lhs_ragged_dimensions):
        out //= int(eqn.invars[2].aval.shape[0])          # the group sizes: one per group
    flops = 2 * out * k
    return Cost(flops=flops, matmul=flops, bytes=_io_bytes(eqn))


@register("conv_general_dilated")
def _conv(eqn) -> Cost:
    rhs = eqn.invars[1].aval.shape
    dn = eqn.params["dimension_numbers"]
    rhs_spec = dn.rhs_spec  # (out_ch, in_ch, *spatial) positions
    in_ch = int(rhs[rhs_spec[1]])
    spatial = math.prod(int(rhs[d]) for d in rhs_spec[2:])
    flops = 2 * _out_size(eqn) * in_ch * spatial
    return Cost(flops=flops, matmul=flops, bytes=_io_bytes(eqn))


# -- elementwise ------------------------------------------------------------

ELEMENTWISE = (
    "add", "add_any", "sub", "mul", "div", "rem", "neg", "max", "min", "abs",
    "sign", "floor", "ceil", "round", "nextafter", "square", "reciprocal",
    "select_n", "clamp", "eq", "ne", "lt", "le", "gt", "ge", "and", "or", "not",
    "xor", "shift_left", "shift_right_logical", "shift_right_arithmetic",
    "is_finite", "population_count", "copysign",
)
TRANSCENDENTAL = (
    "exp", "exp2", "log", "log1p", "expm1", "tanh", "logistic", "erf", "erfc",
    "erf_inv", "sin", "cos", "tan", "asin", "acos", "atan", "atan2", "sinh",
    "cosh", "asinh", "acosh", "atanh", "pow", "sqrt", "rsqrt", "cbrt", "lgamma",
    "digamma",
)


@register(*ELEMENTWISE)
def _elementwise(eqn) -> Cost:
    n = _out_size(eqn)
    return Cost(flops=n, bytes=_io_bytes(eqn))


@register(*TRANSCENDENTAL)
def _transcendental(eqn) -> Cost:
    n = _out_size(eqn)
    return Cost(flops=n, transcendentals=n, bytes=_io_bytes(eqn))


def integer_pow_mults(y: int) -> int:
    """Multiplications square-and-multiply needs for x**y (a reciprocal for y<0 adds one)."""
    m = abs(int(y))
    if m <= 1:
        mults = 0
    else:
        mults = m.bit_length() - 1 + bin(m).count("1") - 1
    return max(1, mults + (1 if y < 0 else 0))


@register("integer_pow")
def _integer_pow(eqn) -> Cost:
    n = _out_size(eqn)
    return Cost(flops=n * integer_pow_mults(eqn.params["y"]), bytes=_io_bytes(eqn))


# -- reductions and scans ----------------------------------------------------

@register("reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "reduce_and",
          "reduce_or", "reduce_xor", "argmax", "argmin")
def _reduce(eqn) -> Cost:
    n_in = _in_size(eqn)
    n_out = _out_size(eqn)
    return Cost(flops=n_in - n_out, bytes=_io_bytes(eqn))


@register("cumsum", "cumprod", "cummax", "cummin", "cumlogsumexp")
def _cumulative(eqn) -> Cost:
    n = _in_size(eqn)
    t = n if eqn.primitive.name == "cumlogsumexp" else 0
    return Cost(flops=n, transcendentals=t, bytes=_io_bytes(eqn))


def sort_comparisons(rows: int, k: int) -> int:
    """Comparisons charged for sorting ``rows`` rows of length ``k``."""
    return rows * k * max(1, math.ceil(math.log2(k))) if k > 1 else 0


@register("sort")
def _sort(eqn) -> Cost:
    shape = eqn.invars[0].aval.shape
    dim = eqn.params["dimension"]
    k = int(shape[dim])
    rows = _size(eqn.invars[0].aval) // max(k, 1)
    return Cost(flops=sort_comparisons(rows, k), bytes=_io_bytes(eqn))


@register("top_k")
def _top_k(eqn) -> Cost:
    shape = eqn.invars[0].aval.shape
    k = int(shape[-1])
    rows = _size(eqn.invars[0].aval) // max(k, 1)
    return Cost(flops=sort_comparisons(rows, k), bytes=_io_bytes(eqn))


@register("scatter-add", "scatter_add", "scatter-mul", "scatter_mul", "scatter-min",
          "scatter_min", "scatter-max", "scatter_max")
def _scatter_combine(eqn) -> Cost:
    updates = eqn.invars[2].aval
    return Cost(flops=_size(updates), bytes=_io_bytes(eqn))


# -- random numbers ---------------------------------------------------------

# threefry2x32 makes two 32-bit words per call: 20 rounds of (add, rotate =
# 2 shifts + or, xor) = 5 ops, plus 5 key injections of 2 adds.
THREEFRY_OPS = (20 * 5 + 5 * 2) // 2  # per 32-bit word


@register("random_bits", "threefry2x32")
def _random_bits(eqn) -> Cost:
    words = _out_size(eqn)
    return Cost(flops=words * THREEFRY_OPS, bytes=_io_bytes(eqn))


@register("random_split", "random_fold_in")
def _random_keys(eqn) -> Cost:
    words = 2 * _out_size(eqn)  # a threefry key is two 32-bit words
    return Cost(flops=words * THREEFRY_OPS, bytes=_io_bytes(eqn))


# -- deliberately free ---------------------------------------------------------

FREE = (
    "reshape", "squeeze", "expand_dims", "broadcast_in_dim", "transpose", "rev",
    "slice", "dynamic_slice", "dynamic_update_slice", "concatenate", "pad",
    "gather", "scatter", "select_and_gather_add", "convert_element_type",
    "bitcast_convert_type", "reduce_precision", "copy", "copy_p", "iota",
    "stop_gradient", "random_wrap", "random_unwrap", "random_seed",
    "optimization_barrier", "split",
    "device_put", "sharding_constraint", "mesh_cast", "pvary",
)


@register(*FREE)
def _free(eqn) -> Cost:
    return Cost(bytes=_io_bytes(eqn))


def cost_of(eqn) -> Cost | None:
    """The cost of one equation, or None when no rule exists (unsupported)."""
    rule = RULES.get(eqn.primitive.name)
    return None if rule is None else rule(eqn)
