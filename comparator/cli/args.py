"""Argument parsing shared by the commands: lists, ranges and numbers from the command
line, each refused with an ``UsageError`` naming the option, the value and what is allowed;
``build`` makes a request value of the parsed options (``comparator.run.requests``)."""
from __future__ import annotations

import argparse
import dataclasses

import architectures
from architectures.config import MAX_DIM

from comparator.errors import FieldError
from comparator.run import sweep
from comparator.run.requests import (MAX_SEQ, SEQ_ALLOWED, RequestError, check_archs, option,
                                     size_grid as grid)


class UsageError(FieldError):
    """A command-line value refused: the option, the value and what is allowed (exit 2).
    Only the CLI raises it; the rooms below raise their own ``FieldError``s."""


def build(make, a, **values):
    """``make(**values)``: a request value from parsed options.  A value it refuses as a
    whole (``--jobs 2`` with ``--scheduler``) is reported as the user typed it."""
    try:
        return make(**values)
    except RequestError as err:
        given = dict(values)
        for v in values.values():   # a nested request value (a sweep's pricing)
            if dataclasses.is_dataclass(v):
                given.update((f.name, getattr(v, f.name)) for f in dataclasses.fields(v))
        raw = getattr(a, err.field.lstrip("-").replace("-", "_"), None)
        if raw is not None and any(option(k) == err.field and v == err.value
                                   for k, v in given.items()):
            raise UsageError(err.field, raw, err.allowed) from None
        raise


def add_output_options(p, formats, output: bool = True) -> None:
    """``--format`` (the table's text, markdown, latex, csv, or every record as JSON) and
    ``-o/--output``."""
    p.add_argument("--format", default="text", choices=formats, help="how the result is "
                   "printed: " + ", ".join(formats) + " (default text; json: every record "
                   "with all its fields)")
    if output:
        p.add_argument("-o", "--output", help="write the result to this file instead of "
                                              "stdout")


def given(**values) -> dict:
    """The ``values`` the user gave (not None): an option left out keeps the request
    value's default, so that the request can tell what was typed."""
    return {k: v for k, v in values.items() if v is not None}


def seq_list(text: str) -> list[int]:
    """'512,1024' or a geometric range '512:65536:x2' (start:stop:xFACTOR, stop included)."""
    try:
        if ":" in text:
            start, stop, step = text.split(":")
            if not step.startswith("x"):
                raise ValueError
            a, b, f = int(start), int(stop), int(step[1:])
            if a <= 0 or b < a or f < 2:
                raise ValueError
            out = []
            while a <= b:
                out.append(a)
                a *= f
        else:
            out = [int(x) for x in text.split(",") if x.strip()]
        if not out or any(s <= 0 or s > MAX_SEQ for s in out):
            raise ValueError
        return out
    except ValueError:
        raise UsageError("--seq", text, SEQ_ALLOWED) from None


def positive_int(field: str, text: str) -> int:
    try:
        v = int(text)
        if 0 < v <= MAX_DIM:
            return v
    except ValueError:
        pass
    raise UsageError(field, text, f"a positive integer at most {MAX_DIM}")


def large_int(field: str, text: str) -> int:
    """A positive integer, also written as 1e9 or 1_000_000 (token and step budgets)."""
    try:
        v = int(str(text).replace("_", ""))
    except ValueError:
        try:
            f = float(text)
            v = int(f) if f.is_integer() else 0
        except (TypeError, ValueError, OverflowError):
            v = 0
    if v > 0:
        return v
    raise UsageError(field, text, "a positive integer (1000000, 1_000_000 or 1e6)")


def arch_list(text: str) -> list[str]:
    names = list(architectures.NAMES) if text == "all" else [a for a in text.split(",") if a]
    if not names:
        raise UsageError("--arch", text, "architecture names, comma separated: "
                         + ", ".join(architectures.NAMES) + ", or all")
    return list(check_archs(names))


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def int_list(field: str, text: str | None) -> list:
    if text is None:
        return [None]
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
        if vals and all(0 < v <= MAX_DIM for v in vals):
            return vals
    except ValueError:
        pass
    raise UsageError(field, text, "positive integers, comma separated (e.g. 256,512,1024), "
                                  f"each at most {MAX_DIM}")


def size_grid(a) -> list | None:
    """(d_model, n_layers, n_heads, d_ff) of every combination of the size options
    (``--d-model``, ``--layers``, ``--heads``, ``--d-ff``), or None when none is given."""
    return grid(int_list("--d-model", a.d_model), int_list("--layers", a.layers),
                int_list("--heads", a.heads), int_list("--d-ff", a.d_ff))


def number(field: str, text):
    try:
        return float(text)
    except (TypeError, ValueError):
        raise UsageError(field, text, "a number") from None


SIZE_OPTIONS = (("--d-model", "d_model"), ("--layers", "layers"), ("--heads", "heads"),
                ("--d-ff", "d_ff"))


def add_size_options(p, grid: bool = True) -> None:
    """--d-model, --layers, --heads, --d-ff: a grid of sizes (sweep, plot) or one size."""
    what = "size grid: " if grid else "one size: "
    p.add_argument("--d-model", help=what + "model width" + ("s, e.g. 256,512,1024" if grid
                                                              else ", e.g. 256"))
    p.add_argument("--layers", help=what + "depth" + ("s, e.g. 6,12,24" if grid else ""))
    p.add_argument("--heads", help="attention heads (default: d_model / 64)")
    p.add_argument("--d-ff", help="FFN width" + ("s" if grid else "") + " (default: 4 x d_model)")


def add_model_option(p, what: str = "") -> None:
    """``--model FILE.py:FACTORY``: a user's own model instead of ``--arch``."""
    p.add_argument("--model", help="your own model instead of --arch: FILE.py:FACTORY or "
                   "package.module:FACTORY, called as FACTORY(seq_len, batch) and returning "
                   "a comparator.UserModel (README, 'Your own model on the command line'); "
                   "counted from its traced training step" + (f"; {what}" if what else ""))


def size_of(a) -> tuple | None:
    """``(d_model, layers, heads, d_ff)`` of the one size ``a`` gives, or None."""
    given = {flag: getattr(a, attr, None) for flag, attr in SIZE_OPTIONS}
    if all(v is None for v in given.values()):
        return None
    return tuple(None if v is None else positive_int(flag, v) for flag, v in given.items())


def one_size(a, arch: str, preset: str, cfg):
    """``(label, Config)``: the preset resized to the one size ``a`` gives, if any."""
    size = size_of(a)
    if size is None:
        return preset, cfg
    m = sweep.resized(arch, preset, cfg, size)
    return m.preset, m.cfg


__all__ = ["ATTENTION_CHOICES_HELP", "ATTENTION_HELP", "MAX_SEQ", "Parser", "SIZE_OPTIONS",
           "UsageError", "add_model_option", "add_size_options", "arch_list",
           "build", "int_list", "large_int", "number", "one_size", "positive_int", "seq_list",
           "size_grid", "size_of"]


ATTENTION_CHOICES_HELP = ("dense, flash, local, linformer, performer (Transformer, ALBERT, "
                          "ELECTRA), sliding (Mistral's causal window: a Transformer "
                          "decoder), lsh (the Reformer's; a Transformer's widths as a "
                          "Reformer)")
ATTENTION_HELP = ("attention kernels, comma separated: one model per choice, labelled "
                  "PRESET@CHOICE: " + ATTENTION_CHOICES_HELP)
