"""The results store (comparator.run.store) and where traced points run (comparator.run.runner):
a sweep killed midway resumes with identical records and recomputes nothing stored;
--jobs 2 and a Dask LocalCluster give the records of a serial sweep; a failed point is
stored with its error, reported, and retried only on request."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from comparator.cli import app as cli
from comparator.run import programs, runner
from comparator.run import store
from comparator.run import sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# four tiny models (one traced group each), two lengths: 8 traced points
N = 8
SWEEP = ["sweep", "--arch", "transformer", "--d-model", "64,96,128,192", "--layers",
         "1", "--seq", "64,128", "--method", "traced", "--no-baseline", "--format", "json",
         "--quiet"]


def _env():
    """The tree under test first on the path, whatever is installed."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": ROOT + (os.pathsep + path if path else "")}


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "comparator", *args], capture_output=True,
                          text=True, env=_env(), cwd=ROOT, timeout=300)


def _rows(db):
    con = sqlite3.connect(db)
    try:
        return {r[0]: r[1:] for r in con.execute(
            "SELECT key, status, run, created, record FROM points")}
    except sqlite3.OperationalError:   # the table is not there yet
        return {}
    finally:
        con.close()


@pytest.fixture(scope="module")
def reference():
    """The records of an uninterrupted serial sweep, computed here without a store."""
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cli.main([*SWEEP, "--no-cache"]) == 0
    recs = json.loads(buf.getvalue())
    assert len(recs) == N and all(r["method"] == "traced" for r in recs)
    return recs


def test_killed_sweep_resumes_with_identical_records_and_no_recomputation(tmp_path,
                                                                          reference):
    db = str(tmp_path / "r.sqlite")
    p = subprocess.Popen([sys.executable, "-m", "comparator", *SWEEP, "--db", db],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(),
                         cwd=ROOT)
    try:    # kill it as soon as the first points are stored, not on a timer
        deadline = time.time() + 240
        while p.poll() is None and time.time() < deadline:
            if any(r[0] == "ok" for r in _rows(db).values()):
                break
            time.sleep(0.02)
        assert p.poll() is None, "the sweep finished before it could be killed"
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    before = _rows(db)
    assert 0 < len(before) < N                            # stopped midway, whole points
    resumed = _cli(*SWEEP, "--db", db)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout) == reference        # identical records
    after = _rows(db)
    assert len(after) == N
    assert all(after[k] == v for k, v in before.items())  # stored points untouched ...
    new_runs = {after[k][1] for k in after if k not in before}
    assert len(new_runs) == 1 and not new_runs & {v[1] for v in before.values()}
    # ... and a third run computes nothing: every row still from its first computation
    again = _cli(*SWEEP[:-1], "--db", db)                 # not --quiet: says what it read
    assert json.loads(again.stdout) == reference and _rows(db) == after
    assert f"{N} traced point(s) read from the store, 0 computed" in again.stderr


def _two_models(reference):
    """The first two models of SWEEP (the last --d-model given wins) and their records."""
    return ["--d-model", "64,96"], [r for r in reference if r["preset"].split("@d")[1][:2]
                                    in ("64", "96")]


def test_two_jobs_give_the_serial_records(tmp_path, reference):
    sizes, expected = _two_models(reference)
    p = _cli(*SWEEP, *sizes, "--jobs", "2", "--db", str(tmp_path / "j.sqlite"))
    assert p.returncode == 0, p.stderr
    assert len(expected) == 4 and json.loads(p.stdout) == expected
    assert len(_rows(str(tmp_path / "j.sqlite"))) == 4    # landed in the store


def test_dask_local_cluster_gives_the_serial_records(tmp_path, reference):
    distributed = pytest.importorskip("distributed")
    db = str(tmp_path / "d.sqlite")
    sizes, expected = _two_models(reference)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  protocol="tcp://", dashboard_address=None) as cluster:
        p = _cli(*SWEEP, *sizes, "--scheduler", cluster.scheduler_address, "--db", db)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == expected
    assert {r[0] for r in _rows(db).values()} == {"ok"} and len(_rows(db)) == 4


