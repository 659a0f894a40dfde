"""What one optimised-HLO instruction costs, for ``regions``: its FLOPs, transcendentals,
contraction shape, the bytes it reduces, the bytes it transposes in memory, and the
bytes a fused computation reads and writes.

``Cost`` of one instruction: ``flops`` (an elementwise op: one per output element; a
reduction: input - output elements; a contraction 2 m n k batch; a sort: rows x k x
ceil(log2 k) comparisons), ``transcendentals`` (exp, log, tanh, ... also in ``flops``),
``shape`` (m, k, n, batch) of a contraction, ``reduced`` (bytes entering a reduction that
adds: a reduction runs at its own rate, far below a stream's on a CPU) and
``reduced_max`` (bytes entering one that compares: max, min, argmax -- slower still),
``transposed`` (bytes
read and written by a copy or transpose that reorders memory, not a view) and ``run``
(the contiguous elements such a reordering moves at a time: 1 for a matrix transpose,
64 for a (seq, heads, 64) -> (heads, seq, 64) one).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from comparator.cost import hlo

FREE = frozenset({"parameter", "constant", "get-tuple-element", "tuple", "bitcast",
                  "after-all", "partition-id", "replica-id", "opt-barrier",
                  "add-dependency"})
TRANSCENDENTAL = frozenset({"exponential", "exponential-minus-one", "log", "log-plus-one",
                            "tanh", "logistic", "sqrt", "rsqrt", "cbrt", "sine", "cosine",
                            "tan", "atan2", "erf", "power"})
ARITHMETIC = frozenset({"add", "subtract", "multiply", "divide", "remainder", "maximum",
                        "minimum", "negate", "abs", "sign", "floor", "ceil", "compare",
                        "round-nearest-afz", "round-nearest-even", "select", "clamp", "and",
                        "or", "xor", "not", "shift-left", "shift-right-logical",
                        "shift-right-arithmetic", "is-finite", "popcnt", "clz", "real",
                        "imag", "complex"}) | TRANSCENDENTAL
MOVES = frozenset({"broadcast", "reshape", "transpose", "copy", "slice", "dynamic-slice",
                   "dynamic-update-slice", "concatenate", "pad", "iota", "reverse",
                   "convert", "bitcast-convert", "reduce-precision", "gather"}) | FREE
VIEWS = frozenset({"bitcast", "reshape", "transpose", "copy", "convert", "bitcast-convert"})
MATMUL_TARGETS = re.compile(r"matmul|gemm|dot", re.I)


@dataclass(frozen=True)
class Cost:
    flops: int = 0
    transcendentals: int = 0
    shape: tuple | None = None
    reduced: int = 0
    transposed: int = 0
    run: int = 0
    reduced_max: int = 0

    def __add__(self, o: "Cost") -> "Cost":
        runs = [r for r in (self.run, o.run) if r]
        return Cost(self.flops + o.flops, self.transcendentals + o.transcendentals,
                    self.shape or o.shape, self.reduced + o.reduced,
                    self.transposed + o.transposed, min(runs) if runs else 0,
                    self.reduced_max + o.reduced_max)


def contraction(ins: hlo.Instr, comp: hlo.Computation) -> tuple:
    """(m, k, n, batch) of a dot from its operands' shapes and dimension numbers."""
    lhs = comp.by_name[ins.operands[0]].shapes[0][1]
    rhs = comp.by_name[ins.operands[1]].shapes[0][1]
    lb, lc = ins.dims("lhs_batch_dims"), ins.dims("lhs_contracting_dims")
    rb, rc = ins.dims("rhs_batch_dims"), ins.dims("rhs_contracting_dims")
    size = lambda shape, idx: hlo.elements(shape[i] for i in idx)   # noqa: E731
    batch, k = size(lhs, lb), size(lhs, lc)
    m = size(lhs, [i for i in range(len(lhs)) if i not in lb + lc])
    n = size(rhs, [i for i in range(len(rhs)) if i not in rb + rc])
    return m, k, n, batch


def library_matmul(ins: hlo.Instr, comp: hlo.Computation) -> tuple | None:
    """(m, k, n, batch) of a library matmul custom-call: (..., m, k) x (..., k, n)."""
    a = comp.by_name[ins.operands[0]].shapes[0][1]
    b = comp.by_name[ins.operands[1]].shapes[0][1]
    if len(a) < 2 or len(b) < 2:
        return None
    out = ins.shapes[0][1]
    m, n = out[-2], out[-1]
    k = a[-1] if a[-1] in (b[-2], b[-1]) else a[-2]
    return m, k, n, hlo.elements(out[:-2])


def window(ins: hlo.Instr) -> int:
    m = re.search(r"size=([0-9x]+)", ins.attr("window") or "")
    return hlo.elements(int(x) for x in m.group(1).split("x")) if m else 1


def reordering(ins: hlo.Instr, comp: hlo.Computation) -> int | None:
    """The contiguous run (elements) of a copy or transpose that reorders memory, or None
    when it is a view (the same physical order of the elements, size-1 dims aside)."""
    src = comp.by_name.get(ins.operands[0]) if ins.operands else None
    if src is None or not ins.layouts or not src.layouts:
        return None
    dims, lin, lout = src.shapes[0][1], src.layouts[0], ins.layouts[0]
    if lin is None or lout is None or len(lin) != len(dims) or len(lout) != len(dims):
        return None
    perm = ins.dims("dimensions") if ins.opcode == "transpose" else tuple(range(len(dims)))
    before = [d for d in reversed(lin) if dims[d] > 1]              # major to minor
    after = [perm[d] for d in reversed(lout) if dims[perm[d]] > 1]
    if before == after:
        return None
    run = 1
    for a, b in zip(reversed(before), reversed(after)):
        if a != b:
            break
        run *= dims[a]
    return run


