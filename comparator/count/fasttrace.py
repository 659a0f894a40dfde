"""Traced counts for sweeps without re-tracing the whole model per point.

``traced_counts(mod, cfg, seqs, batch)`` gives, for every length, the same
``TraceResult``s (total, by_term, unsupported, flagged) that
``comparator.count.trace.trace`` gives for the full model's loss and training step on
the inputs ``sweep.traced`` uses, and the parameter count.  Two reuses:

* **depth** -- a depth field (``n_layers``, T5's ``n_dec_layers``) counts
  identical layers, cycled with the minimal period ``p`` of ``attn_layers``
  (1 without).  For ``L = q p + r`` two shallow models are traced, at depths
  ``a = p + r`` and ``a + p`` (when that is fewer layers than ``L``), and every
  count -- per term, unsupported, flagged, parameters -- is
  ``c(L) = c(a) + (q - 1) (c(a + p) - c(a))``: exact by construction when the
  layers are identical (a first layer that differs, as Reformer's, sits inside
  ``a``; ALBERT's shared gradients add ``L - 1`` times).  Only the
  architectures of ``DEPTH_ARCHS`` are reduced, and not a model whose layers are
  jitted calls (``Program.jitted_layers``: BERT, GPT-2, ELECTRA), whose full trace
  already costs about one layer (``comparator.count.depth``).
* **length** -- a shallow model is traced once for a *region* of the requested
  lengths with the length symbolic (``s = g k``, ``k`` a
  ``jax.export.symbolic_shape``, ``g`` the lengths' gcd); the walk keeps the
  symbolic dims and the rules of ``rules.py`` cost each equation per length on
  its shapes evaluated there, in exact Python ints.  Regions split where the
  parameter shapes change form: a learned position table past ``max_len`` gets
  ``s`` rows (as ``for_length`` gives it), Reformer's axial rows grow
  (``comparator.count.lengthdomains``).  With ``wide`` (``traced_parts``; the results
  store's programs, ``comparator.count.tracedprograms``) the program is traced for
  *every* length of the region (``k`` a range, ``g`` the model's length step), cut at
  powers of two where JAX cannot decide (``_cover_wide``), when the region holds two
  lengths asked now or before.

The symbolic trace is made the program a concrete trace gives at each requested
length of its region.  JAX's static indexing and ``arange`` get symbolic-length
versions (JAX gathers ``x[:n]`` for a symbolic ``n``; a concrete trace
slices); scalars computed from dims only (``dim_as_value`` chains, literals in
a concrete trace) are folded; a comparison of dims that JAX cannot decide is
decided by evaluating it at every length of the region.  An ordering that
differs between them raises (the region is halved, and at last traced
concretely); an ``==`` or truth test that differs (JAX would say False / True)
is answered as at most lengths and logged, and where a logged dim vanishes --
e.g. the one length at which a slice spans a whole table and is elided -- the
length is traced concretely (a group of such lengths symbolically, on its own
gcd).  With ``verify="point"`` (default) each symbolic program is compared with
a concrete trace of its shallow model at one length and dropped on any
difference (the base model's program is trusted when the deeper model's
program of the same lengths passed: its code paths are a subset);
``verify="full"`` also compares one length with the full model.  Models needing
concrete lengths (T5's NumPy relative buckets) are traced per length, at
reduced depth.  Symbolic lengths need JAX internals (``comparator.count.jaxcompat``):
where they are missing or behave otherwise, every length is traced concretely, with
one ``PlainTracesWarning``; the depth reduction needs none and stays.
"""
from __future__ import annotations

import math
import warnings
from collections import defaultdict
from dataclasses import dataclass

import jax
from jax import export

from comparator.count import jaxcompat
from comparator.count.costprogram import COND_FLAG, WHILE_FLAG, CostProgram, combine
from comparator.count.depth import DEPTH_ARCHS, _period, depth_plan  # noqa: F401
from comparator.count.lengthdomains import (PROGRAM_MAX_LEN, bounds, octaves,  # noqa: F401
                                            regions, split, step)
