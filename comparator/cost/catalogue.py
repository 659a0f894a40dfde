"""The accelerator catalogue: peak rates, memory, power, dated prices and a default MFU per
device, and the distributions behind every low/high figure.

The numbers live in ``comparator/data/accelerators.toml`` (package data), each group of
them with its source; this module loads, validates and merges them.  Prices are dated
snapshots (``PriceSnapshot``: date, kind, USD per device-hour, provider, offer, source);
a device's ``price_per_hour`` is its latest on-demand snapshot.  ``load_ranges()`` reads
the ``[ranges]`` tables (utilisation, PUE, grid intensity: low and high, sourced).  ``load()`` reads the
packaged file; ``load(overrides=FILE)`` merges a user TOML or JSON file of the same shape
(``[accelerators.<name>]`` tables) on top: a known name changes only the fields given, a
new name adds a device, which must then give at least one peak, ``memory_gb`` and
``memory_bandwidth_gbs``.  A number set by an override without a source of its own is
sourced to the override file, so every number keeps a provenance.

Units are SI throughout: peaks in FLOP/s (int8 in OP/s) and always DENSE (vendors' "with
sparsity" figures are halved in the data file); ``memory_gb`` in 1e9 bytes; bandwidths in
GB/s; ``sram_kib`` (shared memory per SM, a TPU core's VMEM) in KiB; ``tdp_w`` in W;
``price_per_hour`` in USD per device-hour.  Bad data is a
``CatalogueError(field, value, allowed)`` whose field names the entry ("h100-sxm.bf16",
"t4.prices[0].usd_per_hour", "ranges.pue.low").
No jax here: the analytic path imports this.
"""
from __future__ import annotations

import datetime
import difflib
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from types import MappingProxyType

from comparator.cost import files
from comparator.cost.prices import (RANGES, CatalogueError, PriceSnapshot,
                                    check_date, check_prices, check_ranges, latest)

PEAK_FIELDS = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8")
NUMBER_FIELDS = PEAK_FIELDS + ("memory_gb", "memory_bandwidth_gbs", "sram_kib", "tdp_w",
                               "interconnect_gbs", "price_per_hour", "default_mfu")
TEXT_FIELDS = ("description", "vendor", "kind", "interconnect_note", "price_provider",
               "price_date", "mfu_source")
ENTRY_FIELDS = NUMBER_FIELDS + TEXT_FIELDS + ("sources", "missing", "prices")
KINDS = ("gpu", "tpu", "other")
# which sources.<group> cites which numbers (default_mfu is cited by mfu_source)
SOURCE_GROUPS = {"peaks": PEAK_FIELDS, "memory": ("memory_gb", "memory_bandwidth_gbs"),
                 "sram": ("sram_kib",), "power": ("tdp_w",), "interconnect": ("interconnect_gbs",),
                 "price": ("price_per_hour",)}
GROUP_OF = {f: g for g, fs in SOURCE_GROUPS.items() for f in fs}
DTYPE_ALIASES = {"float32": "fp32", "f32": "fp32", "single": "fp32",
                 "tensorfloat32": "tf32", "bfloat16": "bf16", "float16": "fp16",
                 "f16": "fp16", "half": "fp16", "float8": "fp8", "e4m3": "fp8",
                 "e5m2": "fp8", "float8_e4m3fn": "fp8", "float8_e5m2": "fp8"}
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
PACKAGED = "data/accelerators.toml"


