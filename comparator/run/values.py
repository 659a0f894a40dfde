"""Checks of request values shared by the request classes (``requests``, ``steprequests``,
``measurerequests``, ``budget``): numbers, choices, tuples a caller may write shorter,
dates and kinds of prices, architecture names, size grids and the runner's options, each
refused with ``RequestError`` naming the field by its command-line option."""
from __future__ import annotations

import datetime
import re

import architectures
from architectures.config import MAX_DIM

from comparator.cost import prices as pr
from comparator.run.sweep import RequestError, suggest
from comparator.run import variants

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


def as_tuple(value, split: bool = True) -> tuple:
    """A tuple from a tuple, a list, one value, or a comma-separated string."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v for v in value.split(",") if v) if split else (value,)
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return (value,)


def set_field(obj, name: str, value) -> None:
    """Set ``name`` of a frozen dataclass (its ``__post_init__`` normalising a value)."""
    object.__setattr__(obj, name, value)


def positive(field: str, value, most: int | None = MAX_DIM) -> int:
    """``value``, an int > 0 and at most ``most`` (None: no bound)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0 \
            or (most is not None and value > most):
        raise RequestError(field, value, "a positive integer"
                           + (f" at most {most}" if most is not None else ""))
    return value


def number(field: str, value) -> float:
    """``value``, an int or a float, as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(field, value, "a number")
    return float(value)


def choice(field: str, value, choices) -> str:
    """``value``, one of ``choices`` (refused with the nearest named)."""
    if value not in choices:
        raise RequestError(field, value, suggest(value, choices))
    return value


def check_date(field: str, value) -> str:
    """A date as 'YYYY', 'YYYY-MM' or 'YYYY-MM-DD' (an int year, a ``datetime.date``)."""
    if isinstance(value, datetime.date) or (isinstance(value, int)
                                            and not isinstance(value, bool)):
        value = str(value)
    try:
        pr.as_of(value if isinstance(value, str) else repr(value))
    except pr.CatalogueError as err:
        raise RequestError(field, value, err.allowed) from None
    return value.strip()


def check_prices(prices, price_kind: str) -> str | None:
    """``prices`` (a date, ``check_date``; None: the latest listed), normalised, and
    ``price_kind`` (on-demand, reserved, spot, preemptible), each refused naming its
    option."""
    if prices is not None:
        prices = check_date("--prices", prices)
    try:
        pr.check_kind(price_kind)
    except pr.CatalogueError as err:
        raise RequestError(err.field, err.value, err.allowed) from None
    return prices


def check_train_dtype(dtype, auto: bool = True) -> str:
    """A dtype a training step can use (``cost.pricing.DTYPE_BYTES``, by any of its
    names; ``auto`` where ``auto``): int8 and fp8 are inference and fp8-kernel peaks, no
    whole training step runs in them (it would halve the step time)."""
    from comparator.cost.pricing import AUTO, DTYPE_BYTES, dtype_key
    if auto and str(dtype).lower() == AUTO:
        return dtype
    if not isinstance(dtype, str) or dtype_key(dtype) not in DTYPE_BYTES:
        raise RequestError("--dtype", dtype, "a training dtype: " + ", ".join(
            ((AUTO,) if auto else ()) + tuple(DTYPE_BYTES)) + " (int8 and fp8 peaks are "
            "not a training step's)")
    return dtype


def check_archs(names) -> tuple:
    """Architecture names (``"all"`` is every one), each known."""
    names = tuple(architectures.NAMES) if names in ("all", ("all",)) else as_tuple(names)
    for a in names:
        if a not in architectures.NAMES:
            raise RequestError("--arch", a, suggest(a, architectures.NAMES) + " or all")
    return names


def size_grid(d_model=None, layers=None, heads=None, d_ff=None) -> tuple | None:
    """``(d_model, n_layers, n_heads, d_ff)`` of every combination of the given widths,
    depths, heads and FFN widths (each one value or a list; None keeps the preset's), or
    None when none is given."""
    axes = [as_tuple(v) or (None,) for v in (d_model, layers, heads, d_ff)]
    sizes = tuple((d, L, h, ff) for d in axes[0] for L in axes[1] for h in axes[2]
                  for ff in axes[3])
    return None if sizes == ((None, None, None, None),) else sizes


def check_sizes(sizes) -> tuple | None:
    """``(d_model, layers, heads, d_ff)`` tuples, each given value positive (None: none)."""
    if sizes is None:
        return None
    sizes = tuple(tuple(s) for s in sizes)
    for s in sizes:
        if len(s) != 4:
            raise RequestError("--sizes", s, "(d_model, layers, heads, d_ff) tuples, None "
                                             "keeping the preset's value")
        for name, v in zip(("--d-model", "--layers", "--heads", "--d-ff"), s):
            if v is not None:
                positive(name, v)
    return sizes


def check_attentions(attentions, archs=(), config=None) -> tuple:
    """Attention kernels (``variants.ATTENTION_CHOICES``; a comma-separated string or a
    tuple), each known, given once, and one each of ``archs`` takes (``variants.check``;
    the models of a ``config`` file are checked as they are made)."""
    out = as_tuple(attentions)
    for a in out:
        choice("--attention", a, variants.ATTENTION_CHOICES)
    if len(set(out)) != len(out):
        raise RequestError("--attention", attentions, "each choice once")
    variants.check(archs, out, config)
    return out


RUNNER = ("db", "no_cache", "retry_failed", "jobs", "scheduler", "worker_resources")


def check_runner(db=None, no_cache=False, retry_failed=False, jobs=1, scheduler=None,
                 worker_resources=None) -> None:
    """The options of where traced (or benchmarked) points run and are stored, checked
    together: the results store ``db`` (or ``no_cache``), ``jobs`` local processes or a
    Dask ``scheduler`` with ``worker_resources`` ({name: amount}) per point."""
    positive("--jobs", jobs)
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


def one_seq(seq, what: str):
    """One sequence length (an int, or a one-element sequence of one, as the command line
    parses ``--seq``), else refused naming ``what`` needs one."""
    if isinstance(seq, (list, tuple)) and len(seq) == 1:
        seq = seq[0]
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 < seq <= MAX_SEQ:
        raise RequestError("--seq", seq, f"one sequence length for {what}"
                           + ("" if isinstance(seq, (list, tuple)) else ": " + SEQ_ALLOWED))
    return seq


def seq_tuple(seqs) -> tuple:
    """Sequence lengths, each a positive int at most ``MAX_SEQ``, each once (in the order
    given: ``repeated`` names those dropped)."""
    out = as_tuple(seqs)
    if not out or any(isinstance(s, bool) or not isinstance(s, int) or not 0 < s <= MAX_SEQ
                      for s in out):
        raise RequestError("--seq", seqs, SEQ_ALLOWED)
    return tuple(dict.fromkeys(out))


def repeated(seqs) -> str | None:
    """A note naming the lengths ``seqs`` gives more than once (None: none), which
    ``seq_tuple`` keeps once."""
    seqs = as_tuple(seqs)
    twice = sorted({s for s in seqs if seqs.count(s) > 1})
    if not twice:
        return None
    return ("length " + ", ".join(map(str, twice)) + " given more than once: "
            + ("it is" if len(twice) == 1 else "each is") + " computed once")


def one_arch(arch, what: str, missing: str = "one architecture") -> str:
    """One architecture name (not a list, not ``all``), known; ``missing``: what an absent
    one is told."""
    if not arch:
        raise RequestError("--arch", None, missing)
    if not isinstance(arch, str):
        raise RequestError("--arch", arch, f"one architecture for {what}")
    names = check_archs(arch)
    if len(names) != 1 or arch == "all":
        raise RequestError("--arch", arch, f"one architecture for {what}")
    return arch


MODEL_ALLOWED = ("FILE.py:FACTORY or package.module:FACTORY (a factory called as "
                 "FACTORY(seq_len, batch), returning a comparator.UserModel)")


NO_ANALYTIC = ("traced with --model: a user model has no analytic formula (its traced step "
               "is counted)")


def methods_of(methods, default: tuple, model=None) -> tuple:
    """The counting methods asked for (``"both"``: analytic and traced; None:
    ``default``, traced for a user ``model``), each known; a user model is traced only."""
    from comparator.run.sweep import METHODS
    if methods is None:
        methods = ("traced",) if model else default
    out = METHODS if methods == "both" else as_tuple(methods)
    for m in out:
        if m not in METHODS:
            raise RequestError("--method", m, "choose from analytic, traced, both")
    if model and out != ("traced",):
        raise RequestError("--method", methods if isinstance(methods, str) else
                           "both" if len(out) == 2 else out[0], NO_ANALYTIC)
    return out


def check_model_convention(model, convention: str) -> None:
    """A user model is counted by our convention only (the papers' formulas are over
    their architectures' configs)."""
    if model is not None and convention != "standard":
        raise RequestError("--convention", convention, "standard with --model (a paper's "
                           "formula counts its own architectures)")


def check_model_pricing(model, pricing) -> None:
    """A user model's memory is priced with every activation stored: no per-layer
    checkpointing or reversible layers (those are the built-in architectures')."""
    if model is not None and pricing is not None and pricing.policy not in (None,
                                                                             "store_all"):
        raise RequestError("--policy", pricing.policy, "store_all with --model (checkpoint "
                           "and reversible need the layers of a built-in architecture)")


def size_options(size) -> dict:
    """``{option: value}`` of a size ``(d_model, layers, heads, d_ff)`` (None: none)."""
    names = ("--d-model", "--layers", "--heads", "--d-ff")
    return dict(zip(names, size)) if size is not None else {}


def check_model(model, **alone) -> None:
    """``--model``'s value (``FILE.py:FACTORY`` or ``package.module:FACTORY``, its form
    only: the file is read when the request runs) and the options a user model replaces
    (``alone``: option -> value, each refused when given)."""
    if model is None:
        return
    path, _, name = str(model).rpartition(":") if isinstance(model, str) else ("", "", "")
    if not path or not name.isidentifier():
        raise RequestError("--model", model, MODEL_ALLOWED)
    for opt, value in alone.items():
        if value is not None and value is not False and value != () and value != []:
            raise RequestError(opt, value, "not with --model (a user model is counted from "
                                           "its own traced step)")


__all__ = ["MAX_SEQ", "MODEL_ALLOWED", "NONE", "NO_ANALYTIC", "POLICIES", "RUNNER",
           "SCHEDULER", "SEQ_ALLOWED", "as_tuple", "check_archs", "check_attentions",
           "check_date", "check_model", "check_model_convention", "check_model_pricing",
           "check_prices", "check_runner", "check_sizes", "check_train_dtype", "choice",
           "methods_of", "number", "one_arch", "one_seq", "option", "positive", "repeated",
           "seq_tuple", "set_field", "size_grid", "size_options"]
