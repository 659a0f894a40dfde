"""Traced points answered from the programs in the length kept in the results store.

A traced count is a program in the length (``comparator.count.lengthprogram``).  The
runner (``runner.Tracer``) keeps each one it gets, with the lengths it answers, in the
store (``Store.put_programs``); a later traced point of the same model and batch that
one of today's versions answers is evaluated from it (``StoredPrograms``, ``record``)
without importing jax, and says so in its record (``trace``: ``stored program (...)``;
``program``: which one, when it was traced, the lengths it answers, the length it was
checked at).  ``trace_group`` computes the others where the runner sends them: with the
lengths counted before (``known``), on which a new program is checked instead of a
concrete trace; with ``--trace checked``, a stored program is compared with a full
trace of the model at one length first, and dropped (``dropped``) when they differ.
A program of other versions (comparator's source, JAX, Flax) is never used.
"""
from __future__ import annotations

import datetime
import json
import warnings

import architectures

from comparator.count.lengthprogram import LengthProgram
from comparator.run import sweep
from comparator.run.jaxside import ready_to_trace


class StoredPrograms:
    """A model's programs of today's versions (``Store.programs`` rows), each read when
    first needed."""

    def __init__(self, rows):
        self.rows = [r for r in rows if r["current"]]
        self._read: dict = {}

    def get(self, row) -> LengthProgram:
        if row["key"] not in self._read:
            self._read[row["key"]] = LengthProgram.from_json(json.loads(row["program"]))
        return self._read[row["key"]]

    def covering(self, seq: int):
        """``(row, program)`` of a program that answers ``seq``, or None."""
        for row in self.rows:
            if row["lo"] <= seq <= row["hi"] and seq % row["step"] == 0:
                prog = self.get(row)
                if prog.covers(seq):
                    return row, prog
        return None

    def known(self) -> list[str]:
        """The programs of one length (counts traced before), as JSON text."""
        return [r["program"] for r in self.rows if r["lo"] == r["hi"]]


def _when(t) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S UTC")


def record(pt, scope: str, row, prog: LengthProgram) -> dict:
    """The traced record of ``pt`` from a stored program: the record a fresh trace gives,
    with ``trace`` and ``program`` saying where it came from."""
    fc = prog.count(pt.seq, method=f"stored program ({prog.how})")
    rec = sweep._traced_record(pt, scope, fc)
    rec["program"] = {"id": row["key"][:12], "traced": _when(row["created"]),
                      "lengths": prog.domain(), "checked_at": prog.checked_at}
    return rec


def trace_group(pts, scope: str, trace: str, limits=None, known=(), check=()) -> dict:
    """Traced records of ``pts`` (one model and batch), the programs that give them and
    the stored programs a full trace disagreed with: ``{"records": {key: record},
    "programs": [LengthProgram JSON], "dropped": [program key]}``.  ``known``: programs of
    one length traced before (JSON text); ``check`` (``--trace checked``): ``(row, JSON
    text)`` of stored programs that answer some of ``pts``, each compared with a full
    trace at one of its lengths first."""
    if trace not in sweep.TRACES:
        raise sweep.RequestError("--trace", trace, "choose from " + ", ".join(sweep.TRACES))
    ft = ready_to_trace(pts, trace, limits)
    from comparator.count.tracedprograms import traced_programs
    m = pts[0].model
    mod, batch = architectures.get(m.arch), pts[0].batch
    seqs = {pt.seq for pt in pts}
    out, dropped = {}, []
    for row, text in check:
        prog = LengthProgram.from_json(json.loads(text))
        mine = sorted(s for s in seqs if prog.covers(s))
        if not mine:
            continue
        ref, got = ft.full_count(mod, m.cfg, mine[0], batch, memory=True), prog.count(mine[0])
        if ft.same(ref.fwd, got.fwd) and ft.same(ref.train, got.train) and (
                ref.params, ref.activation_bytes) == (got.params, got.activation_bytes):
            for s in mine:
                pt = sweep.Point(m.arch, m.preset, s, batch, m.cfg)
                out[sweep._key(pt)] = record(pt, scope, row, prog)
            seqs -= set(mine)
        else:
            warnings.warn(f"the stored program of lengths {prog.domain()} differs from a "
                          f"full trace at {mine[0]}: dropped, those lengths traced again",
                          RuntimeWarning)
            dropped.append(row["key"])
    programs = []
    if seqs and trace == "full":
        counts = {s: ft.full_count(mod, m.cfg, s, batch, memory=True) for s in sorted(seqs)}
    elif seqs:
        facts = {}
        for text in known:
            p = LengthProgram.from_json(json.loads(text))
            facts[p.lo] = p.count(p.lo)
        counts, programs = traced_programs(mod, m.cfg, seqs, batch,
                                           "full" if trace == "checked" else "point", facts)
    else:
        counts = {}
    for s, fc in counts.items():
        pt = sweep.Point(m.arch, m.preset, s, batch, m.cfg)
        out[sweep._key(pt)] = sweep._traced_record(pt, scope, fc)
    return {"records": out, "programs": programs, "dropped": dropped}


__all__ = ["StoredPrograms", "record", "trace_group"]
