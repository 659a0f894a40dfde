"""A user's model named on the command line (``--model FILE.py:FACTORY`` or
``package.module:FACTORY``): the factory found and called (``find``, ``build``), its
records at the lengths asked for (``counts``, ``records``: the record contract, counted
traced only -- a user's model has no analytic formula), and its step time by the time
model (``UserStep``, what ``costing.Timer`` prices it with).

Every way the value can be wrong -- no such file or module, a file that raises when
imported, no such factory, a factory that raises or returns something else, a step that
does not trace -- is a ``RequestError`` naming ``--model``, the value and what is allowed,
never a traceback.  The factory protocol is ``comparator.count.usermodel``'s.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
from dataclasses import dataclass

from comparator.run import sweep as sw
from comparator.run.sweep import RequestError
from comparator.run.values import MODEL_ALLOWED

PRESET = "custom"
_FOUND: dict = {}


def _why(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}".splitlines()[0][:300]


def _refuse(spec: str, allowed: str):
    return RequestError("--model", spec, allowed)


def parts(spec: str) -> tuple[str, str]:
    """(the file or module, the factory's name) of ``spec``."""
    where, _, attr = spec.rpartition(":")
    if not where or not attr.isidentifier():
        raise _refuse(spec, MODEL_ALLOWED)
    return where, attr


def is_file(where: str) -> bool:
    return where.endswith(".py") or "/" in where or os.sep in where


def name_of(spec: str) -> str:
    """The model's name in the records when it gives none: ``file.py:factory`` (the file
    without its folder) or ``package.module:factory``."""
    where, attr = parts(spec)
    return f"{os.path.basename(where) if is_file(where) else where}:{attr}"


def _import_file(spec: str, path: str):
    name = "comparator_model_" + re.sub(r"\W", "_", os.path.abspath(path))
    loader = importlib.util.spec_from_file_location(name, path)
    if loader is None:
        raise _refuse(spec, f"{MODEL_ALLOWED}: {path} is not a Python file")
    module = importlib.util.module_from_spec(loader)
    sys.modules[name] = module     # dataclasses (Flax modules) look their module up
    folder = os.path.dirname(os.path.abspath(path))
    sys.path.insert(0, folder)     # the file's own imports of its neighbours
    try:
        loader.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001 -- the user's file: said, not a traceback
        sys.modules.pop(name, None)
        raise _refuse(spec, f"a model file that imports; running {path} raised "
                            f"{_why(err)}") from None
    finally:
        sys.path.remove(folder)
    return module


def find(spec: str):
    """The factory ``spec`` names (a file imported once per process while it is unchanged,
    a module once)."""
    where, attr = parts(spec)
    key = (os.path.abspath(where), os.path.getmtime(where), attr) \
        if is_file(where) and os.path.isfile(where) else (where, attr)
    if key in _FOUND:
        return _FOUND[key]
    if is_file(where):
        if not os.path.isfile(where):
            raise _refuse(spec, f"{MODEL_ALLOWED}; there is no file {where}")
        module = _import_file(spec, where)
    else:
        try:
            module = importlib.import_module(where)
        except ModuleNotFoundError as err:
            raise _refuse(spec, f"{MODEL_ALLOWED}; no module {err.name!r} to import (a file "
                                "is named FILE.py, or by a path)") from None
        except Exception as err:  # noqa: BLE001
            raise _refuse(spec, f"a module that imports; importing {where} raised "
                                f"{_why(err)}") from None
    factory = getattr(module, attr, None)
    if factory is None:
        names = sorted(k for k, v in vars(module).items() if callable(v)
                       and not k.startswith("_") and getattr(v, "__module__", None)
                       == module.__name__)
        raise _refuse(spec, f"a factory {where} defines; it has no {attr!r}"
                            + (f" (it defines: {', '.join(names)})" if names else ""))
    from comparator.count.usermodel import factory_arity
    why = factory_arity(factory) if callable(factory) else \
        f"{attr} is not callable (a {type(factory).__name__})"
    if why:
        raise _refuse(spec, f"a factory called as {attr}(seq_len, batch); {why}")
    _FOUND[key] = factory
    return factory


def build(spec: str, seq: int, batch: int):
    """The factory's ``UserModel`` at ``seq`` x ``batch``, its inputs' length along the
    sequence axis checked to be ``seq``."""
    from comparator.count.usermodel import FORMS, as_user_model, target
    from comparator.count.usercount import CountError
    factory, (_, attr) = find(spec), parts(spec)
    call = f"{attr}({seq}, {batch})"
    try:
        value = factory(seq, batch)
    except Exception as err:  # noqa: BLE001 -- the user's code: said, not a traceback
        raise _refuse(spec, f"a factory that builds the model at --seq {seq} --batch "
                            f"{batch}; {call} raised {_why(err)}") from None
    try:
        um = as_user_model(value)
        length = target(um).length
    except CountError as err:
        what = (f"a {err.value}" if err.field == "returned" else
                f"a UserModel whose {err.field}={err.value!r} is not allowed ({err.allowed})")
        raise _refuse(spec, f"a factory returning {FORMS}; {call} returned {what}") from None
    except Exception as err:  # noqa: BLE001 -- the user's step does not trace
        raise _refuse(spec, f"a model whose training step traces; at --seq {seq} tracing "
                            f"it raised {_why(err)}") from None
    if length is not None and length != seq:
        raise _refuse(spec, f"a factory whose inputs have length --seq along seq_axis; "
                            f"{call} returned inputs of length {length} along axis "
                            f"{um.seq_axis!r} (set UserModel(seq_axis=...) to the sequence "
                            "axis, or None)")
    return um


def guard(spec: str, seq: int, count, *args, **kwargs):
    """``count(*args, **kwargs)`` -- a trace of the user's step -- where raising is
    refused naming ``--model`` (the user's code: said, never a traceback)."""
    try:
        return count(*args, **kwargs)
    except RequestError:
        raise
    except Exception as err:  # noqa: BLE001
        raise _refuse(spec, f"a model whose training step traces; at --seq {seq} tracing "
                            f"it raised {_why(err)}") from None


@dataclass(frozen=True)
class Counted:
    """The counts of a user's model at each length asked for: ``counts`` ({seq:
    ``CountRecord``}), ``activation`` ({seq: bytes saved for the backward}), ``name`` (its
    name in the records), ``symbolic`` (one trace with the length symbolic counted every
    length) and ``note`` (how they were counted)."""
    spec: str
    name: str
    counts: dict
    activation: dict
    symbolic: bool
    note: str


def counts(spec: str, seqs, batch: int, scope: str = "matmul", trace: str = "fast") -> Counted:
    """The model at every length of ``seqs``.  ``trace`` fast: one symbolic trace when the
    factory builds the same model at every length (only the inputs' length differs),
    checked against the concrete trace at the shortest; checked: also the longest traced
    concretely; full (or a model that differs between lengths): each length from its own
    factory call, traced concretely."""
    from comparator.count import usermodel as U
    seqs = sorted(set(seqs))
    models = {s: build(spec, s, batch) for s in seqs}
    base = models[seqs[0]]
    name = base.name or name_of(spec)

    def concrete(note):
        got = {s: guard(spec, s, U.count, models[s], scope, symbolic=False) for s in seqs}
        act = {s: guard(spec, s, U.activation_bytes, models[s]) for s in seqs}
        return Counted(spec, name, got, act, False, note)

    why = ("--trace full" if trace == "full" else "no sequence axis: seq_axis=None"
           if base.seq_axis is None else None if all(U.same(base, models[s])
                                                     for s in seqs[1:])
           else "the factory's model differs between lengths, beyond its inputs' length")
    if why:
        return concrete(f"each length traced concretely from its own factory call ({why})")
    first = guard(spec, seqs[0], U.count, base, scope)
    got = {s: first if s == seqs[0] else guard(spec, s, first.at, s) for s in seqs}
    if first.trace != "symbolic":     # the symbolic trace failed: at(n) traced concretely
        return concrete(first.formula_note)
    if trace == "checked" and len(seqs) > 1:
        last = guard(spec, seqs[-1], U.count, models[seqs[-1]], scope, symbolic=False)
        keys = ("fwd_flops", "train_flops", "breakdown", "train_breakdown", "unsupported",
                "params")
        if any(getattr(last, k) != getattr(got[seqs[-1]], k) for k in keys):
            return concrete(f"the symbolic program differed from a concrete trace at n = "
                            f"{seqs[-1]}: each length traced concretely")
    act = guard(spec, seqs[0], U.activation_bytes_in_n, base, seqs) or {
        s: guard(spec, s, U.activation_bytes, models[s]) for s in seqs}
    return Counted(spec, name, got, act, True, first.formula_note)


def record(c: Counted, seq: int, batch: int, scope: str) -> dict:
    """The record of the model at ``seq`` (the record contract, ``preset`` "custom",
    ``method`` traced), with its closed forms in n where there are."""
    r = c.counts[seq]
    pt = sw.Point(c.name, PRESET, seq, batch)
    rec = sw._record(pt, r.params or 0, "traced", scope, r.fwd_flops, r.train_flops,
                     r.breakdown, r.train_breakdown, r.unsupported, r.flagged)
    rec["trace"] = "symbolic" if c.symbolic else "concrete"
    rec = sw._with_memory(rec, c.activation[seq])
    rec.update(model=c.spec, fwd_transcendentals=r.fwd_transcendentals,
               train_transcendentals=r.train_transcendentals,
               formula=r.formula if c.symbolic else None,
               train_formula=r.train_formula if c.symbolic else None,
               breakdown_formula=r.breakdown_formula if c.symbolic else None,
               train_breakdown_formula=r.train_breakdown_formula if c.symbolic else None,
               formula_note=c.note)
    return rec


def records(spec: str, seqs, batch: int, scope: str = "matmul", trace: str = "fast"
            ) -> tuple[list, Counted]:
    """(the records at every length of ``seqs``, in their order, and the ``Counted``)."""
    c = counts(spec, seqs, batch, scope, trace)
    return [record(c, s, batch, scope) for s in dict.fromkeys(seqs)], c


def step_terms(rec: dict) -> list:
    """The term names a compiled region of the model may take: its term scopes."""
    return [k for k in rec.get("train_breakdown", {}) if "/" in k]


class UserStep:
    """The time model of a user's training step (``costing.Timer`` prices a record with
    it): the factory called at the length and per-device batch, the step compiled here
    (XLA:CPU) and its regions predicted on the device's profile.  A region outside the
    user's term scopes is named by its kind (``xla/matmul``, ``xla/elementwise``, ...)."""

    def __init__(self, spec: str, terms=()):
        self.spec, self.terms = spec, tuple(terms)

    def step_time(self, seq: int, batch: int, dtype: str, profile, store=None):
        """The ``StepTime`` of one step of ``batch`` sequences of ``seq`` in ``dtype``
        (``store`` unused: a user's file may change between runs, its regions are kept in
        this process only)."""
        from comparator.cost import steptime
        from comparator.cost.compiled import compute_dtype
        from comparator.count.usermodel import step_program
        um = build(self.spec, seq, batch)
        try:
            prog, args = step_program(um, compute_dtype(dtype))
            return steptime.predict_program(prog, args, dtype, profile, self.terms,
                                            key=("model", self.spec, seq, batch, dtype),
                                            label=f"{um.name or name_of(self.spec)} at {seq} "
                                                  f"tokens x {batch}")
        except Exception as err:  # noqa: BLE001 -- the user's step: said, not a traceback
            raise _refuse(self.spec, f"a model whose training step XLA compiles; at --seq "
                                     f"{seq} --batch {batch} in {dtype} it raised "
                                     f"{_why(err)}") from None


__all__ = ["Counted", "PRESET", "UserStep", "build", "counts", "find", "guard", "name_of",
           "parts", "record", "records", "step_terms"]
