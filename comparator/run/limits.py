"""What a point needs before it is traced or benchmarked, and the limits it must stay under:
a trace that would run for hours or a benchmark that would exhaust memory is refused
before any work, with the estimate, the limit and the option that raises it.

``needs(pt, what, trace)`` estimates, without tracing:

* ``layers`` -- the layers the largest trace (or, for a benchmark, the compilation)
  unrolls.  ``fast`` traces reduce the depth of most models to a few layers
  (``comparator.count.fasttrace.depth_plan``); a model whose layers are jitted calls
  (BERT, GPT-2, ELECTRA), ``--trace full``, ``--trace checked`` (one length against the
  whole model) and a benchmark unroll every layer.  Measured on one CPU core: about
  5 ms and 75 kB a jitted layer, 80 to 220 ms and up to 1 MB a plain one (ALBERT,
  Reformer), so the default of ``MAX_LAYERS`` is seconds to minutes and a few GB at most.
* ``host_bytes`` -- arrays a trace builds on the host: T5's relative-position buckets are
  static NumPy arrays of length x length (and target x target), about ``BUCKET_BYTES``
  per pair while built (measured: 33 bytes a pair at 4,096 tokens).
* ``step_bytes`` -- for a benchmark, the fp32 parameters, gradients and saved activations
  of the step (``measure.bench.estimate_bytes``): length x width x layers.

``check`` compares them with ``Limits`` (layers; memory in bytes, by default the memory
available now) and raises ``LimitError``.  The run room calls it before tracing
(``runner.Tracer``, ``sweep.traced_all``); a command may call it with its own limits.
Points are ``sweep.Point``s (not imported here: ``sweep`` imports this module).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import architectures

from comparator.errors import FieldError

MAX_LAYERS = 2048          # twice DeepNet's 1,000-layer models (Wang et al. 2022)
BUCKET_BYTES = 32
WHAT = ("trace", "bench")
LAYERS_OPTION, MEMORY_OPTION = "--max-unrolled-layers", "--memory-limit"


class LimitError(FieldError):
    """A point needs more than a limit allows (naming the point, the estimate, the limit
    and the option that raises it), or a limit that is no limit."""


@dataclass(frozen=True)
class Limits:
    """``layers``: most layers one trace or compilation may unroll; ``memory``: most bytes
    of host (trace) or device (benchmark) memory a point may need, None: what is
    available now on this machine (unknown: not checked)."""
    layers: int = MAX_LAYERS
    memory: int | None = None

    def __post_init__(self):
        for name, v in (("layers", self.layers), ("memory", self.memory)):
            if v is None and name == "memory":
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                option = LAYERS_OPTION if name == "layers" else MEMORY_OPTION
                raise LimitError(option, v, "a positive integer")


@dataclass(frozen=True)
class Needs:
    layers: int            # unrolled in the largest trace or compilation
    how: str               # why that many
    host_bytes: int        # host arrays a trace builds (T5's relative buckets)
    step_bytes: int | None = None   # a benchmark's parameters, gradients, activations


def model_layers(arch: str, cfg) -> int:
    """Every layer of the model: encoder and decoder; ELECTRA's generator and
    discriminator (both ``n_layers`` deep)."""
    layers = cfg.n_layers + (getattr(cfg, "n_dec_layers", 0) or 0)
    return 2 * layers if arch == "electra" else layers


def _trace_layers(pt, trace: str) -> tuple[int, str]:
    total = model_layers(pt.arch, pt.model.cfg)
    if trace == "full":
        return total, "--trace full traces every layer"
    from comparator.count.fasttrace import depth_plan
    plan, _ = depth_plan(architectures.get(pt.arch), pt.model.cfg)
    if len(plan) == 1:
        return total, "its layers are jitted calls, traced whole"
    if trace == "checked":
        return total, "--trace checked compares one length with the whole model"
    return max(model_layers(pt.arch, c) for _, c in plan), "the fast trace's shallow models"


def host_bytes(arch: str, cfg, seq: int) -> int:
    """Bytes of the host arrays a trace of ``cfg`` at ``seq`` builds: T5's relative
    position buckets (an encoder-decoder with relative buckets), else 0."""
    if arch != "transformer" or getattr(cfg, "kind", "") != "encdec" or not cfg.rel_buckets:
        return 0
    from architectures.config import target_len
    t = target_len(seq)
    return BUCKET_BYTES * (seq * seq + t * t)


def needs(pt, what: str = "trace", trace: str = "fast") -> Needs:
    """What ``pt`` (a ``sweep.Point``) needs to be traced (``trace``: fast, checked, full)
    or benchmarked."""
    if what not in WHAT:
        raise ValueError(f"what: {what!r} is not one of {WHAT}")
    cfg = pt.model.cfg
    hb = host_bytes(pt.arch, cfg, pt.seq)
    if what == "bench":
        from comparator.measure.bench import estimate_bytes
        return Needs(model_layers(pt.arch, cfg), "a benchmark compiles every layer", hb,
                     estimate_bytes(architectures.get(pt.arch), cfg, pt.seq, pt.batch))
    layers, how = _trace_layers(pt, trace)
    return Needs(layers, how, hb)


def available_memory() -> int | None:
    """Bytes of physical memory available now (Linux), else None."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _gb(n: int) -> str:
    return f"{n / 1e9:.3g} GB"


def check(pt, what: str = "trace", trace: str = "fast", limits: Limits | None = None,
          memory: bool = True) -> Needs:
    """``needs(pt, what, trace)`` when within ``limits`` (default ``Limits()``), else a
    ``LimitError``; ``memory=False`` leaves memory to the machine that computes (a Dask
    worker)."""
    limits = limits or Limits()
    n = needs(pt, what, trace)
    doing = "benchmark" if what == "bench" else f"{trace} trace"
    point = f"{pt.arch}:{pt.preset} seq {pt.seq} batch {pt.batch} ({doing})"
    if n.layers > limits.layers:
        raise LimitError(point, f"{n.layers:,} unrolled layers",
                         f"at most {limits.layers:,} layers unrolled in one "
                         f"{'compilation' if what == 'bench' else 'trace'} ({n.how}; each "
                         "layer takes about 5 ms to 0.2 s and up to 1 MB of host memory): "
                         f"{LAYERS_OPTION} {n.layers} raises the limit")
    need = max(n.host_bytes, n.step_bytes or 0)
    most = limits.memory if limits.memory is not None else (
        available_memory() if memory else None)
    if most is not None and need > most:
        what_for = ("fp32 parameters, gradients and saved activations" if need != n.host_bytes
                    else f"T5's relative-position buckets, {BUCKET_BYTES} bytes x (length^2 "
                         "+ target^2)")
        limit = (f"the {_gb(most)} limit" if limits.memory is not None
                 else f"the {_gb(most)} available now")
        raise LimitError(point, f"about {_gb(need)} of memory",
                         f"at most {limit} ({what_for}): {MEMORY_OPTION} {need} raises the "
                         "limit")
    return n


__all__ = ["BUCKET_BYTES", "LimitError", "Limits", "MAX_LAYERS", "Needs", "available_memory",
           "check", "host_bytes", "model_layers", "needs"]
