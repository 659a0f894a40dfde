"""Request values of the commands about one model's training step and of the scenario:
``ExplainRequest`` (``comparator explain``: where the FLOPs go, per term),
``RooflineRequest`` (``comparator roofline``: where the step's time goes on a device),
``ConventionsRequest`` (``comparator conventions``: the step under every paper's FLOP
accounting, with model and hardware FLOPs, MFU and HFU) and ``ScenarioRequest``
(``comparator scenario``: published runs priced).

As in ``requests``: the CLI builds them once from its parsed options, each constructor
refuses a bad value with ``RequestError`` naming the field by its command-line option;
what needs a file or the catalogue is checked when the request runs (``steps``,
``execute``).  ``model``: a user's model (``FILE.py:FACTORY``) instead of ``arch``.
"""
from __future__ import annotations

from dataclasses import dataclass

from comparator.count import utilisation as ut
from comparator.cost.steptime import TIME_MODELS
from comparator.run.sweep import (METHODS, SCOPES, TRACES, RequestError, check_convention,
                                  require_defined)
from comparator.run.values import (as_tuple, check_model, check_model_convention, check_prices,
                                   check_sizes, check_train_dtype, choice, methods_of, number,
                                   one_arch, one_seq, option, positive, set_field,
                                   size_options)

ROOFLINE_MODELS = ("roofline", "unfused")
@dataclass(frozen=True)
class ExplainRequest:
    """Per term, the forward and training FLOPs of one model at one length by ``methods``
    (default both: analytic beside traced; with a paper's ``convention``: analytic, ours
    beside that convention's), with ``accelerator`` each term's predicted seconds and
    memory-bound share in ``dtype`` (default bf16; the time model on the device's
    ``profile``): ``dtype`` and ``profile`` only with ``accelerator``."""
    arch: str | None = None
    seq: int | None = None
    preset: str | None = None
    batch: int = 1
    scope: str = "matmul"
    methods: tuple | None = None
    trace: str = "fast"
    convention: str = "standard"
    accelerator: str | None = None
    dtype: str | None = None
    profile: str | None = None
    db: str | None = None
    model: str | None = None

    def __post_init__(self):
        check_model(self.model, **{"--arch": self.arch, "--preset": self.preset})
        for name in ("dtype", "profile"):
            if self.accelerator is None and getattr(self, name) is not None:
                raise RequestError(f"--{name}", getattr(self, name), "only with --accelerator "
                                   "(it times each term on that device)")
        if self.accelerator is not None:
            set_field(self, "dtype", check_train_dtype(self.dtype or "bf16", auto=False))
        if self.model is None:
            one_arch(self.arch, "explain")
        set_field(self, "seq", one_seq(self.seq, "explain"))
        positive("--batch", self.batch)
        choice("--scope", self.scope, SCOPES)
        choice("--trace", self.trace, TRACES)
        check_model_convention(self.model, self.convention)
        methods = methods_of(self.methods, ("analytic",) if self.paper else METHODS,
                             self.model)
        set_field(self, "methods", methods)
        check_convention(self.convention, methods)
        if self.model is None:
            require_defined(self.convention, self.arch)

    @property
    def paper(self) -> bool:
        return self.convention != "standard"


@dataclass(frozen=True)
class RooflineRequest:
    """Where one training step's time goes on ``accelerator`` in ``dtype``: the time model
    of the compiled step (``time_model="roofline"``, on the device's ``profile``) or every
    traced equation through memory (``"unfused"``), per term (the ``top`` slowest);
    ``size``: ``(d_model, layers, heads, d_ff)`` resizing the preset; ``convention``: the
    utilisation bound by that paper's whole formula."""
    arch: str | None = None
    seq: int | None = None
    accelerator: str | None = None
    accelerators_file: str | None = None
    preset: str | None = None
    batch: int = 1
    dtype: str = "bf16"
    top: int | None = None
    size: tuple | None = None
    time_model: str = "roofline"
    profile: str | None = None
    db: str | None = None
    convention: str = "standard"
    model: str | None = None

    def __post_init__(self):
        check_model(self.model, **{"--arch": self.arch, "--preset": self.preset},
                    **size_options(self.size))
        if self.model is None:
            one_arch(self.arch, "roofline", "one architecture for roofline")
        set_field(self, "seq", one_seq(self.seq, "roofline"))
        positive("--batch", self.batch)
        if self.top is not None:
            positive("--top", self.top)
        if not self.accelerator or not isinstance(self.accelerator, str):
            raise RequestError("--accelerator", self.accelerator, "a catalogue name")
        check_train_dtype(self.dtype, auto=False)
        choice("--time-model", self.time_model, ROOFLINE_MODELS)
        check_convention(self.convention)
        check_model_convention(self.model, self.convention)
        if self.model is None:
            require_defined(self.convention, self.arch)
        if self.size is not None:
            set_field(self, "size", check_sizes([self.size])[0])


