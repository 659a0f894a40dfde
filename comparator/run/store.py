"""The results store: traced and benchmarked points in an embedded SQLite database.

Each point is written as soon as it is computed (one transaction per finished group of
points, so a kill leaves whole points or none), keyed by what determines its record: the
architecture, the preset label and every field of its Config, length, batch, method,
scope, convention, how it was traced or measured, and the versions that computed it
(comparator's version plus a digest of its source, and JAX's).  A sweep run again reads
the points it finds and computes only the others; a point that failed is stored with its
error and recomputed only on request (``--retry-failed``).

Default file: ``$COMPARATOR_CACHE_DIR/results.sqlite``, else
``$XDG_CACHE_HOME/comparator/results.sqlite``, else ``~/.cache/comparator/results.sqlite``.
Traced programs (``comparator.count.lengthprogram``) are kept per model, batch and the
versions that could change them (comparator's, JAX's, Flax's), with the lengths each
answers: a later traced request at one of them is answered from the program, without
jax; a program of other versions is never used (``storeadmin.info`` says why).
Analytic points are not stored: they take microseconds.  No jax import here.  A store that
cannot be written, or is damaged, is handled without stopping the work (``Store``);
``storeadmin`` reports, checks, prunes and exports what a store keeps.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
import uuid

from comparator.run.storefile import DAMAGED, StoreError, StoreFile, StoreWarning

SCHEMA = """CREATE TABLE IF NOT EXISTS points (
    key TEXT PRIMARY KEY, arch TEXT, preset TEXT, seq INTEGER, batch INTEGER,
    method TEXT, scope TEXT, convention TEXT, versions TEXT, description TEXT,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')), record TEXT, error TEXT,
    run TEXT, created REAL)"""
# device profiles (comparator calibrate): every one kept, the latest of a device wins
PROFILES = """CREATE TABLE IF NOT EXISTS profiles (
    device TEXT NOT NULL, created REAL NOT NULL, calibrated INTEGER, date TEXT,
    profile TEXT NOT NULL, PRIMARY KEY (device, created))"""
# compiled regions of a training step (the time model): per model, length, batch, dtype
# and the versions (a new jax or comparator compiles again)
REGIONS = """CREATE TABLE IF NOT EXISTS regions (
    key TEXT PRIMARY KEY, description TEXT, regions TEXT NOT NULL, created REAL)"""
# traced programs in the length (comparator.count.lengthprogram): per model (architecture,
# config, batch) and the versions that could change one (comparator, JAX, Flax), the
# lengths each answers (multiples of step in lo..hi; lo = hi: one length's counts)
PROGRAMS = """CREATE TABLE IF NOT EXISTS programs (
    key TEXT PRIMARY KEY, model TEXT NOT NULL, arch TEXT, preset TEXT, batch INTEGER,
    step INTEGER, lo INTEGER, hi INTEGER, versions TEXT, description TEXT,
    program TEXT NOT NULL, created REAL, run TEXT)"""
PROGRAMS_BY_MODEL = "CREATE INDEX IF NOT EXISTS programs_model ON programs (model)"
_PACKAGES = ("comparator", "architectures", "kernels")
_versions: dict = {}
_program_versions: dict = {}


def default_path() -> str:
    base = os.environ.get("COMPARATOR_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                                ".cache")
        base = os.path.join(xdg, "comparator")
    return os.path.join(base, "results.sqlite")


def versions() -> dict:
    """comparator's version and a digest of its source (a changed formula or model is a
    new key, never a stale hit), and JAX's version (read without importing jax)."""
    if not _versions:
        from importlib import metadata
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        h = hashlib.sha256()
        for pkg in _PACKAGES:
            for dirpath, dirs, files in sorted(os.walk(os.path.join(root, pkg))):
                dirs.sort()
                for name in sorted(f for f in files if f.endswith((".py", ".toml"))):
                    with open(os.path.join(dirpath, name), "rb") as fh:
                        h.update(name.encode() + b"\0" + fh.read())
        try:
            jax = metadata.version("jax")
        except metadata.PackageNotFoundError:
            jax = "none"
        try:
            own = metadata.version("comparator")
        except metadata.PackageNotFoundError:
            own = "0"
        _versions.update(comparator=f"{own}+{h.hexdigest()[:12]}", jax=jax)
    return dict(_versions)