from comparator.count.lengthdomains import table_rows as _table_rows
from comparator.count.lengthprogram import FastCount
from comparator.count.quiet import no_gc
from comparator.count.step import step_counts, step_jaxprs, step_memory, train_jaxpr
from comparator.count.symbolic import (InconclusiveDimensionOperation, ev, symbolic_tracing,
                                       with_max_len)
from comparator.count.trace import TraceResult

MIN_SYMBOLIC = 4   # a symbolic trace and its check cost about 3-4 concrete shallow traces
MAX_SPLITS = 12    # halvings of a region JAX cannot decide on, before it is left to the lengths


def same(a: TraceResult, b: TraceResult) -> bool:
    return (a.total == b.total and a.by_term == b.by_term and a.unsupported == b.unsupported
            and a.flagged == b.flagged)


# -- tracing, concrete and symbolic ----------------------------------------------

def abstract_inputs(mod, cfg, batch, seq):
    """(program, abstract params, abstract data, abstract PRNG key) of ``mod.model(cfg)``:
    the inputs every traced count (full, shallow, symbolic, roofline) is taken on."""
    prog = mod.model(cfg)
    return (prog, *prog.abstract_inputs(batch, seq))


def full_count(mod, cfg, seq: int, batch: int = 1, memory: bool = False) -> FastCount:
    """One length traced in full, exactly as ``sweep.traced`` does (the reference)."""
    with no_gc():
        prog, params, data, rng = abstract_inputs(mod, cfg, batch, seq)
        n = sum(int(x.size) for x in jax.tree_util.tree_leaves(params))
        fwd, train, mem = step_counts(prog, params, data, rng, memory)
    return FastCount(fwd, train, n, "full", mem.total if memory else None)



