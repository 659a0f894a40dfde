"""An additive cost value: what one primitive (or a whole program) costs.

``flops`` counts every floating-point/integer operation of the ``all`` scope;
``matmul`` is the part of it spent in contractions (the ``matmul`` scope);
``transcendentals`` counts exp/log/tanh/erf/... evaluations separately (they are
also inside ``flops``); ``bytes`` is operands read + results written, the
unfused upper bound a roofline uses.  All fields are exact Python ints.
"""
from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Cost:
    flops: int = 0
    matmul: int = 0
    transcendentals: int = 0
    bytes: int = 0

    def __add__(self, other: "Cost") -> "Cost":
        if not isinstance(other, Cost):
            return NotImplemented
        return Cost(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def __radd__(self, other):
        # lets sum() start from 0
        if other == 0:
            return self
        return self.__add__(other)

    def __mul__(self, k: int) -> "Cost":
        if not isinstance(k, int):
            return NotImplemented
        return Cost(*(getattr(self, f.name) * k for f in fields(self)))

    __rmul__ = __mul__

    def scope(self, scope: str) -> int:
        """FLOPs under a counting scope: ``matmul`` or ``all``."""
        if scope == "matmul":
            return self.matmul
        if scope == "all":
            return self.flops
        raise ValueError(f"scope must be 'matmul' or 'all', got {scope!r}")


ZERO = Cost()
