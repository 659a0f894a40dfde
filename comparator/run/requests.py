"""Request values: what ``sweep``, ``cost`` and ``claims`` compute, as frozen dataclasses.

The command line parses its strings into Python values and builds one of these once; the
Python API (``comparator.sweep``, ``comparator.cost``, ``comparator.claims``) builds them
from keyword arguments.  Each constructor normalises what a caller may write shorter (a
name or a number where a tuple is kept, ``"all"`` architectures, ``"both"`` methods) and
refuses a value with ``RequestError``.  An error names the field by its command-line
option (``--seq``), for library users too: one name per field everywhere.

What a check needs that is not in the values (a configuration file, the accelerator
catalogue, a calibration) is checked when the request runs (``comparator.run.execute``),
with the same kind of error.
"""
from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, fields

import architectures
from architectures.config import MAX_DIM

from comparator.cost import prices as pr
from comparator.cost.steptime import TIME_MODELS
from comparator.run.sweep import (METHODS, SCOPES, TRACES, RequestError, check_convention,
                                  require_defined, suggest)
from comparator.run.variants import ATTENTION_CHOICES

MAX_SEQ = 1 << 24
SCHEDULER = re.compile(r"^(tcp|tls|ucx|ws|wss)://\S+$")
POLICIES = ("store_all", "checkpoint", "reversible")
NONE = (None, "", "none", ())   # accelerators: none (counts only)
SEQ_ALLOWED = ("positive integers as '512,1024' or a range 'START:STOP:xFACTOR' like "
               f"512:65536:x2 (at most {MAX_SEQ})")
# request field -> its command-line option (the others: "--" + the name with dashes)
OPTIONS = {"archs": "--arch", "arch": "--arch", "seqs": "--seq", "seq": "--seq",
           "presets": "--preset", "methods": "--method", "accelerators": "--accelerator",
           "accelerators_file": "--accelerators", "ids": "--id", "attentions": "--attention"}


def option(name: str) -> str:
    """The command-line option of a request field (``seqs`` -> ``--seq``)."""
    return OPTIONS.get(name, "--" + name.replace("_", "-"))


