"""An additive cost value: what one primitive (or a whole program) costs.

``flops`` counts every floating-point/integer operation of the ``all`` scope;
``matmul`` is the part of it spent in contractions (the ``matmul`` scope);
``transcendentals`` counts exp/log/tanh/erf/... evaluations separately (they are
also inside ``flops``); ``bytes`` is operands read + results written, the
unfused upper bound a roofline uses.  All fields are exact Python ints.
``TraceResult`` is what a traced count gives: the total, by term, and the primitives
unsupported or flagged (no jax here: stored programs are evaluated without it).
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Cost:
    flops: int = 0
    matmul: int = 0
    transcendentals: int = 0
    bytes: int = 0

    def __add__(self, other: "Cost") -> "Cost":
        if not isinstance(other, Cost):
            return NotImplemented
        return Cost(self.flops + other.flops, self.matmul + other.matmul,
                    self.transcendentals + other.transcendentals, self.bytes + other.bytes)

    def __radd__(self, other):
        # lets sum() start from 0
        if other == 0:
            return self
        return self.__add__(other)

    def __mul__(self, k: int) -> "Cost":
        if not isinstance(k, int):
            return NotImplemented
        return Cost(self.flops * k, self.matmul * k, self.transcendentals * k, self.bytes * k)

    __rmul__ = __mul__

    def scope(self, scope: str) -> int:
        """FLOPs under a counting scope: ``matmul`` or ``all``."""
        if scope == "matmul":
            return self.matmul
        if scope == "all":
            return self.flops
        raise ValueError(f"scope must be 'matmul' or 'all', got {scope!r}")


ZERO = Cost()


@dataclass
class TraceResult:
    total: Cost = ZERO
    by_term: dict[str, Cost] = field(default_factory=dict)
    unsupported: dict[str, int] = field(default_factory=dict)
    flagged: dict[str, int] = field(default_factory=dict)

    def breakdown(self, scope: str) -> dict[str, int]:
        return {k: c.scope(scope) for k, c in sorted(self.by_term.items())}

    def flops(self, scope: str) -> int:
        return self.total.scope(scope)
