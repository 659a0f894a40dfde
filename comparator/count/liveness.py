"""Peak memory of a traced step: the bytes alive along the schedule XLA runs it in.

``peak(closed_jaxpr, donated, schedule)`` takes the program XLA compiles from the step
(``comparator.count.xlagraph``: calls inlined, CSE, fusion) and walks it in the order a
backend schedules it, tracking the bytes of every stored buffer from the instruction that
writes it to its last reader, as ``jax.experimental.roofline`` tracks them along a jaxpr,
with two more things XLA does:

* copies (XLA's copy insertion): a parameter or optimizer moment whose updated value takes
  over its buffer, but which is also read by an instruction that need not run before the
  update (a weight read by the backward's input gradient), is copied first, and the
  buffer it frees hosts temporaries until the update (XLA's buffer assigner fills it,
  largest first); a buffer several scatters update in place (the zeros each layer's
  gradient is scattered into, CSE'd into one) is copied for each but the last;
* buffer reuse: an elementwise or scatter result takes over the buffer of an operand that
  dies there when the two have the same size and shape as XLA allocates them (in place;
  XLA drops size-1 dimensions from a dot's result and from a value only dots read, so a
  dot's scores do not become their own exp in place at batch 1), and views share their
  operand's buffer;
* heap packing: the temporaries share one heap, each placed as XLA's heap simulator
  places it (``comparator.count.heap``); where lifetimes interleave, the heap is larger
  than the most bytes alive at once (``packing``: fragmentation).

Schedules (``SCHEDULES``):

* ``cpu`` -- XLA:CPU's default (``BFScheduler``, optimised for concurrency): Kahn's order
  with a first-in first-out queue, every instruction as soon as its operands exist.  So
  values computed from inputs alone (zero gradients to scatter into, the loss's constant
  cotangent, the copies above) and recomputations that need only forward values (a
  reversible stack's inversion) run early, not where the backward needs them.  A
  checkpointed layer's recomputation waits at JAX's barrier, one instruction over its
  residuals and the backward's cotangent (``xlagraph``: ``waits``), so it runs where the
  backward reaches the layer -- as XLA:CPU schedules it with the barrier kept
  (``cost.compiled.BARRIERS_KEPT``; its default drops the barrier before scheduling).
  The graph follows JAX's CPU lowerings (``xlagraph``, ``cpu``): threefry's loop keeps
  four counter arrays alive while it runs; a ragged product (a mixture of experts) is
  computed from dense masked copies of its operands, each made as soon as its operand
  exists;
* ``memory`` -- a memory-minimising scheduler, as XLA:GPU's default memory scheduler
  picks the best of a post-order, a DFS and a list schedule: here the least peak of the
  program's own order (JAX's: forward, then backward with recomputation in place) and a
  greedy list schedule freeing the most bytes first.

``Peak.total = arguments + temporaries (the packed heap) + outputs aliasing no argument``,
comparable with XLA's ``memory_analysis()`` (arguments + temporaries + outputs -
aliases).  The temporaries alive at the liveness peak are attributed by kind (``saved``:
forward values kept for the backward, ``working``: the backward's own buffers,
recomputation included, ``gradient``: buffers an optimizer update reads, ``copy``: the
copies above), the heap's excess over them as ``packing``, and by term.  The
allocator's and the framework's own memory are not counted here.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from jax.extend.core import Literal

from comparator.count.heap import heap_bytes
from comparator.count.xlagraph import FUSIBLE, REDUCES, SCATTERS, Fused

INPLACE = (FUSIBLE - REDUCES - {"gather", "concatenate", "pad", "broadcast_in_dim", "transpose",
                                "iota", "dynamic_slice", "slice", "split"}) | SCATTERS
KINDS = ("saved", "working", "gradient", "copy", "packing")
SCHEDULES = ("cpu", "memory")


@dataclass
class Peak:
    """Bytes of the arguments, of the temporaries alive at the peak and of the outputs that
    alias no argument; the temporaries by kind and by term; the term of the instruction
    at the peak; the schedule."""
    arguments: int
    temporaries: int
    outputs: int
    by_kind: dict = field(default_factory=dict)
    by_term: dict = field(default_factory=dict)
    at: str = ""
    schedule: str = "cpu"

    @property
    def total(self) -> int:
        return self.arguments + self.temporaries + self.outputs


class Program(Fused):
    """The fused step with its aliases, copies and schedules."""

    def __init__(self, closed, donated=(), cpu: bool = False):
        super().__init__(closed, cpu)
        self._alias(closed, tuple(donated))
        self._copies()
        donated = [("copy", c) for c in self.copy_of]
        self.target = {}            # scatter op -> the buffer it updates in place
        before = self._scatter_copies()
        self.insts = donated + [k for i in self.emitted for k in before.get(i, []) + [i]]
        self.made_by = {o: k for k in self.insts for o in self.outs(k)}
        self.readers: dict = {}
        for k in self.insts:
            for r in self.inputs_of(k):
                self.readers.setdefault(r, []).append(k)

    def outs(self, k) -> list:
        if isinstance(k, tuple):
            return [k[1]]
        return [o for o in self.g.ops[k].outs if self.stored[o]]

    def inputs_of(self, k) -> list:
        return [self.copy_of[k[1]]] if isinstance(k, tuple) else list(self.reads[k])

    def operands(self, k) -> list:
        """The instructions whose results ``k`` reads."""
        return list(dict.fromkeys(self.made_by[r] for r in self.inputs_of(k)
                                  if r in self.made_by))

    def _alias(self, closed, donated):
        """Outputs take over donated inputs of their shape and dtype, in order (as jax.jit
        pairs them)."""
        jaxpr, g = closed.jaxpr, self.g
        sig = lambda v: (tuple(v.aval.shape), str(v.aval.dtype))
        pool: dict = {}
        for i in donated:
            pool.setdefault(sig(jaxpr.invars[i]), []).append(g.inputs[i])
        self.alias = {}   # output node -> the donated input whose buffer it takes
        for v, o in zip(jaxpr.outvars, g.outputs):
            if o is None or isinstance(v, Literal) or self.root(o) in self.args:
                continue
            cands = pool.get(sig(v))
            if cands and self.root(o) not in self.alias:
                self.alias[self.root(o)] = cands.pop(0)

    def _copies(self):
        prod, anc = self.producer, {}
        for i in self.emitted:          # ancestors, as bit sets over op indices
            a = 0
            for r in self.reads[i]:
                j = prod.get(r)
                if j is not None:
                    a |= anc.get(j, 0) | (1 << j)
            anc[i] = a
        self.copy_of = {}
        for out, x in self.alias.items():
            up = prod.get(out)
            readers = [i for i in self.emitted if x in self.reads[i]]
            if up is None or all(i == up or anc[up] >> i & 1 for i in readers):
                continue
            c = self.g.like(x)
            self.stored[c], self.copy_of[c] = True, x
            for i in readers:
                self.reads[i] = {(c if r == x else r): None for r in self.reads[i]}

    def _scatter_copies(self) -> dict:
        """XLA's copy insertion for in-place updates: a buffer several scatters (or dynamic
        update slices) update -- zeros a layer's gradient is scattered into, CSE'd into one
        -- is copied for each but the last, each copy made as soon as the buffer exists.
        Returns {op index: the copies to run right after it}."""
        by_source: dict = {}
        for i in self.emitted:
            op = self.g.ops[i]
            if op.prim in SCATTERS and op.ins and op.ins[0] is not None:
                src = self.operand(op.ins[0])
                if len(src) == 1 and src[0] not in self.args:
                    by_source.setdefault(src[0], []).append(i)
        before: dict = {}
        for r, scatters in by_source.items():
            for i in scatters[:-1]:
                c = self.g.like(r)
                self.stored[c], self.copy_of[c], self.target[i] = True, r, c
                self.reads[i] = {(c if x == r else x): None for x in self.reads[i]}
                before[i] = [("copy", c)]
        return before

    def shape(self, n) -> tuple:
        """The shape of ``n``'s buffer as XLA allocates it: a dot's result, and a value only
        dots read, lose their size-1 dimensions (XLA's algebraic simplifier drops
        degenerate dimensions from a dot's operands and result; the reshape is a bitcast
        fused into the producer).  In place needs the same shape; the element type is not
        compared: XLA's rule compares it too, but where these steps convert in place --
        random bits into floats -- XLA:CPU draws the bits in the expanded generator's own
        loop, and taking their buffer over matches its total where refusing it does not
        (tests/test_memory_xla.py, ELECTRA)."""
        shape, _ = self.g.sigs[n]
        k = self.producer.get(n)
        dots = lambda ks: bool(ks) and all(not isinstance(r, tuple)
                                           and self.g.ops[r].prim == "dot_general" for r in ks)
        if (k is not None and self.g.ops[k].prim == "dot_general") or dots(
                self.readers.get(n, ())):
            shape = tuple(d for d in shape if d != 1)
        return shape

    # -- schedules ---------------------------------------------------------------------

    def _dependents(self) -> tuple[dict, dict]:
        """({instruction: operands it waits for}, {operand: instructions reading it})."""
        deps, users = {}, {}
        for k in self.insts:
            ops = self.operands(k)
            if not isinstance(k, tuple):   # and what its barriers release with its reads
                ops += [m for m in dict.fromkeys(self.made_by.get(r) for r in self.waits[k])
                        if m is not None and m not in ops]
            deps[k] = len(ops)
            for o in ops:
                users.setdefault(o, []).append(k)
        return deps, users

    def bfs_order(self) -> list:
        """Kahn's order with a FIFO queue (XLA:CPU's ``BFScheduler``)."""
        deps, users = self._dependents()
        queue, seq = deque(k for k in self.insts if deps[k] == 0), []
        while queue:
            k = queue.popleft()
            seq.append(k)
            for u in users.get(k, ()):
                deps[u] -= 1
                if not deps[u]:
                    queue.append(u)
        return seq

    def program_order(self) -> list:
        return list(self.insts)

    def list_order(self) -> list:
        """Greedy: the ready instruction that frees the most bytes net of what it writes
        (ties: program order).  A heap with lazy updates: scheduling an instruction changes
        only the priorities of the other readers of its inputs."""
        import heapq
        nb, index = self.g.nbytes, {k: i for i, k in enumerate(self.insts)}
        ins = {k: list(dict.fromkeys(self.inputs_of(k))) for k in self.insts}
        remaining, readers = {}, {}
        for k in self.insts:
            for r in ins[k]:
                remaining[r] = remaining.get(r, 0) + 1
                readers.setdefault(r, []).append(k)
        waiting, users = self._dependents()
        keep = self.args | self.outputs
        out_bytes = {k: sum(nb[o] for o in self.outs(k)) for k in self.insts}

        def cost(k):
            freed = sum(nb[r] for r in ins[k] if remaining[r] == 1 and r not in keep)
            return (out_bytes[k] - freed, index[k])

        ready, heap, seq = set(), [], []

        def push(k):
            c = cost(k)
            heapq.heappush(heap, (c, k if not isinstance(k, tuple) else -1 - k[1], k))

        for k in self.insts:
            if not waiting[k]:
                ready.add(k)
                push(k)
        while heap:
            c, _, k = heapq.heappop(heap)
            if k not in ready or c != cost(k):
                continue                   # scheduled already, or a stale priority
            ready.discard(k)
            seq.append(k)
            touched = set()
            for r in ins[k]:
                remaining[r] -= 1
                if remaining[r] == 1:      # its last reader now frees it
                    touched.update(u for u in readers[r] if u in ready)
            for u in touched:
                push(u)
            for u in users.get(k, ()):
                waiting[u] -= 1
                if not waiting[u]:
                    ready.add(u)
                    push(u)
        return seq

    # -- the walk ------------------------------------------------------------------------

    def buffers(self, order) -> list:
        """The stored temporaries and outputs along ``order``: [nodes, first, last, size]
        per buffer; a result that takes over a dying operand's buffer (in place: same size
        and ``shape``, XLA's ``CanShareOperandBufferWithUser``) joins that buffer, which
        then lives until the result's last reader."""
        g, nb = self.g, self.g.nbytes
        last = {}
        for t, k in enumerate(order):
            for r in self.inputs_of(k):
                last[r] = t
        for o in self.outputs:
            last[o] = len(order)
        buf_of, bufs = {}, []
        for t, k in enumerate(order):
            op = None if isinstance(k, tuple) else g.ops[k]
            dying = [r for r in self.inputs_of(k) if last.get(r) == t and r in buf_of]
            for o in self.outs(k):
                if o in self.alias:
                    continue
                share = None
                if op is not None and op.prim in INPLACE:
                    pool = dying
                    if op.prim in SCATTERS:
                        into = self.target.get(k) or (self.operand(op.ins[0]) or (None,))[0]
                        pool = [r for r in dying if r == into]
                    share = next((r for r in pool if nb[r] == nb[o]
                                  and self.shape(r) == self.shape(o)), None)
                if share is not None:
                    dying.remove(share)
                    b = buf_of[share]
                    b[0].append(o)
                else:
                    b = [[o], t, t, nb[o]]
                    bufs.append(b)
                buf_of[o] = b
                b[2] = max(b[2], last.get(o, t))
        return bufs

    def slots(self, order) -> list:
        """Donated buffers free for temporaries: a copied input's, from its copy to the
        update that writes its new value there: [size, free from, free until]."""
        pos = {k: t for t, k in enumerate(order)}
        upd = {x: pos.get(self.producer.get(o)) for o, x in self.alias.items()}
        return [[self.g.nbytes[x], pos[("copy", c)], upd[x]]
                for c, x in self.copy_of.items() if upd.get(x) is not None]

    def walk(self, order) -> tuple:
        """(bytes of temporaries and outputs, the buffers alive at the liveness peak, the
        term there, the heap's excess over the temporaries alive then).  As XLA's buffer
        assigner, buffers go, largest first, into the slots that copied donated inputs
        free (one at a time, whole lifetimes); the other temporaries share one heap
        (``heap.heap_bytes``), the outputs have their own buffers."""
        bufs, used = self.buffers(order), set()
        free = sorted(self.slots(order), key=lambda s: s[0])
        for s in free:
            s.append([])
        for b in sorted(bufs, key=lambda b: -b[3]):
            if any(n in self.outputs for n in b[0]):
                continue
            for s in free:
                if b[3] <= s[0] and s[1] < b[1] and b[2] < s[2] and all(
                        b[2] < o[1] or o[2] < b[1] for o in s[3]):
                    s[3].append(b)
                    used.add(id(b))
                    break
        rest = [b for b in bufs if id(b) not in used]
        events: dict = {}
        for b in rest:
            events[b[1]] = events.get(b[1], 0) + b[3]
            events[b[2] + 1] = events.get(b[2] + 1, 0) - b[3]
        cur, best, when = 0, 0, 0
        for t in sorted(events):
            cur += events[t]
            if cur > best:
                best, when = cur, t
        live = {b[0][-1]: b[3] for b in rest if b[1] <= when <= b[2]}
        k = order[when] if when < len(order) else None
        at = "copy" if isinstance(k, tuple) or k is None else self.g.ops[k].term
        temps = [(b[1], b[2], b[3]) for b in rest if not any(n in self.outputs for n in b[0])]
        alive = sum(v for n, v in live.items() if n not in self.outputs)
        packing = max(0, heap_bytes(temps) - alive)
        return best + packing, live, at, packing

    def peak(self, schedule: str = "cpu") -> Peak:
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule {schedule!r}: one of {', '.join(SCHEDULES)}")
        orders = [self.bfs_order()] if schedule == "cpu" else [self.program_order(),
                                                               self.list_order()]
        _, live, at, packing = min((self.walk(o) for o in orders), key=lambda w: w[0])
        nb = self.g.nbytes
        temps = {n: b for n, b in live.items() if n not in self.outputs}
        outs = sum(nb[o] for o in self.outputs if o not in self.alias and o not in self.args)
        return Peak(sum(nb[n] for n in self.args), sum(temps.values()) + packing, outs,
                    {**self._kinds(temps), "packing": packing}, self._terms(temps), at,
                    schedule)

    def _kinds(self, temps) -> dict:
        updates = {self.producer[o] for o in self.alias if o in self.producer}
        read_by_update = set().union(*(self.reads[i] for i in updates)) if updates else set()
        out = dict.fromkeys(KINDS, 0)
        for n, b in temps.items():
            if n in self.copy_of:
                kind = "copy"
            elif n in read_by_update:
                kind = "gradient"
            else:
                kind = "working" if self.g.ops[self.producer[n]].bwd else "saved"
            out[kind] += b
        return out

    def _terms(self, temps) -> dict:
        out: dict = {}
        for n, b in temps.items():
            t = "copy" if n in self.copy_of else self.g.ops[self.producer[n]].term
            out[t] = out.get(t, 0) + b
        return dict(sorted(out.items()))


def peak(closed, donated=(), schedule: str = "cpu") -> Peak:
    """The peak of ``closed`` (a ``ClosedJaxpr``) under ``schedule`` (module doc).
    ``donated``: indices of the invars whose buffers the outputs may take over (the
    parameters and optimizer moments of a training step)."""
    return Program(closed, donated, cpu=schedule == "cpu").peak(schedule)


__all__ = ["KINDS", "Peak", "Program", "SCHEDULES", "peak"]
