"""comparator: what a Transformer -- or your own JAX function or Flax module -- costs to
train.  The front door (README, "Python API"):

* ``count(fn, *example_args, train=False, argnums=0, seq_axis=None, scope="matmul",
  **kwargs)`` and ``count_module(module, *inputs, train=False, loss=None, seq_axis=None,
  scope="matmul", rngs=(), apply_kwargs=None)`` -> ``CountRecord``: traced FLOPs by term,
  transcendentals, bytes, unsupported primitives, and with ``seq_axis`` the closed form
  in the length ``n``;
* ``sweep(archs, seqs, **options)``, ``cost(arch, seq, **options)``, ``budget(archs,
  dollars=..., **options)`` and ``claims(ids=None, **options)`` -> ``Record``s, the JSON
  records of ``comparator sweep``, ``cost``, ``budget`` and ``claims --format json`` (the
  commands are built on the same functions);
* ``UserModel``: what a model factory returns for ``--model FILE.py:FACTORY`` (and
  ``sweep(model=...)``, ``cost(model=...)``): a Flax module or a loss function with its
  example inputs at one length.

Importing ``comparator`` imports neither jax, flax nor matplotlib: each function imports
what it needs when called, and the analytic paths never import jax.

``comparator.count``, ``comparator.cost`` and ``comparator.claims`` are both: the rooms of
those names (packages: ``import comparator.count.trace``, ``from comparator.cost import
pricing``) and, called, the functions above (each room's module is made callable, so the
two never shadow each other).
"""
from __future__ import annotations

import importlib
import inspect
import sys
import types

# the rooms ``count``, ``cost`` and ``claims`` (each __init__ a docstring only) are made
# callable at the end of this file
from comparator import claims as _claims, cost as _cost, count as _count  # noqa: F401

