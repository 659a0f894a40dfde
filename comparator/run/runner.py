"""Traced points computed through the results store, here, in local worker processes
(``jobs``) or on a Dask distributed cluster (``scheduler``).

The unit of work is what ``sweep.traced_all`` traces together: one model at one batch,
every length asked for it (the fast tracer counts all lengths from one symbolic trace).
Points found in the store are not recomputed; the others are grouped, computed, and each
group is written to the store the moment it comes back, so an interrupted sweep loses at
most the groups in flight.  A group that raises is stored as failed with its error, for
each of its points, and reported; it never becomes a number.  A group lost with its
worker (killed, out of memory, a cluster worker gone) is reported but not stored, so the
next run computes it.  A length the model cannot take is refused before any work.  Workers only compute and
return records: this process alone writes the store.
"""
from __future__ import annotations

import traceback

import architectures

from comparator.run import cluster, programs, sweep
from comparator.run.cluster import SchedulerError
from comparator.run.jaxside import ready_to_trace
from comparator.run.limits import LimitError, Limits
from comparator.run.store import canonical, describe


def trace_group(pts, scope: str, trace: str, limits=None, stored=None) -> dict:
    """``{"records": {(arch, preset, seq, batch): record}}`` or ``{"error": text}`` for
    one group, in whatever process runs it (a worker, a Dask worker or this one).  A
    group beyond ``limits`` on the machine that runs it (its memory) is a transient error:
    a property of that machine, not of the points.  ``stored``: the group goes through
    the results store, ``{"known": ..., "check": ...}`` of ``programs.trace_group``; the
    result then has its ``programs`` (to store) and ``dropped`` programs too."""
    try:
        if stored is None:
            recs = sweep.traced_all(pts, scope, trace, limits=limits)
            return {"records": {k: canonical(r) for k, r in recs.items()}}
        got = programs.trace_group(pts, scope, trace, limits, **stored)
        return {**got, "records": {k: canonical(r) for k, r in got["records"].items()}}
    except LimitError as err:
        return {"error": str(err), "transient": True}
    except Exception as err:  # noqa: BLE001 -- recorded with the point, never a number
        last = traceback.extract_tb(err.__traceback__)[-1:]
        where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
        return {"error": f"{type(err).__name__}: {err}{where}"}


class Tally:
    """What the store supplied and what failed: the lookup and saving of points, for
    ``bench`` point by point and, through ``Tracer``, for traced groups."""

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
        try:
            return self.save(pt, desc, canonical(compute()))
        except Exception as err:  # noqa: BLE001 -- stored with the point, never a number
            return self.save(pt, desc, None, f"{type(err).__name__}: {err}")


class Tracer(Tally):
    """A drop-in for ``sweep.traced_all`` that goes through a store and an executor;
    after a call, ``failures`` lists ``(point, error)`` of the points without a record."""

    def __init__(self, store=None, jobs: int = 1, scheduler: str | None = None,
                 retry_failed: bool = False, convention: str = "standard",
                 resources: dict | None = None, limits: Limits | None = None):
        super().__init__(store, retry_failed)
        self.jobs, self.scheduler = jobs, scheduler
        self.convention, self.resources = convention, resources
        self.limits = limits or Limits()
        self.from_programs = 0      # points answered from stored programs

    def _desc(self, pt, scope: str, trace: str) -> dict:
        return describe(pt.arch, pt.preset, pt.model.cfg, pt.seq, pt.batch, "traced", scope,
                        self.convention, trace=trace)

    def __call__(self, pts, scope: str, trace: str = "fast", progress=None) -> dict:
        if trace not in sweep.TRACES:
            raise sweep.RequestError("--trace", trace, "choose from " + ", ".join(sweep.TRACES))
        out, groups, descs = {}, {}, {}
        for pt in dict.fromkeys(pts):
            m = pt.model
            pt = sweep.Point(m.arch, m.preset, pt.seq, pt.batch, m.cfg)
            # bad input (a length the model cannot take) is a usage error now, before any
            # work, not a failed point: the analytic count validates it in microseconds
            architectures.get(m.arch).flops(m.cfg, pt.seq, pt.batch, scope)
            descs[pt] = self._desc(pt, scope, trace)
            rec, pending = self.lookup(pt, descs[pt])
            if rec is not None:
                out[sweep._key(pt)] = rec
            elif pending:
                groups.setdefault((m.arch, m.preset, pt.batch, m.cfg), []).append(pt)
        stored = self._programs(groups, scope, trace, out) if self.store is not None else {}
        work = [g for g in groups.values() if g]
        if work:   # beyond a limit: refused now, before any work (runner.limits)
            ready_to_trace([pt for g in work for pt in g], trace, self.limits,
                           memory=not self.scheduler)
        total, done = sum(len(g) for g in work), 0
        for group, result in self._execute(work, scope, trace, stored):
            recs, error = result.get("records", {}), result.get("error")
            items = []
            for pt in group:
                rec = recs.get(sweep._key(pt))
                if rec is None:
                    error = error or "no record returned for this point"
                    self.failures.append((pt, error))
                else:
                    out[sweep._key(pt)] = rec
                items.append((descs[pt], rec, None if rec is not None else error))
            if self.store is not None and not result.get("transient"):
                self.store.put(items)   # a lost worker is no property of the point
                m = group[0].model
                self.store.put_programs(m.arch, m.preset, m.cfg, group[0].batch,
                                        result.get("programs", ()))
                for key in result.get("dropped", ()):
                    self.store.drop_program(key)
            self.computed += len(group)
            done += len(group)
            if progress:
                progress(done, total)
        return out

    def _programs(self, groups, scope, trace, out) -> dict:
        """Answer the points of ``groups`` that stored programs answer (``--trace fast``:
        into ``out``, stored as points, removed from their group); for the others, what
        their trace may use: ``{group key: {"known": ..., "check": ...}}``
        (``programs.trace_group``)."""
        stored = {}
        for gkey, group in groups.items():
            if trace == "full":
                stored[gkey] = {}
                continue
            m = group[0].model
            progs = programs.StoredPrograms(self.store.programs(m.arch, m.cfg, group[0].batch))
            left, items, check_rows = [], [], {}
            for pt in group:
                hit = progs.covering(pt.seq)
                if hit is None:
                    left.append(pt)
                elif trace == "checked":
                    check_rows[hit[0]["key"]] = (hit[0], hit[0]["program"])
                    left.append(pt)
                else:
                    rec = canonical(programs.record(pt, scope, *hit))
                    out[sweep._key(pt)] = rec
                    items.append((self._desc(pt, scope, trace), rec, None))
            if items:
                self.store.put(items)
                self.from_programs += len(items)
            group[:] = left
            stored[gkey] = {"known": progs.known(), "check": list(check_rows.values())}
        return stored

    def _execute(self, work, scope, trace, stored=None):
        """(group, result) pairs as each group finishes."""
        if not work:
            return
        stored = stored or {}
        extra = [stored.get(_gkey(g)) if self.store is not None else None for g in work]
        if self.scheduler:
            yield from _dask(work, scope, trace, self.scheduler, self.resources, self.limits,
                             extra)
        elif self.jobs > 1 and len(work) > 1:
            yield from _processes(work, scope, trace, self.jobs, self.limits, extra)
        else:
            for g, x in zip(work, extra):
                yield g, trace_group(g, scope, trace, self.limits, x)


