"""Options of the commands that trace or benchmark many points: the results store
(``--db``, ``--no-cache``, ``--retry-failed``), where points run (``--jobs``,
``--scheduler``, ``--worker-resources``) and what one traced point may need
(``--max-unrolled-layers``, ``--memory-limit``)."""
from __future__ import annotations

import sys

from comparator.cli.args import UsageError, build, large_int, positive_int
from comparator.run.limits import MAX_LAYERS, Limits
from comparator.run.requests import check_runner


def add_run_args(p, jobs: bool = True) -> None:
    p.add_argument("--db", help="the results store (SQLite) traced points are read from and "
                   "written to as each finishes (default: results.sqlite in "
                   "$COMPARATOR_CACHE_DIR, else $XDG_CACHE_HOME/comparator or "
                   "~/.cache/comparator)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the "
                   "results store: compute every point")
    p.add_argument("--retry-failed", action="store_true", help="recompute points stored as "
                   "failed (default: report their stored error)")
    if jobs:
        p.add_argument("--jobs", default="1", help="traced points in N local worker "
                       "processes (default 1: in this process)")
    p.add_argument("--scheduler", help="tcp://HOST:PORT: the points on this Dask "
                   "distributed cluster (pip install 'comparator[distributed]')")
    p.add_argument("--worker-resources", help="with --scheduler: resources each point "
                   "needs, NAME=N[,NAME=N] (e.g. GPU=1), to route it to such workers")
    if jobs:   # traced points (bench has its own --memory-limit)
        p.add_argument("--max-unrolled-layers", help="traced points: most layers one trace "
                       f"may unroll (default {MAX_LAYERS:,}; a point needing more is refused "
                       "before any work)")
        p.add_argument("--memory-limit", help="traced points: bytes of host memory a trace "
                       "may need (default: the memory available now), e.g. 64e9")


def resources(text: str | None) -> dict | None:
    if text is None:
        return None
    out = {}
    for part in text.split(","):
        name, _, n = part.partition("=")
        try:
            value = float(n)
        except ValueError:
            value = -1.0
        if not name.strip() or not value > 0:
            raise UsageError("--worker-resources", text, "NAME=N pairs, comma separated, "
                             "with N > 0 (e.g. GPU=1)")
        out[name.strip()] = value
    return out


def runner_options(a, jobs: bool = True) -> dict:
    """The options of where points run and are stored (``requests.RUNNER``), parsed and
    checked together."""
    opts = dict(db=a.db, no_cache=a.no_cache, retry_failed=a.retry_failed,
                jobs=positive_int("--jobs", a.jobs) if jobs else 1, scheduler=a.scheduler,
                worker_resources=resources(a.worker_resources))
    build(check_runner, a, **opts)
    if jobs:
        opts["limits"] = limits_of(a)
    return opts


def limits_of(a) -> Limits:
    """The limits of one traced point (``--max-unrolled-layers``, ``--memory-limit``)."""
    layers, memory = a.max_unrolled_layers, a.memory_limit
    if getattr(a, "method", "traced") not in ("traced", "both"):
        for flag, value in (("--max-unrolled-layers", layers), ("--memory-limit", memory)):
            if value is not None:
                raise UsageError(flag, value, "only with --method traced or both (an "
                                              "analytic count traces nothing)")
    return Limits(layers=MAX_LAYERS if layers is None else
                  positive_int("--max-unrolled-layers", layers),
                  memory=None if memory is None else large_int("--memory-limit", memory))


def open_store(a):
    """The Store of ``a`` (None with --no-cache); ``runner_options`` checked the options."""
    if a.no_cache:
        return None
    from comparator.run.store import Store
    return Store(a.db)


def report(a, tracer, what: str = "traced") -> None:
    """Failed points on stderr, one line each, and exit status 1; a note of what the
    store supplied, and of the points computed but not stored (a read-only store).  The table of the other points is printed all the same."""
    if tracer is None:
        return
    where = f" (store: {tracer.store.path})" if tracer.store is not None else ""
    unsaved = getattr(tracer.store, "unsaved", 0) if tracer.store is not None else 0
    programs = getattr(tracer, "from_programs", 0)
    if (tracer.loaded or unsaved or programs) and not getattr(a, "quiet", False):
        sys.stderr.write(f"comparator {a.command}: {tracer.loaded} {what} point(s) read from "
                         f"the store, "
                         + (f"{programs} answered by stored programs, " if programs else "")
                         + f"{tracer.computed} computed"
                         + (f", {unsaved} of them not stored" if unsaved else "")
                         + f"{where}\n")
    for pt, error in tracer.failures:
        sys.stderr.write(f"comparator {a.command}: failed: {pt.arch}:{pt.preset} seq "
                         f"{pt.seq} batch {pt.batch} ({what}): {error}{where}\n")
    if tracer.failures:
        a.exit_status = 1


__all__ = ["add_run_args", "limits_of", "open_store", "report", "resources",
           "runner_options"]