def adds(ins: hlo.Instr, comps: dict | None) -> bool:
    """Whether a reduction's combiner adds (or multiplies, ors...), from its ``to_apply``
    computation's root; a variadic reduction (argmax: a tuple) or a max/min compares.
    Without the module's computations: counted as adding."""
    if len(ins.operands) > 2:
        return False
    body = (comps or {}).get(ins.called("to_apply") or "")
    if body is None or not body.instrs:
        return True
    root = next((i for i in body.instrs if i.root), body.instrs[-1])
    return root.opcode in ("add", "multiply", "or", "and", "xor")


def cost(ins: hlo.Instr, comp: hlo.Computation, fused=None, comps=None) -> Cost | None:
    """The ``Cost`` of one instruction; None for an opcode without a rule.  ``fused``:
    a function costing a nested fusion's computation; ``comps``: the module's
    computations (a reduction's combiner)."""
    op, out = ins.opcode, ins.elements
    if op in ARITHMETIC:
        return Cost(out, out if op in TRANSCENDENTAL else 0)
    if op == "dot":
        m, k, n, b = contraction(ins, comp)
        return Cost(2 * m * k * n * b, shape=(m, k, n, b))
    if op == "custom-call" and MATMUL_TARGETS.search(ins.attr("custom_call_target") or ""):
        shape = library_matmul(ins, comp)
        if shape:
            return Cost(2 * hlo.elements(shape), shape=shape)
    if op in ("reduce", "reduce-window"):
        ins_ = [comp.by_name[o] for o in ins.operands[:len(ins.operands) // 2]]
        n_in = ins_[0].elements if ins_ else 0
        flops = max(0, n_in - out) if op == "reduce" else out * max(0, window(ins) - 1)
        nbytes = sum(v.nbytes for v in ins_)
        return Cost(flops, reduced=nbytes) if adds(ins, comps) else Cost(
            flops, reduced_max=nbytes)
    if op == "scatter":
        return Cost(comp.by_name[ins.operands[-1]].elements)
    if op == "sort":
        k = ins.shapes[0][1][ins.dims("dimensions")[0]] if ins.dims("dimensions") else 1
        rows = hlo.elements(ins.shapes[0][1]) // max(k, 1)
        return Cost(rows * k * max(1, math.ceil(math.log2(k))) if k > 1 else 0)
    if op in ("copy", "transpose"):
        run = reordering(ins, comp)
        return Cost() if run is None else Cost(transposed=2 * ins.nbytes, run=run)
    if op in MOVES:
        return Cost()
    if op == "fusion" and fused is not None:     # a fusion nested in a fusion
        return fused(ins)
    return None


# -- bytes a fused computation moves -------------------------------------------

def read_elements(value: hlo.Instr, users: dict) -> int:
    """Elements of ``value`` (a fused parameter) its computation reads: all, unless it is
    only sliced or gathered (what those read), or updated in place (nothing)."""
    total = 0
    for u in users.get(value.name, []):
        if u.opcode in VIEWS:
            total += read_elements(u, users)
        elif u.opcode in ("slice", "dynamic-slice", "gather") and u.operands[0] == value.name:
            total += u.elements
        elif u.opcode in ("dynamic-update-slice", "scatter") and u.operands[0] == value.name:
            continue              # updated in place: only the update moves
        else:
            return value.elements
    return min(total, value.elements)


def written(ins: hlo.Instr, comp: hlo.Computation) -> int:
    """Bytes an instruction's results write (an in-place update: the update's)."""
    if ins.opcode == "tuple":
        return sum(written(comp.by_name[o], comp) for o in ins.operands)
    if ins.opcode == "dynamic-update-slice":
        return comp.by_name[ins.operands[1]].nbytes
    if ins.opcode == "scatter":
        return comp.by_name[ins.operands[-1]].nbytes
    return ins.nbytes


def fusion_bytes(comp: hlo.Computation) -> int:
    """A fused computation's parameters read (``read_elements``) + its results written."""
    users = comp.users()
    read = 0
    for p in comp.instrs:
        if p.opcode == "parameter":
            width = hlo.WIDTH.get(p.shapes[0][0], 4) if p.shapes else 4
            read += read_elements(p, users) * width
    root = next((i for i in comp.instrs if i.root), comp.instrs[-1])
    return read + written(root, comp)


def plain_bytes(ins: hlo.Instr, comp: hlo.Computation) -> int:
    """An unfused instruction's operands read + results written (in place: the update)."""
    ops = [comp.by_name[o] for o in ins.operands if o in comp.by_name]
    if ins.opcode in ("dynamic-update-slice", "scatter"):
        return sum(o.nbytes for o in ops[1:]) + written(ins, comp) * (
            2 if ins.opcode == "scatter" else 1)
    if ins.opcode in ("gather", "slice", "dynamic-slice"):
        return sum(o.nbytes for o in ops[1:]) + 2 * ins.nbytes
    return sum(o.nbytes for o in ops) + ins.nbytes


__all__ = ["ARITHMETIC", "Cost", "FREE", "MOVES", "TRANSCENDENTAL", "VIEWS", "adds", "contraction",
           "cost", "fusion_bytes", "plain_bytes", "read_elements", "reordering", "written"]
