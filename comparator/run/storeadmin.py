"""What the results store keeps, for ``comparator store`` and for callers: ``info`` (what it
holds: points by status, architecture, method and version, its size and dates),
``check`` (SQLite's full integrity check and the points no run will read again),
``prune`` (points by age, architecture and version) and ``export`` (points as JSON lines).

``info`` also counts the traced programs (``store.PROGRAMS``) and says why those of
other versions are not used.  ``info``, ``check`` and ``export`` open the file read-only and
change nothing (a damaged
store is reported, not moved aside: a traced command does that); an absent store is
reported as empty, not created.  ``prune`` removes points only (device profiles are
calibrations and stay; compiled regions go with ``versions``); freed pages are reused by
later points.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import sqlite3
import time
import urllib.parse

from comparator.run.store import (DAMAGED, Store, StoreError, default_path, program_versions,
                                  versions)
from comparator.run.sweep import RequestError

ACTIONS = ("info", "check", "prune", "export")
VERSION_WORDS = ("other", "current")   # every version but the running one; the running one


def where(path: str | None) -> tuple[str, str, bool]:
    """(the path as given, absolute, whether the user named it) of ``path`` or the
    default store."""
    given = os.fspath(path) if path is not None else default_path()
    return given, os.path.abspath(given), path is not None


def _when(t) -> str | None:
    return None if t is None else datetime.datetime.fromtimestamp(
        t, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _read_only(given: str, full: str, named: bool):
    """A read-only connection to the store at ``full``, or None when there is none."""
    if not os.path.exists(full):
        return None
    try:
        db = sqlite3.connect("file:" + urllib.parse.quote(full) + "?mode=ro", uri=True)
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.Error as err:
        damaged = any(w in str(err).lower() for w in DAMAGED)
        raise StoreError(given, f"damaged, or not a database: {err}" if damaged
                         else str(err), named) from None


def _size(full: str) -> int:
    return sum(os.path.getsize(full + s) for s in ("", "-wal") if os.path.exists(full + s))


def _tables(db) -> set:
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def info(path: str | None = None) -> dict:
    """What the store holds (an absent store: ``exists`` False and nothing else)."""
    given, full, named = where(path)
    out = {"store": given, "default": not named, "exists": os.path.exists(full)}
    db = _read_only(given, full, named)
    if db is None:
        return out
    with contextlib.closing(db):
        have = _tables(db)
        out["bytes"] = _size(full)
        if "points" in have:
            current = json.dumps(versions(), sort_keys=True)
            one = db.execute("SELECT count(*), sum(status = 'ok'), sum(status = 'failed'), "
                             "min(created), max(created), sum(versions = ?) FROM points",
                             (current,)).fetchone()
            out.update(points=one[0], ok=one[1] or 0, failed=one[2] or 0,
                       oldest=_when(one[3]), newest=_when(one[4]),
                       current_version=one[5] or 0, other_versions=one[0] - (one[5] or 0))
            for col in ("arch", "method"):
                out[f"by_{col}"] = dict(db.execute(f"SELECT {col}, count(*) FROM points "
                                                   f"GROUP BY {col} ORDER BY {col}"))
            by = {}
            for v, n in db.execute("SELECT versions, count(*) FROM points GROUP BY versions"):
                comp = json.loads(v).get("comparator", "?") if v else "?"
                by[comp] = by.get(comp, 0) + n
            out["by_version"] = by
            out["running_version"] = versions()["comparator"]
        for table in ("profiles", "regions"):
            if table in have:
                out[table] = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        if "programs" in have:
            out["programs"] = _programs(db)
    return out


VERSION_NAMES = (("comparator", "comparator"), ("jax", "JAX"), ("flax", "Flax"))


def unused_because(stored: dict, running: dict | None = None) -> str | None:
    """Why a program made by ``stored`` versions is not used now (None: it is)."""
    running = running or program_versions()
    why = [f"{label} {stored.get(name, '?')} (running {running[name]})"
           for name, label in VERSION_NAMES if stored.get(name) != running[name]]
    return "made by " + ", ".join(why) if why else None


def _programs(db) -> dict:
    """The traced programs: how many, of one length or a range, and why the unused ones
    are not used."""
    running = program_versions()
    out = {"total": 0, "ranges": 0, "current": 0, "unused": {}}
    for v, ranges, n in db.execute("SELECT versions, sum(lo < hi), count(*) FROM programs "
                                   "GROUP BY versions"):
        out["total"] += n
        out["ranges"] += ranges or 0
        why = unused_because(json.loads(v) if v else {}, running)
        if why is None:
            out["current"] += n
        else:
            out["unused"][why] = out["unused"].get(why, 0) + n
    return out


def check(path: str | None = None) -> dict:
    """SQLite's ``integrity_check`` of the store: ``{"store", "ok", "problems": [...],
    "other_versions"}`` (``ok`` None when there is no store)."""
    given, full, named = where(path)
    out = {"store": given, "ok": None, "problems": []}
    try:
        db = _read_only(given, full, named)
    except StoreError as err:
        return dict(out, ok=False, problems=[err.why])
    if db is None:
        return out
    with contextlib.closing(db):
        try:
            rows = [r[0] for r in db.execute("PRAGMA integrity_check").fetchall()]
            missing = {"points", "profiles", "regions"} - _tables(db)
        except sqlite3.DatabaseError as err:
            rows, missing = [f"damaged: {err}"], set()
        out["problems"] = [r if r.startswith("damaged") else f"damaged: {r}" for r in rows
                           if r != "ok"]
        out["ok"] = not out["problems"]
        if out["ok"] and "points" not in missing:
            current = json.dumps(versions(), sort_keys=True)
            out["other_versions"] = db.execute("SELECT count(*) FROM points WHERE versions "
                                               "!= ?", (current,)).fetchone()[0]
    return out


def _filters(older_than=None, archs=(), versions_=(), running=None) -> tuple[str, list]:
    """The WHERE clause (and its parameters) of points (or, with ``running`` =
    ``program_versions()``, programs) matching every criterion given."""
    clauses, args = [], []
    if older_than is not None:
        if isinstance(older_than, bool) or not isinstance(older_than, (int, float)) \
                or not 0 <= older_than < 1e6:
            raise RequestError("--older-than", older_than, "a number of days, 0 or more")
        clauses.append("created < ?")
        args.append(time.time() - older_than * 86400)
    if archs:
        clauses.append("arch IN (" + ", ".join("?" * len(archs)) + ")")
        args.extend(archs)
    if versions_:
        current = json.dumps(running or versions(), sort_keys=True)
        parts = []
        for v in versions_:
            if v == "other":
                parts.append("versions != ?")
                args.append(current)
            elif v == "current":
                parts.append("versions = ?")
                args.append(current)
            else:
                parts.append("json_extract(versions, '$.comparator') = ?")
                args.append(v)
        clauses.append("(" + " OR ".join(parts) + ")")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def prune(path: str | None = None, older_than=None, archs=(), versions_=(),
          dry_run: bool = False) -> dict:
    """Remove the points matching every criterion given (at least one): stored more than
    ``older_than`` days ago, of ``archs``, computed by ``versions_`` (comparator
    versions as ``info`` lists them, ``other`` or ``current``), and the traced programs
    matching them.  ``{"store", "matched", "removed", "regions_removed",
    "programs_removed"}``."""
    if older_than is None and not archs and not versions_:
        raise RequestError("store prune", "every point", "at least one of --older-than DAYS, "
                           "--arch ARCHS, --version VERSION (prune removes the points "
                           "matching all of them; none given would remove every point)")
    sql, args = _filters(older_than, tuple(archs), tuple(versions_))
    given, full, named = where(path)
    out = {"store": given, "matched": 0, "removed": 0, "regions_removed": 0,
           "programs_removed": 0}
    if not os.path.exists(full):
        return out
    psql, pargs = _filters(older_than, tuple(archs), tuple(versions_), program_versions())
    st = Store(path, recover=False)
    try:
        if st.readonly is not None:
            raise StoreError(given, f"not writable: {st.readonly}", named)
        out["matched"] = st.query("SELECT count(*) FROM points" + sql, args)[0]
        programs = st.query("SELECT count(*) FROM programs" + psql, pargs)[0]
        regions = []
        if versions_ and not archs:      # compiled regions carry the versions too
            current = json.dumps(versions(), sort_keys=True)
            for key, desc in st.query("SELECT key, description FROM regions", many=True):
                v = json.dumps(json.loads(desc).get("versions"), sort_keys=True)
                comp = json.loads(v).get("comparator")
                if ("other" in versions_ and v != current) or (
                        "current" in versions_ and v == current) or comp in versions_:
                    regions.append(key)
        if not dry_run:
            st.transaction(out["matched"], lambda db: db.execute("DELETE FROM points" + sql, args))
            st.transaction(len(regions), lambda db: db.executemany(
                "DELETE FROM regions WHERE key = ?", [(k,) for k in regions]))
            st.transaction(programs, lambda db: db.execute("DELETE FROM programs" + psql, pargs))
            out["removed"], out["regions_removed"] = out["matched"], len(regions)
            out["programs_removed"] = programs
        else:
            out["regions_matched"], out["programs_matched"] = len(regions), programs
    finally:
        st.close()
    return out


def export(path: str | None = None, archs=(), versions_=()):
    """Each stored point (of ``archs`` and ``versions_`` when given) as one JSON object:
    what it was computed from (``description``), its record or error, and when."""
    sql, args = _filters(None, tuple(archs), tuple(versions_))
    given, full, named = where(path)
    db = _read_only(given, full, named)
    if db is None:
        return
    with contextlib.closing(db):
        if "points" not in _tables(db):
            return
        cur = db.execute("SELECT key, arch, preset, seq, batch, method, scope, convention, "
                         "versions, description, status, record, error, run, created FROM "
                         "points" + sql + " ORDER BY created, key", args)
        names = [c[0] for c in cur.description]
        for row in cur:
            r = dict(zip(names, row))
            for k in ("versions", "description", "record"):
                r[k] = json.loads(r[k]) if r[k] else None
            r["created_utc"] = _when(r["created"])
            yield r


__all__ = ["ACTIONS", "VERSION_WORDS", "check", "export", "info", "prune", "unused_because",
           "where"]