def program_versions() -> dict:
    """``versions()`` and Flax's: what a traced program depends on."""
    if "flax" not in _program_versions:
        from importlib import metadata
        try:
            flax = metadata.version("flax")
        except metadata.PackageNotFoundError:
            flax = "none"
        _program_versions.update(versions(), flax=flax)
    return dict(_program_versions)


def model_of(arch: str, cfg, batch: int) -> dict:
    """What a traced program depends on besides the versions: the model and batch."""
    config = {"type": f"{type(cfg).__module__}.{type(cfg).__qualname__}",
              **dataclasses.asdict(cfg)} if dataclasses.is_dataclass(cfg) else repr(cfg)
    return {"arch": arch, "config": config, "batch": int(batch)}


def describe(arch: str, preset: str, cfg, seq: int, batch: int, method: str, scope: str,
             convention: str = "standard", **how) -> dict:
    """What a point's record depends on; its JSON digest is the key."""
    config = model_of(arch, cfg, batch)["config"]
    return {"arch": arch, "preset": preset, "config": config, "seq": int(seq),
            "batch": int(batch), "method": method, "scope": scope, "convention": convention,
            **how, "versions": versions()}


def key_of(desc: dict) -> str:
    return hashlib.sha256(json.dumps(desc, sort_keys=True, default=str).encode()).hexdigest()


def canonical(record: dict) -> dict:
    """The record as the store gives it back (JSON types), so fresh and stored records of
    a sweep are the same values."""
    return json.loads(json.dumps(record))


