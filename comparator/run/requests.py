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

from dataclasses import dataclass, field, fields

from comparator.cost import prices as pr
from comparator.cost.steptime import TIME_MODELS
from comparator.run.limits import Limits
from comparator.run.sweep import (SCOPES, TRACES, RequestError, check_convention, check_policy,
                                  require_defined)
from comparator.run.values import (MAX_SEQ, NONE, POLICIES, RUNNER, SEQ_ALLOWED, as_tuple,
                                   check_archs, check_attentions, check_model,
                                   check_model_convention, check_model_pricing, check_prices,
                                   check_runner, check_sizes, check_train_dtype, choice,
                                   methods_of, number, option, positive, repeated, seq_tuple,
                                   set_field, size_grid, size_options)


@dataclass(frozen=True)
class Pricing:
    """What turns a record's training FLOPs into time, dollars, energy and memory on
    accelerators: catalogue names (``"all"``: every one; none: counts only), the run
    (``tokens`` or ``steps``; default one step), devices, dtype (``"auto"``: each device's
    training precision), utilisation, energy factors, memory policy (``largest``: also
    search the largest batch and length that fit each device), the time model, and
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
    largest: bool = False
    calibration: str | None = None
    time_model: str | None = None
    profile: str | None = None
    prices: str | None = None
    price_kind: str = "on-demand"

    def __post_init__(self):
        set_field(self, "accelerators", () if self.accelerators in NONE
             else as_tuple(self.accelerators))
        set_field(self, "prices", check_prices(self.prices, self.price_kind))
        for name in ("tokens", "steps"):
            if getattr(self, name) is not None:
                positive(option(name), getattr(self, name), most=None)
        positive("--devices", self.devices)
        positive("--runs", self.runs)
        check_train_dtype(self.dtype)
        if self.mfu is not None:
            set_field(self, "mfu", number("--mfu", self.mfu))
        set_field(self, "pue", number("--pue", self.pue))
        set_field(self, "grid_intensity", number("--grid-intensity", self.grid_intensity))
        if self.policy is not None:
            choice("--policy", self.policy, POLICIES)
        if self.time_model is not None:
            choice("--time-model", self.time_model, TIME_MODELS)

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


RUN = ("tokens", "steps")
UNPRICED = "only with --accelerator (it prices, times or sizes the run on a device)"


def priced(accelerators=None, counts: bool = False, **options) -> Pricing | None:
    """``Pricing(accelerators, **options)``; without accelerators, None (a sweep without
    cost columns) or, with ``counts``, the ``Pricing`` of the run's counts only (``cost
    --accelerator none``: ``tokens`` or ``steps``).  There an option that only a priced
    run uses (given: not None, not False) is refused rather than ignored."""
    if accelerators not in NONE:
        return Pricing(accelerators, **options)
    for name, value in options.items():
        if value is not None and value is not False and not (counts and name in RUN):
            raise RequestError(option(name), value, UNPRICED if not counts else
                               "not with --accelerator none (the run's counts only; it "
                               "prices, times or sizes the run on a device)")
    return Pricing((), **{k: options.get(k) for k in RUN}) if counts else None


@dataclass(frozen=True)
class SweepRequest:
    """FLOPs and parameters of architectures x presets x sizes x lengths (``comparator
    sweep``): ``methods`` analytic and/or traced, each model compared with a baseline
    (default: the Transformer of its widths; ``with_baseline=False``: none), priced when
    ``pricing`` is given.  ``config``: a Hugging Face config.json or a comparator TOML file
    instead of presets; ``model``: a user's model (``FILE.py:FACTORY``, traced only)
    instead of architectures.  ``attentions``: each model once per attention choice
    (``variants.ATTENTION_CHOICES``, labelled ``preset@choice``; ``variants.with_attention``).
    ``db``, ``no_cache``, ``retry_failed``, ``jobs``, ``scheduler``, ``worker_resources``:
    where traced points are stored and computed; ``limits``
    (``comparator.run.limits.Limits``): what one traced point may need.
    ``methods`` default: analytic (traced for a user's model)."""
    archs: tuple = ()
    seqs: tuple = ()
    presets: tuple = ()
    batch: int = 1
    methods: tuple | None = None
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
    model: str | None = None
    limits: object = None
    notes: tuple = field(default=(), init=False, compare=False)

    def __post_init__(self):
        check_model(self.model, **{"--arch": self.archs, "--preset": self.presets,
                                   "--config": self.config, "--baseline": self.baseline,
                                   "--scheduler": self.scheduler,
                                   "--attention": self.attentions,
                                   "--jobs": self.jobs if self.jobs != 1 else None},
                    **size_options((self.sizes or [None])[0]))
        set_field(self, "archs", check_archs(self.archs))
        if self.limits is not None and not isinstance(self.limits, Limits):
            raise RequestError("--max-unrolled-layers", self.limits, "a Limits value "
                                                                     "(comparator.run.limits)")
        if not self.archs and not self.config and not self.model:
            raise RequestError("--arch", None, "an architecture (or --config FILE)")
        seqs, twice = seq_tuple(self.seqs), repeated(self.seqs)
        set_field(self, "seqs", seqs)
        set_field(self, "notes", (twice,) if twice else ())
        set_field(self, "presets", as_tuple(self.presets))
        positive("--batch", self.batch)
        methods = methods_of(self.methods, ("analytic",), self.model)
        set_field(self, "methods", methods)
        choice("--scope", self.scope, SCOPES)
        choice("--trace", self.trace, TRACES)
        check_model_convention(self.model, self.convention)
        check_convention(self.convention, methods)
        set_field(self, "sizes", check_sizes(self.sizes))
        set_field(self, "attentions", check_attentions(self.attentions, self.archs,
                                                         self.config))
        if self.baseline and not self.with_baseline:
            raise RequestError("--baseline", self.baseline, "not together with --no-baseline")
        check_runner(**{k: getattr(self, k) for k in RUNNER})
        if self.pricing is not None:
            if self.pricing.tokens is not None and self.pricing.steps is not None:
                raise RequestError("--tokens", self.pricing.tokens,
                                   "either --tokens or --steps, not both")
            self.pricing.check(self.convention)
            if self.pricing.policy is not None and self.model is None:
                for arch in policy_archs(self.archs, self.attentions):
                    check_policy(arch, self.pricing.policy)
        check_model_pricing(self.model, self.pricing)

    @property
    def traced(self) -> bool:
        return "traced" in self.methods


def policy_archs(archs, attentions=()) -> set:
    """The architectures of the models a sweep asks for (not their baselines, which keep
    their own memory policy when it lacks the requested one: ``costing.own_policy``):
    each of ``archs``, or with attention choices each choice's (``lsh``: the Reformer;
    ``dense``: the baseline of the others)."""
    out = set()
    for a in archs:
        chosen = {"reformer" if c == "lsh" else a for c in attentions if c != "dense"}
        out |= chosen if attentions and a != "reformer" and chosen else {a}
    return out


@dataclass(frozen=True)
class CostRequest:
    """Time, dollars, energy and memory of a training run of one model (``comparator
    cost``): ``pricing`` names the accelerators (none: the run's counts only) and the run
    (exactly one of ``tokens`` and ``steps``); ``size``: ``(d_model, layers, heads,
    d_ff)`` resizing the preset, None keeping a value; ``model``: a user's model
    (``FILE.py:FACTORY``, traced) instead of ``arch``; ``attention``: one attention
    kernel (``variants.ATTENTION_CHOICES``) the model runs instead of its own."""
    arch: str | None
    seq: int
    pricing: Pricing
    preset: str | None = None
    batch: int = 1
    scope: str = "matmul"
    convention: str = "standard"
    size: tuple | None = None
    db: str | None = None
    model: str | None = None
    attention: str | None = None

    def __post_init__(self):
        arch = self.arch
        check_model(self.model, **{"--arch": arch, "--preset": self.preset,
                                   "--attention": self.attention}, **size_options(self.size))
        if self.model is None:
            if not isinstance(arch, str) or not arch or "," in arch or arch == "all":
                raise RequestError("--arch", arch or None, "one architecture for cost")
            check_archs((arch,))
            if self.attention is not None:
                if "," in str(self.attention):
                    raise RequestError("--attention", self.attention,
                                       "one attention kernel for cost")
                check_attentions((self.attention,), (arch,))
        if isinstance(self.seq, bool) or not isinstance(self.seq, int) \
                or not 0 < self.seq <= MAX_SEQ:
            raise RequestError("--seq", self.seq, "one sequence length for cost: "
                                                  + SEQ_ALLOWED)
        positive("--batch", self.batch)
        p = self.pricing
        if (p.tokens is None) == (p.steps is None):
            raise RequestError("--tokens", p.tokens, "either --tokens or --steps (with --batch)")
        choice("--scope", self.scope, SCOPES)
        check_convention(self.convention)
        check_model_convention(self.model, self.convention)
        if self.model is None:
            require_defined(self.convention, arch)
        if self.size is not None:
            set_field(self, "size", check_sizes([self.size])[0])
        if p.accelerators:
            p.check(self.convention)
            check_model_pricing(self.model, p)
            if self.model is None:      # lsh: a Transformer's widths as the Reformer
                check_policy("reformer" if self.attention == "lsh" else arch, p.policy)


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
        set_field(self, "ids", as_tuple(self.ids))
        choice("--time-model", self.time_model, TIME_MODELS)
        if self.bench is not None:
            bench = as_tuple(self.bench, split=False)
            if not all(isinstance(r, dict) for r in bench):
                raise RequestError("--bench", self.bench, "the records of 'comparator bench "
                                                          "--kernel attention --format json'")
            set_field(self, "bench", bench)


def field_names(cls) -> set:
    """The fields a caller gives (not those a value derives, as a sweep's ``notes``)."""
    return {f.name for f in fields(cls) if f.init}


__all__ = ["ClaimsRequest", "CostRequest", "MAX_SEQ", "NONE", "POLICIES", "Pricing",
           "RequestError", "RUN", "RUNNER", "SEQ_ALLOWED", "SweepRequest", "TIME_MODELS",
           "UNPRICED", "check_archs", "check_runner", "field_names", "option", "priced",
           "size_grid"]