@dataclass(frozen=True)
class Accelerator:
    """One device (one chip for TPUs).  Absent numbers are None; see ``missing``."""
    name: str
    vendor: str = "unspecified"
    kind: str = "other"
    description: str = ""
    fp32: float | None = None
    tf32: float | None = None
    bf16: float | None = None
    fp16: float | None = None
    fp8: float | None = None
    int8: float | None = None
    memory_gb: float | None = None
    memory_bandwidth_gbs: float | None = None
    sram_kib: float | None = None      # on-chip memory a kernel block keeps tiles in (KiB)
    tdp_w: float | None = None
    interconnect_gbs: float | None = None
    interconnect_note: str | None = None
    price_per_hour: float | None = None
    price_provider: str | None = None
    price_date: str | None = None
    default_mfu: float | None = None
    mfu_source: str | None = None
    sources: Mapping[str, str] = field(default_factory=dict, hash=False)
    missing: tuple[str, ...] = ()
    prices: tuple[PriceSnapshot, ...] = ()

    @property
    def dtypes(self) -> tuple[str, ...]:
        """The dtypes with a published peak, in PEAK_FIELDS order."""
        return tuple(d for d in PEAK_FIELDS if getattr(self, d) is not None)

    def peak(self, dtype: str) -> float:
        """Dense peak FLOP/s (OP/s for int8) for ``dtype`` ("bf16", "bfloat16", ...)."""
        key = DTYPE_ALIASES.get(str(dtype).lower(), str(dtype).lower())
        value = getattr(self, key, None) if key in PEAK_FIELDS else None
        if value is None:
            have = ", ".join(self.dtypes) or "none"
            why = "" if key in PEAK_FIELDS else f" (dtypes are {', '.join(PEAK_FIELDS)})"
            raise CatalogueError(f"{self.name}.{key}", dtype,
                                 f"{self.name} has no published {key} peak{why}; "
                                 f"it has: {have}")
        return value


# ---------------------------------------------------------------- reading


@lru_cache(maxsize=1)
def _packaged_text() -> str:
    return resources.files("comparator").joinpath(PACKAGED).read_text(encoding="utf-8")


FILE_ALLOWED = "a readable TOML or JSON file"


def _parse(text: str, origin: str, fmt: str) -> dict:
    data = files.parse(text, fmt, origin, "--accelerators", FILE_ALLOWED, CatalogueError)
    if not isinstance(data, dict):
        raise CatalogueError(origin, type(data).__name__, "an object of [accelerators.<name>] tables")
    unknown = sorted(set(data) - {"accelerators", "schema_version", "ranges"})
    if unknown:
        raise CatalogueError(f"{origin}: {unknown[0]}", data[unknown[0]],
                             "top-level keys are 'accelerators', 'ranges' and 'schema_version'")
    entries = data.get("accelerators", {})
    if not isinstance(entries, dict):
        raise CatalogueError(f"{origin}: accelerators", entries, "a table of <name> tables")
    ranges = data.get("ranges", {})
    if not isinstance(ranges, dict) or not all(isinstance(v, dict) for v in ranges.values()):
        raise CatalogueError(f"{origin}: ranges", ranges, "tables [ranges.<what>] of low, "
                                                          "high and source")
    return entries, ranges


def _read_file(path: str) -> tuple[tuple, str]:
    path = os.fspath(path)
    fmt = "json" if path.lower().endswith(".json") else "toml"
    text = files.read_text(path, "--accelerators", FILE_ALLOWED, CatalogueError)
    return _parse(text, path, fmt), path


# ---------------------------------------------------------------- validation


def _check_name(name) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise CatalogueError("accelerator name", name,
                             "lowercase letters, digits, '.', '_' and '-' (like 'h100-sxm')")
    return name