class Store(StoreFile):
    """The results store: one SQLite file; only the process that runs the sweep writes to
    it.  ``Store()`` is the default store, ``Store(path)`` one the user named (messages
    say ``--db`` only then); a store that cannot be written or is damaged is handled as
    ``storefile.StoreFile`` says, without stopping the work."""

    TABLES = (SCHEMA, PROFILES, REGIONS, PROGRAMS, PROGRAMS_BY_MODEL)

    def __init__(self, path: str | None = None, recover: bool = True):
        named = path is not None
        self.run = uuid.uuid4().hex
        self.loaded = self.computed = 0
        super().__init__(os.fspath(path) if named else default_path(), named, recover)

    # -- points ---------------------------------------------------------------------------

    def get(self, desc: dict):
        """``("ok", record)``, ``("failed", error)`` or None for a point not stored."""
        row = self.query("SELECT status, record, error FROM points WHERE key = ?",
                         (key_of(desc),))
        if row is None:
            return None
        status, record, error = row
        return ("ok", json.loads(record)) if status == "ok" else ("failed", error)

    def put(self, items) -> None:
        """Store ``[(desc, record or None, error or None), ...]`` in one transaction."""
        rows = []
        for desc, record, error in items:
            rows.append((key_of(desc), desc["arch"], desc["preset"], desc["seq"],
                         desc["batch"], desc["method"], desc["scope"], desc["convention"],
                         json.dumps(desc["versions"], sort_keys=True),
                         json.dumps(desc, sort_keys=True, default=str),
                         "ok" if error is None else "failed",
                         None if record is None else json.dumps(record),
                         error, self.run, time.time()))

        def insert(db):
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT OR REPLACE INTO points VALUES "
                           "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        if self.transaction(len(rows), insert):
            self.computed += len(rows)

    def put_profile(self, profile) -> None:
        """Keep a ``comparator.cost.profile.DeviceProfile`` (earlier ones of the same
        device stay, for the record; ``get_profile`` returns the latest)."""
        from comparator.cost.profile import to_dict
        row = (profile.device, time.time(), int(profile.calibrated), profile.date,
               json.dumps(to_dict(profile)))
        self.transaction(1, lambda db: db.execute("INSERT OR REPLACE INTO profiles VALUES "
                                             "(?, ?, ?, ?, ?)", row))

    def get_profile(self, device: str):
        """The latest stored profile of ``device``, or None."""
        from comparator.cost.profile import from_dict
        row = self.query("SELECT profile FROM profiles WHERE device = ? ORDER BY created DESC "
                         "LIMIT 1", (device,))
        return None if row is None else from_dict(json.loads(row[0]))

    def profiles(self) -> list[dict]:
        """Every stored profile, oldest first: device, created, calibrated, date."""
        rows = self.query("SELECT device, created, calibrated, date FROM profiles ORDER BY "
                          "created", many=True)
        return [dict(zip(("device", "created", "calibrated", "date"), r)) for r in rows]

    def _regions_key(self, what) -> tuple[str, str]:
        desc = json.dumps({"what": list(what), "versions": versions()}, sort_keys=True,
                          default=str)
        return hashlib.sha256(desc.encode()).hexdigest(), desc

    def put_regions(self, what, regions) -> None:
        """Keep a step's compiled regions (``comparator.cost.regions.Region``s) under
        ``what`` (a tuple describing model, length, batch and dtype) and the versions."""
        key, desc = self._regions_key(what)
        data = json.dumps([dataclasses.asdict(r) for r in regions])
        self.transaction(1, lambda db: db.execute("INSERT OR REPLACE INTO regions VALUES "
                                             "(?, ?, ?, ?)", (key, desc, data, time.time())))

    def get_regions(self, what):
        """The stored regions of ``what`` under today's versions, or None."""
        from comparator.cost.regions import Region
        key, _ = self._regions_key(what)
        row = self.query("SELECT regions FROM regions WHERE key = ?", (key,))
        if row is None:
            return None
        return [Region(**{**d, "shape": tuple(d["shape"]) if d["shape"] else None})
                for d in json.loads(row[0])]

    # -- traced programs ------------------------------------------------------------------

    def put_programs(self, arch: str, preset: str, cfg, batch: int, programs) -> None:
        """Keep programs (``LengthProgram`` JSON) of a model under today's versions."""
        model = model_of(arch, cfg, batch)
        mkey, v = key_of(model), program_versions()
        vtext = json.dumps(v, sort_keys=True)
        rows = []
        for prog in programs:
            span = (prog["step"], prog["lo"], prog["hi"])
            rows.append((key_of({"model": mkey, "versions": v, "span": span}), mkey, arch,
                         preset, int(batch), *span, vtext,
                         json.dumps({**model, "preset": preset, "versions": v}, sort_keys=True,
                                    default=str),
                         json.dumps(prog), time.time(), self.run))
        if rows and self.readonly is None:   # (read-only: the points' warning says so)
            self.transaction(0, lambda db: db.executemany(
                "INSERT OR REPLACE INTO programs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "?)", rows))

    def programs(self, arch: str, cfg, batch: int) -> list[dict]:
        """The stored programs of a model, each ``{key, step, lo, hi, versions (a dict),
        current (made by today's versions), created, program (JSON text)}``, newest
        first."""
        rows = self.query("SELECT key, step, lo, hi, versions, created, program FROM "
                          "programs WHERE model = ? ORDER BY created DESC",
                          (key_of(model_of(arch, cfg, batch)),), many=True)
        now = program_versions()
        out = []
        for key, step, lo, hi, v, created, prog in rows:
            v = json.loads(v)
            out.append({"key": key, "step": step, "lo": lo, "hi": hi, "versions": v,
                        "current": v == now, "created": created, "program": prog})
        return out

    def drop_program(self, key: str) -> None:
        """Forget a program (one a re-trace disagreed with)."""
        if self.readonly is None:
            self.transaction(0, lambda db: db.execute("DELETE FROM programs WHERE key = ?",
                                                      (key,)))

    def rows(self) -> list[dict]:
        """Every stored point (for tests and inspection), oldest first."""
        names = [c[1] for c in self.query("PRAGMA table_info(points)", many=True)]
        return [dict(zip(names, r)) for r in self.query(
            "SELECT * FROM points ORDER BY created, key", many=True)]


__all__ = ["DAMAGED", "Store", "StoreError", "StoreWarning", "canonical", "default_path",
           "describe", "key_of", "model_of", "program_versions", "versions"]
