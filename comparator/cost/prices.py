"""Dated price snapshots and the distributions behind low/high figures (no jax, no numpy).

A catalogue device lists ``[[accelerators.<name>.prices]]`` snapshots: one offer each
(date, kind, USD per device-hour, provider, offer, source).  ``latest`` picks a device's
point price, ``price_at`` the one in force on a date (``--prices 2020``: the latest
snapshot on or before the end of 2020) and ``offers_at`` every offer then current (one per
provider, offer and kind), which the ranges draw prices from.  ``check_ranges`` validates
the ``[ranges]`` tables.  ``CatalogueError`` lives here so that the catalogue can use
these checks without an import cycle (``comparator.cost.catalogue`` re-exports it).
"""
from __future__ import annotations

import datetime
import math
import re
from dataclasses import dataclass

from comparator.errors import FieldError

PRICE_KINDS = ("on-demand", "reserved", "spot", "preemptible")
PRICE_FIELDS = ("date", "kind", "usd_per_hour", "provider", "offer", "source", "reference")
# [ranges.<what>]: the bounds of a triangular distribution around the point value; the
# utilisation's are factors of the device's point utilisation
RANGES = {"utilisation": (0.0, "a factor in (0, 1]", "a factor >= 1"),
          "pue": (1.0, "a PUE >= 1", "a PUE >= 1"),
          "grid_intensity": (0.0, "kg CO2 per kWh >= 0", "kg CO2 per kWh >= 0")}
_DATE_RE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")


class CatalogueError(FieldError):
    """Bad catalogue data or lookup: names the field, the value and what is allowed."""


@dataclass(frozen=True)
class PriceSnapshot:
    """One offer as listed on ``date``: USD per device-hour of one ``kind``."""
    date: str
    kind: str
    usd_per_hour: float
    provider: str
    offer: str
    source: str
    reference: bool = False      # the catalogue's reference offer (its point price)


def check_date(where: str, value) -> str:
    if isinstance(value, datetime.date):  # an unquoted TOML date
        value = value.isoformat()
    if not isinstance(value, str) or not _DATE_RE.match(value):
        raise CatalogueError(where, value, "a date 'YYYY', 'YYYY-MM' or 'YYYY-MM-DD'")
    return value


def check_prices(where: str, value) -> tuple:
    """``[[prices]]`` tables -> PriceSnapshots (offer may be left out)."""
    if not isinstance(value, list) or not value:
        raise CatalogueError(where, value, "one or more [[accelerators.<name>.prices]] tables")
    out = []
    for i, snap in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(snap, dict):
            raise CatalogueError(at, snap, "a table of " + ", ".join(PRICE_FIELDS))
        for key in snap:
            if key not in PRICE_FIELDS:
                raise CatalogueError(f"{at}.{key}", snap[key], "fields are " + ", ".join(PRICE_FIELDS))
        for key in ("date", "kind", "usd_per_hour", "provider", "source"):
            if key not in snap:
                raise CatalogueError(f"{at}.{key}", None, "a required field of a price snapshot")
        usd = snap["usd_per_hour"]
        if isinstance(usd, bool) or not isinstance(usd, (int, float)) or \
                not math.isfinite(usd) or usd <= 0:
            raise CatalogueError(f"{at}.usd_per_hour", usd, "a finite number > 0 (USD per "
                                                             "device-hour)")
        if snap["kind"] not in PRICE_KINDS:
            raise CatalogueError(f"{at}.kind", snap["kind"], "one of " + ", ".join(PRICE_KINDS))
        for key in ("provider", "source", "offer"):
            text = snap.get(key, "-")
            if not isinstance(text, str) or not text.strip():
                raise CatalogueError(f"{at}.{key}", text, "a non-empty string")
        if not isinstance(snap.get("reference", False), bool):
            raise CatalogueError(f"{at}.reference", snap["reference"], "true or false")
        out.append(PriceSnapshot(check_date(f"{at}.date", snap["date"]), snap["kind"],
                                 float(usd), snap["provider"], snap.get("offer", ""),
                                 snap["source"], snap.get("reference", False)))
    return tuple(out)


