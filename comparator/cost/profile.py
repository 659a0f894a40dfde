"""Device profiles: what one device achieves, per kind of operation, for the time model.

A ``DeviceProfile`` is either *measured* on the device it describes (``comparator
calibrate``, ``comparator.measure.calibrate.measure``: ``calibrated=True``) or built from
a catalogue accelerator's datasheet times sourced achievable fractions
(``datasheet(acc)``, ``comparator/data/achievable.toml``: ``calibrated=False``).

Units (SI): ``flops_per_s``, ``vector_flops`` in FLOP/s (1 multiply-add = 2 FLOPs);
``bandwidth``, ``gather``, ``scatter`` in bytes/s; ``transcendentals`` in evaluations/s;
``sort`` in int32 keys/s; ``overhead_s`` in seconds.  ``first_touch`` (bytes/s, or None
where not measured -- datasheet profiles, accelerators, whose runtimes keep their memory)
is the rate at which a program's *first* writes to memory it has not touched before cost
on top of ``bandwidth``: on a CPU the OS maps and zeroes each new page, and XLA's CPU
runtime takes large buffers afresh at every run, so a step pays it once per byte of such
buffers.  ``first_touch_min_bytes`` (or None: every fresh buffer) is the smallest buffer
taken afresh at every run: the C allocator reuses smaller freed blocks (glibc maps blocks
of 32 MiB and more anew each time), so only buffers this large pay ``first_touch``.
``reduce`` (bytes/s, or None) is the rate at which a reduction along the contiguous axis
that adds (a row sum) reads its input, ``reduce_max`` one that compares (a row max; min,
argmax alike), and ``transpose`` the rates of copies that reorder
memory, as ``(run, bytes/s)`` pairs: ``run`` the contiguous elements moved at a time (1
for a matrix transpose, 64 for (seq, heads, 64) -> (heads, seq, 64)), bytes read +
written; on a CPU both are far below a stream's bandwidth.  ``transpose_rate`` interpolates
in log run (the nearest end outside the measured runs); an empty tuple: not measured.
``sram_bytes`` (or None: a CPU, or not known) is the on-chip memory one kernel block can
keep its tiles in -- a GPU's shared memory per SM, a TPU core's VMEM (the catalogue's
``sram_kib``) -- with which the time model prices fused attention (``fusedflash``).
Every throughput is *marginal*: what one more such operation adds inside a
compiled program, not the time of a lone call, which also pays dispatch -- and without
``overhead_s``, the fixed cost of every compiled region, which a time model adds once
per region (region time = overhead + work).  Bytes are counted as XLA's cost
analysis counts them for that operation: an elementwise op reads its operands and
writes its result; a gather reads its operand table, its indices and writes its output;
a scatter-add reads its operand, indices and updates and writes its output.

``matmul_rate`` interpolates the matmul grid (see its docstring).  A dtype the profile
has no matmul points for is refused (``ProfileError``), never guessed from another dtype.

JSON (``to_dict``/``from_dict``, ``save``/``load``) carries ``schema_version``; reading is
strict: every field present and of its type (``OPTIONAL`` ones may be absent:
profiles written before they existed), nothing unknown, throughputs finite and > 0.
No jax here: the analytic path may import this.
"""
from __future__ import annotations

import datetime
import json
import math
import os
import re
from dataclasses import dataclass, field, fields
from types import MappingProxyType

from comparator.errors import FieldError
from comparator.cost import interp

SCHEMA_VERSION = 1
KINDS = ("cpu", "gpu", "tpu")
RATES = ("bandwidth", "vector_flops", "transcendentals", "sort", "gather", "scatter",
         "overhead_s")
# JSON keys a profile may lack (written before they existed), with the value they read as
OPTIONAL = {"first_touch_min_bytes": None, "reduce": None, "transpose": [],
            "reduce_max": None, "sram_bytes": None}
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class ProfileError(FieldError):
    """A device profile refused: names the field, the value and what is allowed."""


def _dtypes() -> tuple:
    from comparator.cost.pricing import DTYPE_BYTES
    return tuple(DTYPE_BYTES)


@dataclass(frozen=True)
class MatmulPoint:
    """One contraction's achievable throughput: ``batch`` products of (m x k) @ (k x n)."""
    m: int
    k: int
    n: int
    batch: int
    dtype: str
    flops_per_s: float

    @property
    def flops(self) -> int:
        """FLOPs of one product (the whole op is ``batch`` times this)."""
        return 2 * self.m * self.k * self.n