def _tuple(value, split: bool = True) -> tuple:
    """A tuple from a tuple, a list, one value, or a comma-separated string."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v for v in value.split(",") if v) if split else (value,)
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return (value,)


def _set(obj, name: str, value) -> None:
    object.__setattr__(obj, name, value)


def _positive(field: str, value, most: int | None = MAX_DIM) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0 \
            or (most is not None and value > most):
        raise RequestError(field, value, "a positive integer"
                           + (f" at most {most}" if most is not None else ""))
    return value


def _number(field: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(field, value, "a number")
    return float(value)


def _choice(field: str, value, choices) -> str:
    if value not in choices:
        raise RequestError(field, value, suggest(value, choices))
    return value


def _date(field: str, value) -> str:
    """A date as 'YYYY', 'YYYY-MM' or 'YYYY-MM-DD' (an int year, a ``datetime.date``)."""
    if isinstance(value, datetime.date) or (isinstance(value, int)
                                            and not isinstance(value, bool)):
        value = str(value)
    try:
        pr.as_of(value if isinstance(value, str) else repr(value))
    except pr.CatalogueError as err:
        raise RequestError(field, value, err.allowed) from None
    return value.strip()


def check_archs(names) -> tuple:
    """Architecture names (``"all"`` is every one), each known."""
    names = tuple(architectures.NAMES) if names in ("all", ("all",)) else _tuple(names)
    for a in names:
        if a not in architectures.NAMES:
            raise RequestError("--arch", a, suggest(a, architectures.NAMES) + " or all")
    return names


def size_grid(d_model=None, layers=None, heads=None, d_ff=None) -> tuple | None:
    """``(d_model, n_layers, n_heads, d_ff)`` of every combination of the given widths,
    depths, heads and FFN widths (each one value or a list; None keeps the preset's), or
    None when none is given."""
    axes = [_tuple(v) or (None,) for v in (d_model, layers, heads, d_ff)]
    sizes = tuple((d, L, h, ff) for d in axes[0] for L in axes[1] for h in axes[2]
                  for ff in axes[3])
    return None if sizes == ((None, None, None, None),) else sizes


def _sizes(sizes) -> tuple | None:
    if sizes is None:
        return None
    sizes = tuple(tuple(s) for s in sizes)
    for s in sizes:
        if len(s) != 4:
            raise RequestError("--sizes", s, "(d_model, layers, heads, d_ff) tuples, None "
                                             "keeping the preset's value")
        for name, v in zip(("--d-model", "--layers", "--heads", "--d-ff"), s):
            if v is not None:
                _positive(name, v)
    return sizes


@dataclass(frozen=True)
class Pricing:
    """What turns a record's training FLOPs into time, dollars, energy and memory on
    accelerators: catalogue names (``"all"``: every one; none: counts only), the run
    (``tokens`` or ``steps``; default one step), devices, dtype (``"auto"``: each device's
    training precision), utilisation, energy factors, memory policy, the time model, and
    the prices: ``prices`` a date ('2020', '2020-06', '2020-06-15'; an int year or a
    ``datetime.date`` is written so) to price at the snapshots listed on or before it
    (None: the latest), ``price_kind`` on-demand, reserved, spot or preemptible."""
    accelerators: tuple = ("all",)
    accelerators_file: str | None = None
    tokens: int | None = None
    steps: int | None = None
    devices: int = 1
    dtype: str = "auto"
    mfu: float | None = None
    runs: int = 1
    pue: float = 1.1
    grid_intensity: float = 0.4
    policy: str | None = None
    zero: bool = False
    calibration: str | None = None
    time_model: str | None = None
    profile: str | None = None
    prices: str | None = None
    price_kind: str = "on-demand"

    def __post_init__(self):
        _set(self, "accelerators", () if self.accelerators in NONE
             else _tuple(self.accelerators))
        if self.prices is not None:
            _set(self, "prices", _date("--prices", self.prices))
        try:
            pr.check_kind(self.price_kind)
        except pr.CatalogueError as err:
            raise RequestError(err.field, err.value, err.allowed) from None
        for name in ("tokens", "steps"):
            if getattr(self, name) is not None:
                _positive(option(name), getattr(self, name), most=None)
        _positive("--devices", self.devices)
        _positive("--runs", self.runs)
        if self.mfu is not None:
            _set(self, "mfu", _number("--mfu", self.mfu))
        _set(self, "pue", _number("--pue", self.pue))
        _set(self, "grid_intensity", _number("--grid-intensity", self.grid_intensity))
        if self.policy is not None:
            _choice("--policy", self.policy, POLICIES)
        if self.time_model is not None:
            _choice("--time-model", self.time_model, TIME_MODELS)

    @property
    def as_of(self):
        """The ``datetime.date`` priced at (the last day of ``prices``), or None: today's."""
        return pr.as_of(self.prices)

    def time_model_for(self, convention: str = "standard") -> str:
        """The time model asked for: ``mfu`` (the flat model) with ``mfu``, a calibration
        or a paper's convention, ``roofline`` otherwise."""
        flat = self.mfu is not None or bool(self.calibration)
        if self.time_model is None:
            return "mfu" if flat or convention != "standard" else "roofline"
        if self.time_model == "roofline" and flat:
            raise RequestError("--time-model", self.time_model, "mfu with --mfu or "
                               "--calibration (a flat utilisation is the mfu model)")
        if self.time_model == "roofline" and convention != "standard":
            raise RequestError("--time-model", self.time_model, f"mfu with --convention "
                               f"{convention}: the time model times the traced step, which "
                               "is ours")
        return self.time_model

    def check(self, convention: str) -> None:
        self.time_model_for(convention)
        if self.mfu is not None and self.calibration:
            raise RequestError("--mfu", self.mfu, "not together with --calibration")


def priced(accelerators=None, **options) -> Pricing | None:
    """``Pricing(accelerators, **options)``, or None without accelerators (a sweep without
    cost columns), where a run length (``tokens``, ``steps``) has nothing to price."""
    if accelerators not in NONE:
        return Pricing(accelerators, **options)
    for name in ("tokens", "steps"):
        if options.get(name):
            raise RequestError(option(name), options[name], "only with --accelerator")
    return None


@dataclass(frozen=True)
class SweepRequest:
    """FLOPs and parameters of architectures x presets x sizes x lengths (``comparator
    sweep``): ``methods`` analytic and/or traced, each model compared with a baseline
    (default: the Transformer of its widths; ``with_baseline=False``: none), priced when
    ``pricing`` is given.  ``config``: a Hugging Face config.json or a comparator TOML file
    instead of presets.  ``attentions``: each model once per attention choice
    (``ATTENTION_CHOICES``, labelled ``preset@choice``; ``variants.with_attention``).  ``db``,
    ``no_cache``, ``retry_failed``, ``jobs``, ``scheduler``, ``worker_resources``: where
    traced points are stored and computed."""
    archs: tuple = ()
    seqs: tuple = ()
    presets: tuple = ()
    batch: int = 1
    methods: tuple = ("analytic",)
    scope: str = "matmul"
    trace: str = "fast"
    convention: str = "standard"
    sizes: tuple | None = None
    attentions: tuple = ()
    config: str | None = None
    baseline: str | None = None
    with_baseline: bool = True
    pricing: Pricing | None = None
    db: str | None = None
    no_cache: bool = False
    retry_failed: bool = False
    jobs: int = 1
    scheduler: str | None = None
    worker_resources: dict | None = None

    def __post_init__(self):
        _set(self, "archs", check_archs(self.archs))
        if not self.archs and not self.config:
            raise RequestError("--arch", None, "an architecture (or --config FILE)")
        seqs = _tuple(self.seqs)
        if not seqs or any(isinstance(s, bool) or not isinstance(s, int) or not 0 < s <= MAX_SEQ
                           for s in seqs):
            raise RequestError("--seq", self.seqs, SEQ_ALLOWED)
        _set(self, "seqs", seqs)
        _set(self, "presets", _tuple(self.presets))
        _positive("--batch", self.batch)
        methods = METHODS if self.methods == "both" else _tuple(self.methods)
        for m in methods:
            if m not in METHODS:
                raise RequestError("--method", m, "choose from analytic, traced, both")
        _set(self, "methods", methods)
        _choice("--scope", self.scope, SCOPES)
        _choice("--trace", self.trace, TRACES)
        check_convention(self.convention, methods)
        _set(self, "sizes", _sizes(self.sizes))
        attentions = _tuple(self.attentions)
        for a in attentions:
            _choice("--attention", a, ATTENTION_CHOICES)
        if len(set(attentions)) != len(attentions):
            raise RequestError("--attention", self.attentions, "each choice once")
        _set(self, "attentions", attentions)
        if self.baseline and not self.with_baseline:
            raise RequestError("--baseline", self.baseline, "not together with --no-baseline")
        check_runner(**{k: getattr(self, k) for k in RUNNER})
        if self.pricing is not None:
            if self.pricing.tokens is not None and self.pricing.steps is not None:
                raise RequestError("--tokens", self.pricing.tokens,
                                   "either --tokens or --steps, not both")
            self.pricing.check(self.convention)

    @property
    def traced(self) -> bool:
        return "traced" in self.methods


RUNNER = ("db", "no_cache", "retry_failed", "jobs", "scheduler", "worker_resources")


def check_runner(db=None, no_cache=False, retry_failed=False, jobs=1, scheduler=None,
                 worker_resources=None) -> None:
    """The options of where traced (or benchmarked) points run and are stored, checked
    together: the results store ``db`` (or ``no_cache``), ``jobs`` local processes or a
    Dask ``scheduler`` with ``worker_resources`` ({name: amount}) per point."""
    _positive("--jobs", jobs)
    if scheduler is not None and not SCHEDULER.match(str(scheduler)):
        raise RequestError("--scheduler", scheduler, "a Dask scheduler address such as "
                                                     "tcp://HOST:PORT")
    if scheduler and jobs > 1:
        raise RequestError("--jobs", jobs, "not together with --scheduler (the cluster's "
                                           "workers run the points)")
    if worker_resources is not None:
        res = worker_resources
        if not isinstance(res, dict) or not res or not all(
                isinstance(k, str) and k.strip() and isinstance(v, (int, float))
                and not isinstance(v, bool) and v > 0 for k, v in res.items()):
            raise RequestError("--worker-resources", res, "NAME=N pairs, comma separated, "
                                                          "with N > 0 (e.g. GPU=1)")
        if not scheduler:
            raise RequestError("--worker-resources", res, "only with --scheduler")
    if no_cache and db:
        raise RequestError("--db", db, "not together with --no-cache")
    if no_cache and retry_failed:
        raise RequestError("--retry-failed", retry_failed, "not together with --no-cache "
                                                           "(nothing stored to retry)")


@dataclass(frozen=True)
class CostRequest:
    """Time, dollars, energy and memory of a training run of one model (``comparator
    cost``): ``pricing`` names the accelerators (none: the run's counts only) and the run
    (exactly one of ``tokens`` and ``steps``); ``size``: ``(d_model, layers, heads,
    d_ff)`` resizing the preset, None keeping a value."""
    arch: str
    seq: int
    pricing: Pricing
    preset: str | None = None
    batch: int = 1
    scope: str = "matmul"
    convention: str = "standard"
    size: tuple | None = None
    db: str | None = None

    def __post_init__(self):
        arch = self.arch
        if not isinstance(arch, str) or not arch or "," in arch or arch == "all":
            raise RequestError("--arch", arch or None, "one architecture for cost")
        check_archs((arch,))
        if isinstance(self.seq, bool) or not isinstance(self.seq, int) \
                or not 0 < self.seq <= MAX_SEQ:
            raise RequestError("--seq", self.seq, "one sequence length for cost: "
                                                  + SEQ_ALLOWED)
        _positive("--batch", self.batch)
        p = self.pricing
        if (p.tokens is None) == (p.steps is None):
            raise RequestError("--tokens", p.tokens, "either --tokens or --steps (with --batch)")
        _choice("--scope", self.scope, SCOPES)
        check_convention(self.convention)
        require_defined(self.convention, arch)
        if self.size is not None:
            _set(self, "size", _sizes([self.size])[0])
        if p.accelerators:
            p.check(self.convention)


@dataclass(frozen=True)
class ClaimsRequest:
    """The efficiency claims to check (``ids``; default all), a kernel benchmark's
    records for the measured crossover claim (``bench``), and whether claims about speed
    or cost also get a verdict from the time model (``time_model="roofline"``; ``"mfu"``:
    FLOP verdicts only)."""
    ids: tuple = ()
    bench: tuple | None = None
    time_model: str = "roofline"
    db: str | None = None

    def __post_init__(self):
        _set(self, "ids", _tuple(self.ids))
        _choice("--time-model", self.time_model, TIME_MODELS)
        if self.bench is not None:
            bench = _tuple(self.bench, split=False)
            if not all(isinstance(r, dict) for r in bench):
                raise RequestError("--bench", self.bench, "the records of 'comparator bench "
                                                          "--kernel attention --format json'")
            _set(self, "bench", bench)


def field_names(cls) -> set:
    return {f.name for f in fields(cls)}


__all__ = ["ClaimsRequest", "CostRequest", "MAX_SEQ", "NONE", "POLICIES", "Pricing",
           "RequestError", "RUNNER", "SEQ_ALLOWED", "SweepRequest", "TIME_MODELS", "check_archs",
           "check_runner", "field_names", "option", "priced", "size_grid"]
