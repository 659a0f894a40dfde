"""The terms of a traced step's contractions, by shape: for the compiled dots whose
``metadata`` XLA dropped when it rewrote them.

``contraction_pool(mod, cfg, seq, batch)`` walks the training step's jaxpr as
``comparator.count.trace`` does (calls entered, scans multiplied) and counts, per contraction
signature, how many ``dot_general`` equations of each term the step runs.  A signature
is ``(min(m, n), k, max(m, n), batch)``: transposing a product swaps m and n, and XLA
transposes freely.  ``regions`` hands the dots without a term of their own the terms
this pool has left once the dots with metadata took theirs, so the compiled step's
contraction FLOPs per term equal the traced ones wherever XLA keeps the shapes.
"""
from __future__ import annotations

from collections import Counter, defaultdict

from comparator.count.trace import _dce, _Walker


def signature(m: int, k: int, n: int, batch: int = 1) -> tuple:
    return (min(m, n), k, max(m, n), batch)


def _dims(shape, idx) -> int:
    out = 1
    for i in idx:
        out *= int(shape[i])
    return out


class _DotWalker(_Walker):
    def __init__(self):
        super().__init__()
        self.pool: dict = defaultdict(Counter)

    def scratch(self):
        w = type(self)()
        w.memo = self.memo
        return w

    def absorb(self, other) -> None:
        super().absorb(other)
        for sig, terms in other.pool.items():
            self.pool[sig].update(terms)

    def record(self, eqn, term, cost, times) -> None:
        super().record(eqn, term, cost, times)
        if eqn.primitive.name != "dot_general":
            return
        (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
        lhs, rhs = eqn.invars[0].aval.shape, eqn.invars[1].aval.shape
        m = _dims(lhs, [i for i in range(len(lhs)) if i not in (*lc, *lb)])
        n = _dims(rhs, [i for i in range(len(rhs)) if i not in (*rc, *rb)])
        self.pool[signature(m, _dims(lhs, lc), n, _dims(lhs, lb))][term] += times


def contraction_pool(mod, cfg, seq: int, batch: int = 1) -> dict:
    """``{signature: Counter({term: dot_general equations run})}`` of the training step."""
    import jax
    prog = mod.model(cfg)
    closed = jax.make_jaxpr(prog.train_step)(*prog.abstract_inputs(batch, seq))
    w = _DotWalker()
    w.walk(_dce(closed))
    return {sig: Counter(c) for sig, c in w.pool.items()}


def assign(regions: list, indirect: set, pool: dict) -> list:
    """``regions`` with each contraction in ``indirect`` (indices of the regions whose
    term was not their own metadata's) given a term the pool has left for its
    signature: its neighbours' term when that one is left, else the most frequent."""
    from dataclasses import replace
    left = {sig: Counter(c) for sig, c in pool.items()}
    key = lambda r: signature(*r.shape)    # noqa: E731
    for i, r in enumerate(regions):
        if r.kind == "matmul" and r.shape and i not in indirect and key(r) in left:
            left[key(r)][r.term] -= r.count
    out = list(regions)
    for i in sorted(indirect):
        r = regions[i]
        if r.kind != "matmul" or not r.shape:
            continue
        have = {t: c for t, c in left.get(key(r), {}).items() if c > 0}
        if not have:
            continue
        term = r.term if r.term in have else max(sorted(have), key=have.get)
        left[key(r)][term] -= r.count
        out[i] = replace(r, term=term)
    return out


__all__ = ["assign", "contraction_pool", "signature"]