@dataclass(frozen=True)
class DeviceProfile:
    device: str
    kind: str
    calibrated: bool
    source: str
    date: str
    software: dict = field(hash=False)
    matmul: tuple
    bandwidth: float
    vector_flops: float
    transcendentals: float
    sort: float
    gather: float
    scatter: float
    overhead_s: float
    first_touch: float | None = None   # bytes/s; None where not measured (see the docstring)
    first_touch_min_bytes: int | None = None   # smaller fresh buffers are reused (docstring)
    reduce: float | None = None        # bytes/s an adding contiguous-axis reduction reads
    transpose: tuple = ()              # ((run elements, bytes/s), ...) of reorderings
    reduce_max: float | None = None    # bytes/s a comparing (max) reduction reads
    sram_bytes: int | None = None      # on-chip memory one kernel block can use (docstring)

    def __post_init__(self):
        object.__setattr__(self, "matmul", tuple(self.matmul))
        object.__setattr__(self, "transpose", tuple(sorted(tuple(x) for x in self.transpose)))
        object.__setattr__(self, "software", MappingProxyType(dict(self.software)))

    def transpose_rate(self, run: int) -> float | None:
        """Bytes/s of a reordering copy moving ``run`` contiguous elements at a time:
        log-linear in log run between the measured runs, the nearest end outside them;
        None when not measured."""
        pts = self.transpose
        if not pts:
            return None
        run = max(1, run)
        if run <= pts[0][0]:
            return pts[0][1]
        exact = dict(pts).get(run)
        if exact is not None:
            return exact
        for (r0, v0), (r1, v1) in zip(pts, pts[1:]):
            if run <= r1:
                w = math.log(run / r0) / math.log(r1 / r0)
                return math.exp(math.log(v0) + w * (math.log(v1) - math.log(v0)))
        return pts[-1][1]

    @property
    def dtypes(self) -> tuple:
        """The dtypes with matmul points, in the order first measured."""
        return tuple(dict.fromkeys(p.dtype for p in self.matmul))

    def matmul_rate(self, m: int, k: int, n: int, batch: int = 1,
                    dtype: str = "fp32") -> float:
        """Achievable FLOP/s of ``batch`` products (m x k) @ (k x n) in ``dtype``.

        A measured shape gives its measured rate.  Otherwise the points of that dtype --
        the batched ones (batch > 1) for a batched query and the single ones for a
        single product, each set used for the other only when it is empty -- are
        interpolated in log space.  A product inside a measured cube (every combination
        of the measured m, k and n at a batch; ``calibrate`` measures cubes at several
        batches) takes the log-rate trilinear in (log m, log k, log n) between its eight
        corners, each coordinate clamped into the cube, and log-linear in log batch
        between the two measured batches around its own (clamped likewise).  Otherwise
        the points are
        grouped by their smallest dimension; within
        a group log-rate is linear in the log FLOPs of one product, and outside the
        group's range its end rates hold.  Between the two groups whose smallest
        dimensions bracket the query's, log-rate is linear in the log smallest
        dimension.  Outside that range the nearest group is used, and below its smallest
        product the *time* of that product holds (a smaller product is not faster than
        the smallest measured one), so the rate falls in proportion to the FLOPs.  The
        result is never above the largest rate of the set.  A dtype without points is refused
        (ProfileError): no rate is borrowed from another dtype."""
        pts = [p for p in self.matmul if p.dtype == dtype]
        if not pts:
            raise ProfileError("dtype", dtype, f"a dtype this profile ({self.device}) has "
                                              "matmul rates for: " + ", ".join(self.dtypes))
        for p in pts:
            if (p.m, p.k, p.n, p.batch) == (m, k, n, batch):
                return p.flops_per_s
        batched = [p for p in pts if p.batch > 1]
        single = [p for p in pts if p.batch == 1]
        rate = interp.cube_rate(single if batch == 1 else batched, m, k, n, batch)
        if rate is not None:
            return rate
        use = (batched or single) if batch > 1 else (single or batched)
        return interp.grouped(use, 2 * m * k * n, min(m, k, n))


# ---------------------------------------------------------------- JSON


def to_dict(p: DeviceProfile) -> dict:
    """The profile as JSON-able data (``from_dict(to_dict(p)) == p``)."""
    out = {"schema_version": SCHEMA_VERSION}
    for f in fields(DeviceProfile):
        v = getattr(p, f.name)
        if f.name == "matmul":
            v = [{g.name: getattr(pt, g.name) for g in fields(MatmulPoint)} for pt in v]
        elif f.name == "software":
            v = dict(v)
        elif f.name == "transpose":
            v = [list(x) for x in v]
        out[f.name] = v
    return out


def _number(where: str, v, positive: bool = True) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ProfileError(where, v, "a number")
    v = float(v)
    if not math.isfinite(v) or (positive and v <= 0):
        raise ProfileError(where, v, "a finite number > 0")
    return v


