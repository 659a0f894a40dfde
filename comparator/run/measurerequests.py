"""Request values of the commands that measure on this machine: ``BenchRequest``
(``comparator bench``: real training steps), ``KernelBenchRequest`` (``bench --kernel
attention``), ``CalibrateRequest`` (``comparator calibrate``: a device profile, or
``show`` one) and ``MemoryRequest`` (``comparator memory``: our memory estimate beside
XLA's analysis of the compiled step).

As in ``requests``: built once by the CLI from its parsed options (or by a caller), each
refusing a bad value with ``RequestError`` naming the field by its command-line option;
what needs the catalogue, a profile file or the store is checked when the request runs
(``comparator.run.measuring``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from comparator.run.sweep import RequestError, check_convention, suggest
from comparator.run.values import (as_tuple, check_archs, check_attentions, check_model,
                                   check_model_convention, check_runner, check_sizes, positive,
                                   repeated, seq_tuple, set_field, size_options)


def check_dtypes(dtypes) -> tuple:
    """Training dtypes of the step (``cost.compiled.DTYPES``), each by its catalogue name."""
    from comparator.cost.compiled import DTYPES, check_dtype
    names = as_tuple(dtypes)
    try:
        out = tuple(dict.fromkeys(check_dtype(d) for d in names))
    except (ValueError, AttributeError):
        out = ()
    if not out:
        raise RequestError("--dtype", dtypes, ", ".join(DTYPES) + " (comma separated)")
    return out


def one_dtype(dtype) -> str:
    """One training dtype of the step (``cost.compiled.DTYPES``), by its catalogue name."""
    from comparator.cost.compiled import DTYPES, check_dtype
    try:
        return check_dtype(dtype)
    except (ValueError, AttributeError):
        raise RequestError("--dtype", dtype, ", ".join(DTYPES)) from None


@dataclass(frozen=True)
class BenchRequest:
    """Measured training steps of ``archs`` (their ``presets``, one architecture's, or the
    default; each at every size of ``sizes`` and with each attention kernel of
    ``attentions``, ``variants.models``) x ``seqs`` at ``batch``: the median of
    ``steps`` after a warm-up in ``dtype``, utilisation against ``accelerator``'s peak (else
    the measured one), points needing more than ``memory_limit`` bytes skipped; ``predict``:
    also the time model's and a flat MFU's predictions (on ``profile``; the MFU fitted on
    ``mfu_fit``, ``ARCH:SEQ``); ``convention``: FLOP columns by that paper's formula.  The
    runner's options: the results store and a Dask ``scheduler``."""
    archs: tuple = ()
    seqs: tuple = ()
    presets: tuple = ()
    sizes: tuple | None = None
    batch: int = 1
    steps: int = 5
    dtype: str = "fp32"
    accelerator: str | None = None
    accelerators_file: str | None = None
    memory_limit: int | None = None
    predict: bool = False
    profile: str | None = None
    mfu_fit: str | None = None
    convention: str = "standard"
    db: str | None = None
    no_cache: bool = False
    retry_failed: bool = False
    scheduler: str | None = None
    worker_resources: dict | None = None
    model: str | None = None
    attentions: tuple = ()

    def __post_init__(self):
        check_model(self.model, **{"--arch": self.archs, "--preset": self.presets,
                                   "--predict": self.predict, "--scheduler": self.scheduler,
                                   "--attention": self.attentions},
                    **size_options((self.sizes or [None])[0]))
        check_convention(self.convention)
        if not self.predict and (self.profile or self.mfu_fit):
            raise RequestError("--profile" if self.profile else "--mfu-fit",
                               self.profile or self.mfu_fit, "only with --predict")
        if self.predict and self.convention != "standard":
            raise RequestError("--convention", self.convention, "standard with --predict (the "
                               "time model times the traced step, ours)")
        check_model_convention(self.model, self.convention)
        set_field(self, "archs", check_archs(self.archs))
        if not self.archs and self.model is None:
            raise RequestError("--arch", None, "one or more architectures, or all")
        set_field(self, "dtype", one_dtype(self.dtype))
        set_field(self, "seqs", seq_tuple(self.seqs))
        set_field(self, "presets", as_tuple(self.presets))
        set_field(self, "sizes", check_sizes(self.sizes))
        set_field(self, "attentions", check_attentions(self.attentions, self.archs))
        positive("--batch", self.batch)
        positive("--steps", self.steps)
        if self.memory_limit is not None:
            positive("--memory-limit", self.memory_limit, most=None)
        check_runner(db=self.db, no_cache=self.no_cache, retry_failed=self.retry_failed,
                     scheduler=self.scheduler, worker_resources=self.worker_resources)