def _gkey(group):
    m = group[0].model
    return (m.arch, m.preset, group[0].batch, m.cfg)


def _processes(work, scope, trace, jobs, limits=None, extra=None):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool
    # spawn: a forked child of a process that has started jax's threads can deadlock
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(work)),
                               mp_context=multiprocessing.get_context("spawn"))
    finished = False
    try:
        extra = extra or [None] * len(work)
        futures = {pool.submit(trace_group, g, scope, trace, limits, x): g
                   for g, x in zip(work, extra)}
        for f in as_completed(futures):
            try:
                result = f.result()
            except BrokenProcessPool as err:   # a worker killed (out of memory, a signal)
                result = {"error": f"a worker process died before finishing ({err}); not "
                                   "stored: the next run computes it again", "transient": True}
            yield futures[f], result
        finished = True
    finally:
        if not finished:   # Ctrl-C or an error here: stop the workers, keep what is stored
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                proc.terminate()
        pool.shutdown(wait=True, cancel_futures=True)


def _dask(work, scope, trace, address, resources, limits=None, extra=None):
    extra = extra or [None] * len(work)
    tasks = [(trace_group, (g, scope, trace, limits, x)) for g, x in zip(work, extra)]
    for i, result in dask_map(tasks, address, resources):
        yield work[i], result


def dask_map(tasks, address: str, resources=None):
    """``(index, result)`` of each ``(fn, args)`` task as it finishes on the cluster at
    ``address`` (reached within ``cluster.TIMEOUT`` seconds, else a ``SchedulerError``
    saying what is there); the functions return their own errors, so an exception here
    is the cluster's (a worker lost): a transient result, not stored."""
    client = cluster.client(address)      # bounded; says what is there when not Dask
    from distributed import as_completed
    try:
        futures = {client.submit(fn, *args, pure=False, resources=resources): i
                   for i, (fn, args) in enumerate(tasks)}
        for f in as_completed(futures):
            try:
                result = f.result()
            except Exception as err:  # noqa: BLE001 -- a lost worker: recorded, not a number
                result = {"error": f"{type(err).__name__} on the cluster: {err}; not stored: "
                                   "the next run computes it again", "transient": True}
            yield futures[f], result
    finally:
        client.close()


def bench_task(pt, steps: int, memory_limit, acc, dtype: str = "fp32") -> dict:
    """``{"record": ...}`` or ``{"error": ...}``: one benchmark point measured where this
    runs (a Dask worker) in ``dtype``: against that machine's free memory (unless a limit
    is given) and measured peak, or the catalogue peak of ``acc = (name, peak in dtype,
    source)``."""
    try:
        from comparator.measure import bench
        limit = memory_limit if memory_limit is not None else bench.available_memory()
        r = bench.bench_step(architectures.get(pt.arch), pt.model.cfg, pt.seq, pt.batch,
                             steps=steps, memory_limit=limit, peak=acc[1] if acc else None,
                             dtype=dtype)
        if acc:
            r["peak_source"] = f"catalogue: {acc[0]} {dtype} dense peak ({acc[2]})"
            r["accelerator"] = acc[0]
        else:
            r["peak_source"] = bench.peak_source(dtype)
        r["machine"] = bench.machine()
        return {"record": canonical({"arch": pt.arch, "preset": pt.preset, "accelerator": None,
                                     **r})}
    except Exception as err:  # noqa: BLE001 -- recorded with the point, never a number
        return {"error": f"{type(err).__name__}: {err}"}


__all__ = ["SchedulerError", "Tally", "Tracer", "bench_task", "dask_map", "trace_group"]