def _int(where: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ProfileError(where, v, "a positive integer")
    return v


def _text(where: str, v) -> str:
    if not isinstance(v, str) or not v.strip():
        raise ProfileError(where, v, "a non-empty string")
    return v


def _keys(where: str, d, names: tuple) -> None:
    if not isinstance(d, dict):
        raise ProfileError(where or "profile", type(d).__name__,
                           "an object with the fields " + ", ".join(names))
    for name in names:
        if name not in d:
            raise ProfileError(f"{where}{name}", None,
                               "a required field (absent from this profile)")
    extra = sorted(set(d) - set(names))
    if extra:
        raise ProfileError(f"{where}{extra[0]}", d[extra[0]],
                           "not a profile field; fields are " + ", ".join(names))


def from_dict(d) -> DeviceProfile:
    """A validated profile from JSON data; ``ProfileError`` names the first bad field."""
    names = ("schema_version",) + tuple(f.name for f in fields(DeviceProfile))
    if isinstance(d, dict):
        d = {**OPTIONAL, **d}
    _keys("", d, names)
    if d["schema_version"] != SCHEMA_VERSION or isinstance(d["schema_version"], bool):
        raise ProfileError("schema_version", d["schema_version"],
                           f"{SCHEMA_VERSION} (the profile format this comparator reads)")
    if d["kind"] not in KINDS:
        raise ProfileError("kind", d["kind"], "one of " + ", ".join(KINDS))
    if not isinstance(d["calibrated"], bool):
        raise ProfileError("calibrated", d["calibrated"], "true or false")
    date = _text("date", d["date"])
    try:
        datetime.date.fromisoformat(date)
        ok = bool(_DATE_RE.match(date))
    except ValueError:
        ok = False
    if not ok:
        raise ProfileError("date", date, "an ISO date YYYY-MM-DD")
    sw = d["software"]
    if not isinstance(sw, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                           for k, v in sw.items()):
        raise ProfileError("software", sw, "an object of name: version strings")
    mm = d["matmul"]
    if not isinstance(mm, list) or not mm:
        raise ProfileError("matmul", mm, "a non-empty list of matmul points")
    pts, seen = [], set()
    dtypes = _dtypes()
    for i, raw in enumerate(mm):
        at = f"matmul[{i}]."
        _keys(at, raw, tuple(f.name for f in fields(MatmulPoint)))
        shape = tuple(_int(at + k, raw[k]) for k in ("m", "k", "n", "batch"))
        if raw["dtype"] not in dtypes:
            raise ProfileError(at + "dtype", raw["dtype"], "one of " + ", ".join(dtypes))
        if shape + (raw["dtype"],) in seen:
            raise ProfileError(at[:-1], list(shape), "one point per shape and dtype "
                                                     "(this one is repeated)")
        seen.add(shape + (raw["dtype"],))
        pts.append(MatmulPoint(*shape, raw["dtype"],
                               _number(at + "flops_per_s", raw["flops_per_s"])))
    touch, least = d["first_touch"], d["first_touch_min_bytes"]
    return DeviceProfile(device=_text("device", d["device"]), kind=d["kind"],
                         calibrated=d["calibrated"], source=_text("source", d["source"]),
                         date=date, software=sw, matmul=tuple(pts),
                         first_touch=None if touch is None else _number("first_touch", touch),
                         first_touch_min_bytes=None if least is None else _int(
                             "first_touch_min_bytes", least),
                         reduce=None if d["reduce"] is None else _number("reduce", d["reduce"]),
                         reduce_max=None if d["reduce_max"] is None else _number(
                             "reduce_max", d["reduce_max"]),
                         transpose=_runs(d["transpose"]),
                         sram_bytes=None if d["sram_bytes"] is None else _int(
                             "sram_bytes", d["sram_bytes"]),
                         **{r: _number(r, d[r]) for r in RATES})


def _runs(v) -> tuple:
    if not isinstance(v, list):
        raise ProfileError("transpose", v, "a list of [run elements, bytes/s] pairs")
    out = []
    for i, pair in enumerate(v):
        if not isinstance(pair, list) or len(pair) != 2:
            raise ProfileError(f"transpose[{i}]", pair, "a pair [run elements, bytes/s]")
        out.append((_int(f"transpose[{i}][0]", pair[0]), _number(f"transpose[{i}][1]", pair[1])))
    if len({r for r, _ in out}) != len(out):
        raise ProfileError("transpose", v, "one rate per run length")
    return tuple(sorted(out))


def save(p: DeviceProfile, path) -> None:
    """Write the profile's JSON to ``path``."""
    text = json.dumps(to_dict(p), indent=2) + "\n"
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as err:
        raise ProfileError("-o", os.fspath(path), f"a writable file path ({err.strerror})") \
            from None


def load(path) -> DeviceProfile:
    """The profile in the JSON file ``path``; errors name the file and the field."""
    from comparator.cost import files
    path = os.fspath(path)
    text = files.read_text(path, "--profile", "a readable profile JSON file", ProfileError)
    data = files.parse(text, "json", path, "--profile", "a profile JSON file", ProfileError)
    try:
        return from_dict(data)
    except ProfileError as err:
        raise ProfileError(f"{path}: {err.field}", err.value, err.allowed) from None


# ---------------------------------------------------------------- this machine


def cpu_name() -> str:
    """``"cpu: <model>, <n> cores"`` for this machine (/proc/cpuinfo on Linux)."""
    import platform
    model = platform.processor() or platform.machine() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"cpu: {model}, {os.cpu_count()} cores"


__all__ = ["DeviceProfile", "KINDS", "MatmulPoint", "ProfileError", "RATES",
           "SCHEMA_VERSION", "cpu_name", "from_dict", "load",
           "save", "to_dict"]
