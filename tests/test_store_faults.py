"""Faults of the results store a user really meets (comparator.run.storefile): a read-only
store serves its points and the rest are computed and not stored; a damaged one is moved
aside and replaced; ``--db`` is named only when the user gave it; and ``comparator store
info|check|prune|export`` on the default store and on ``--db``."""
import contextlib
import gc
import io
import json
import os
import sqlite3
import subprocess
import time

import pytest

from comparator.cli import app as cli
from comparator.run import store, storeadmin, storefile

SWEEP = ["sweep", "--arch", "transformer", "--d-model", "64", "--layers", "1", "--method",
         "traced", "--no-baseline", "--format", "json", "--quiet", "--seq"]


def _run(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(list(args))
    return rc, out.getvalue(), err.getvalue()


def _settle(db):
    """The store's connections of earlier runs closed (its WAL folded into the file)."""
    gc.collect()
    store.Store(db).close()


@contextlib.contextmanager
def read_only(*paths):
    """``paths`` made unwritable for real: chmod for a user, the immutable flag for root
    (whom permissions do not stop); skipped where neither holds."""
    if os.geteuid() != 0:
        modes = {p: os.stat(p).st_mode for p in paths}
        for p in paths:
            os.chmod(p, 0o555 if os.path.isdir(p) else 0o444)
        try:
            yield
        finally:
            for p, m in modes.items():
                os.chmod(p, m)
        return
    done = []
    try:
        for p in paths:
            if subprocess.run(["chattr", "+i", p], capture_output=True).returncode != 0:
                pytest.skip("cannot make a file read-only for root here (no chattr +i)")
            done.append(p)
        yield
    finally:
        for p in done:
            subprocess.run(["chattr", "-i", p], capture_output=True)


def _records(text):
    return {(r["seq_len"]): r for r in json.loads(text)}


def test_a_read_only_store_serves_its_points_and_computes_the_rest(tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir()
    db = str(folder / "r.sqlite")
    rc, out, _ = _run(*SWEEP, "64,128", "--no-cache")
    assert rc == 0
    reference = _records(out)
    rc, out, _ = _run(*SWEEP, "64", "--db", db)
    assert rc == 0 and len(store.Store(db).rows()) == 1
    _settle(db)
    with read_only(db, str(folder)):
        t = time.monotonic()
        loud = [a for a in SWEEP if a != "--quiet"]     # the note of what the store gave
        rc, out, err = _run(*loud, "64,128", "--db", db)
        took = time.monotonic() - t
        assert rc == 0, err
        assert _records(out) == reference            # the stored point and the computed one
        warnings = [ln for ln in err.splitlines() if "warning" in ln]
        assert warnings == [f"comparator: warning: the results store {db} is read-only (no "
                            "write permission): the points it holds are used, points "
                            "computed now are not stored"]
        assert "1 traced point(s) read from the store, 1 computed, 1 of them not stored" in err
        assert len(store.Store(db).rows()) == 1       # nothing written
    assert took < 60


def test_a_write_that_fails_midway_keeps_the_work(tmp_path, monkeypatch):
    """A full disk (or a store made read-only under a running sweep): the points computed
    are still returned, counted as not stored, with one warning."""
    db = str(tmp_path / "r.sqlite")
    st = store.Store(db)
    said = []
    monkeypatch.setattr(storefile, "NOTIFY", said.append)

    class Full:
        def __getattr__(self, name):
            return getattr(st_db, name)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

        def execute(self, sql, *a):
            if sql.startswith("BEGIN"):
                raise sqlite3.OperationalError("database or disk is full")
            return st_db.execute(sql, *a)

    st_db = st.db
    st.db = Full()
    d = store.describe("transformer", "x", None, 64, 1, "traced", "matmul")
    st.put([(d, {"a": 1}, None)])
    st.put([(dict(d, seq=128), {"a": 2}, None)])
    assert (st.unsaved, st.computed) == (2, 0)
    assert said == [f"the results store {db} is read-only (database or disk is full): the "
                    "points it holds are used, points computed now are not stored"]


def _damage(path):
    """Overwrite the schema page (the first page after its 100-byte header)."""
    with open(path, "r+b") as fh:
        fh.seek(100)
        fh.write(b"\x13" * 3900)


@pytest.mark.parametrize("named", [True, False])
def test_a_damaged_store_is_moved_aside_and_the_command_succeeds(tmp_path, named):
    cache = os.environ["COMPARATOR_CACHE_DIR"]
    db = str(tmp_path / "r.sqlite") if named else os.path.join(cache, "results.sqlite")
    given = ["--db", db] if named else []
    assert _run(*SWEEP, "64", *given)[0] == 0
    _settle(db)
    _damage(db)
    rc, out, err = _run(*SWEEP, "64", *given)
    assert rc == 0 and len(json.loads(out)) == 1, err
    moved = [f for f in os.listdir(os.path.dirname(db)) if ".damaged-" in f
             and not f.endswith(("-wal", "-shm"))]
    assert len(moved) == 1
    moved = os.path.join(os.path.dirname(db), moved[0])
    [line] = [ln for ln in err.splitlines() if "warning" in ln]
    assert line.startswith(f"comparator: warning: the results store {db} was damaged (")
    assert f"moved aside to {moved}; a fresh store was created in its place" in line
    assert "--db" not in err
    assert len(store.Store(db).rows()) == 1           # the fresh store has the new point
    assert storeadmin.check(moved)["ok"] is False     # the old file is kept as it was


def test_a_file_that_is_no_database_is_refused_when_named_and_left_alone(tmp_path):
    p = tmp_path / "config.json"
    p.write_text('{"model_type": "bert"}')
    rc, _, err = _run(*SWEEP, "64", "--db", str(p))
    assert rc == 2 and err == (f"comparator sweep: error: --db: '{p}' is not allowed; a "
                               "writable SQLite database file (file is not a database; it is "
                               "left as it is)\n")
    assert p.read_text() == '{"model_type": "bert"}'


def test_the_default_store_is_not_called_db(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPARATOR_CACHE_DIR", str(tmp_path))
    os.mkdir(tmp_path / "results.sqlite")         # a folder where the file should be
    rc, _, err = _run(*SWEEP, "64")
    assert rc == 2 and "--db:" not in err
    assert err.startswith(f"comparator sweep: error: results store: "
                          f"'{tmp_path / 'results.sqlite'}' is not allowed; ")
    assert "this is the default store: --db FILE names another, --no-cache uses none" in err


def test_a_default_store_that_cannot_be_created_is_no_store(tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("COMPARATOR_CACHE_DIR", str(tmp_path / "afile" / "cache"))
    rc, out, err = _run(*SWEEP, "64")
    assert rc == 0 and len(json.loads(out)) == 1
    [line] = [ln for ln in err.splitlines() if "warning" in ln]
    assert line.startswith("comparator: warning: no results store (its folder ")
    assert line.endswith("cannot be created: Not a directory): points computed now are not "
                         "stored")


# -- comparator store ------------------------------------------------------------------

@pytest.mark.parametrize("named", [True, False])
def test_store_info_check_prune_export(tmp_path, named):
    cache = os.environ["COMPARATOR_CACHE_DIR"]
    db = str(tmp_path / "r.sqlite") if named else os.path.join(cache, "results.sqlite")
    given = ["--db", db] if named else []
    rc, out, err = _run("store", "info", *given)
    assert rc == 0 and "none: no store there yet" in out
    assert not os.path.exists(db)                       # info creates nothing
    assert _run(*SWEEP, "64,128", *given)[0] == 0
    rc, out, _ = _run("store", "info", "--format", "json", *given)
    info = json.loads(out)
    assert (info["points"], info["ok"], info["by_arch"]) == (2, 2, {"transformer": 2})
    assert info["default"] is not named and info["current_version"] == 2
    rc, out, _ = _run("store", "check", *given)
    assert rc == 0 and "integrity" in out and " ok" in out
    rc, out, _ = _run("store", "export", *given)
    lines = [json.loads(ln) for ln in out.splitlines()]
    assert sorted(r["seq"] for r in lines) == [64, 128]
    assert all(r["status"] == "ok" and r["record"]["method"] == "traced" for r in lines)
    rc, out, _ = _run("store", "prune", "--older-than", "1", *given)    # all are new
    assert out.startswith("removed 0 points")
    rc, out, _ = _run("store", "prune", "--version", "other", *given)   # all are current
    assert out.startswith("removed 0 points")
    rc, out, _ = _run("store", "prune", "--arch", "transformer", "--dry-run", *given)
    assert out.startswith("would remove 2 points") and len(store.Store(db).rows()) == 2
    rc, out, _ = _run("store", "prune", "--arch", "transformer", "--version", "current",
                      *given)
    assert out.startswith("removed 2 points") and store.Store(db).rows() == []


def test_store_check_reports_damage_with_exit_status_1(tmp_path):
    db = str(tmp_path / "r.sqlite")
    assert _run(*SWEEP, "64", "--db", db)[0] == 0
    _settle(db)
    _damage(db)
    rc, out, _ = _run("store", "check", "--db", db)
    assert rc == 1 and "damaged" in out and "malformed" in out
    assert os.path.exists(db) and not any(".damaged-" in f for f in os.listdir(tmp_path))


@pytest.mark.parametrize("args,field", [
    (["info", "--older-than", "3"], "--older-than"),
    (["export", "--format", "json"], "--format"),
    (["check", "--arch", "transformer"], "--arch"),
    (["prune"], "store prune"),
    (["prune", "--older-than", "-1"], "--older-than"),
    (["prune", "--older-than", "x"], "--older-than"),
    (["prune", "--version", ","], "--version"),
    (["prune", "--arch", "transfomer"], "--arch"),
])
def test_store_options_that_do_nothing_or_are_bad_are_refused(args, field):
    rc, _, err = _run("store", *args)
    assert rc == 2 and err.startswith(f"comparator store: error: {field}: ")
    assert len(err.strip().splitlines()) == 1
