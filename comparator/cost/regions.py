"""The compiled regions of a training step: what XLA really runs, read off its optimised HLO.

``step_regions(mod, cfg, seq, batch, dtype)`` compiles the model's training step as
``comparator bench`` does (``bench.compile_step``, the same XLA options; abstract inputs:
nothing is allocated or run) and reads ``compiled.as_text()``.  Every top-level
instruction of the entry computation, and of the bodies of its ``while`` loops (times the
trip count) and ``call``s, is one ``Region``:

* a ``fusion``: FLOPs = each elementwise op inside x its elements (transcendentals also
  counted apart), reductions (input - output elements), contractions 2 m n k batch;
  bytes = the fusion's operands read + its results written -- what moves, not the
  intermediates it keeps in registers.  An operand used only through slices or gathers
  counts the elements those read; the buffer a ``dynamic-update-slice`` or ``scatter``
  updates in place counts only the update;
* a ``dot`` (the CPU's Eigen matmul; a ``custom-call`` to a matmul library likewise): its
  contraction shape (m, k, n, batch) from the dimension numbers;
* ``sort``, ``gather``, ``scatter``, ``copy``, ``transpose``, ``reduce`` ... as they are.

Views (``bitcast``, tuples, parameters, constants) are free.  An opcode with no rule here
is a region of kind ``other`` (its bytes still move) and is listed by ``unknown``.

A region's term is the FLOP breakdown's slash key (``attn/qkv``, ``lsh/sort``, with the
``gen/``/``disc/`` group) found in the instruction's ``metadata op_name``: the innermost
pair of path segments that is one of the architecture's terms.  For a fusion the term is
its dominant instruction's (most FLOPs, then most elements); a region without one takes
its consumer's term, else its producer's, else ``other``.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from . import hlo

KINDS = ("matmul", "elementwise", "reduce", "sort", "gather", "scatter", "copy", "other",
         "alloc")
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
DTYPES = {"f32": "fp32", "bf16": "bf16", "f16": "fp16", "f64": "fp64", "s32": "int32",
          "u32": "uint32", "s8": "int8", "u8": "uint8", "pred": "bool", "s64": "int64"}
MATMUL_TARGETS = re.compile(r"matmul|gemm|dot", re.I)
TERM_ROOTS = ("embed", "attn", "lsh", "ffn", "norm", "head", "loss", "rev")  # trace.py's
GROUPS = ("gen", "disc", "enc", "dec")
UNATTRIBUTED = "other"


@dataclass(frozen=True)
class Region:
    """One compiled region of the step (TIMEMODEL_SPEC.md); ``count`` runs of it."""
    name: str
    kind: str
    term: str
    flops: int
    transcendentals: int
    bytes: int
    shape: tuple | None      # (m, k, n, batch) of a contraction
    dtype: str
    count: int = 1
    keys: int = 0            # a sort: the keys it sorts
    op: str = ""             # the HLO opcode (a fusion: "fusion")


def segments(op_name: str) -> list[str]:
    """The scope path of an ``op_name`` without the transformations wrapped around its
    segments: ``transpose(jvp(vmap(lsh/sort)))/x`` -> ``lsh``, ``sort``, ``x``."""
    out = []
    for seg in op_name.split("/"):
        seg = seg.strip()
        while "(" in seg and not seg.startswith("("):
            seg = seg[seg.index("(") + 1:]
        out.append(seg.rstrip(")"))
    return out


def term_finder(terms):
    """``op_name -> term``: the innermost pair of segments ``root/leaf`` that is one of
    ``terms`` (the architecture's breakdown keys), prefixed by the group enclosing it."""
    known = set(terms)
    bare = {t.split("/", 1)[1] if t.split("/")[0] in GROUPS else t for t in known}
    cache: dict = {}

    def find(op_name: str) -> str | None:
        if op_name not in cache:
            segs, hit = segments(op_name), None
            for i in range(len(segs) - 2, -1, -1):
                pair = f"{segs[i]}/{segs[i + 1]}"
                if segs[i] in TERM_ROOTS and pair in bare:
                    group = next((s for s in reversed(segs[:i]) if s in GROUPS), None)
                    hit = f"{group}/{pair}" if group and f"{group}/{pair}" in known else pair
                    break
            cache[op_name] = hit
        return cache[op_name]

    return find


def _contraction(ins: hlo.Instr, comp: hlo.Computation):
    """(m, k, n, batch) of a dot from its operands' shapes and dimension numbers."""
    lhs = comp.by_name[ins.operands[0]].shapes[0][1]
    rhs = comp.by_name[ins.operands[1]].shapes[0][1]
    lb, lc = ins.dims("lhs_batch_dims"), ins.dims("lhs_contracting_dims")
    rb, rc = ins.dims("rhs_batch_dims"), ins.dims("rhs_contracting_dims")
    size = lambda shape, idx: hlo.elements(shape[i] for i in idx)
    batch, k = size(lhs, lb), size(lhs, lc)
    m = size(lhs, [i for i in range(len(lhs)) if i not in lb + lc])
    n = size(rhs, [i for i in range(len(rhs)) if i not in rb + rc])
    return m, k, n, batch


def _library_matmul(ins: hlo.Instr, comp: hlo.Computation):
    """(m, k, n, batch) of a library matmul custom-call: (..., m, k) x (..., k, n)."""
    a = comp.by_name[ins.operands[0]].shapes[0][1]
    b = comp.by_name[ins.operands[1]].shapes[0][1]
    if len(a) < 2 or len(b) < 2:
        return None
    out = ins.shapes[0][1]
    m, n = out[-2], out[-1]
    k = a[-1] if a[-1] in (b[-2], b[-1]) else a[-2]
    return m, k, n, hlo.elements(out[:-2])


def _window(ins: hlo.Instr) -> int:
    m = re.search(r"size=([0-9x]+)", ins.attr("window") or "")
    return hlo.elements(int(x) for x in m.group(1).split("x")) if m else 1


def _unknown_in(ops) -> list[str]:
    return sorted(k[1:] for k in ops if k.startswith("?"))


class _Reader:
    """Walks a parsed module into regions (see the module docstring)."""

    def __init__(self, comps: dict, find_term):
        self.comps, self.find = comps, find_term
        self.regions: list[Region] = []
        self.unknown: Counter = Counter()
        self.flagged: Counter = Counter()
        self.indirect: set = set()     # regions whose term is not their own metadata's

    # -- FLOPs of instructions --------------------------------------------------
    def op_cost(self, ins, comp):
        """(flops, transcendentals, contraction shape or None) of one instruction."""
        op, out = ins.opcode, ins.elements
        if op in ARITHMETIC:
            return out, (out if op in TRANSCENDENTAL else 0), None
        if op == "dot":
            m, k, n, b = _contraction(ins, comp)
            return 2 * m * k * n * b, 0, (m, k, n, b)
        if op == "custom-call" and MATMUL_TARGETS.search(ins.attr("custom_call_target") or ""):
            shape = _library_matmul(ins, comp)
            if shape:
                return 2 * hlo.elements(shape), 0, shape
        if op == "reduce":
            n_in = sum(comp.by_name[o].elements for o in ins.operands[:len(ins.operands) // 2])
            return max(0, n_in - out), 0, None
        if op == "reduce-window":
            return out * max(0, _window(ins) - 1), 0, None
        if op == "scatter":
            return comp.by_name[ins.operands[-1]].elements, 0, None
        if op == "sort":
            k = ins.shapes[0][1][ins.dims("dimensions")[0]] if ins.dims("dimensions") else 1
            rows = hlo.elements(ins.shapes[0][1]) // max(k, 1)
            return (rows * k * max(1, math.ceil(math.log2(k))) if k > 1 else 0), 0, None
        if op in MOVES:
            return 0, 0, None
        if op == "fusion":           # a fusion nested in a fusion
            f, t, ops, s, _ = self.body(self.comps[ins.called("calls")])
            return (f, t, s) if not _unknown_in(ops) else None
        return None

    def body(self, comp):
        """(flops, transcendentals, ops {opcode: elements}, contraction shape, dominant
        instruction) of a fused computation; ops["?OPCODE"] counts opcodes without a rule."""
        flops = trans = 0
        ops: Counter = Counter()
        shape, best, key = None, None, (-1, -1)
        for ins in comp.instrs:
            if ins.opcode in FREE:
                continue
            cost = self.op_cost(ins, comp)
            if cost is None:
                ops["?" + ins.opcode] += 1
                self.unknown[ins.opcode] += 1
                continue
            f, t, s = cost
            flops, trans = flops + f, trans + t
            ops[ins.opcode] += ins.elements
            shape = s or shape
            if self.find(ins.op_name) and (f, ins.elements) > key:
                best, key = ins, (f, ins.elements)
        return flops, trans, ops, shape, best

    # -- bytes ------------------------------------------------------------------
    def read_elements(self, value, users) -> int:
        """Elements of ``value`` a fused computation reads (see the module docstring)."""
        total = 0
        for u in users.get(value.name, []):
            if u.opcode in VIEWS:
                total += self.read_elements(u, users)
            elif u.opcode in ("slice", "dynamic-slice") and u.operands[0] == value.name:
                total += u.elements
            elif u.opcode == "gather" and u.operands[0] == value.name:
                total += u.elements
            elif u.opcode in ("dynamic-update-slice", "scatter") and u.operands[0] == value.name:
                continue              # updated in place: only the update moves
            else:
                return value.elements
        return min(total, value.elements)

    @staticmethod
    def written(ins, comp) -> int:
        """Bytes an instruction's results write (an in-place update: the update's)."""
        if ins.opcode == "tuple":
            return sum(_Reader.written(comp.by_name[o], comp) for o in ins.operands)
        if ins.opcode == "dynamic-update-slice":
            return comp.by_name[ins.operands[1]].nbytes
        if ins.opcode == "scatter":
            return comp.by_name[ins.operands[-1]].nbytes
        return ins.nbytes

    def fusion_bytes(self, comp) -> int:
        users = comp.users()
        read = 0
        for p in comp.instrs:
            if p.opcode == "parameter":
                width = hlo.WIDTH.get(p.shapes[0][0], 4) if p.shapes else 4
                read += self.read_elements(p, users) * width
        root = next((i for i in comp.instrs if i.root), comp.instrs[-1])
        return read + self.written(root, comp)

    def plain_bytes(self, ins, comp) -> int:
        ops = [comp.by_name[o] for o in ins.operands if o in comp.by_name]
        if ins.opcode in ("dynamic-update-slice", "scatter"):   # in place
            return sum(o.nbytes for o in ops[1:]) + self.written(ins, comp) * (
                2 if ins.opcode == "scatter" else 1)
        if ins.opcode in ("gather", "slice", "dynamic-slice"):
            return sum(o.nbytes for o in ops[1:]) + 2 * ins.nbytes
        return sum(o.nbytes for o in ops) + ins.nbytes

    # -- regions ----------------------------------------------------------------
    def walk(self, comp, count: int = 1) -> None:
        local = []
        for ins in comp.instrs:
            op = ins.opcode
            if op in FREE:
                continue
            if op == "while":
                trip = self.trip_count(ins)
                self.walk(self.comps[ins.called("body")], count * trip)
                self.walk(self.comps[ins.called("condition")], count * (trip + 1))
            elif op == "call":
                self.walk(self.comps[ins.called("to_apply")], count)
            elif op == "conditional":
                self.flagged["conditional (every branch counted)"] += count
                names = re.findall(r"%([^\s,{}]+)", ins.attr("branch_computations") or "")
                for c in names or [ins.called("true_computation"),
                                   ins.called("false_computation")]:
                    self.walk(self.comps[c], count)
            else:
                local.append((ins, self.region(ins, comp, count)))
        self.attribute(local, comp)

    def trip_count(self, ins) -> int:
        if ins.trip_count is not None:
            return ins.trip_count
        cond = self.comps[ins.called("condition")]
        consts = [int(c) for i in cond.instrs if i.opcode == "constant"
                  for c in re.findall(r"constant\((\d+)\)", f"constant({i.attrs})")]
        self.flagged["while (trip count unknown: derived from its condition's constant)"
                     if consts else "while (trip count unknown: one trip)"] += 1
        return max(consts) if consts else 1

    def region(self, ins, comp, count) -> dict:
        op, shape, dominant = ins.opcode, None, ins
        if op == "fusion":
            body = self.comps[ins.called("calls")]
            flops, trans, ops, shape, best = self.body(body)
            dominant = best or ins
            nbytes = self.fusion_bytes(body)
            kind = self.fusion_kind(ops, ins, shape)
            keys = ops.get("sort", 0)
            if _unknown_in(ops):
                op = "fusion:" + ",".join(_unknown_in(ops))
        else:
            cost = self.op_cost(ins, comp)
            if cost is None:
                self.unknown[op] += 1
            flops, trans, shape = cost or (0, 0, None)
            nbytes = self.plain_bytes(ins, comp)
            kind = self.plain_kind(op, shape) if cost else "other"
            keys = comp.by_name[ins.operands[0]].elements if op == "sort" else 0
        src = comp.by_name.get(ins.operands[0]) if shape and ins.operands else None
        dtype = (src or ins).shapes[0][0] if (src or ins).shapes else "f32"
        if op == "fusion" and shape:
            flops = 2 * hlo.elements(shape)     # a contraction with its epilogue: its FLOPs
        return dict(name=ins.name, kind=kind, flops=flops, transcendentals=trans,
                    bytes=nbytes, shape=shape, dtype=DTYPES.get(dtype, dtype), count=count,
                    keys=keys, op=op, term=self.find(dominant.op_name) or self.find(
                        ins.op_name))

    def fusion_kind(self, ops, ins, shape) -> str:
        if _unknown_in(ops):
            return "other"
        if shape:
            return "matmul"
        for op in ("sort", "scatter"):
            if op in ops:
                return op
        if ops.get("gather", 0) * 2 >= ins.elements:
            return "gather"
        if "reduce" in ops or "reduce-window" in ops:
            return "reduce"
        if any(op in ARITHMETIC for op in ops):
            return "elementwise"
        if all(op in MOVES for op in ops):
            return "copy"
        return "other"

    @staticmethod
    def plain_kind(op, shape) -> str:
        if shape:
            return "matmul"
        if op in ("sort", "gather", "scatter"):
            return op
        if op in ("reduce", "reduce-window"):
            return "reduce"
        if op in ARITHMETIC:
            return "elementwise"
        if op in MOVES:
            return "copy"
        return "other"

    def attribute(self, local, comp) -> None:
        """Regions without a term take their consumer's, else their producer's."""
        term = {ins.name: r["term"] for ins, r in local}
        users = comp.users()
        for _ in range(3):
            for ins, r in local:
                if term[ins.name]:
                    continue
                near = [term.get(u.name) for u in users.get(ins.name, [])]
                near += [term.get(o) for o in ins.operands]
                term[ins.name] = next((t for t in near if t), None)
        for ins, r in local:
            if not r["term"]:
                self.indirect.add(len(self.regions))
            r["term"] = term[ins.name] or UNATTRIBUTED
            self.regions.append(Region(**r))


def regions_of_text(text: str, terms, pool=None) -> tuple[list[Region], dict, dict]:
    """(regions, unknown opcodes {opcode: count}, flags) of an optimised HLO module.
    ``pool``: a function returning ``contractions.contraction_pool`` of the step, called
    when a contraction has no term of its own (XLA dropped its metadata)."""
    comps = hlo.parse(text)
    reader = _Reader(comps, term_finder(terms))
    reader.walk(comps["ENTRY"])
    regs = reader.regions
    if pool is not None and any(regs[i].kind == "matmul" for i in reader.indirect):
        from .contractions import assign
        regs = assign(regs, reader.indirect, pool())
    return regs, dict(reader.unknown), dict(reader.flagged)


def compiled_regions(compiled, mod, cfg, seq: int, batch: int):
    """``regions_of_text`` of a compiled step of ``mod`` (its terms name the regions),
    plus one region of kind ``alloc`` per buffer each run allocates afresh: XLA's
    temporaries (its memory analysis) and each result of the step (the entry
    computation's root shapes).  A CPU runtime maps and first touches such a buffer every
    step when it is too large for the allocator to reuse (``timemodel``)."""
    from .contractions import contraction_pool
    text = compiled.as_text()
    regs, unknown, flagged = regions_of_text(
        text, mod.terms(cfg, batch, seq), lambda: contraction_pool(mod, cfg, seq, batch))
    ma = compiled.memory_analysis()
    if ma is not None and int(ma.temp_size_in_bytes):
        regs.append(_alloc("temporaries", int(ma.temp_size_in_bytes)))
    for i, shape in enumerate(entry_results(text)):
        regs.append(_alloc(f"result {i}", hlo.nbytes(shape)))
    return regs, unknown, flagged


def _alloc(name: str, nbytes: int) -> Region:
    return Region(name, "alloc", UNATTRIBUTED, 0, 0, nbytes, None, "", op="alloc")


def entry_results(text: str) -> list:
    """The shapes of the entry computation's results (a tuple's elements), from the
    module's ``entry_computation_layout`` (else from the entry's root instruction)."""
    head = text[:text.find("\n")]
    at = head.find("entry_computation_layout={")
    if at >= 0 and ")->" in head[at:]:
        return hlo.shapes_of(head[at:].split(")->", 1)[1])
    entry = hlo.parse(text)["ENTRY"]
    return next((i for i in entry.instrs if i.root), entry.instrs[-1]).shapes


def step_regions(mod, cfg, seq: int, batch: int = 1, dtype: str = "fp32") -> list[Region]:
    """The regions of ``mod``'s training step at ``seq`` x ``batch`` in ``dtype``, compiled
    with the options ``comparator bench`` uses on this backend (nothing is run).  Opcodes
    without a rule are regions of kind ``other``; ``unknown(regions)`` lists them."""
    from .. import bench
    prog = mod.model(cfg)
    compiled = bench.compile_step(prog, prog.abstract_inputs(batch, seq), dtype,
                                  bench.compile_options_for())
    return compiled_regions(compiled, mod, cfg, seq, batch)[0]


def unknown(regions) -> dict:
    """``{opcode: count}`` of the regions of kind ``other``: opcodes with no rule here."""
    out: Counter = Counter()
    for r in regions:
        if r.kind == "other":
            out[r.op] += r.count
    return dict(out)


def contraction_flops(regions) -> int:
    return sum(r.flops * r.count for r in regions if r.kind == "matmul")


__all__ = ["KINDS", "Region", "compiled_regions", "contraction_flops", "regions_of_text",
           "segments", "step_regions", "term_finder", "unknown"]