@dataclass(frozen=True)
class KernelBenchRequest:
    """The attention kernels (``kernel="attention"``: dense, chunked, flash, local,
    Linformer, Performer and LSH attention, ``measure.kernelbench``) timed across ``seqs``: ``batch`` x ``heads`` heads of ``d_head``, chunks of ``chunk``,
    LSH with each of ``hashes`` rounds, the median of ``steps`` runs, points above
    ``memory_limit`` bytes skipped."""
    seqs: tuple = ()
    kernel: str = "attention"
    batch: int = 1
    heads: int = 4
    d_head: int = 64
    chunk: int = 64
    hashes: tuple = (1, 2, 4, 8)
    steps: int = 5
    memory_limit: int | None = None
    convention: str = "standard"

    def __post_init__(self):
        if self.kernel != "attention":
            raise RequestError("--kernel", self.kernel, "attention")
        if check_convention(self.convention) != "standard":
            raise RequestError("--convention", self.convention, "standard with --kernel (the "
                               "attention kernels alone are not a model a paper's formula "
                               "counts)")
        set_field(self, "seqs", seq_tuple(self.seqs))
        for name in ("batch", "heads", "d_head", "chunk", "steps"):
            positive("--" + name.replace("_", "-"), getattr(self, name))
        set_field(self, "hashes", as_tuple(self.hashes))
        for h in self.hashes:
            positive("--hashes", h)
        if self.memory_limit is not None:
            positive("--memory-limit", self.memory_limit, most=None)


@dataclass(frozen=True)
class CalibrateRequest:
    """Measure this device into a profile (matmuls in ``dtypes``, default fp32; ``quick``:
    a small grid), kept in the results store ``db`` unless ``no_store``; ``accelerator``:
    the catalogue name of the accelerator measured.  ``show``: a profile instead -- the
    ``profile`` file, the stored (else datasheet, in ``dtypes[0]``) one of
    ``accelerator``, or this machine's stored CPU profile."""
    show: bool = False
    quick: bool = False
    dtypes: tuple | None = None
    profile: str | None = None
    accelerator: str | None = None
    accelerators_file: str | None = None
    db: str | None = None
    no_store: bool = False

    def __post_init__(self):
        if self.dtypes is not None:
            set_field(self, "dtypes", check_dtypes(self.dtypes))
        if self.profile and not self.show:
            raise RequestError("--profile", self.profile, "only with --show")
        acc = self.accelerator
        if self.show and not self.profile and acc is not None and (
                not isinstance(acc, str) or acc == "all" or "," in acc):
            raise RequestError("--accelerator", acc, "one catalogue device")


@dataclass(frozen=True)
class MemoryRequest:
    """Our memory estimate of the real training step beside XLA's analysis of the compiled
    step (``comparator memory``): ``archs`` (their ``presets``, each at every size of
    ``sizes``) x ``seqs`` x ``batches`` x memory ``policies`` (empty or ``all``: every
    policy each architecture supports; one an architecture lacks is skipped for it) in
    ``dtype``; ``attentions``: each model once per attention kernel (``variants.models``);
    ``run``: also run each step for its measured peak."""
    archs: tuple = ("all",)
    seqs: tuple = (512,)
    presets: tuple = ()
    sizes: tuple | None = None
    batches: tuple = (1,)
    policies: tuple = ()
    dtype: str = "fp32"
    run: bool = False
    attentions: tuple = ()
    notes: tuple = field(default=(), init=False, compare=False)

    def __post_init__(self):
        import architectures
        set_field(self, "archs", check_archs(self.archs))
        if not self.archs:
            raise RequestError("--arch", None, "one or more architectures, or all")
        set_field(self, "notes", tuple(n for n in (repeated(self.seqs),) if n))
        set_field(self, "seqs", seq_tuple(self.seqs))
        set_field(self, "presets", as_tuple(self.presets))
        set_field(self, "sizes", check_sizes(self.sizes))
        set_field(self, "attentions", check_attentions(self.attentions, self.archs))
        batches = as_tuple(self.batches)
        if not batches:
            raise RequestError("--batch", self.batches, "one or more positive integers")
        set_field(self, "batches", tuple(dict.fromkeys(positive("--batch", b) for b in batches)))
        pols = () if self.policies in ("all", ("all",)) else as_tuple(self.policies)
        known = sorted({p for a in self.archs for p in architectures.get(a).POLICIES})
        for p in pols:
            if p not in known:
                raise RequestError("--policy", p, suggest(p, known) + " or all")
        set_field(self, "policies", tuple(dict.fromkeys(pols)))
        set_field(self, "dtype", one_dtype(self.dtype))


__all__ = ["BenchRequest", "CalibrateRequest", "KernelBenchRequest", "MemoryRequest",
           "check_dtypes", "one_dtype"]
