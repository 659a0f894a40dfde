"""Exact polynomials in the length: fitted on consecutive lengths in rationals
(``fractions.Fraction``), kept only when they hold at lengths far from the fit.

``fit(f, start)`` interpolates the integer function ``f`` on ``start .. start + DEGREE``
and checks the polynomial at ``check_points(start)``; a count that is not a polynomial in
the length (``n log n``, ``n // 64``, a branch on the length) fails the check and gives
None.  ``formula(coeffs)`` writes one as ``16*n**2 + 4096*n``.
"""
from __future__ import annotations

from fractions import Fraction

DEGREE = 6   # the highest degree a fit can find (attention is 2, a cube of n is 3)


def check_points(start: int) -> tuple[int, ...]:
    """Lengths far from the fitted ones and of other residues (a floor division or a
    length-dependent branch shows there)."""
    return (2 * start + 2 * DEGREE + 3, 5 * start + 7, 16 * start + 101)


def fit_points(start: int) -> tuple[int, ...]:
    return tuple(range(start, start + DEGREE + 1))


def interpolate(xs, ys) -> tuple[Fraction, ...]:
    """Coefficients (constant first) of the polynomial through the points, trailing zeros
    dropped: Newton's divided differences, expanded."""
    xs, ys = [Fraction(x) for x in xs], [Fraction(y) for y in ys]
    n = len(xs)
    diffs = list(ys)
    for j in range(1, n):
        for i in range(n - 1, j - 1, -1):
            diffs[i] = (diffs[i] - diffs[i - 1]) / (xs[i] - xs[i - j])
    coeffs = [Fraction(0)] * n
    for i in range(n - 1, -1, -1):   # Horner on the Newton basis
        shifted = [Fraction(0)] + coeffs[:-1]        # coeffs * x
        coeffs = [s - xs[i] * c for s, c in zip(shifted, coeffs)]
        coeffs[0] += diffs[i]
    while len(coeffs) > 1 and coeffs[-1] == 0:
        coeffs.pop()
    return tuple(coeffs)


def value(coeffs, x) -> Fraction:
    out = Fraction(0)
    for c in reversed(coeffs):
        out = out * x + c
    return out


def fit(values: dict, start: int):
    """The polynomial (coefficients, constant first) through ``values[x]`` at
    ``fit_points(start)`` that also gives ``values[x]`` at ``check_points(start)``, or
    None."""
    xs = fit_points(start)
    coeffs = interpolate(xs, [values[x] for x in xs])
    if all(value(coeffs, x) == values[x] for x in check_points(start)):
        return coeffs
    return None


def formula(coeffs, var: str = "n") -> str:
    """``16*n**2 + 4096*n``: highest power first, exact (a fraction as ``3/2*n``)."""
    parts = []
    for k in range(len(coeffs) - 1, -1, -1):
        c = coeffs[k]
        if c == 0:
            continue
        mag = abs(c)
        power = "" if k == 0 else var if k == 1 else f"{var}**{k}"
        if not power:
            text = str(mag)
        elif mag == 1:
            text = power
        else:
            text = f"{mag}*{power}"
        parts.append(("-" if c < 0 else "+", text))
    if not parts:
        return "0"
    sign, first = parts[0]
    out = ("-" if sign == "-" else "") + first
    for sign, text in parts[1:]:
        out += f" {sign} {text}"
    return out


__all__ = ["DEGREE", "check_points", "fit", "fit_points", "formula", "interpolate", "value"]
