"""Options of the commands that trace or benchmark many points: the results store
(``--db``, ``--no-cache``, ``--retry-failed``) and where points run (``--jobs``,
``--scheduler``, ``--worker-resources``)."""
from __future__ import annotations

import re
import sys

from .cliargs import positive_int
from .sweep import InputError

SCHEDULER = re.compile(r"^(tcp|tls|ucx|ws|wss)://\S+$")


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
            raise InputError("--worker-resources", text, "NAME=N pairs, comma separated, "
                             "with N > 0 (e.g. GPU=1)")
        out[name.strip()] = value
    return out


def open_store(a, needed: bool = True):
    """The Store of ``a`` (None with --no-cache), checking the options agree."""
    if a.no_cache and a.db:
        raise InputError("--db", a.db, "not together with --no-cache")
    if a.no_cache and a.retry_failed:
        raise InputError("--retry-failed", True, "not together with --no-cache (nothing "
                         "stored to retry)")
    if a.no_cache or not needed:
        return None
    from .store import Store
    return Store(a.db)


def scheduler_of(a, jobs: int = 1):
    """(scheduler address or None, worker resources or None), checked."""
    if a.scheduler is not None and not SCHEDULER.match(a.scheduler):
        raise InputError("--scheduler", a.scheduler, "a Dask scheduler address such as "
                                                     "tcp://HOST:PORT")
    if a.scheduler and jobs > 1:
        raise InputError("--jobs", a.jobs, "not together with --scheduler (the cluster's "
                                           "workers run the points)")
    res = resources(a.worker_resources)
    if res and not a.scheduler:
        raise InputError("--worker-resources", a.worker_resources, "only with --scheduler")
    return a.scheduler, res


def tracer_of(a, needed: bool):
    """A ``runner.Tracer`` for the traced points of a sweep or plot (None if none)."""
    jobs = positive_int("--jobs", a.jobs)
    scheduler, res = scheduler_of(a, jobs)
    store = open_store(a, needed)
    if not needed:
        return None
    from .runner import Tracer
    return Tracer(store, jobs=jobs, scheduler=scheduler, retry_failed=a.retry_failed,
                  convention=getattr(a, "convention", None) or "standard", resources=res)


class Tally:
    """What the store supplied and what failed, for commands that run points one by one."""

    def __init__(self, store, retry_failed: bool = False):
        self.store, self.retry_failed = store, retry_failed
        self.loaded = self.computed = 0
        self.failures: list = []

    def lookup(self, pt, desc: dict):
        """(record or None, whether it is still to compute)."""
        hit = self.store.get(desc) if self.store is not None else None
        if hit and hit[0] == "ok":
            self.loaded += 1
            return hit[1], False
        if hit and not self.retry_failed:
            self.failures.append((pt, hit[1] + " (stored; --retry-failed recomputes)"))
            return None, False
        return None, True

    def save(self, pt, desc: dict, rec, error=None, transient: bool = False):
        """Store a computed point at once (not a record with ``skipped`` set -- instant,
        and dependent on memory free now -- nor a point lost with its worker)."""
        if error is not None:
            self.failures.append((pt, error))
        if self.store is not None and not transient and not (rec and rec.get("skipped")):
            self.store.put([(desc, rec, error)])
        self.computed += 1
        return rec

    def compute(self, pt, desc: dict, compute):
        """``compute()``'s record, stored; None when it raised, the error stored and in
        ``failures``."""
        from .store import canonical
        try:
            return self.save(pt, desc, canonical(compute()))
        except Exception as err:  # noqa: BLE001 -- stored with the point, never a number
            return self.save(pt, desc, None, f"{type(err).__name__}: {err}")


def report(a, tracer, what: str = "traced") -> None:
    """Failed points on stderr, one line each, and exit status 1; a note of what the
    store supplied.  The table of the other points is printed all the same."""
    if tracer is None:
        return
    where = f" (store: {tracer.store.path})" if tracer.store is not None else ""
    if tracer.loaded and not getattr(a, "quiet", False):
        sys.stderr.write(f"comparator {a.command}: {tracer.loaded} {what} point(s) read from "
                         f"the store, {tracer.computed} computed{where}\n")
    for pt, error in tracer.failures:
        sys.stderr.write(f"comparator {a.command}: failed: {pt.arch}:{pt.preset} seq "
                         f"{pt.seq} batch {pt.batch} ({what}): {error}{where}\n")
    if tracer.failures:
        a.exit_status = 1


__all__ = ["Tally", "add_run_args", "open_store", "report", "resources",
           "scheduler_of", "tracer_of"]
