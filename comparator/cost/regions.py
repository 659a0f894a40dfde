"""The compiled regions of a training step: what XLA really runs, read off its optimised HLO.

``step_regions(mod, cfg, seq, batch, dtype)`` compiles the model's training step as
``comparator bench`` does (``compiled.compile_step``, the same XLA options; abstract inputs:
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

import re
from collections import Counter
from dataclasses import dataclass

from comparator.cost import hlo, ops
from comparator.cost.ops import ARITHMETIC, FREE, MOVES

KINDS = ("matmul", "elementwise", "reduce", "sort", "gather", "scatter", "copy", "other",
         "alloc", "fused")
DTYPES = {"f32": "fp32", "bf16": "bf16", "f16": "fp16", "f64": "fp64", "s32": "int32",
          "u32": "uint32", "s8": "int8", "u8": "uint8", "pred": "bool", "s64": "int64"}
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
    reduced: int = 0         # bytes entering its adding reductions (ops.Cost)
    transposed: int = 0      # bytes read + written by its memory reorderings (ops.Cost)
    run: int = 0             # contiguous elements those reorderings move at a time
    reduced_max: int = 0     # bytes entering its comparing reductions (max, min, argmax)
    parts: tuple = ()        # a fused kernel (``fusedflash``): the regions whose work it does
    share: float = 1.0       # ... and its share of that work (a direction's)

    def __post_init__(self):
        object.__setattr__(self, "parts", tuple(self.parts))   # a list read back from JSON


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


def _unknown_in(ops) -> list[str]:
    return sorted(k[1:] for k in ops if k.startswith("?"))


class _Reader:
    """Walks a parsed module into regions (see the module docstring)."""

    def __init__(self, comps: dict, find_term, borrow_named: bool = True):
        self.comps, self.find, self.borrow_named = comps, find_term, borrow_named
        self.regions: list[Region] = []
        self.unknown: Counter = Counter()
        self.flagged: Counter = Counter()
        self.indirect: set = set()     # regions whose term is not their own metadata's

    def op_cost(self, ins, comp) -> ops.Cost | None:
        return ops.cost(ins, comp, self.nested, self.comps)

    def nested(self, ins) -> ops.Cost | None:
        """A fusion inside a fusion: its computation's cost (None: an unknown opcode)."""
        c, found, _ = self.body(self.comps[ins.called("calls")])
        return None if _unknown_in(found) else c

    def body(self, comp):
        """(``ops.Cost`` summed, {opcode: output elements}, dominant instruction) of a
        fused computation; the opcodes without a rule are counted under "?OPCODE"."""
        total, found = ops.Cost(), Counter()
        best, key = None, (-1, -1)
        for ins in comp.instrs:
            if ins.opcode in FREE:
                continue
            c = self.op_cost(ins, comp)
            if c is None:
                found["?" + ins.opcode] += 1
                self.unknown[ins.opcode] += 1
                continue
            total = total + c
            found[ins.opcode] += ins.elements
            if self.find(ins.op_name) and (c.flops, ins.elements) > key:
                best, key = ins, (c.flops, ins.elements)
        return total, found, best

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
        op, dominant = ins.opcode, ins
        if op == "fusion":
            fused = self.comps[ins.called("calls")]
            c, found, best = self.body(fused)
            dominant = best or ins
            nbytes = ops.fusion_bytes(fused)
            kind = self.fusion_kind(found, ins, c.shape)
            keys = found.get("sort", 0)
            if _unknown_in(found):
                op = "fusion:" + ",".join(_unknown_in(found))
            if c.shape:     # a contraction with its epilogue: the contraction's FLOPs
                c = ops.Cost(2 * hlo.elements(c.shape), c.transcendentals, c.shape)
        else:
            c = self.op_cost(ins, comp)
            if c is None:
                self.unknown[op] += 1
            kind = self.plain_kind(op, c.shape) if c else "other"
            c = c or ops.Cost()
            nbytes = ops.plain_bytes(ins, comp)
            keys = comp.by_name[ins.operands[0]].elements if op == "sort" else 0
        src = comp.by_name.get(ins.operands[0]) if c.shape and ins.operands else None
        dtype = (src or ins).shapes[0][0] if (src or ins).shapes else "f32"
        return dict(name=ins.name, kind=kind, flops=c.flops, transcendentals=c.transcendentals,
                    bytes=nbytes, shape=c.shape, dtype=DTYPES.get(dtype, dtype), count=count,
                    keys=keys, op=op, reduced=c.reduced, transposed=c.transposed, run=c.run,
                    reduced_max=c.reduced_max,
                    term=self.find(dominant.op_name) or self.find(ins.op_name))

    def fusion_kind(self, found, ins, shape) -> str:
        if _unknown_in(found):
            return "other"
        if shape:
            return "matmul"
        for op in ("sort", "scatter"):
            if op in found:
                return op
        if found.get("gather", 0) * 2 >= ins.elements:
            return "gather"
        if "reduce" in found or "reduce-window" in found:
            return "reduce"
        if any(op in ARITHMETIC for op in found):
            return "elementwise"
        if all(op in MOVES for op in found):
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
        """Regions without a term take their consumer's, else their producer's (without
        ``borrow_named``: only those whose metadata XLA dropped)."""
        term = {ins.name: r["term"] for ins, r in local}
        users = comp.users()
        for _ in range(3):
            for ins, r in local:
                if term[ins.name] or (not self.borrow_named and ins.op_name):
                    continue
                near = [term.get(u.name) for u in users.get(ins.name, [])]
                near += [term.get(o) for o in ins.operands]
                term[ins.name] = next((t for t in near if t), None)
        for ins, r in local:
            if not r["term"]:
                self.indirect.add(len(self.regions))
            r["term"] = term[ins.name] or UNATTRIBUTED
            self.regions.append(Region(**r))


