"""Pricing requests: the options every cost command shares, checked once, and the row of
a device that cannot be priced -- so that ``--accelerator all`` never drops a device.

``price_options`` turns ``--prices`` / ``--price-kind`` / the catalogue file into the
keyword arguments of ``sweep.with_cost`` and ``pricing.train_cost`` (a date none of the
devices has a price for is refused here, naming the earliest snapshot they have);
``unpriced`` is the record of a device a request could not price, with the reason.
No jax: the analytic cost path imports this.
"""
from __future__ import annotations

from comparator.cost import prices as pr
from comparator.cost.catalogue import load_ranges


def price_options(accs, prices: str | None = None, price_kind: str = "on-demand",
                  catalogue_file: str | None = None) -> dict:
    """``{"prices": date or None, "price_kind": kind, "ranges": distributions}`` for
    ``accs``; a malformed date or kind, or a date no device of ``accs`` has a snapshot
    on or before, is a ``CatalogueError`` naming the option."""
    kind = pr.check_kind(price_kind)
    when = pr.as_of(prices)
    pr.check_as_of(accs, when, kind, prices)
    return {"prices": when, "price_kind": kind, "ranges": load_ranges(overrides=catalogue_file)}


COUNT_FIELDS = ("arch", "preset", "seq_len", "batch", "params", "method", "scope",
                "fwd_flops", "train_flops", "tokens", "convention", "baseline")


def unpriced(rec: dict, acc, reason: str) -> dict:
    """A row for ``acc`` that says why it has no time or cost (the counts kept)."""
    out = {k: rec[k] for k in COUNT_FIELDS if k in rec}
    out.update(accelerator=acc.name, not_priced=reason,
               missing={"step_time_s": f"{acc.name}: {reason}"})
    return out


__all__ = ["COUNT_FIELDS", "price_options", "unpriced"]