_LAZY = {  # name -> module holding it
    "CountRecord": "comparator.count.usercount", "CountError": "comparator.count.usercount",
    "Record": "comparator.run.records", "RequestError": "comparator.run.sweep",
    "FieldError": "comparator.errors", "SweepRequest": "comparator.run.requests",
    "CostRequest": "comparator.run.requests", "ClaimsRequest": "comparator.run.requests",
    "Pricing": "comparator.run.requests", "BudgetRequest": "comparator.run.budget",
    "UserModel": "comparator.count.usermodel",
    "ExplainRequest": "comparator.run.steprequests",
    "RooflineRequest": "comparator.run.steprequests",
    "ScenarioRequest": "comparator.run.steprequests",
    "BenchRequest": "comparator.run.measurerequests",
    "KernelBenchRequest": "comparator.run.measurerequests",
    "CalibrateRequest": "comparator.run.measurerequests",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'comparator' has no attribute {name!r}")


def count(fn, *example_args, train: bool = False, argnums=0, seq_axis=None,
          scope: str = "matmul", **kwargs):
    """Count ``fn(*example_args, **kwargs)`` (``kwargs`` are static) on abstract copies of
    the arguments (nothing is run or allocated) -> ``CountRecord``.  ``train=True``: also
    ``jax.value_and_grad(fn, argnums)`` (``fn`` returns a scalar loss).  ``seq_axis``: the
    sequence axis of the arguments (an int, or one axis or None per argument) -> a closed
    form in ``n`` and ``record.at(n)``.  ``scope``: ``matmul`` (contractions, the
    default) or ``all`` (every operation)."""
    from comparator.count.targets import count_function
    return count_function(fn, example_args, kwargs, train=train, argnums=argnums,
                          seq_axis=seq_axis, scope=scope)


def count_module(module, *inputs, train: bool = False, loss=None, seq_axis=None,
                 scope: str = "matmul", rngs=(), apply_kwargs=None):
    """Count a Flax linen ``module`` applied to ``inputs`` (initialised abstractly:
    ``jax.eval_shape``) -> ``CountRecord`` with ``params``.  ``train=True``: also
    ``loss(outputs, *inputs)`` (default: the mean of the outputs) and its gradients with
    respect to the parameters.  ``seq_axis``, ``scope``: as ``count``; ``rngs``: random
    streams the module draws (``("dropout",)``); ``apply_kwargs``: keyword arguments of
    ``init`` and ``apply``."""
    from comparator.count.targets import count_module as counted
    return counted(module, inputs, train=train, loss=loss, seq_axis=seq_axis, scope=scope,
                   rngs=rngs, apply_kwargs=apply_kwargs)


def _split(options: dict, *classes) -> list[dict]:
    """``options`` shared out among the fields of ``classes``; an unknown one refused."""
    from comparator.run.requests import RequestError, field_names
    out = [{} for _ in classes]
    for k, v in options.items():
        i = next((i for i, c in enumerate(classes) if k in field_names(c)), None)
        if i is None:
            names = sorted(set().union(*(field_names(c) for c in classes)))
            raise RequestError("keyword", k, "one of " + ", ".join(names))
        out[i][k] = v
    return out


def sweep(archs=(), seqs=(), *, progress=None, d_model=None, layers=None, heads=None,
          d_ff=None, **options):
    """The records of ``comparator sweep --format json`` -> ``list[Record]``.  ``archs``:
    names or ``"all"``; ``seqs``: lengths; ``options``: the fields of ``SweepRequest``
    (``presets``, ``batch``, ``methods`` ("analytic", "traced" or "both"), ``scope``,
    ``convention``, ``baseline``, ``with_baseline``, ``config``, ``trace``, ``db``,
    ``jobs``, ``attentions`` (one model per attention kernel, "dense,flash,..."), ...) and,
    with ``accelerators``, of ``Pricing`` (``tokens``, ``steps``,
    ``devices``, ``dtype`` ("auto": each device's training precision), ``mfu``,
    ``time_model``, ``prices`` (a date: the prices listed then), ``price_kind``, ...);
    every time and cost field has its ``_low``/``_high`` (p5/p95); ``d_model``, ``layers``,
    ``heads``, ``d_ff``: a size grid (each a value or a list); ``model``: a user's model,
    ``"FILE.py:FACTORY"`` (``UserModel``), instead of ``archs``.  Or pass a
    ``SweepRequest`` as ``archs``.  Traced points that failed have no record and are
    warned about."""
    from comparator.run import execute
    from comparator.run.records import records
    from comparator.run.requests import Pricing, SweepRequest, priced, size_grid
    if isinstance(archs, SweepRequest):
        req = archs
    else:
        mine, price = _split(options, SweepRequest, Pricing)
        sizes = size_grid(d_model, layers, heads, d_ff)
        req = SweepRequest(archs, seqs, sizes=mine.pop("sizes", sizes),
                           pricing=priced(price.pop("accelerators", None), **price), **mine)
    res = execute.sweep(req, progress=progress)
    if res.tracer is not None and res.tracer.failures:
        import warnings
        for pt, error in res.tracer.failures:
            warnings.warn(f"comparator.sweep: {pt.arch}:{pt.preset} seq {pt.seq} batch "
                          f"{pt.batch} failed: {error}", RuntimeWarning, stacklevel=2)
    return records(res.records)


def cost(arch=None, seq=None, *, accelerators="all", **options):
    """The records of ``comparator cost --format json`` -> ``list[Record]``: one per
    accelerator (``accelerators=None`` or ``"none"``: the run's counts only).  ``options``:
    exactly one of ``tokens`` and ``steps``; the other fields of ``CostRequest``
    (``preset``, ``batch``, ``scope``, ``convention``, ``size``, ``db``) and of ``Pricing``
    (``devices``, ``dtype`` ("auto", the default: each device's training precision),
    ``mfu``, ``runs``, ``pue``, ``time_model``, ``prices`` (a date such as "2020": the
    prices listed on or before it), ``price_kind`` ("on-demand", "reserved", "spot",
    "preemptible"), ...).  Every time, device-hours, dollars, kWh and CO2 field has its
    p5/p95 as ``<field>_low``/``<field>_high``; a device that cannot be priced is a record
    with ``not_priced`` saying why.  ``model="FILE.py:FACTORY"``: a user's model (``arch``
    None).  Or pass a ``CostRequest`` as ``arch``."""
    from comparator.run import execute
    from comparator.run.records import records
    from comparator.run.requests import CostRequest, Pricing, priced
    if isinstance(arch, CostRequest):
        req = arch
    else:
        price, mine = _split(options, Pricing, CostRequest)
        req = CostRequest(arch, seq, priced(accelerators, counts=True, **price), **mine)
    return records(execute.cost(req).records)


def budget(archs=(), *, dollars=None, device_hours=None, kwh=None, accelerators="all",
           **options):
    """The records of ``comparator budget --format json`` -> ``list[Record]``: what a
    budget of ``dollars``, ``device_hours`` or ``kwh`` buys on each of ``accelerators``
    for each of ``archs``, each answer with its cost and the next step's.  ``find``:
    ``"tokens"`` (the default: the most tokens at ``seq`` and ``batch``), ``"model"`` (the
    largest model of ``sizes``, (d_model, n_layers) pairs, default the GPT-3 family's,
    each trained on ``tokens`` or ``tokens_per_param`` x its parameters) or ``"seq"`` (the
    longest length for ``tokens`` or ``steps``); ``break_even=True`` with two
    architectures: the length at which the second costs less per token.  ``options``:
    the other fields of ``BudgetRequest`` (``preset``, ``seq_step``, ...) and of
    ``Pricing`` (``devices``, ``dtype``, ``mfu``, ``pue``, ``grid_intensity``,
    ``prices``, ``price_kind``, ``accelerators_file``).  Analytic: no jax.  Or pass a
    ``BudgetRequest`` as ``archs``."""
    from comparator.run import budget as bd
    from comparator.run.records import records
    from comparator.run.requests import Pricing
    if isinstance(archs, bd.BudgetRequest):
        req = archs
    else:
        mine, price = _split(options, bd.BudgetRequest, Pricing)
        req = bd.BudgetRequest(archs, dollars, device_hours, kwh,
                               pricing=Pricing(accelerators, **price), **mine)
    return records(bd.run(req))


def claims(ids=None, *, bench=None, time_model: str = "roofline", db=None):
    """The records of ``comparator claims --format json`` -> ``list[Record]``: each claim's
    verdict and the numbers behind it.  ``ids``: claim ids (default all); ``bench``: the
    records (or the JSON file) of ``comparator bench --kernel attention``; ``time_model``:
    ``"roofline"`` also judges claims about speed or cost by the time model (compiles each
    model's step once), ``"mfu"`` gives FLOP verdicts only."""
    from comparator.claims import registry
    from comparator.run.records import records
    from comparator.run.requests import ClaimsRequest
    if isinstance(bench, str):
        bench = registry.load_bench(bench)
    req = ClaimsRequest(ids or (), bench, time_model, db)
    return records(registry.records(req))


class _CallableRoom(types.ModuleType):
    """A room that is also a front-door function of the same name."""

    def __call__(self, *args, **kwargs):
        return self.__front_door__(*args, **kwargs)


def _door(fn) -> types.ModuleType:
    room = sys.modules[f"comparator.{fn.__name__}"]
    room.__class__ = _CallableRoom
    room.__front_door__ = fn
    room.__signature__ = inspect.signature(fn)
    room.__doc__ = (f"{room.__doc__}\nCalled: comparator.{fn.__name__}{room.__signature__}"
                    f"\n\n{fn.__doc__}")
    return room


count, cost, claims = _door(count), _door(cost), _door(claims)

__all__ = ["BenchRequest", "BudgetRequest", "CalibrateRequest", "ClaimsRequest",
           "CostRequest", "CountError", "CountRecord", "ExplainRequest", "FieldError",
           "KernelBenchRequest", "Pricing", "Record", "RequestError", "RooflineRequest",
           "ScenarioRequest", "SweepRequest", "UserModel", "budget", "claims", "cost", "count",
           "count_module", "sweep"]