@dataclass(frozen=True)
class ConventionsRequest:
    """One model at one length under every paper's FLOP convention: each convention's
    model and hardware FLOPs (``count.utilisation``; ``recompute`` none or checkpoint:
    every layer's forward once more) and, with ``accelerator`` and the seconds of one step
    of ``batch`` sequences (``step_time``) or our MFU (``mfu``: the time it implies), each
    one's MFU and HFU on the device's peak in ``dtype`` (default auto: its training
    precision).  An option that would change nothing is refused: ``dtype`` without
    ``accelerator``, ``accelerator`` without a time, a time without ``accelerator``."""
    arch: str | None = None
    seq: int | None = None
    preset: str | None = None
    batch: int = 1
    scope: str = "matmul"
    recompute: str = "none"
    accelerator: str | None = None
    dtype: str | None = None
    step_time: float | None = None
    mfu: float | None = None

    def __post_init__(self):
        one_arch(self.arch, "conventions")
        set_field(self, "seq", one_seq(self.seq, "conventions"))
        positive("--batch", self.batch)
        choice("--scope", self.scope, SCOPES)
        try:
            ut.check_recompute(self.recompute, self.arch)
        except ut.UtilisationError as err:
            raise RequestError(err.field, err.value, err.allowed) from None
        for name in ("step_time", "mfu"):
            if getattr(self, name) is not None:
                set_field(self, name, number(option(name), getattr(self, name)))
        timed = self.step_time is not None or self.mfu is not None
        if self.dtype is not None and self.accelerator is None:
            raise RequestError("--dtype", self.dtype, "only with --accelerator (the "
                               "precision of its peak FLOP/s)")
        if self.accelerator is not None and not timed:
            raise RequestError("--accelerator", self.accelerator, "with --step-time or "
                               "--mfu (the utilisations need a time)")
        if self.step_time is not None and self.mfu is not None:
            raise RequestError("--mfu", self.mfu, "not together with --step-time (one "
                               "gives the other)")
        if timed and self.accelerator is None:
            name = "step_time" if self.step_time is not None else "mfu"
            raise RequestError(option(name), getattr(self, name), "with --accelerator (its "
                                                                  "peak FLOP/s)")
        if self.accelerator is not None:
            set_field(self, "dtype", check_train_dtype(self.dtype or "auto"))

    @property
    def timed(self) -> bool:
        return self.accelerator is not None


@dataclass(frozen=True)
class ScenarioRequest:
    """Published pre-training runs (``scenarios``: a TOML file, default the packaged one)
    priced on ``accelerators`` (default: the file's), ``runs`` runs each for the tuning
    column (default: the file's), energy at ``pue`` and CO2 at ``grid_intensity`` kg/kWh,
    step times by ``time_model`` (default roofline, on each device's ``profile``), each
    device in its own training precision (dtype auto); ``price_kind`` prices (on-demand,
    reserved, spot, preemptible), the latest listed, and with ``prices`` (a date, as
    ``Pricing``'s) also those listed on or before it."""
    accelerators: tuple | None = None
    accelerators_file: str | None = None
    scenarios: str | None = None
    runs: int | None = None
    pue: float = 1.1
    grid_intensity: float = 0.4
    time_model: str | None = None
    profile: str | None = None
    db: str | None = None
    prices: str | None = None
    price_kind: str = "on-demand"

    def __post_init__(self):
        if self.accelerators is not None:
            set_field(self, "accelerators", as_tuple(self.accelerators) or None)
        set_field(self, "prices", check_prices(self.prices, self.price_kind))
        if self.runs is not None:
            positive("--runs", self.runs)
        set_field(self, "pue", number("--pue", self.pue))
        set_field(self, "grid_intensity", number("--grid-intensity", self.grid_intensity))
        if self.time_model is not None:
            choice("--time-model", self.time_model, TIME_MODELS)


__all__ = ["ConventionsRequest", "ExplainRequest", "ROOFLINE_MODELS", "RooflineRequest",
           "ScenarioRequest"]
