"""Caption sentences of the cost tables: what the (low-high) ranges are drawn from and
which price (source, date) each device was priced at."""
from __future__ import annotations


def ranges_text(recs: list) -> str:
    """Caption sentence: what the (low-high) figures are and where they come from."""
    if not recs:
        return ""
    d = recs[0]["assumptions"]["ranges"]
    return (f"(low-high) = p5-p95 of {d['method'].split(';')[0]}: utilisation "
            f"{d['utilisation'].split(';')[0]}, price uniform over the offers listed then "
            f"(every kind with on-demand), PUE {d['pue'].split(';')[0]}, grid intensity "
            f"{d['grid_intensity'].split(';')[0]}; sources in the JSON assumptions and "
            "comparator/data/accelerators.toml. ")


def price_sources(recs: list, when: str | None) -> str:
    """Caption sentence citing each device's price (and the period one) with its date."""
    seen, parts = set(), []
    for r in recs:
        for tag, src, date, usd in (("today", r["price_source"], r["price_date"],
                                     r["price_per_hour"]),
                                    (when, r.get("period_price_source"),
                                     r.get("period_price_date"),
                                     r.get("period_price_per_hour"))):
            if tag and src and (r["accelerator"], tag) not in seen:
                seen.add((r["accelerator"], tag))
                parts.append(f"{r['accelerator']} ({'prices of ' + tag if tag != 'today' else 'today'}"
                             f"): ${usd:g}/h listed {date}, {src}")
    return ("Prices: " + " | ".join(parts) + ". ") if parts else ""


__all__ = ["price_sources", "ranges_text"]
