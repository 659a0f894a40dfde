"""The ``store`` command: what the results store keeps (``comparator.run.storeadmin``) --
``info``, ``check``, ``prune`` (by age, architecture, version) and ``export`` (JSON
lines) -- on the default store or ``--db``.  ``add_parser`` also has the store's warnings
(read-only, damaged and moved aside) printed as one line on stderr."""
from __future__ import annotations

import json
import math
import sys

from comparator.cli.args import UsageError, arch_list, number
from comparator.report import tables
from comparator.run import storeadmin

# option: the actions it belongs to (--db and -o belong to all)
ONLY = {"older_than": ("prune",), "dry_run": ("prune",), "arch": ("prune", "export"),
        "version": ("prune", "export"), "format": ("info", "check", "prune")}


def add_parser(sub, commands: dict) -> None:
    """The ``store`` subcommand, registered in ``commands``."""
    p = sub.add_parser("store", help="what the results store keeps: info, check, prune, "
                       "export")
    p.add_argument("action", choices=storeadmin.ACTIONS,
                   help="info: what it holds; check: SQLite's integrity check; prune: "
                        "remove points (by --older-than, --arch, --version); export: every "
                        "point as one JSON object a line")
    p.add_argument("--db", help="the results store (default: results.sqlite in "
                   "$COMPARATOR_CACHE_DIR, else $XDG_CACHE_HOME/comparator or "
                   "~/.cache/comparator)")
    p.add_argument("--older-than", help="prune: points stored more than DAYS days ago")
    p.add_argument("--arch", help="prune, export: points of these architectures (comma "
                   "separated)")
    p.add_argument("--version", help="prune, export: points computed by these comparator "
                   "versions (comma separated, as 'store info' lists them), 'other' (every "
                   "version but the running one: points no run reads again) or 'current'")
    p.add_argument("--dry-run", action="store_true", help="prune: count what would be "
                   "removed, remove nothing")
    p.add_argument("--format", help="info, check, prune: text (default), markdown, latex, "
                   "csv or json")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    commands["store"] = cmd_store


def notify(message: str) -> None:
    """A results store's warning (``storefile.NOTIFY``), on stderr."""
    sys.stderr.write(f"comparator: warning: {message}\n")
    sys.stderr.flush()


def _check_options(a) -> None:
    for name, actions in ONLY.items():
        value = getattr(a, name)
        if value not in (None, False) and a.action not in actions:
            flag = "--" + name.replace("_", "-")
            raise UsageError(flag, value, "only with store " + " or ".join(actions))
    if a.format is not None and a.format not in tables.FORMATS:
        raise UsageError("--format", a.format, ", ".join(tables.FORMATS))


def _versions(text: str | None) -> tuple:
    if text is None:
        return ()
    names = tuple(v.strip() for v in text.split(",") if v.strip())
    if not names:
        raise UsageError("--version", text, "comparator versions as 'comparator store info' "
                                            "lists them, other or current (comma separated)")
    return names


def _days(text: str | None):
    if text is None:
        return None
    days = number("--older-than", text)
    if not (math.isfinite(days) and 0 <= days < 1e6):
        raise UsageError("--older-than", text, "a number of days, 0 or more")
    return days


def _bytes(n: int) -> str:
    return f"{n / 1e6:.3g} MB" if n >= 1e5 else f"{n:,} bytes"


def _info_rows(d: dict) -> list[dict]:
    rows = [{"": "store", "value": d["store"] + (" (default)" if d["default"] else "")}]
    if not d["exists"]:
        return rows + [{"": "points", "value": "none: no store there yet"}]
    rows.append({"": "size", "value": _bytes(d["bytes"])})
    if "points" in d:
        rows += [{"": "points", "value": f"{d['points']:,} ({d['ok']:,} ok, {d['failed']:,} "
                                         "failed)"},
                 {"": "stored", "value": f"{d['oldest']} to {d['newest']}"
                  if d["points"] else "-"}]
        for col in ("arch", "method", "version"):
            by = d[f"by_{col}"]
            rows.append({"": f"by {col}", "value": ", ".join(f"{k}: {v:,}" for k, v in
                                                             by.items()) or "-"})
        rows.append({"": "running version", "value": f"{d['running_version']} "
                     f"({d['current_version']:,} points computed by it; "
                     f"{d['other_versions']:,} by others, never read again)"})
    for table in ("profiles", "regions"):
        if table in d:
            rows.append({"": table, "value": f"{d[table]:,}"})
    if "programs" in d:
        p = d["programs"]
        rows.append({"": "traced programs", "value": f"{p['total']:,} ({p['ranges']:,} for "
                     f"ranges of lengths, the others one length each); {p['current']:,} of "
                     "the running versions, used"})
        for why, n in p["unused"].items():
            rows.append({"": "unused programs", "value": f"{n:,} {why}: never used (another "
                         "version could count otherwise)"})
    return rows


def cmd_store(a) -> str:
    _check_options(a)
    fmt = a.format or "text"
    archs = tuple(arch_list(a.arch)) if a.arch is not None else ()
    versions = _versions(a.version)
    if a.action == "info":
        d = storeadmin.info(a.db)
        return (json.dumps(d, indent=2) + "\n" if fmt == "json" else
                tables.render(_info_rows(d), fmt, "What the results store holds."))
    if a.action == "check":
        d = storeadmin.check(a.db)
        if d["ok"] is False:
            a.exit_status = 1
        if fmt == "json":
            return json.dumps(d, indent=2) + "\n"
        result = ("no store there yet" if d["ok"] is None else "ok" if d["ok"]
                  else "; ".join(d["problems"][:5]) + " (a traced command "
                  "moves it aside and starts a fresh store)")
        rows = [{"check": "integrity", "store": d["store"], "result": result}]
        if d.get("other_versions"):
            rows.append({"check": "other versions", "store": d["store"],
                         "result": f"{d['other_versions']:,} points by other versions, never "
                                   "read again ('comparator store prune --version other')"})
        return tables.render(rows, fmt, "SQLite's integrity check of the results store.")
    if a.action == "prune":
        d = storeadmin.prune(a.db, _days(a.older_than), archs, versions, a.dry_run)
        if fmt == "json":
            return json.dumps(d, indent=2) + "\n"
        if a.dry_run:
            return (f"would remove {d['matched']:,} points, "
                    f"{d.get('regions_matched', 0):,} compiled regions and "
                    f"{d.get('programs_matched', 0):,} traced programs from {d['store']}\n")
        return (f"removed {d['removed']:,} points, {d['regions_removed']:,} compiled "
                f"regions and {d['programs_removed']:,} traced programs from {d['store']} "
                "(freed pages are reused by later points)\n")
    return "".join(json.dumps(r, sort_keys=True) + "\n"
                   for r in storeadmin.export(a.db, archs, versions))


__all__ = ["add_parser", "cmd_store", "notify"]
