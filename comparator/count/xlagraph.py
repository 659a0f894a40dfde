"""A traced step as XLA:CPU compiles it: calls inlined, CSE, DCE, fusion.

``Fused(closed_jaxpr)`` rebuilds from a jaxpr the program whose buffers XLA allocates
(``comparator.count.liveness`` schedules it and tracks what is alive):

1. the jaxpr flattened: calls (jit, custom_jvp/vjp, remat) inlined, one node per value
   (with ``cpu``, JAX's CPU lowerings: threefry's loop state as results alive while it
   runs, a ragged product's dense masked operands as instructions of their own);
   a remat's inputs pass an optimization barrier (JAX lowers ``prevent_cse`` so), which
   keeps its recomputation apart from the forward it repeats.  (XLA:CPU drops the
   barrier after its first CSE; its later, layout-sensitive CSE then merges the two
   where its simplifier left them the same computation -- at some sizes, not at others,
   e.g. not where a batch of one let it rewrite the forward's head split -- which this
   model does not follow: BENCHMARKS.md names the points where it shows);
2. common subexpressions merged (XLA's CSE: a reversible stack's recomputation of its
   last sublayer *is* the forward's own computation), ``a + scatter_add(zeros, i, u)``
   rewritten ``scatter_add(a, i, u)`` (the algebraic simplifier: a tied table's lookup
   gradient scattered into the decoder's gradient), dead code removed;
3. fusion, by XLA:CPU's loop-fusion rules, consumers first: elementwise work,
   broadcasts, views, slices, pads, concatenations, iota, gathers and reductions over
   the minor axis fuse into elementwise and minor-axis-reducing consumers, so their
   results are never stored.  A cheap producer is duplicated into every consumer that
   fuses it; an expensive one (exp, log, divide, square roots, erf, tanh, gathers,
   reductions) that would land in several fusions, or that a consumer broadcasts (reads
   each element of several times), is stored once; a cheap one that some consumer cannot
   fuse is stored for that consumer and still recomputed by those that can (unless it is
   an output of the step).
   Contractions, sorts, scatters, reductions over a major axis and concatenations along
   the minor one fuse nothing; a softmax's scores (read by its max and by the shift
   before its exp) are stored once.  A fused
   value keeps the stored buffers it is computed from alive until its last consumer runs.

``reads[i]``: the stored buffers op ``i`` reads (through fused producers and views, in
operand order); ``emitted``: the ops with a stored result (XLA's instructions).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from jax.extend.core import Literal

from comparator.count.trace import CALL_PARAMS, CALLS, term_of

VIEWS = {"reshape", "squeeze", "expand_dims", "bitcast_convert_type", "optimization_barrier"}
CHEAP = {"add", "add_any", "sub", "mul", "neg", "max", "min", "select_n", "convert_element_type",
         "broadcast_in_dim", "transpose", "slice", "dynamic_slice", "concatenate", "pad",
         "iota", "copy", "copy_p", "lt", "le", "gt", "ge", "eq", "ne", "and", "or", "not",
         "xor", "abs", "sign", "floor", "ceil", "round", "clamp", "square", "integer_pow",
         "shift_left", "shift_right_logical", "shift_right_arithmetic", "rev", "split",
         "stop_gradient", "reduce_precision", "is_finite", "rem", "real", "imag",
         "population_count", "nextafter"}
REDUCES = {"reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "reduce_and", "reduce_or",
           "argmax", "argmin"}
EXPENSIVE = {"exp", "exp2", "log", "log1p", "expm1", "div", "sqrt", "rsqrt", "cbrt", "tanh",
             "logistic", "erf", "erfc", "erf_inv", "pow", "sin", "cos", "tan", "atan2",
             "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "lgamma",
             "digamma", "gather"} | REDUCES
FUSIBLE = CHEAP | EXPENSIVE      # computed inside a fusing consumer's loop
SCATTERS = {"scatter", "scatter-add", "scatter_add", "dynamic_update_slice"}
NEVER_MERGED = {"random_bits", "random_seed", "random_fold_in", "random_split", "random_wrap",
                "rng_bit_generator", "rng_uniform", "optimization_barrier"}


@dataclass
class Op:
    prim: str
    ins: list            # node ids (None: a literal)
    outs: list           # node ids
    term: str
    key: tuple | None    # what CSE compares (None: never merged)
    bwd: bool = False    # inside a transpose (the backward)
    major: bool = False  # fuses nothing and is fused into nothing: a reduction over a major
    #                      axis, a concatenation along the minor one or of over 8 operands


def nbytes(aval) -> int:
    if not hasattr(aval, "shape"):
        return 0
    return int(np.prod(aval.shape, dtype=np.int64)) * aval.dtype.itemsize


def _scopes(eqn) -> tuple:
    stack = getattr(eqn.source_info.name_stack, "stack", ())
    return tuple(s.name for s in stack if type(s).__name__ == "Scope")


def _in_backward(eqn) -> bool:
    stack = getattr(eqn.source_info.name_stack, "stack", ())
    return any(type(s).__name__ == "Transform" and s.name == "transpose" for s in stack)


def _sub(eqn):
    if eqn.primitive.name not in CALLS:
        return None
    for key in CALL_PARAMS:
        sub = eqn.params.get(key)
        if sub is not None:
            return sub
    return None


def _apart(eqn) -> bool:
    """XLA:CPU keeps these out of loop fusions: a reduction over a major axis; a
    concatenation of over 8 operands, or along the minor axis of a matrix with at least
    64 bytes along it and 2 KiB in all (a plain copy loop is faster)."""
    name, p = eqn.primitive.name, eqn.params
    if name in REDUCES and p.get("axes") is not None and eqn.invars:
        return len(eqn.invars[0].aval.shape) - 1 not in tuple(p["axes"])
    if name == "concatenate" and eqn.outvars:
        aval = eqn.outvars[0].aval
        minor = len(aval.shape) - 1
        return len(eqn.invars) > 8 or (
            minor >= 1 and p.get("dimension") == minor
            and aval.shape[minor] * aval.dtype.itemsize >= 64 and nbytes(aval) >= 2048)
    return False


def _hashable(v):
    try:
        hash(v)
        return v
    except TypeError:
        return repr(v)


def _literal(v):
    a = np.asarray(v)
    return a.item() if a.size == 1 else _hashable(v)


def signature(aval) -> tuple:
    """(shape, dtype) of a value: what XLA compares before letting a result take over an
    operand's buffer."""
    return tuple(getattr(aval, "shape", ())), str(getattr(aval, "dtype", ""))