def regions_of_text(text: str, terms, pool=None, borrow_named: bool = True
                    ) -> tuple[list[Region], dict, dict]:
    """(regions, unknown opcodes {opcode: count}, flags) of an optimised HLO module.
    ``pool``: a function returning ``contractions.contraction_pool`` of the step, called
    when a contraction has no term of its own (XLA dropped its metadata);
    ``borrow_named`` False: a region whose metadata names no term keeps none (a user's
    unscoped work), only one without metadata takes its neighbour's."""
    comps = hlo.parse(text)
    reader = _Reader(comps, term_finder(terms), borrow_named)
    reader.walk(comps["ENTRY"])
    regs = reader.regions
    if pool is not None and any(regs[i].kind == "matmul" for i in reader.indirect):
        from comparator.cost.contractions import assign
        regs = assign(regs, reader.indirect, pool())
    return regs, dict(reader.unknown), dict(reader.flagged)


def compiled_regions(compiled, mod, cfg, seq: int, batch: int):
    """``regions_of_text`` of a compiled step of ``mod`` (its terms name the regions),
    plus one region of kind ``alloc`` per buffer each run allocates afresh: XLA's
    temporaries (its memory analysis) and each result of the step (the entry
    computation's root shapes).  A CPU runtime maps and first touches such a buffer every
    step when it is too large for the allocator to reuse (``timemodel``)."""
    from comparator.cost.contractions import contraction_pool
    return regions_of_compiled(compiled, mod.terms(cfg, batch, seq),
                               lambda: contraction_pool(mod, cfg, seq, batch))


def regions_of_compiled(compiled, terms, pool=None, borrow_named: bool = True):
    """``compiled_regions`` of any compiled step whose regions take the names ``terms``
    (``pool``, ``borrow_named``: as ``regions_of_text``'s)."""
    text = compiled.as_text()
    regs, unknown, flagged = regions_of_text(text, terms, pool, borrow_named)
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


def step_regions(mod, cfg, seq: int, batch: int = 1, dtype: str = "fp32",
                 policy: str | None = None) -> list[Region]:
    """The regions of ``mod``'s training step at ``seq`` x ``batch`` in ``dtype``, compiled
    with the options ``comparator bench`` uses on this backend (nothing is run), its
    layers built under the memory ``policy`` (None: the architecture's default; under
    ``checkpoint`` the backward runs every layer's forward again).  Opcodes without a rule
    are regions of kind ``other``; ``unknown(regions)`` lists them."""
    from comparator.cost import compiled as cs
    prog = mod.model(cfg) if policy is None else mod.model(cfg, policy)
    compiled = cs.compile_step(prog, prog.abstract_inputs(batch, seq), dtype,
                               cs.compile_options_for())
    return compiled_regions(compiled, mod, cfg, seq, batch)[0]


def program_regions(prog, args, dtype: str = "fp32", terms=()) -> list[Region]:
    """The regions of any training step ``prog`` (``loss(params, data, rng)`` and
    ``train_step``, as ``compiled.step_function`` takes it) compiled for ``args`` as
    ``step_regions`` compiles an architecture's.  A region takes one of ``terms`` (a user's
    term scopes) as for an architecture; one outside them is named by its kind
    (``xla/matmul``, ``xla/elementwise``, ``xla/alloc``, ...)."""
    import dataclasses

    from comparator.cost import compiled as cs
    compiled = cs.compile_step(prog, args, dtype, cs.compile_options_for())
    return [dataclasses.replace(r, term=f"xla/{r.kind}") if r.term == UNATTRIBUTED else r
            for r in regions_of_compiled(compiled, terms, borrow_named=False)[0]]


def unknown(regions) -> dict:
    """``{opcode: count}`` of the regions of kind ``other``: opcodes with no rule here."""
    out: Counter = Counter()
    for r in regions:
        if r.kind == "other":
            out[r.op] += r.count
    return dict(out)


def contraction_flops(regions) -> int:
    return sum(r.flops * r.count for r in regions if r.kind == "matmul")


__all__ = ["KINDS", "Region", "compiled_regions", "contraction_flops", "program_regions",
           "regions_of_compiled", "regions_of_text", "segments", "step_regions", "term_finder",
           "unknown"]
