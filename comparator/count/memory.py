"""Traced activation memory: the residuals JAX's autodiff keeps for the backward pass.

``saved_activations(prog, params, data, rng)`` builds, on abstract inputs only
(nothing is allocated), the jaxpr of ``jax.vjp`` of ``prog.loss`` with respect
to the parameters, and reads the residuals off it: the pullback ``jax.vjp``
returns is a pytree whose leaves are exactly the values the backward needs
(``jax.ad_checkpoint.print_saved_residuals`` reads them the same way).  Each
residual is classified by what it is computed from:

* ``input``      -- a parameter, a data array or the PRNG key itself (exists anyway);
* ``param_view`` -- computed from parameters (and constants) alone, e.g. a layer
  norm's scale reshaped for broadcasting: a function of the weights, not of the
  sequence (excluded like the parameters);
* ``activation`` -- depends on the data or the PRNG key: the activation memory;
* ``splat``      -- a scalar constant broadcast to a shape (the zeros a ``where`` or
  ReLU derivative selects from): it carries one number, XLA never materialises
  it, and JAX keeps it only because partial evaluation does not forward
  constants out of a jitted call; excluded like literal scalars;
* ``constant``   -- any other value that depends on nothing (a causal mask from
  iota comparisons, T5's static relative-position index map): counted, as the
  backward holds it like an activation (once per step, whatever the batch).

Literal scalars are free.  The total counted is ``activation + constant`` bytes;
each residual is attributed to the term of the equation producing it (the
named scopes of ``comparator.count.trace``), looking through views (reshape,
transpose, ...) when that equation carries no term scope.

This is the memory JAX's autodiff holds between forward and backward, before
XLA: a compiled step may fuse some residuals away or rematerialise them.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import jax

from comparator.count.jaxcompat import Literal
from comparator.count.trace import CALL_PARAMS, CALLS, UNATTRIBUTED, _scopes, term_of

VIEWS = {"reshape", "transpose", "squeeze", "expand_dims", "broadcast_in_dim",
         "convert_element_type", "copy", "copy_p", "slice", "split", "reduce_precision"}
COUNTED = ("activation", "constant")


@dataclass(frozen=True)
class Residual:
    shape: tuple
    dtype: str
    nbytes: int
    primitive: str      # the producing equation ("" for inputs and constants)
    term: str
    kind: str           # input | param_view | splat | activation | constant


@dataclass
class MemoryResult:
    residuals: list = field(default_factory=list)

    @property
    def total(self) -> int:
        """Bytes of the counted residuals (activations and constants)."""
        return sum(r.nbytes for r in self.residuals if r.kind in COUNTED)

    def by_kind(self) -> dict:
        out: dict = defaultdict(int)
        for r in self.residuals:
            out[r.kind] += r.nbytes
        return dict(out)

    def by_term(self) -> dict:
        out: dict = defaultdict(int)
        for r in self.residuals:
            if r.kind in COUNTED:
                out[r.term] += r.nbytes
        return dict(sorted(out.items()))


def pullback_jaxpr(loss, params, *args):
    """(jaxpr, its residual outvars, number of parameter leaves) of ``jax.vjp`` of
    ``loss(params, *args)`` with respect to ``params``, traced on abstract values.

    The jaxpr returns the pullback alone, so its outvars are the pullback's leaves:
    the residuals (the jaxpr's first invars are the parameter leaves)."""

    def f(p, *rest):
        return jax.vjp(lambda q: loss(q, *rest), p)[1]

    closed, shape = jax.make_jaxpr(f, return_shape=True)(params, *args)
    jaxpr = closed.jaxpr
    n_res = len(jax.tree_util.tree_leaves(shape))
    n_par = len(jax.tree_util.tree_leaves(params))
    return jaxpr, jaxpr.outvars[len(jaxpr.outvars) - n_res:], n_par


TERM = "term"          # a producer entry already resolved to its term: (TERM, term)
_P, _D, _S = 1, 2, 4   # flow bits: reaches a parameter, reaches data/key, a broadcast scalar
SPLATS = {"broadcast_in_dim", "convert_element_type", "reshape", "copy", "copy_p"}


def _sub_jaxpr(eqn):
    """The body of a call-like equation (jit, custom_jvp/vjp, remat), else None; loops
    and conditionals are treated as one opaque equation."""
    if eqn.primitive.name not in CALLS:
        return None
    for key in CALL_PARAMS:
        sub = eqn.params.get(key)
        if sub is not None:
            return getattr(sub, "jaxpr", sub) if not hasattr(sub, "eqns") else sub
    return None


def _flow(jaxpr, in_bits, bits: dict, producer: dict | None = None, prefix: tuple = ()) -> list:
    """Propagate flow bits through ``jaxpr`` (into call-like sub-jaxprs, so a jitted
    ``where`` whose second output is a zero splat is told apart from its first).
    ``producer`` maps each var to ``(equation, scope prefix)``: an output of a call is
    mapped to the equation inside that computes it (a jitted layer's residuals keep
    their terms)."""
    for v, b in zip(jaxpr.invars, in_bits):
        bits[v] = b
    for v in jaxpr.constvars:
        bits[v] = 0
    get = lambda v: _S if isinstance(v, Literal) else bits.get(v, 0)
    for eqn in jaxpr.eqns:
        ins = [get(v) for v in eqn.invars]
        sub = _sub_jaxpr(eqn)
        if sub is not None and len(sub.invars) == len(ins) and len(sub.outvars) == len(eqn.outvars):
            if producer is not None:   # a body shared by several calls: map it to this one
                for i, v in zip(sub.invars, eqn.invars):
                    if isinstance(v, Literal) or v not in producer:
                        producer.pop(i, None)
                    else:
                        producer[i] = producer[v]
            outs = _flow(sub, ins, bits, producer, prefix + _scopes(eqn))
            if producer is not None:   # resolved now, while the body is mapped to this call
                for o, i in zip(eqn.outvars, sub.outvars):
                    producer[o] = (TERM, _term(i, producer)) if i in producer else (eqn, prefix)
        else:
            dep = 0
            for b in ins:
                dep |= b & (_P | _D)
            splat = (eqn.primitive.name in SPLATS and len(ins) == 1 and not dep
                     and (ins[0] & _S or eqn.invars[0].aval.size == 1))
            outs = [dep | (_S if splat else 0)] * len(eqn.outvars)
            if producer is not None:
                for v in eqn.outvars:
                    producer[v] = (eqn, prefix)
        for v, b in zip(eqn.outvars, outs):
            bits[v] = b
    return [get(v) for v in jaxpr.outvars]


def _kind(b: int) -> str:
    if b & _D:
        return "activation"
    if b & _P:
        return "param_view"
    return "splat" if b & _S else "constant"


def residuals(loss, params, *args) -> MemoryResult:
    """Every distinct residual of ``loss`` differentiated w.r.t. ``params`` (see module doc)."""
    return residuals_of(*pullback_jaxpr(loss, params, *args))


def residuals_of(jaxpr, res, n_par: int) -> MemoryResult:
    """The residuals ``res`` (outvars of ``jaxpr``, whose first ``n_par`` invars are the
    parameter leaves and the others data), classified and attributed (see module doc)."""
    bits: dict = {}
    producer: dict = {}
    _flow(jaxpr, [_P if i < n_par else _D for i in range(len(jaxpr.invars))], bits, producer)
    invars = set(jaxpr.invars)
    out, seen = MemoryResult(), set()
    for v in res:
        if isinstance(v, Literal) or v in seen:
            continue
        seen.add(v)
        a = v.aval
        eqn = producer.get(v, (None, ()))[0]
        out.residuals.append(Residual(
            tuple(a.shape), str(a.dtype), _nbytes(a),
            eqn.primitive.name if eqn not in (None, TERM) else "", _term(v, producer),
            "input" if v in invars else _kind(bits[v])))
    return out


def _nbytes(aval):
    """Bytes of an abstract value: an int, or a ``jax.export`` dim expression when the
    shape is symbolic (``comparator.count.fasttrace`` evaluates it per length)."""
    n = aval.size * aval.dtype.itemsize
    return n if hasattr(n, "_sorted_terms") else int(n)


def _term(v, producer) -> str:
    """Term of the producing equation; through views when it has no term scope."""
    eqn, prefix = producer.get(v, (None, ()))
    while eqn is not None:
        if eqn is TERM:
            return prefix
        t = term_of(prefix + _scopes(eqn))
        if t != UNATTRIBUTED or eqn.primitive.name not in VIEWS or not eqn.invars \
                or isinstance(eqn.invars[0], Literal):   # a view of a literal: no producer
            return t
        eqn, prefix = producer.get(eqn.invars[0], (None, ()))
    return UNATTRIBUTED


def saved_activations(prog, params_abstract, data_abstract, rng_abstract) -> MemoryResult:
    """Residuals of one training step of a ``Program`` (``prog.loss`` w.r.t. params)."""
    return residuals(prog.loss, params_abstract, data_abstract, rng_abstract)


def saved_activation_bytes(prog, params_abstract, data_abstract, rng_abstract) -> int:
    """Bytes saved between forward and backward: activations and constants (parameters,
    inputs, parameter views and broadcast scalars excluded, see module doc)."""
    return saved_activations(prog, params_abstract, data_abstract, rng_abstract).total


def model_activations(mod, cfg, seq: int, batch: int = 1) -> MemoryResult:
    """``saved_activations`` of architecture module ``mod`` at ``cfg`` on abstract inputs."""
    prog = mod.model(cfg)
    return saved_activations(prog, *prog.abstract_inputs(batch, seq))


def describe(result: MemoryResult) -> list[str]:
    """One line per residual (for exploring what a model keeps)."""
    return [f"{r.kind:10s} {r.term:20s} {r.primitive:20s} {r.dtype}{list(r.shape)} {r.nbytes}"
            for r in result.residuals]


__all__ = ["Residual", "MemoryResult", "residuals", "residuals_of", "saved_activations",
           "saved_activation_bytes", "model_activations", "describe"]
