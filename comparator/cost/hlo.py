"""A reader of XLA's optimised HLO text (``compiled.as_text()``): computations,
instructions, shapes and the attributes the time model needs.

Only what ``regions`` reads is parsed: each instruction's name, result shape(s), opcode,
operand names and its attributes as text (``calls=``, ``to_apply=``, ``body=``,
``kind=``, the dot dimension numbers, ``window=``, ``metadata={op_name=...}``,
``backend_config``).  Shapes are ``(dtype, dims)`` pairs; a tuple result is several.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

# bytes per element of each HLO element type (pred is stored as one byte)
WIDTH = {"pred": 1, "s4": 1, "u4": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2,
         "bf16": 2, "s32": 4, "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8, "c64": 8,
         "c128": 16, "f8e4m3fn": 1, "f8e5m2": 1, "f8e4m3": 1, "f8e5m2fnuz": 1,
         "f8e4m3fnuz": 1, "f8e4m3b11fnuz": 1, "f8e3m4": 1, "token": 0}
_SHAPE = re.compile(r"\b([a-z]+[0-9a-z]*)\[([0-9,]*)\](?:\{([0-9,]*)[}:])?")
_HEAD = re.compile(r"^\s*(ROOT\s+)?%?([^\s=]+)\s*=\s*")
_OPCODE = re.compile(r"\s*([a-z][a-z0-9\-_]*)\(")
_NAME = re.compile(r"%([^\s,(){}]+)")
_OP_NAME = re.compile(r'op_name="((?:[^"\\]|\\.)*)"')
_TRIP = re.compile(r'"known_trip_count"\s*:\s*\{\s*"n"\s*:\s*"(\d+)"')


@dataclass
class Instr:
    name: str
    shapes: list            # [(dtype, (dims...)), ...]: one, or a tuple's elements
    opcode: str
    operands: list          # operand instruction names
    attrs: str              # everything after the operand list
    root: bool = False
    layouts: list = field(default_factory=list)   # minor-to-major per shape (or None)

    def attr(self, key: str) -> str | None:
        """The text of attribute ``key=`` (a ``{...}`` group whole, else up to a comma)."""
        m = re.search(r"(?:^|[\s,])" + re.escape(key) + r"=", self.attrs)
        if not m:
            return None
        i = m.end()
        if i < len(self.attrs) and self.attrs[i] == "{":
            return self.attrs[i:_close(self.attrs, i) + 1]
        j = self.attrs.find(",", i)
        return self.attrs[i:j if j >= 0 else len(self.attrs)].strip()

    def called(self, key: str) -> str | None:
        v = self.attr(key)
        return v.lstrip("%") if v else None

    def dims(self, key: str) -> tuple:
        v = self.attr(key)
        return tuple(int(x) for x in v.strip("{}").split(",") if x.strip()) if v else ()

    @property
    def op_name(self) -> str:
        m = _OP_NAME.search(self.attrs)
        return m.group(1) if m else ""

    @property
    def trip_count(self) -> int | None:
        m = _TRIP.search(self.attrs)
        return int(m.group(1)) if m else None

    @property
    def elements(self) -> int:
        return sum(elements(d) for _, d in self.shapes)

    @property
    def nbytes(self) -> int:
        return sum(nbytes(s) for s in self.shapes)


@dataclass
class Computation:
    name: str
    instrs: list = field(default_factory=list)
    entry: bool = False

    def __post_init__(self):
        self.by_name: dict = {}

    def add(self, ins: Instr) -> None:
        self.instrs.append(ins)
        self.by_name[ins.name] = ins

    def users(self) -> dict:
        out: dict = {}
        for ins in self.instrs:
            for o in ins.operands:
                out.setdefault(o, []).append(ins)
        return out


def elements(dims) -> int:
    n = 1
    for d in dims:
        n *= d
    return n


def nbytes(shape) -> int:
    dtype, dims = shape
    return elements(dims) * WIDTH.get(dtype, 4)


def _close(text: str, i: int) -> int:
    """Index of the bracket closing the one at ``text[i]``."""
    pairs = {"(": ")", "{": "}", "[": "]"}
    want, depth, quote = pairs[text[i]], 0, False
    for j in range(i, len(text)):
        c = text[j]
        if c == '"' and text[j - 1] != "\\":
            quote = not quote
        elif quote:
            continue
        elif c == text[i]:
            depth += 1
        elif c == want:
            depth -= 1
            if depth == 0:
                return j
    return len(text) - 1


def shapes_of(text: str) -> list:
    return [(t, tuple(int(x) for x in d.split(",") if x)) for t, d, _ in _SHAPE.findall(text)]


def layouts_of(text: str) -> list:
    """The layout (minor-to-major dimension numbers, or None) of each shape in ``text``."""
    return [tuple(int(x) for x in lay.split(",") if x) if lay or d == "" else None
            for _, d, lay in _SHAPE.findall(text)]


def parse_instr(line: str) -> Instr | None:
    m = _HEAD.match(line)
    if not m:
        return None
    rest = line[m.end():]
    if rest.startswith("("):                      # a tuple result
        end = _close(rest, 0)
        shape_text, rest = rest[:end + 1], rest[end + 1:]
    else:
        cut = rest.find(" ")
        shape_text, rest = rest[:cut], rest[cut:]
    om = _OPCODE.match(rest)
    if not om:
        return None
    start = om.end() - 1
    end = _close(rest, start)
    operands = _NAME.findall(rest[start + 1:end])
    attrs = rest[end + 1:].lstrip(", ")
    return Instr(m.group(2), shapes_of(shape_text), om.group(1), operands, attrs,
                 bool(m.group(1)), layouts_of(shape_text))


def parse(text: str) -> dict:
    """``{computation name: Computation}`` of an HLO module's text; the entry computation
    is also under the key ``"ENTRY"``."""
    comps: dict = {}
    cur = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("//"):
            continue
        if cur is None:
            if line.rstrip().endswith("{") and " -> " in line and not line.startswith(" "):
                entry = line.startswith("ENTRY")
                name = line.split()[1 if entry else 0].lstrip("%")
                cur = Computation(name, entry=entry)
            continue
        if line.startswith("}"):
            comps[cur.name] = cur
            if cur.entry:
                comps["ENTRY"] = cur
            cur = None
            continue
        ins = parse_instr(line)
        if ins is not None:
            cur.add(ins)
    return comps


__all__ = ["Computation", "Instr", "WIDTH", "elements", "layouts_of", "nbytes", "parse",
           "parse_instr", "shapes_of"]