@dataclass
class _Symbolic:
    """One shallow model traced for the lengths ``g k``, ``k`` in ``domain`` (a tuple, or
    a ``range``: every length of a region)."""
    g: int
    domain: tuple | range
    past_max_len: bool
    fwd: CostProgram
    train: CostProgram
    param_shapes: list
    risks: list
    memory: object = None   # saved activation bytes, a dim expression (with ``memory=True``)
    checked_at: int | None = None   # the length a concrete trace agreed at

    key = property(lambda self: (self.g, self.domain, self.past_max_len))

    def __post_init__(self):
        # A logged dim that is 0 at every length of the domain (the Reformer's bucket
        # count above its octave, over one octave) sets no length apart from the others:
        # it is no risk, and the check against a concrete trace (``_agrees``) holds the
        # program to account as at any length.  Whether JAX logs such a dim varies from
        # one process to the next; left in, it marked every length risky and the region
        # got no program.  Domains too long to evaluate keep every logged dim.
        if len(self.domain) <= EVERYWHERE_ZERO_MAX:
            self.risks = [e for e in self.risks
                          if any(ev(e, {"k": k}, {}) != 0 for k in self.domain)]

    def usable(self, seq) -> bool:
        return seq % self.g == 0 and seq // self.g in self.domain and not self.risky(seq)

    def vanishing(self, seq) -> tuple:
        env, memo = {"k": seq // self.g}, {}
        return tuple(i for i, e in enumerate(self.risks) if ev(e, env, memo) == 0)

    def risky(self, seq) -> bool:
        return bool(self.vanishing(seq))

    def count(self, seq) -> tuple:
        env, memo = {"k": seq // self.g}, {}
        n = sum(math.prod(ev(d, env, memo) for d in shape) for shape in self.param_shapes)
        mem = None if self.memory is None else ev(self.memory, env, memo)
        return self.fwd.evaluate(env), self.train.evaluate(env), n, mem


def _trace_symbolic(mod, cfg, batch, seqs, memory=False, wide=None) -> tuple:
    """``(g, domain, past max_len), fwd jaxpr, train jaxpr, param shapes, logged dims,
    saved activation bytes`` (a dim expression, or None without ``memory``): for the
    lengths ``seqs`` (``g`` their gcd), or with ``wide = (g, range of k)`` for every
    length ``g k`` of the range."""
    if wide is None:
        g = math.gcd(*seqs)
        domain = tuple(s // g for s in seqs)
    else:
        g, domain = wide
    k, = export.symbolic_shape("k", constraints=(f"k >= {min(domain)}", f"k <= {max(domain)}"))
    max_len = _table_rows(cfg)
    past = bool(max_len) and g * min(domain) > max_len
    log = []
    with symbolic_tracing(domain, log), no_gc():
        c = with_max_len(cfg, g * k) if past else cfg
        prog, params, data, rng = abstract_inputs(mod, c, batch, g * k)
        fwd, step, n_par, n_res = step_jaxprs(prog, params, data, rng)
        train = train_jaxpr(step, n_par)
        mem = step_memory(step, n_par, n_res).total if memory else None
    return ((g, domain, past), fwd, train,
            [tuple(x.shape) for x in jax.tree_util.tree_leaves(params)],
            list({str(e): e for e in log}.values()), mem)


# -- one shallow model over many lengths ---------------------------------------------

EVERYWHERE_ZERO_MAX = 4096   # the longest domain _Symbolic checks its logged dims over
_CACHE: dict = {}   # (arch, cfg, batch, memory) -> {"sym": [_Symbolic], "conc": {seq: counts}}


def clear_cache() -> None:
    _CACHE.clear()


def _cover_wide(mod, cfg, batch, seqs, cache, out, memory, wide, splits=0):
    """A symbolic program for every length ``g k`` of ``wide = (g, range of k)`` holding
    ``seqs``: a range JAX cannot decide on is cut (``lengthdomains.octaves`` first, then
    ``split``) and the parts holding lengths of ``seqs`` traced again; after ``MAX_SPLITS``
    cuts, the lengths themselves (``_cover``).  Lengths that are risky for the program are
    covered on their own."""
    g, ks = wide
    try:
        head, fwd, train, shapes, risks, mem = _trace_symbolic(mod, cfg, batch, seqs, memory,
                                                               wide)
    except InconclusiveDimensionOperation:
        if splits >= MAX_SPLITS or len(ks) < 2:
            return _cover(mod, cfg, batch, seqs, cache, out, memory)
        parts = octaves(ks, seqs, g) if splits == 0 else []
        for part in parts if len(parts) > 1 or parts and parts[0] != ks else split(ks):
            mine = [s for s in seqs if s // g in part]
            if mine:
                _cover_wide(mod, cfg, batch, mine, cache, out, memory, (g, part), splits + 1)
        return None
    except Exception:  # the model needs concrete lengths (T5's NumPy relative buckets)
        cache["no_symbolic"] = True
        return None
    entry = _Symbolic(*head, CostProgram(fwd), CostProgram(train), shapes, risks, mem)
    clean = [s for s in seqs if not entry.risky(s)]
    out.append((entry, clean))
    risky = [s for s in seqs if s not in clean]
    if len(risky) >= MIN_SYMBOLIC:
        _cover(mod, cfg, batch, risky, cache, out, memory)
    return None


def _symbolic_on() -> bool:
    """Whether symbolic lengths may be used (``jaxcompat.available()``: asked only once a
    symbolic trace is wanted -- a count of one length pays no self-check), with the warning
    once where JAX's internals are missing or behave otherwise."""
    if jaxcompat.available():
        return True
    jaxcompat.warn_plain()
    return False


def _cover(mod, cfg, batch, seqs, cache, out, memory):
    """Symbolic programs for ``seqs``: a region JAX cannot decide on is halved; lengths
    that are risky for a program are covered again on their own gcd."""
    if len(seqs) < MIN_SYMBOLIC or cache["no_symbolic"] or not _symbolic_on():
        return
    try:
        head, fwd, train, shapes, risks, mem = _trace_symbolic(mod, cfg, batch, seqs, memory)
    except InconclusiveDimensionOperation:
        _cover(mod, cfg, batch, seqs[:len(seqs) // 2], cache, out, memory)
        _cover(mod, cfg, batch, seqs[len(seqs) // 2:], cache, out, memory)
        return
    except Exception:  # the model needs concrete lengths (T5's NumPy relative buckets)
        cache["no_symbolic"] = True
        return
    entry = _Symbolic(*head, CostProgram(fwd), CostProgram(train), shapes, risks, mem)
    groups = defaultdict(list)   # risky lengths, by the logged dims vanishing there
    for s in seqs:
        groups[entry.vanishing(s)].append(s)
    if () in groups:
        out.append((entry, seqs))
    for zeros, group in groups.items():
        if zeros and (len(group) < len(seqs) or math.gcd(*group) != entry.g):
            _cover(mod, cfg, batch, group, cache, out, memory)


def _shallow_counts(mod, cfg, seqs, batch, verify, trusted, memory, wide=False,
                    known=None, seen=()) -> tuple[dict, set]:
    """``{seq: ((fwd, train, params, activation bytes), "symbolic" | "concrete")}`` for
    one config, and the keys of the symbolic programs that passed their check.  ``wide``:
    programs for whole regions of lengths, made where a region holds two lengths of
    ``seqs`` and ``seen`` (lengths counted before) or ``MIN_SYMBOLIC`` of ``seqs``;
    ``known``: counts of this config known already (``{seq: (fwd, train, params, bytes)}``,
    from concrete traces), used as such and to check programs on."""
    cache = _CACHE.setdefault((getattr(mod, "NAME", mod.__name__), cfg, batch, memory),
                              {"sym": [], "conc": {}, "no_symbolic": False})
    for s, counts in (known or {}).items():
        cache["conc"].setdefault(s, counts)

    def concrete(seq):
        if seq not in cache["conc"]:
            fc = full_count(mod, cfg, seq, batch, memory)
            cache["conc"][seq] = (fc.fwd, fc.train, fc.params, fc.activation_bytes)
        return cache["conc"][seq]

    def owner(seq):
        return next((e for e in cache["sym"] if e.usable(seq)), None)

    passed = set()
    todo = [s for s in seqs if s not in cache["conc"] and owner(s) is None]
    for region in regions(cfg, sorted(set(todo) | set(seen))):
        mine = [s for s in region if s in todo]
        new = []
        if wide and mine and (len(region) >= 2 or len(mine) >= MIN_SYMBOLIC) and not (
                cache["no_symbolic"] or not _symbolic_on()):
            g = step(mod, cfg, batch, region)
            lo, hi = bounds(cfg, region)
            _cover_wide(mod, cfg, batch, region, cache, new, memory,
                        (g, range(-(-lo // g), hi // g + 1)))
        elif mine:
            _cover(mod, cfg, batch, mine, cache, new, memory)
        for entry, lengths in new:
            if verify == "none" or entry.key in trusted or _agrees(entry, lengths, concrete,
                                                                   cache["conc"]):
                cache["sym"].append(entry)
                passed.add(entry.key)
    out = {}
    for s in seqs:
        e = owner(s)
        out[s] = (concrete(s), "concrete", e) if e is None or s in cache["conc"] else (
            e.count(s), "symbolic", e)
    return out, passed


def _agrees(entry, seqs, concrete, done=()) -> bool:
    """The program equals a concrete trace at one length: a risky one if any (traced
    concretely anyway; a difference there is allowed), else -- or then -- a clean one,
    one traced already (``done``) where there is one."""
    risky = [s for s in seqs if entry.risky(s)]
    clean = sorted((s for s in seqs if s not in risky), key=lambda s: s not in done)
    for s in risky[:1] + clean[:1]:
        want = concrete(s)
        try:
            got = entry.count(s)
        except (ZeroDivisionError, ValueError, KeyError):  # out of range at a boundary
            got = None
        if got and same(want[0], got[0]) and same(want[1], got[1]) and want[2:] == got[2:]:
            entry.checked_at = s
            return True
        if s not in risky:
            warnings.warn(f"symbolic trace ({entry.g} k) differs from a concrete trace at "
                          f"seq {s}: those lengths are traced concretely", RuntimeWarning)
    return False


def traced_counts(mod, cfg, seqs, batch: int = 1, verify: str = "point",
                  memory: bool = False) -> dict[int, FastCount]:
    """``{seq: FastCount}``, equal to full traces of ``mod.model(cfg)`` at every length;
    with ``memory``, also the saved activation bytes (``memory.saved_activation_bytes``).

    ``verify``: ``"none"`` trusts the logged symbolic decisions; ``"point"``
    (default) checks the symbolic programs at one length against concrete traces
    of the same shallow models; ``"full"`` also checks the smallest length
    against the full model and falls back to full traces on a difference.

    Where the JAX internals of the symbolic path are missing or behave otherwise
    (``jaxcompat.available()``), every length is traced concretely (the depth reduction,
    which needs no internals, is kept), with a warning once.
    """
    return traced_parts(mod, cfg, seqs, batch, verify, memory)[0]


def traced_parts(mod, cfg, seqs, batch: int = 1, verify: str = "point", memory: bool = False,
                 wide: bool = False, known=None) -> tuple:
    """``traced_counts`` and how it got them: ``(counts, plan, label, parts)``, ``parts[i]
    [seq] = (counts, "symbolic" | "concrete", the checked _Symbolic that covers seq or
    None)`` for the plan's i-th shallow model (``parts`` None where the full model was traced at every length).
    ``wide``, ``known``: as ``_shallow_counts`` takes them (``known``: the full model's
    ``{seq: FastCount}``, used for a plan of one model only)."""
    if verify not in ("none", "point", "full"):
        raise ValueError(f"verify must be none, point or full, got {verify!r}")
    seqs = sorted({int(s) for s in seqs})
    with no_gc():   # (building the model imports Flax)
        plan, label = depth_plan(mod, cfg)
    known = dict(known or {})
    facts = {s: (fc.fwd, fc.train, fc.params, fc.activation_bytes) for s, fc in known.items()
             } if len(plan) == 1 else {}
    parts, trusted = [None] * len(plan), set()
    for i in reversed(range(len(plan))):   # deeper models first: the base may trust them
        parts[i], passed = _shallow_counts(mod, plan[i][1], seqs, batch, verify,
                                           trusted if i == 0 else set(), memory, wide,
                                           facts, known)
        trusted |= passed
    out = {}
    for s in seqs:
        how = "+".join(sorted({p[s][1] for p in parts}))
        terms = [(coef, p[s][0]) for (coef, _), p in zip(plan, parts)]
        out[s] = FastCount(combine((c, t[0]) for c, t in terms),
                           combine((c, t[1]) for c, t in terms),
                           sum(c * t[2] for c, t in terms),
                           how if len(plan) == 1 else f"{label}; {how}",
                           sum(c * t[3] for c, t in terms) if memory else None)
    if verify == "full" and len(plan) > 1:
        ref, got = full_count(mod, cfg, seqs[0], batch, memory), out[seqs[0]]
        if not (same(ref.fwd, got.fwd) and same(ref.train, got.train)
                and (ref.params, ref.activation_bytes) == (got.params, got.activation_bytes)):
            warnings.warn(f"depth extrapolation differs from the full trace at seq {seqs[0]}: "
                          "tracing every length in full", RuntimeWarning)
            return ({s: full_count(mod, cfg, s, batch, memory) for s in seqs}, plan, label,
                    None)
    return out, plan, label, parts


__all__ = [
    "COND_FLAG",
    "DEPTH_ARCHS",
    "WHILE_FLAG",
    "CostProgram",
    "FastCount",
    "clear_cache",
    "combine",
    "depth_plan",
    "abstract_inputs",
    "full_count",
    "same",
    "traced_counts",
    "traced_parts",
]