def test_a_failed_point_is_stored_with_its_error_and_retried_on_request(tmp_path,
                                                                        monkeypatch, capsys):
    db = str(tmp_path / "f.sqlite")
    args = ["sweep", "--arch", "transformer,reformer", "--d-model", "64", "--layers", "1",
            "--seq", "64", "--method", "traced", "--no-baseline", "--format", "json",
            "--db", db]
    real = programs.trace_group      # what traces a group that goes through the store

    def broken(pts, scope, trace="fast", limits=None, known=(), check=()):
        if pts[0].arch == "reformer":
            raise OverflowError("a shape too large to represent")
        return real(pts, scope, trace, limits, known, check)

    monkeypatch.setattr(programs, "trace_group", broken)
    assert cli.main(args) == 1                         # not 0: a point is missing
    out, err = capsys.readouterr()
    assert [r["arch"] for r in json.loads(out)] == ["transformer"]   # no made-up row
    assert "failed: reformer:reformer-base@d64L1 seq 64 batch 1 (traced): OverflowError: " \
           "a shape too large to represent" in err
    failed = [r for r in store.Store(db).rows() if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["record"] is None
    assert failed[0]["error"].startswith("OverflowError: a shape too large to represent")
    calls = []
    monkeypatch.setattr(programs, "trace_group", lambda *a, **k: calls.append(a) or {})
    assert cli.main(args) == 1 and calls == []        # reported again, nothing recomputed
    assert "(stored; --retry-failed recomputes)" in capsys.readouterr().err
    monkeypatch.setattr(programs, "trace_group", real)
    assert cli.main([*args, "--retry-failed"]) == 0
    assert [r["arch"] for r in json.loads(capsys.readouterr().out)] == ["transformer",
                                                                         "reformer"]
    assert {r["status"] for r in store.Store(db).rows()} == {"ok"}


def test_the_key_separates_what_changes_a_record():
    from architectures import transformer as tr
    cfg = tr.PRESETS["bert-base"][0]
    base = store.describe("transformer", "bert-base", cfg, 128, 1, "traced", "matmul")
    assert base["convention"] == "standard" and set(base["versions"]) == {"comparator", "jax"}
    assert store.key_of(base) == store.key_of(
        store.describe("transformer", "bert-base", cfg, 128, 1, "traced", "matmul"))
    others = [store.describe("transformer", "bert-base", cfg, 256, 1, "traced", "matmul"),
              store.describe("transformer", "bert-base", cfg, 128, 2, "traced", "matmul"),
              store.describe("transformer", "bert-base", cfg, 128, 1, "traced", "all"),
              store.describe("transformer", "bert-base", cfg, 128, 1, "traced", "matmul",
                             "kaplan"),
              store.describe("transformer", "bert-base", cfg, 128, 1, "traced", "matmul",
                             trace="full"),
              store.describe("transformer", "bert-base", tr.resize(cfg, n_layers=2), 128, 1,
                             "traced", "matmul")]
    assert len({store.key_of(d) for d in [base, *others]}) == 7


def test_default_store_location_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("COMPARATOR_CACHE_DIR", str(tmp_path / "c"))
    assert store.default_path() == str(tmp_path / "c" / "results.sqlite")
    monkeypatch.delenv("COMPARATOR_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert store.default_path() == str(tmp_path / "x" / "comparator" / "results.sqlite")


def test_analytic_sweeps_open_no_store(tmp_path, capsys):
    db = tmp_path / "never.sqlite"
    assert cli.main(["sweep", "--arch", "transformer", "--seq", "64", "--db", str(db)]) == 0
    assert not db.exists()


def test_runner_trace_group_returns_an_error_not_a_number():
    bad = sweep.Point("reformer", "reformer-base", 100, 1, None)   # 100: not a chunk multiple
    out = runner.trace_group([bad], "matmul", "fast")
    assert "records" not in out and out["error"].startswith("ConfigError: ")


def test_bench_points_are_stored_and_not_measured_again(tmp_path, monkeypatch, capsys):
    from comparator.measure import bench
    calls = []

    def fake_step(mod, cfg, seq, batch, **kw):   # the store is under test, not the timing
        calls.append(seq)
        if seq == 128:
            raise MemoryError("out of memory while compiling")
        return {"seq_len": seq, "batch": batch, "skipped": None, "step_s": 0.5 * len(calls)}

    monkeypatch.setattr(bench, "bench_step", fake_step)
    monkeypatch.setattr(bench, "device_peak", lambda dtype="fp32": 1e12)
    args = ["bench", "--arch", "reformer", "--seq", "64,128", "--steps", "1",
            "--memory-limit", "1e12", "--format", "json", "--db", str(tmp_path / "b.sqlite")]
    assert cli.main(args) == 1                             # 128 failed: named, not a row
    first = json.loads(capsys.readouterr().out)
    assert [r["seq_len"] for r in first] == [64] and calls == [64, 128]
    assert cli.main(args) == 1 and calls == [64, 128]      # nothing measured again
    out, err = capsys.readouterr()
    assert json.loads(out) == first and "1 benchmark point(s) read from the store" in err
    assert "MemoryError: out of memory while compiling (stored;" in err
    assert cli.main([*args[:-2], "--no-cache"]) == 1 and calls[2:] == [64, 128]


def test_a_group_lost_with_its_worker_is_reported_not_stored(tmp_path, monkeypatch, capsys):
    """A worker killed (out of memory, a signal) or a Dask worker gone: its points are
    named, the exit status is 1, and nothing is stored, so the next run computes them.
    (``runner._processes`` maps a BrokenProcessPool to such a result.)"""
    def lost(work, scope, trace, jobs, limits=None, extra=None):
        for g in work:
            yield g, {"error": "a worker process died before finishing", "transient": True}

    monkeypatch.setattr(runner, "_processes", lost)
    db = str(tmp_path / "t.sqlite")
    args = ["sweep", "--arch", "transformer", "--d-model", "64,96", "--layers", "1", "--seq",
            "64", "--method", "traced", "--no-baseline", "--format", "json", "--jobs", "2",
            "--db", db]
    assert cli.main(args) == 1
    out, err = capsys.readouterr()
    assert json.loads(out) == [] and err.count("a worker process died") == 2
    assert store.Store(db).rows() == []


def test_bench_points_on_a_dask_cluster_land_in_the_store(tmp_path, monkeypatch, capsys):
    """Each point measured on a worker with the resources asked for (in-process workers
    here, so the fake step below is what they run), labelled with its machine."""
    distributed = pytest.importorskip("distributed")
    from comparator.measure import bench
    calls = []

    def fake_step(mod, cfg, seq, batch, **kw):
        calls.append((seq, kw["memory_limit"]))
        return {"seq_len": seq, "batch": batch, "skipped": None, "step_s": seq / 1e3}

    monkeypatch.setattr(bench, "bench_step", fake_step)
    db = str(tmp_path / "bd.sqlite")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  protocol="tcp://", dashboard_address=None,
                                  resources={"GPU": 1}) as cluster:
        args = ["bench", "--arch", "reformer", "--seq", "64,128", "--memory-limit", "1e12",
                "--format", "json", "--db", db, "--scheduler", cluster.scheduler_address,
                "--worker-resources", "GPU=1"]
        assert cli.main(args) == 0
        recs = json.loads(capsys.readouterr().out)
        assert [(r["seq_len"], r["step_s"]) for r in recs] == [(64, 0.064), (128, 0.128)]
        assert all(r["machine"] == bench.machine() for r in recs)
        assert sorted(calls) == [(64, 10**12), (128, 10**12)]
        assert cli.main(args) == 0 and len(calls) == 2        # read back, not measured
        assert json.loads(capsys.readouterr().out) == recs
    assert len(store.Store(db).rows()) == 2


def test_a_stores_records_are_in_its_file_when_the_process_ends(tmp_path):
    """The store's connection is closed at exit, not left to the collector: a store the
    collector has frozen (``gc.freeze``, as the CLI does after importing jax) and held in
    a reference cycle still moves its write-ahead log into the file, so a copy of the file
    alone holds the record (a sweep's store copied by a bench lost its records so)."""
    db, copy = tmp_path / "s.db", tmp_path / "copy.db"
    code = ("import gc, sys\n"
            "from comparator.run.store import Store\n"
            "s = Store(sys.argv[1])\n"
            "desc = dict(arch='transformer', preset='p', seq=64, batch=1, method='traced',\n"
            "            scope='matmul', convention='standard', versions={})\n"
            "s.put([(desc, {'flops': 6}, None)])\n"
            "s.me = s\n"
            "gc.freeze()\n")
    done = subprocess.run([sys.executable, "-c", code, str(db)], capture_output=True,
                          text=True, env=_env(), cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not os.path.exists(str(db) + "-wal") or os.path.getsize(str(db) + "-wal") == 0
    copy.write_bytes(db.read_bytes())
    rows = _rows(str(copy))
    assert [json.loads(r[3]) for r in rows.values()] == [{"flops": 6}]