def check_ranges(raw, base: dict | None = None) -> dict:
    """``[ranges]`` -> {what: (low, high, source)}, merged over ``base``; low <= high."""
    out = dict(base or {})
    if not isinstance(raw, dict):
        raise CatalogueError("ranges", raw, "tables " + ", ".join(RANGES))
    for what, table in raw.items():
        where = f"ranges.{what}"
        if what not in RANGES:
            raise CatalogueError(where, table, "ranges are " + ", ".join(RANGES))
        if not isinstance(table, dict) or set(table) - {"low", "high", "source"}:
            raise CatalogueError(where, table, "a table of low, high and source")
        merged = {**dict(zip(("low", "high", "source"), out.get(what, (None,) * 3))), **table}
        low, high, source = merged["low"], merged["high"], merged["source"]
        floor, low_allowed, high_allowed = RANGES[what]
        for key, v, allowed in (("low", low, low_allowed), ("high", high, high_allowed)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or v < floor or (what == "utilisation" and v <= 0):
                raise CatalogueError(f"{where}.{key}", v, allowed)
        if what == "utilisation" and not low <= 1 <= high:
            raise CatalogueError(f"{where}.low", low, "a factor <= 1 with high >= 1 (the "
                                 "bounds are factors of the point utilisation)")
        if low > high:
            raise CatalogueError(f"{where}.low", low, f"a number <= {where}.high ({high:g})")
        if not isinstance(source, str) or not source.strip():
            raise CatalogueError(f"{where}.source", source, "a non-empty citation string")
        out[what] = (float(low), float(high), source)
    return out


def latest(snaps, kind: str = "on-demand"):
    """The point price among ``snaps``: the latest ``kind`` snapshot marked ``reference``,
    else the latest of that kind (ties: the first listed); None when there is none."""
    of_kind = [s for s in snaps if s.kind == kind]
    pool = [s for s in of_kind if s.reference] or of_kind
    best = None
    for s in pool:
        if best is None or date_span(s.date)[0] > date_span(best.date)[0]:
            best = s
    return best


def date_span(text: str) -> tuple:
    """(first day, last day) of 'YYYY', 'YYYY-MM' or 'YYYY-MM-DD'."""
    parts = [int(x) for x in text.split("-")]
    y, m, d = (parts + [None, None])[:3]
    first = datetime.date(y, m or 1, d or 1)
    if d is not None:
        return first, first
    if m is not None:
        nxt = datetime.date(y + (m == 12), m % 12 + 1, 1)
        return first, nxt - datetime.timedelta(days=1)
    return first, datetime.date(y, 12, 31)




# ---------------------------------------------------------------- queries


def as_of(text) -> datetime.date | None:
    """The last day of ``--prices`` ('2020' -> 2020-12-31, '2020-06' -> 2020-06-30), or
    None for today's prices (no date given)."""
    if text is None:
        return None
    text = str(text).strip()
    try:
        if not _DATE_RE.match(text):
            raise ValueError
        return date_span(text)[1]
    except ValueError:
        raise CatalogueError("--prices", text, "a year YYYY or a date YYYY-MM or YYYY-MM-DD "
                                               "(the prices listed on or before it)") from None


def check_kind(kind: str) -> str:
    if kind not in PRICE_KINDS:
        raise CatalogueError("--price-kind", kind, "one of " + ", ".join(PRICE_KINDS))
    return kind


def _until(snaps, when):
    return [s for s in snaps if when is None or date_span(s.date)[0] <= when]


def price_at(acc, when: datetime.date | None = None, kind: str = "on-demand"):
    """``(snapshot, None)``: the latest ``kind`` snapshot of ``acc`` listed on or before
    ``when`` (any date when None), or ``(None, reason)``."""
    check_kind(kind)
    snap = latest(_until(acc.prices, when), kind)
    if snap is not None:
        return snap, None
    if not acc.prices:
        why = next((m.split(":", 1)[1].strip() for m in acc.missing
                    if m.split(":", 1)[0].strip() == "price_per_hour"),
                   "no price snapshot in the catalogue")
        return None, f"no public price: {why}"
    have = sorted(s.date for s in acc.prices if s.kind == kind)
    if not have:
        kinds = sorted({s.kind for s in acc.prices})
        return None, f"no {kind} price listed (the catalogue has {', '.join(kinds)})"
    return None, (f"no {kind} price listed on or before {when.isoformat()} (the earliest "
                  f"is {have[0]})")


def offers_at(acc, when: datetime.date | None = None, kind: str | None = None) -> list:
    """The offers current on ``when``: per (provider, offer, kind) the latest snapshot
    listed on or before it; only ``kind`` when given."""
    current: dict = {}
    for s in _until(acc.prices, when):
        if kind is not None and s.kind != kind:
            continue
        key = (s.provider, s.offer, s.kind)
        if key not in current or date_span(s.date)[0] > date_span(current[key].date)[0]:
            current[key] = s
    return list(current.values())


def check_as_of(accs, when: datetime.date | None, kind: str = "on-demand",
                given: str | None = None) -> None:
    """A dated request needs at least one device priced then: else a CatalogueError
    naming the date and the earliest snapshot the devices have."""
    if when is None:
        return
    if any(price_at(a, when, kind)[0] is not None for a in accs):
        return
    dates = sorted(date_span(s.date)[0] for a in accs for s in a.prices if s.kind == kind)
    names = ", ".join(a.name for a in accs)
    raise CatalogueError("--prices", given or when.isoformat(),
                         f"a date on or after the earliest {kind} price snapshot of {names} "
                         + (f"({dates[0].isoformat()})" if dates else
                            "(they have none: see 'comparator accelerators')"))