class Graph:
    """The step flattened: calls inlined, one node per value (its bytes and signature),
    ops in program order."""

    def __init__(self, closed, cpu: bool = False):
        self.nbytes: list = []
        self.sigs: list = []
        self.ops: list = []
        self.cpu = cpu   # JAX's CPU lowerings: threefry's loop, ragged products made dense
        jaxpr = closed.jaxpr
        env = {v: self._node(v.aval) for v in jaxpr.constvars}
        self.consts = list(env.values())
        self.inputs = [self._node(v.aval) for v in jaxpr.invars]
        env.update(zip(jaxpr.invars, self.inputs))
        self._inline(jaxpr, env, (), False)
        self.outputs = [None if isinstance(v, Literal) else env[v] for v in jaxpr.outvars]

    def _node(self, aval) -> int:
        self.nbytes.append(nbytes(aval))
        self.sigs.append(signature(aval))
        return len(self.nbytes) - 1

    def like(self, x) -> int:
        """A new node of ``x``'s size and signature (a copy of it)."""
        self.nbytes.append(self.nbytes[x])
        self.sigs.append(self.sigs[x])
        return len(self.nbytes) - 1

    def _inline(self, jaxpr, env, prefix, bwd):
        get = lambda v: None if isinstance(v, Literal) else env[v]
        for eqn in jaxpr.eqns:
            scopes, back = prefix + _scopes(eqn), bwd or _in_backward(eqn)
            sub = _sub(eqn)
            if sub is not None:
                inner = getattr(sub, "jaxpr", sub)
                senv = {}
                for v in inner.constvars:
                    senv[v] = self._node(v.aval)
                    self.consts.append(senv[v])
                ins = [get(v) for v in eqn.invars]
                if eqn.params.get("differentiated") and eqn.params.get("prevent_cse"):
                    ins = self._barrier(ins, eqn.params["prevent_cse"])
                senv.update(zip(inner.invars, ins))
                self._inline(inner, senv, scopes, back)
                for ov, iv in zip(eqn.outvars, inner.outvars):
                    env[ov] = None if isinstance(iv, Literal) else senv[iv]
                continue
            name = eqn.primitive.name
            outs = [self._node(v.aval) for v in eqn.outvars]
            env.update(zip(eqn.outvars, outs))
            key = None
            if name not in NEVER_MERGED:
                key = (name, tuple(_literal(v.val) if isinstance(v, Literal) else None
                                   for v in eqn.invars),
                       tuple(sorted((k, _hashable(p)) for k, p in eqn.params.items())),
                       tuple((tuple(v.aval.shape), str(v.aval.dtype)) for v in eqn.outvars))
            major = _apart(eqn)
            ins = [get(v) for v in eqn.invars]
            if self.cpu and name == "ragged_dot_general":
                ins = self._dense_operands(eqn, ins, term_of(scopes), back)
            if self.cpu:
                outs = outs + self._loop_state(eqn)
            self.ops.append(Op(name, ins, outs, term_of(scopes), key, back, major))

    def _sized(self, nb: int, sig: tuple) -> int:
        self.nbytes.append(nb)
        self.sigs.append(sig)
        return len(self.nbytes) - 1

    def _loop_state(self, eqn) -> list:
        """Buffers alive only while ``eqn`` runs, as extra results nobody reads: JAX lowers
        threefry for the CPU as a rolled loop over two uint32 counter arrays of the bits'
        shape, and XLA keeps their initial values beside the loop's own copies -- four such
        arrays at once (``random_bits`` of a threefry key: the bits written after, so
        three beside its result; ``threefry2x32``, whose results are the loop's state:
        the two initial values)."""
        name, out = eqn.primitive.name, eqn.outvars[0].aval
        count = int(np.prod(out.shape, dtype=np.int64))
        if name == "random_bits" and "fry" in str(eqn.invars[0].aval.dtype):
            extra = 16 * count - nbytes(out)
        elif name == "threefry2x32":
            extra = 8 * count
        else:
            return []
        return [self._sized(extra, signature(out))] if extra > 0 else []

    def _dense_operands(self, eqn, ins, term, back):
        """A ragged product as JAX lowers it for the CPU: each ragged operand broadcast to
        every group and masked outside its group's rows ([g, m, k]), then one dense
        product.  The masked copy is an instruction of its own (a product fuses nothing),
        made as soon as its operand exists: a forward activation's copy for the experts'
        weight gradient lives until the backward reaches it.  A product whose result
        gains the group axis (that weight gradient: ragged contracting) expands both."""
        lhs, rhs = eqn.invars[0].aval, eqn.invars[1].aval
        groups = int(eqn.invars[2].aval.shape[-1])
        both = len(eqn.outvars[0].aval.shape) > len(lhs.shape)
        out = list(ins)
        for i, aval in enumerate((lhs, rhs)[:2 if both else 1]):
            if ins[i] is None:
                continue
            n = self._sized(groups * nbytes(aval), ((groups, *aval.shape), str(aval.dtype)))
            self.ops.append(Op("select_n", [ins[i], ins[2]], [n], term,
                               ("ragged_expand", (), (), (self.sigs[n],)), back))
            out[i] = n
        return out

    def _barrier(self, xs, which):
        """``xs`` through one ``optimization_barrier``, as JAX lowers a differentiated
        remat's inputs (``which``: prevent_cse, a bool or one per input): views that CSE
        does not see through, all made at once -- the barrier takes the backward's
        cotangents with the residuals, so the recomputation cannot start before the
        backward reaches it."""
        which = (which,) * len(xs) if isinstance(which, bool) else which
        pick = [i for i, (x, w) in enumerate(zip(xs, which)) if w and x is not None]
        if not pick:
            return xs
        outs = [self.like(xs[i]) for i in pick]
        self.ops.append(Op("optimization_barrier", [xs[i] for i in pick], outs, "other", None))
        out = list(xs)
        for i, n in zip(pick, outs):
            out[i] = n
        return out

    def cse(self):
        """Merge ops computing the same thing from the same nodes."""
        seen, alias, ops = {}, {}, []
        for op in self.ops:
            op.ins = [alias.get(i, i) for i in op.ins]
            if op.key is not None:
                key = (tuple(op.ins),) + op.key
                first = seen.get(key)
                if first is not None:
                    alias.update(zip(op.outs, first.outs))
                    continue
                seen[key] = op
            ops.append(op)
        self.ops = ops
        self.outputs = [alias.get(o, o) for o in self.outputs]

    def fold_scatters(self):
        """``a + scatter_add(zeros, i, u)`` -> ``scatter_add(a, i, u)``, in place of the add."""
        made = {o: op for op in self.ops for o in op.outs}
        uses: dict = {}
        for op in self.ops:
            for x in op.ins:
                uses[x] = uses.get(x, 0) + 1

        def zeros(n):
            op = made.get(n)
            return (op is not None and op.prim == "broadcast_in_dim" and op.ins == [None]
                    and op.key is not None and op.key[1][0] == 0)

        drop = set()
        for k, op in enumerate(self.ops):
            if op.prim not in ("add", "add_any") or len(op.ins) != 2 or None in op.ins:
                continue
            for j in (0, 1):
                sc = made.get(op.ins[j])
                if (sc is not None and sc.prim in ("scatter-add", "scatter_add")
                        and uses.get(op.ins[j]) == 1 and zeros(sc.ins[0])
                        and self.nbytes[op.ins[1 - j]] == self.nbytes[op.ins[j]]):
                    self.ops[k] = Op(sc.prim, [op.ins[1 - j]] + sc.ins[1:], op.outs, sc.term,
                                     None, sc.bwd)
                    drop.add(id(sc))
                    break
        self.ops = [op for op in self.ops if id(op) not in drop]

    def dce(self):
        """Drop ops none of whose results reach an output."""
        live = {o for o in self.outputs if o is not None}
        keep = []
        for op in reversed(self.ops):
            if any(o in live for o in op.outs):
                keep.append(op)
                live.update(i for i in op.ins if i is not None)
        self.ops = keep[::-1]


