"""Low and high values (p5 and p95) of the time, device-hours, dollars, energy and CO2 of
a run, by Monte Carlo over the catalogue's stated distributions (NumPy, fixed seed).

Every figure of ``pricing.train_cost`` is its point value times a factor, and the factors
do not depend on the FLOPs, so they are drawn once per device and setting and cached:

- utilisation u ~ triangular(low x u0, u0, min(high x u0, 1)) around the point u0 (the
  catalogue's default MFU, a given one, or what the time model implies); time, wall-clock
  and device-hours scale by u0 / u;
- price ~ uniform over the offers current at the date priced (one per provider, offer and
  kind; only the chosen kind with ``--price-kind``); dollars scale by price / point price;
- PUE ~ triangular(min(low, p), p, max(high, p)) around the given PUE p; energy scales by it;
- grid intensity ~ triangular(min(low, g), g, max(high, g)) around the given g; CO2 =
  energy x it.

``SAMPLES`` draws with ``SEED``: the same inputs give the same low and high on every run.
Monte Carlo rather than interval arithmetic because the product of four ranges' extremes
(all bounds at once) is far less likely than p5/p95 and would overstate the spread.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

SAMPLES = 20_000
SEED = 16
PERCENTILES = (5.0, 95.0)
# the record fields each factor multiplies (and their *_all_runs twins)
TIME_FIELDS = ("step_time_s", "wall_clock_s", "device_hours")
FIELDS = TIME_FIELDS + ("dollars", "energy_kwh", "co2_kg")


def _triangular(rng, low: float, mode: float, high: float, n: int) -> np.ndarray:
    low, high = min(low, mode), max(high, mode)
    if high <= low:
        return np.full(n, mode)
    return rng.triangular(low, mode, high, n)


@lru_cache(maxsize=4096)
def factors(util: tuple, u0: float, pue: tuple, grid: tuple, prices: tuple,
            price_point: float | None) -> dict:
    """``{field: (low factor, high factor)}``; ``util`` = (low, high) factors of ``u0``,
    ``pue`` and ``grid`` = (point, low, high), ``prices`` the offers' USD per hour."""
    rng = np.random.default_rng(SEED)
    u = _triangular(rng, util[0] * u0, u0, min(util[1] * u0, max(1.0, u0)), SAMPLES)
    time = u0 / u
    p, plo, phi = pue
    pue_f = _triangular(rng, plo, p, phi, SAMPLES) / p
    g, glo, ghi = grid
    g_s = _triangular(rng, glo, g, ghi, SAMPLES)
    energy = time * pue_f

    def q(x):
        lo, hi = np.percentile(x, PERCENTILES)
        return float(lo), float(hi)

    out = {k: q(time) for k in TIME_FIELDS}
    out["energy_kwh"] = q(energy)
    # CO2 against its point (energy x g): g may be 0, so the factor is kept absolute
    out["co2_kg"] = q(energy * g_s / g) if g > 0 else q(energy * g_s)
    out["co2_absolute"] = g <= 0
    if prices and price_point:
        out["dollars"] = q(time * rng.choice(np.asarray(prices, float), SAMPLES) / price_point)
    return out


def spread(rec: dict, fac: dict, energy_point: float | None) -> dict:
    """``<field>_low``/``<field>_high`` for every figure of ``rec`` that has a value and
    a factor (``energy_point``: the run's kWh, for a CO2 drawn in absolute terms)."""
    out = {}
    for f in FIELDS:
        for name in (f, f + "_all_runs"):
            v = rec.get(name)
            if v is None or f not in fac:
                continue
            lo, hi = fac[f]
            if f == "co2_kg" and fac.get("co2_absolute"):
                scale = rec.get("runs", 1) if name.endswith("_all_runs") else 1
                lo, hi, v = lo * energy_point * scale, hi * energy_point * scale, 1.0
            out[name + "_low"], out[name + "_high"] = v * lo, v * hi
    return out


def describe(util: tuple, util_source: str, pue: tuple, pue_source: str, grid: tuple,
             grid_source: str, offers: list, when) -> dict:
    """The assumptions behind the low/high fields, as a record states them."""
    at = f"on or before {when.isoformat()}" if when is not None else "in the catalogue"
    return {
        "method": f"Monte Carlo, {SAMPLES:,} draws, seed {SEED}; low/high = p{PERCENTILES[0]:g}"
                  f"/p{PERCENTILES[1]:g}",
        "utilisation": f"triangular({util[0]:g} u, u, min({util[1]:g} u, 1)) around the point "
                       f"utilisation u; {util_source}",
        "price": (f"uniform over the {len(offers)} offers current {at}: " + "; ".join(
            f"{s.provider} {s.offer} {s.kind} ${s.usd_per_hour:g}/h ({s.date})".replace("  ", " ")
            for s in offers)) if offers else "no price",
        "pue": f"triangular({min(pue[1], pue[0]):g}, {pue[0]:g}, {max(pue[2], pue[0]):g}); "
               f"{pue_source}",
        "grid_intensity": f"triangular({min(grid[1], grid[0]):g}, {grid[0]:g}, "
                          f"{max(grid[2], grid[0]):g}) kg/kWh; {grid_source}",
    }


__all__ = ["FIELDS", "PERCENTILES", "SAMPLES", "SEED", "describe", "factors", "spread"]
