"""Traced programs kept in the results store (comparator.run.programs, count.lengthprogram):
the records a stored program gives at six new lengths equal fresh full traces, for every
architecture and both scopes; a program of another JAX version is not used, and
'comparator store info' says why; --trace checked compares a stored program with a full
trace at one length and drops one that differs; a warm traced sweep imports no jax."""
import dataclasses
import json
import os
import sqlite3
import subprocess
import sys

import pytest

import architectures
from comparator.cli import app as cli
from comparator.count import fasttrace as ft
from comparator.count import jaxcompat
from comparator.run import programs, runner, storeadmin, sweep
from comparator.run.store import Store, program_versions

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.skipif(not jaxcompat.available(), reason="no symbolic path here")

# (arch, preset, size (d_model, layers, heads, d_ff), config changes, two lengths the
# program is traced from, lengths it may answer later: the first six it does are asked):
# small models whose position tables end below the lengths (a program past them answers
# every later length but those where a dim JAX compared vanishes, which are traced: which
# dims JAX compares varies with its caches, so there are more lengths than six);
# ALBERT and the Reformer at 4 layers are counted from two shallow models (depth plan),
# the Reformer's lengths in one octave of its bucket rule (4,096 to 8,191 tokens)
LATER = (96, 200, 256, 301, 512, 1000, 65, 100, 320, 640, 999, 4096, 777, 2048, 3000)
CASES = [
    ("transformer", "bert-base", (64, 2, 2, 128), {"max_len": 64}, (128, 160), LATER),
    ("albert", "albert-base", (64, 4, 2, 128), {"max_len": 64}, (128, 192), LATER),
    ("electra", "electra-small", (64, 2, 2, 128), {"max_len": 64}, (128, 160), LATER),
    ("reformer", "reformer-base", (64, 4, 2, 128), {"axial_shape": (4, 8),
                                                    "axial_dims": (32, 32)},
     (4096, 4160, 5056), tuple(range(4224, 8192, 320))),
]
PROVENANCE = ("trace", "program")


def _model(arch, preset, size, changes):
    mod = architectures.get(arch)
    m = sweep.resized(arch, preset, mod.PRESETS[preset][0], size)
    return sweep.Model(m.arch, m.preset, dataclasses.replace(m.cfg, **changes))


def _points(m, seqs):
    return [sweep.Point(m.arch, m.preset, s, 1, m.cfg) for s in seqs]


def _fresh(m, seqs, scopes=("matmul",)):
    """Records of full traces of the whole model, one length at a time (no program):
    ``{scope: {seq: record}}``."""
    mod = architectures.get(m.arch)
    counts = {pt: ft.full_count(mod, m.cfg, pt.seq, 1, memory=True) for pt in _points(m, seqs)}
    return {scope: {pt.seq: sweep._traced_record(pt, scope, fc) for pt, fc in counts.items()}
            for scope in scopes}


def _without(rec):
    return {k: v for k, v in json.loads(json.dumps(rec)).items() if k not in PROVENANCE}


def _stored(db, m, seqs):
    """A store holding the program traced from ``seqs`` (and their points)."""
    import jax
    # which dims JAX compares while tracing depends on what its caches hold from earlier
    # traces in this process: start from empty caches, as a fresh command does
    jax.clear_caches()
    ft.clear_cache()
    st = Store(db)
    runner.Tracer(st)(_points(m, seqs), "matmul", "fast")
    return st


@pytest.mark.parametrize("arch,preset,size,changes,traced,later", CASES,
                         ids=[c[0] for c in CASES])
def test_a_stored_program_gives_fresh_trace_records_at_six_lengths(
        tmp_path, monkeypatch, arch, preset, size, changes, traced, later):
    m = _model(arch, preset, size, changes)
    st = _stored(str(tmp_path / "p.db"), m, traced)
    progs = [r for r in st.programs(m.arch, m.cfg, 1) if r["lo"] < r["hi"]]
    assert progs and all(r["current"] for r in progs), [(r["lo"], r["hi"]) for r in
                                                        st.programs(m.arch, m.cfg, 1)]
    answers = programs.StoredPrograms(progs)
    later = [s for s in dict.fromkeys(later) if answers.covering(s)][:6]
    assert len(later) == 6, later
    ft.clear_cache()
    # answered without tracing: any trace now would fail the test
    monkeypatch.setattr(ft, "full_count", lambda *a, **k: pytest.fail("traced"))
    monkeypatch.setattr(ft, "traced_parts", lambda *a, **k: pytest.fail("traced"))
    got = {scope: runner.Tracer(st)(_points(m, later), scope, "fast")
           for scope in ("matmul", "all")}
    monkeypatch.undo()
    want = _fresh(m, later, ("matmul", "all"))
    for scope in ("matmul", "all"):
        for pt in _points(m, later):
            rec = got[scope][sweep._key(pt)]
            assert rec["trace"].startswith("stored program ("), rec["trace"]
            assert rec["program"]["id"] in {r["key"][:12] for r in progs}
            assert rec["program"]["checked_at"] in traced
            assert _without(rec) == _without(want[scope][pt.seq]), (scope, pt.seq)


def _transformer():
    return _model(*CASES[0][:4])