class Fused:
    """``Graph`` after CSE, the scatter rewrite, DCE and fusion (see the module doc)."""

    def __init__(self, closed, cpu: bool = False):
        g = Graph(closed, cpu)
        g.cse()
        g.fold_scatters()
        g.dce()
        self.g = g
        self.producer = {o: i for i, op in enumerate(g.ops) for o in op.outs}
        self.consumers: dict = {}
        for i, op in enumerate(g.ops):
            for x in op.ins:
                if x is not None:
                    self.consumers.setdefault(x, []).append(i)
        self.args = set(g.inputs) | set(g.consts)
        self._fusion()
        self._memo, self._cheap_memo, self._again = {}, {}, {}
        self.reads = [self._reads_of(op) for op in g.ops]
        self._behind: dict = {}
        self.waits = [self._waits_of(op, r) for op, r in zip(g.ops, self.reads)]
        self.emitted = [i for i, op in enumerate(g.ops) if any(self.stored[o] for o in op.outs)]

    def root(self, n):
        """The node whose buffer ``n`` shares (itself unless a view)."""
        while n in self.base:
            n = self.base[n]
        return n

    def _fusion(self):
        g = self.g
        outputs = {o for o in g.outputs if o is not None}
        self.stored, self.base, regions = dict.fromkeys(self.args, True), {}, {}
        for op in reversed(g.ops):
            for n in op.outs:
                cs = self.consumers.get(n, [])
                fuse = bool(cs) and n not in outputs and all(_fuses(op, g.ops[c]) for c in cs)
                regs = set()   # the fusions that would compute n
                if fuse:
                    for c in cs:
                        for o in g.ops[c].outs:
                            if self.stored.get(o) or o in self.base:
                                fuse = fuse and g.ops[c].prim not in VIEWS
                                regs.add(o)
                            else:
                                regs |= regions.get(o, {o})
                    if op.prim in EXPENSIVE and (len(regs) > 1 or any(
                            self._reuses(n, g.ops[c]) for c in cs)):
                        fuse = False
                    if self._shift_exp(cs):
                        fuse = False
                if fuse:
                    self.stored[n], regions[n] = False, regs
                elif op.prim in VIEWS and _viewed(op, n) is not None:
                    self.stored[n], self.base[n] = False, _viewed(op, n)
                else:
                    self.stored[n] = True
        for op in g.ops:       # a view's operand is stored when the view must be
            if op.prim in VIEWS:
                for n in op.outs:
                    if n in self.base and _viewed(op, n) is not None:
                        self.stored[self.root(_viewed(op, n))] = True
        self.outputs = {self.root(o) for o in outputs}
        for o in self.outputs:
            self.stored[o] = True

    def _shift_exp(self, cs) -> bool:
        """A value feeding both a max-reduction and the subtraction of that max before an
        exp (a softmax's scores): XLA:CPU stores it once, so the recomputed copy cannot
        differ from the one the max was taken over."""
        g = self.g
        prims = {g.ops[c].prim for c in cs}
        if "reduce_max" not in prims or "sub" not in prims:
            return False
        return any(g.ops[c].prim == "sub" and any(g.ops[u].prim == "exp"
                                                 for o in g.ops[c].outs
                                                 for u in self.consumers.get(o, ()))
                   for c in cs)

    def _reuses(self, n, c: Op) -> bool:
        """Whether consumer ``c`` reads each element of ``n`` several times (broadcasts it:
        its result is larger), which XLA does not do with an expensive producer."""
        nb = self.g.nbytes
        return c.prim not in REDUCES and any(nb[o] > nb[n] for o in c.outs)

    def _fused_reads(self, node) -> tuple:
        """The stored buffers a fusion reads to compute ``node`` in its own loop."""
        if node not in self._memo:
            op, out = self.g.ops[self.producer[node]], {}
            for x in op.ins:
                if x is not None:
                    out.update(dict.fromkeys(self.operand(x, op)))
            self._memo[node] = tuple(out)
        return self._memo[node]

    def operand(self, x, consumer: Op | None = None) -> tuple:
        """The stored buffers ``consumer`` reads for its operand ``x``: ``x``'s own, or
        when ``x`` is fused (or is a cheap value ``consumer`` recomputes although another
        consumer needs it stored), what ``x`` is computed from."""
        barred = self._barrier_of(x) is not None
        x = self.root(x)
        if not self.stored[x]:
            return self._fused_reads(x)
        if (consumer is not None and not barred and x in self.producer
                and x not in self.args and x not in self.outputs):
            p = self.g.ops[self.producer[x]]
            if (p.prim in CHEAP and _fuses(p, consumer) and len(p.outs) == 1
                    and self._cheap(x)):
                return self._recompute(x)
        return (x,)

    def _barrier_of(self, x):
        """The barrier op whose result ``x`` is (or is a view of), else None: such a value
        is read as the stored one the barrier passed on, never recomputed from what was
        before the barrier."""
        while True:
            k = self.producer.get(x)
            if k is not None and self.g.ops[k].prim == "optimization_barrier":
                return k
            if x not in self.base:
                return None
            x = self.base[x]

    def _recompute(self, x) -> tuple:
        """What recomputing the stored cheap value ``x`` reads: its operands' buffers (a
        stored operand is read, not recomputed in turn: it is a fusion of its own)."""
        if x not in self._again:
            out = {}
            for y in self.g.ops[self.producer[x]].ins:
                if y is not None:
                    y = self.root(y)
                    out.update(dict.fromkeys((y,) if self.stored[y] else self._fused_reads(y)))
            self._again[x] = tuple(out)
        return self._again[x]

    def _cheap(self, x) -> bool:
        """Whether recomputing ``x`` recomputes nothing expensive: an expensive value fused
        into ``x`` would gain a user, so XLA stores it rather than duplicate it."""
        if x not in self._cheap_memo:
            ok = True
            for y in self.g.ops[self.producer[x]].ins:
                if y is None:
                    continue
                y = self.root(y)
                if not self.stored[y]:
                    q = self.g.ops[self.producer[y]]
                    ok = ok and q.prim not in EXPENSIVE and self._cheap(y)
            self._cheap_memo[x] = ok
        return self._cheap_memo[x]

    def _reads_of(self, op) -> dict:
        out = {}
        for x in op.ins:
            if x is not None:
                out.update(dict.fromkeys(self.operand(x, op)))
        return out

    def _waits_of(self, op, reads) -> tuple:
        """Stored buffers ``op`` waits for without reading them: every input of a barrier
        one of whose results it reads (through views and fused producers).  A barrier is
        one instruction: its results are released together, so a remat's recomputation
        waits for the backward's cotangent that passes the barrier with its inputs."""
        out = {}
        for x in op.ins:
            if x is not None:
                for b in self._barriers(x):
                    for y in self.g.ops[b].ins:
                        out.update(dict.fromkeys(self.operand(y)))
        return tuple(k for k in out if k not in reads)

    def _barriers(self, x) -> frozenset:
        """The barrier ops whose results ``x`` is computed from within one fusion (a
        stored value's own instruction waited for its barriers already)."""
        b = self._barrier_of(x)
        if b is not None:
            return frozenset({b})
        x = self.root(x)
        if x not in self._behind:
            k = self.producer.get(x)
            if k is None or self.stored.get(x):
                out = frozenset()
            else:
                out = frozenset().union(*(self._barriers(y) for y in self.g.ops[k].ins
                                          if y is not None))
            self._behind[x] = out
        return self._behind[x]


def _fuses(p: Op, c: Op) -> bool:
    """Whether consumer ``c`` may compute producer ``p``'s result inside its own loop.
    Reductions stand alone (XLA:CPU wraps each in its own kernel); a barrier computes
    nothing: its operands are stored values (and a cheap one is not recomputed for it)."""
    if c.prim == "optimization_barrier":
        return False
    if c.major or c.prim in REDUCES or not (c.prim in FUSIBLE or c.prim in VIEWS):
        return False
    return p.prim in VIEWS or (p.prim in FUSIBLE and p.prim not in REDUCES and not p.major)


def _viewed(op, n):
    """The operand a view's result ``n`` shares its buffer with (a barrier's i-th result
    the i-th operand; None where there is none)."""
    i = op.outs.index(n) if len(op.ins) == len(op.outs) else 0
    return op.ins[i] if i < len(op.ins) else None


__all__ = ["Fused", "Graph", "Op", "nbytes", "signature", "VIEWS", "CHEAP", "EXPENSIVE",
           "FUSIBLE", "SCATTERS", "REDUCES"]