def _check_entry(name: str, raw) -> dict:
    """Validated, normalised fields of one raw table (only the keys present)."""
    if not isinstance(raw, dict):
        raise CatalogueError(name, raw, "a table of fields")
    out = {}
    for key, value in raw.items():
        where = f"{name}.{key}"
        if key not in ENTRY_FIELDS:
            close = difflib.get_close_matches(key, ENTRY_FIELDS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise CatalogueError(where, value, "fields are " + ", ".join(ENTRY_FIELDS) + hint)
        if key in NUMBER_FIELDS:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise CatalogueError(where, value, "a number")
            value = float(value)
            if not math.isfinite(value) or value <= 0:
                raise CatalogueError(where, value, "a finite number > 0")
            if key == "default_mfu" and value > 1:
                raise CatalogueError(where, value, "a fraction in (0, 1]")
        elif key == "price_date":
            value = check_date(where, value)
        elif key == "prices":
            value = check_prices(where, value)
        elif key in TEXT_FIELDS:
            if not isinstance(value, str) or not value.strip():
                raise CatalogueError(where, value, "a non-empty string")
            if key == "kind" and value not in KINDS:
                raise CatalogueError(where, value, "one of " + ", ".join(KINDS))
        elif key == "sources":
            if not isinstance(value, dict):
                raise CatalogueError(where, value, "a table of group = citation")
            for group, cite in value.items():
                if group not in SOURCE_GROUPS:
                    raise CatalogueError(f"{where}.{group}", cite,
                                         "groups are " + ", ".join(SOURCE_GROUPS))
                if not isinstance(cite, str) or not cite.strip():
                    raise CatalogueError(f"{where}.{group}", cite, "a non-empty citation string")
            value = dict(value)
        elif key == "missing":
            if not isinstance(value, list):
                raise CatalogueError(where, value, "a list of 'field: reason' strings")
            for item in value:
                head = item.split(":", 1)[0].strip() if isinstance(item, str) else None
                if head not in NUMBER_FIELDS or ":" not in item or not item.split(":", 1)[1].strip():
                    raise CatalogueError(where, item, "'field: reason' with a numeric field "
                                                      "(" + ", ".join(NUMBER_FIELDS) + ")")
            value = tuple(value)
        out[key] = value
    return out


def _check_complete(name: str, fields: dict) -> None:
    """A device must be usable: a peak, its memory and its bandwidth."""
    if not any(fields.get(d) is not None for d in PEAK_FIELDS):
        raise CatalogueError(f"{name}.peaks", None,
                             "a new accelerator needs at least one of " + ", ".join(PEAK_FIELDS))
    for key in ("memory_gb", "memory_bandwidth_gbs"):
        if fields.get(key) is None:
            raise CatalogueError(f"{name}.{key}", None, "a new accelerator needs " + key)


def _as_snapshots(name: str, fields: dict, origin: str) -> dict:
    """``fields`` with one price representation: a ``price_per_hour`` given without
    ``prices`` becomes one on-demand snapshot (dated ``price_date``, else today)."""
    if "price_per_hour" not in fields:
        return fields
    if "prices" in fields:
        raise CatalogueError(f"{name}.price_per_hour", fields["price_per_hour"],
                             "either price_per_hour or [[prices]] snapshots, not both")
    out = {k: v for k, v in fields.items() if k not in ("price_per_hour", "price_provider",
                                                        "price_date")}
    source = fields.get("sources", {}).get("price") or f"user override: {origin}"
    out["prices"] = (PriceSnapshot(fields.get("price_date") or datetime.date.today().isoformat(),
                                   "on-demand", fields["price_per_hour"],
                                   fields.get("price_provider") or f"user override: {origin}",
                                   "", source),)
    return out


def _build(name: str, fields: dict) -> Accelerator:
    fields = dict(fields)
    sources = dict(fields.get("sources", {}))
    snaps = tuple(fields.get("prices", ()))
    point = latest(snaps)
    if point is not None:   # the point price: the latest on-demand snapshot
        fields.update(price_per_hour=point.usd_per_hour, price_date=point.date,
                      price_provider=f"{point.provider}, {point.offer}".rstrip(", "))
        sources["price"] = point.source
    fields["sources"] = MappingProxyType(sources)
    fields["missing"] = tuple(fields.get("missing", ()))
    fields["prices"] = snaps
    return Accelerator(name=name, **fields)


# ---------------------------------------------------------------- merging


def _merge(base: dict, change: dict, origin: str) -> dict:
    """``base`` with the fields of ``change``; numbers set without a source of their own
    are cited as coming from ``origin``; a field now given leaves ``missing``."""
    out = dict(base)
    sources = dict(base.get("sources", {}))
    sources.update(change.get("sources", {}))
    unsourced: dict[str, list[str]] = {}
    if "prices" in change:          # a new price list replaces the old one
        out.pop("prices", None)
    for key, value in change.items():
        if key in ("sources", "missing"):
            continue
        out[key] = value
        group = GROUP_OF.get(key)
        if group and group not in change.get("sources", {}):
            unsourced.setdefault(group, []).append(key)
        if key == "price_per_hour":       # one price replaces the snapshot list
            out.pop("prices", None)
        if key == "default_mfu" and "mfu_source" not in change:
            out["mfu_source"] = f"user override: {origin}"
    for group, keys in unsourced.items():  # keep the citation of the untouched numbers
        note = f"{', '.join(keys)}: user override {origin}"
        sources[group] = f"{sources[group]}; {note}" if group in sources else note
    given = {k for k in change if k in NUMBER_FIELDS} | (
        {"price_per_hour"} if "prices" in change else set())
    missing = [m for m in base.get("missing", ()) if m.split(":", 1)[0].strip() not in given]
    missing += [m for m in change.get("missing", ()) if m not in missing]
    out["sources"], out["missing"] = sources, tuple(missing)
    return _as_snapshots(origin, out, origin) if "price_per_hour" in change else out


def _normalise(name: str) -> str:
    return str(name).strip().lower().replace("_", "-").replace(" ", "-")


def load(path: str | None = None, overrides: str | None = None) -> dict[str, Accelerator]:
    """The catalogue as ``{name: Accelerator}``, in file order.

    ``path`` replaces the packaged file (same shape); ``overrides`` is a TOML or JSON
    file merged on top (``--accelerators FILE``)."""
    origin = "comparator/" + PACKAGED if path is None else os.fspath(path)
    raw = _parse(_packaged_text(), origin, "toml")[0] if path is None else _read_file(path)[0][0]
    entries = {}
    for name, table in raw.items():
        fields = _as_snapshots(name, _check_entry(_check_name(name), table), origin)
        if path is not None:  # a user's whole catalogue: every entry must be usable
            _check_complete(name, fields)
        entries[name] = fields
    if overrides is not None:
        (extra, _), where = _read_file(overrides)
        for name, table in extra.items():
            key = _check_name(_normalise(name))
            change = _check_entry(key, table)
            if key in entries:
                entries[key] = _merge(entries[key], change, where)
            else:
                _check_complete(key, change)
                entries[key] = _merge({}, change, where)
    load_ranges(path, overrides)      # a bad distribution is refused by every command
    return {name: _build(name, fields) for name, fields in entries.items()}


def load_ranges(path: str | None = None, overrides: str | None = None) -> dict:
    """``{what: (low, high, source)}`` of the ``[ranges]`` tables (utilisation, pue,
    grid_intensity), the override file's fields merged over the catalogue's."""
    raw = (_parse(_packaged_text(), "comparator/" + PACKAGED, "toml") if path is None
           else _read_file(path)[0])[1]
    base = check_ranges(raw)
    if overrides is not None:
        (_, extra), _ = _read_file(overrides)
        base = check_ranges(extra, base)
    missing = [w for w in RANGES if w not in base]
    if missing:
        raise CatalogueError(f"ranges.{missing[0]}", None, "a [ranges." + missing[0] +
                             "] table with low, high and source")
    return base


def lookup(catalogue: Mapping[str, Accelerator], name: str) -> Accelerator:
    """``catalogue[name]`` (case, '_' and ' ' forgiven) or a CatalogueError with a hint."""
    key = _normalise(name)
    if key in catalogue:
        return catalogue[key]
    close = difflib.get_close_matches(key, list(catalogue), n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise CatalogueError("accelerator", name, "choose from " + ", ".join(catalogue) + hint)


def get(name: str, path: str | None = None, overrides: str | None = None) -> Accelerator:
    """One accelerator by name from ``load(path, overrides)``."""
    return lookup(load(path, overrides), name)


def rows(catalogue: Mapping[str, Accelerator] | None = None) -> list[dict]:
    """Flat dicts for a listing table (``comparator accelerators``), one per device."""
    catalogue = load() if catalogue is None else catalogue
    return [{"name": a.name, "vendor": a.vendor, "kind": a.kind,
             "bf16": a.bf16, "fp32": a.fp32, "fp8": a.fp8,
             "memory_gb": a.memory_gb, "memory_bandwidth_gbs": a.memory_bandwidth_gbs,
             "tdp_w": a.tdp_w, "price_per_hour": a.price_per_hour,
             "price_provider": a.price_provider, "price_date": a.price_date,
             "default_mfu": a.default_mfu,
             "source": a.sources.get("peaks", "")} for a in catalogue.values()]


def fields_without_source(acc: Accelerator) -> list[str]:
    """Numbers present in ``acc`` with no citation (empty for a well-formed entry)."""
    bad = [f for f, g in GROUP_OF.items()
           if getattr(acc, f) is not None and not acc.sources.get(g)]
    if acc.default_mfu is not None and not acc.mfu_source:
        bad.append("default_mfu")
    if acc.price_per_hour is not None and not acc.price_provider:
        bad.append("price_provider")
    return bad