def test_a_program_of_another_jax_version_is_not_used_and_store_info_says_why(
        tmp_path, capsys):
    m, db = _transformer(), str(tmp_path / "p.db")
    _stored(db, m, (128, 160)).close()
    con = sqlite3.connect(db)
    with con:
        for key, v in con.execute("SELECT key, versions FROM programs").fetchall():
            con.execute("UPDATE programs SET versions = ?, key = ? WHERE key = ?",   # (as
                        (json.dumps({**json.loads(v), "jax": "0.0.1"}, sort_keys=True),
                         "old" + key[3:], key))               # JAX 0.0.1 had stored it)
    con.close()
    st = Store(db)
    assert st.programs(m.arch, m.cfg, 1) and not any(
        r["current"] for r in st.programs(m.arch, m.cfg, 1))
    tracer = runner.Tracer(st)
    rec = tracer(_points(m, (256,)), "matmul", "fast")[sweep._key(_points(m, (256,))[0])]
    assert not rec["trace"].startswith("stored program") and tracer.from_programs == 0
    assert _without(rec) == _without(_fresh(m, (256,))["matmul"][256])
    running = program_versions()["jax"]
    why = f"made by JAX 0.0.1 (running {running})"
    info = storeadmin.info(db)["programs"]
    assert info["unused"].get(why, 0) >= 1 and info["total"] == info["current"] + sum(
        info["unused"].values())
    assert cli.main(["store", "info", "--db", db]) == 0
    out = capsys.readouterr().out
    assert why in out and "never used" in out


def test_trace_checked_compares_the_stored_program_with_a_full_trace_at_one_length(
        tmp_path, monkeypatch):
    m, db = _transformer(), str(tmp_path / "p.db")
    st = _stored(db, m, (128, 160))
    later = (200, 256, 300)
    calls = []
    real = ft.full_count
    monkeypatch.setattr(ft, "full_count", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    got = runner.Tracer(st)(_points(m, later), "matmul", "checked")
    assert calls == [200]                          # one length re-traced, the first
    for pt in _points(m, later):
        assert got[sweep._key(pt)]["trace"].startswith("stored program (")
    # a program that no longer agrees with the full trace is dropped, the lengths traced
    (row,) = [r for r in st.programs(m.arch, m.cfg, 1) if r["lo"] < r["hi"]]
    prog = json.loads(row["program"])
    fixed = prog["parts"][0][1]["fwd"]["fixed"]
    term = next(iter(fixed))
    fixed[term][0] += 1                           # one FLOP more, in the all scope
    con = sqlite3.connect(db)
    with con:
        con.execute("UPDATE programs SET program = ? WHERE key = ?",
                    (json.dumps(prog), row["key"]))
    con.close()
    calls.clear()
    with pytest.warns(RuntimeWarning, match="differs from a full trace"):
        got = runner.Tracer(Store(db))(_points(m, (320, 384)), "all", "checked")
    assert calls[0] == 320
    assert not any(r["key"] == row["key"] for r in Store(db).programs(m.arch, m.cfg, 1))
    want = _fresh(m, (320, 384), ("all",))["all"]
    for pt in _points(m, (320, 384)):
        rec = got[sweep._key(pt)]
        assert not rec["trace"].startswith("stored program")
        assert _without(rec) == _without(want[pt.seq])


def test_a_second_length_builds_the_program_checked_on_the_first(tmp_path, monkeypatch):
    """One length alone is traced concretely and kept as such; a second length of the same
    region traces the program, checked on the first's stored counts: no full trace."""
    m, db = _transformer(), str(tmp_path / "p.db")
    ft.clear_cache()                 # (a process keeps what it traced: a fresh one here)
    st = _stored(db, m, (128,))
    assert [(r["lo"], r["hi"]) for r in st.programs(m.arch, m.cfg, 1)] == [(128, 128)]
    ft.clear_cache()
    calls = []
    real = ft.full_count
    monkeypatch.setattr(ft, "full_count", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    runner.Tracer(st)(_points(m, (400,)), "matmul", "fast")
    assert calls == []
    spans = {(r["lo"], r["hi"]) for r in st.programs(m.arch, m.cfg, 1)}
    assert (65, ft.PROGRAM_MAX_LEN) in spans


def test_a_warm_traced_sweep_imports_no_jax(tmp_path, capsys):
    db, out = str(tmp_path / "p.db"), str(tmp_path / "out.json")
    args = ["sweep", "--arch", "transformer", "--d-model", "64", "--layers", "2",
            "--heads", "2", "--method", "traced", "--no-baseline", "--db", db,
            "--format", "json", "--quiet"]
    assert cli.main([*args, "--seq", "640,704"]) == 0
    capsys.readouterr()
    code = ("import json, sys; from comparator.cli import app; "
            f"status = app.main({[*args, '--seq', '768', '-o', out]!r}); "
            "print(json.dumps([status, sorted(m for m in sys.modules if m.split('.')[0] in "
            "('jax', 'jaxlib', 'flax', 'numba', 'numpy'))]))")
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": ROOT + (os.pathsep + path if path else "")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [0, []]          # exit status 0, none of them imported
    with open(out) as fh:
        rec, = json.load(fh)
    assert rec["trace"].startswith("stored program (") and rec["seq_len"] == 768


def test_imports_settled_freezes_what_an_import_made_and_nothing_else():
    """The collector is paused inside and on again after; objects are frozen out of it
    only where the context imported a module (jax, Flax), never after a mere trace."""
    import gc
    import importlib
    import sys

    from comparator.count.quiet import imports_settled
    sys.modules.pop("colorsys", None)
    gc.unfreeze()
    try:
        with imports_settled():
            assert not gc.isenabled()
            junk = [[i] for i in range(1000)]   # no import: nothing frozen
        assert gc.isenabled() and gc.get_freeze_count() == 0
        with imports_settled():
            importlib.import_module("colorsys")
        assert gc.isenabled() and gc.get_freeze_count() > len(junk)
    finally:
        gc.unfreeze()
