"""Series of records and what they show: log-log exponents and crossovers (pure arithmetic).

``series(records, x, y)`` groups records into ``{label: [(x, y), ...]}``; ``slope`` is the
least-squares exponent in log-log; ``crossovers`` where one series goes below another
(exact for power laws); ``analyse`` all three.  The plots draw them, the claims judge by
them, so they live below both.
"""
from __future__ import annotations

import math

X_KEYS = ("seq_len", "params")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def series(records: list[dict], x: str = "seq_len", y: str = "train_flops") -> dict:
    """{label: [(x, y), ...] sorted by x} after checking x, y and positivity (log axes)."""
    if x not in X_KEYS:
        raise ValueError(f"x: {x!r} is not allowed; choose from {', '.join(X_KEYS)}")
    if not records:
        raise ValueError("no records to plot")
    if not all(_number(r.get(y)) for r in records):
        numeric = sorted({k for r in records for k, v in r.items() if _number(v)})
        raise ValueError(f"y: {y!r} is not a numeric field of every record; "
                         f"choose from {', '.join(numeric)}")
    show = [k for k in ("method", "scope", "batch", "seq_len", "accelerator")
            if k != x and len({r.get(k) for r in records}) > 1]
    out: dict[str, dict] = {}
    for r in records:
        if not (r[x] > 0 and r[y] > 0):
            raise ValueError(f"{r['arch']}: {x}={r[x]!r}, {y}={r[y]!r}: log axes need "
                             "positive values")
        preset = r["preset"] if x == "seq_len" else r["preset"].split("@")[0]
        label = f"{r['arch']}:{preset}"
        if r.get("convention", "standard") != "standard":   # another paper's accounting
            label += f" [{r['convention']}]"
        extra = [f"{k}={r[k]}" if k in ("batch", "seq_len") else str(r[k]) for k in show]
        label += f" ({', '.join(extra)})" if extra else ""
        pts = out.setdefault(label, {})
        if r[x] in pts and pts[r[x]] != r[y]:
            raise ValueError(f"{label}: two records at {x}={r[x]} with different {y}")
        pts[r[x]] = r[y]
    return {label: sorted(pts.items()) for label, pts in out.items()}


def slope(pts) -> float | None:
    """Least-squares slope of log(y) against log(x); None with fewer than two points."""
    if len(pts) < 2:
        return None
    lx = [math.log(p[0]) for p in pts]
    ly = [math.log(p[1]) for p in pts]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    sxx = sum((a - mx) ** 2 for a in lx)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sxx


def crossovers(curves: dict) -> list[dict]:
    """Every place where series ``a`` goes from above to below series ``b``.

    Found between consecutive x values the two series share, by intersecting
    the two straight segments in log-log space (exact for power laws).  A tie
    at a shared point between a strict above and a strict below is reported at
    that point.  ``a`` is always the series that ends up below.
    """
    found = []
    labels = list(curves)
    for i, p in enumerate(labels):
        for q in labels[i + 1:]:
            yp, yq = dict(curves[p]), dict(curves[q])
            xs = sorted(set(yp) & set(yq))
            d = [math.log(yp[v]) - math.log(yq[v]) for v in xs]
            last = None                                   # index of last non-zero gap
            for k, dk in enumerate(d):
                if dk == 0:
                    continue
                if last is not None and (d[last] > 0) != (dk > 0):
                    a, b = (p, q) if d[last] > 0 else (q, p)
                    if k - last > 1:                      # exact tie at a shared point
                        xc, yc = xs[last + 1], yp[xs[last + 1]]
                    else:                                 # straight segments in log-log
                        t = d[last] / (d[last] - dk)
                        x0, x1 = xs[last], xs[k]
                        xc, yc = x0 * (x1 / x0) ** t, yp[x0] * (yp[x1] / yp[x0]) ** t
                    found.append({"a": a, "b": b, "x": xc, "y": yc})
                last = k
    return sorted(found, key=lambda c: c["x"])


def analyse(records: list[dict], x: str = "seq_len", y: str = "train_flops") -> dict:
    """Exponents, local exponents (last two points, series of >= 3) and crossovers."""
    curves = series(records, x, y)
    return {"exponents": {k: slope(v) for k, v in curves.items()},
            "local_exponents": {k: slope(v[-2:]) for k, v in curves.items() if len(v) >= 3},
            "crossovers": crossovers(curves), "series": curves}
