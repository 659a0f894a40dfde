"""Microbenchmarks behind a measured device profile (``comparator calibrate``).

``measure(dtypes=("fp32",), quick=False)`` times, on the device jax runs on:

* matmuls over ``grid(quick)``: squares, the models' projection and FFN shapes, per-head
  attention (batched over heads) and the Reformer's chunked attention (512 chunks of
  64 x 64 @ 64 x 128, and 64 x 128 @ 128 x 64), and (full grid) every product with m, k,
  n in ``CUBE_SIZES`` at each batch of ``CUBE_BATCHES`` (batched ones up to
  ``CUBE_FLOPS``);
* streaming bandwidth: ``x * a + b`` over a large fp32 array (bytes: read + write);
* elementwise FLOP/s when compute-bound: 64 dependent multiply-adds per element of an
  array that stays in cache, fused into one loop;
* transcendentals/s: ``exp(tanh(x) * a)`` chained 8 times (16 evaluations per element);
* sort: rows of 16,384 random int32 keys; gather: rows of 64 fp32 picked by random
  indices; scatter-add: the same rows added back (bytes as XLA's cost analysis counts
  them for that op: operand, indices, updates and output);
* the per-region overhead: loops of K tiny dots (8 x 8), the slope over K;
* reductions: the row sum and the row max of a 4096 x 1024 array (bytes read/s); copies that reorder
  memory (transposes) moving runs of 1, 16, 64 and 1,024 contiguous elements;
* on CPU, the first-touch rate: lone calls filling a fresh 128 MB array (the OS maps
  and zeroes each new page), less the write itself at the streaming bandwidth.

Each number is a *marginal* cost: a compiled ``fori_loop`` whose body is the op (its
result is the next iteration's input, or the op's input is scrambled anew from it, so a
sort never sees sorted keys) runs R and 2R times, alternately, and the op's time is the
median difference over R (after warm-up, each run waited for with
``block_until_ready``), less the loop's own cost per iteration and less the per-region
overhead (``overhead_s``, which the time model adds once per region: a throughput here
is the op's work alone).  That removes what a
lone call pays once -- dispatch, waking the thread pool, copying the input, fresh
output memory -- which a training step does not pay per op.  Inside the loop XLA
cannot fuse, reorder, reassociate or overlap consecutive ops (a chain of separate ops
in one program would be fused or, without a data dependency, run concurrently).
A matmul point times its own shape alone (``measure_matmul``).  The first-touch rate is the exception: it is what a lone call pays.

On CPU everything is compiled with the options the project's bench compiles training
steps with (``comparator.cost.compiled.compile_options_for``), so the profile describes the same
code generation as the measured steps.  ``--quick`` (tests) measures a smaller grid with
fewer repetitions in well under a minute on two cores.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import time

from comparator.measure.bench import cpu_ticks, other_share
from comparator.cost.profile import DeviceProfile, MatmulPoint, cpu_name, from_dict, to_dict
from comparator.measure.movement import (_arrays, measure_first_touch_min, measure_reduce,
                                         measure_transposes)

BUSY_SHARE, BUSY_RETRIES, BUSY_WAIT_S = 0.1, 3, 2.0   # see Timer.iteration
# (m, k, n, batch)
QUICK_GRID = [(64, 64, 64, 1), (256, 256, 256, 1), (1024, 1024, 1024, 1),
              (512, 768, 3072, 1), (512, 64, 512, 12), (64, 64, 128, 512)]
FULL_GRID = ([(s, s, s, 1) for s in (16, 32, 64, 128, 256, 512, 1024, 2048)]
             + [(512, 768, 768, 1), (512, 768, 3072, 1), (2048, 768, 3072, 1),
                (512, 256, 1024, 1), (512, 64, 512, 12), (1024, 64, 1024, 12),
                (2048, 64, 2048, 4), (64, 64, 128, 512), (64, 64, 128, 64)])
# products over a cube of sizes at a few batch sizes, for the interpolation in (log m,
# log k, log n, log batch); batched products above CUBE_FLOPS are left out (no model
# batches products that large)
CUBE_SIZES = (64, 256, 1024, 4096)
CUBE_BATCHES = (1, 4, 64, 512)
CUBE_FLOPS = 1 << 34
CUBE = [(m, k, n, b) for b in CUBE_BATCHES for m in CUBE_SIZES for k in CUBE_SIZES
        for n in CUBE_SIZES if b == 1 or 2 * m * k * n * b <= CUBE_FLOPS]
FULL_GRID += [s for s in CUBE if s not in FULL_GRID]
GPU_EXTRA = [(4096, 4096, 4096, 1), (8192, 8192, 8192, 1), (8192, 1024, 4096, 1)]


def grid(quick: bool = False, platform_name: str = "cpu") -> list[tuple]:
    shapes = list(QUICK_GRID if quick else FULL_GRID)
    if platform_name != "cpu" and not quick:
        shapes += GPU_EXTRA
    return shapes


class Timer:
    """Compiles an op into a loop and times it (see the module docstring)."""

    def __init__(self, quick: bool):
        import jax

        from comparator.cost.compiled import compile_options_for
        self.jax = jax
        self.options = compile_options_for()
        self.reps, self.warmup = (3, 1) if quick else (9, 1)
        self.budget = 5e-3 if quick else 30e-3   # seconds of work per timed loop
        self.loop_s = 0.0                        # the loop's own cost per iteration
        self.region_s = 0.0                      # the per-region overhead
        self.rates: dict = {}                    # rates measured so far
        self.log: list[dict] = []

    def _paired(self, fn, a1, a2) -> tuple[list, list]:
        """Times of ``fn(*a1)`` and ``fn(*a2)``, alternated run by run (after warm-up),
        so that a change in the machine's load hits both alike."""
        block = self.jax.block_until_ready
        for _ in range(self.warmup):
            block(fn(*a1))
            block(fn(*a2))
        t1, t2 = [], []
        for _ in range(self.reps):
            for args, ts in ((a1, t1), (a2, t2)):
                t0 = time.perf_counter()
                block(fn(*args))
                ts.append(time.perf_counter() - t0)
        return t1, t2

    def iteration(self, what: str, body, init, guess_s: float, most: int = 256,
                  least: int = 1) -> float:
        """Seconds one iteration of ``carry = body(carry)`` adds inside a compiled
        loop: the loop run R and 2R times (R: about ``budget`` seconds of work by the
        rough guess ``guess_s`` per iteration, within [least, most]), the difference
        / R.  ``least`` keeps R high enough for the iterations to outweigh what a call
        pays once (copying a large carry into fresh memory).  When other processes kept
        more than ``BUSY_SHARE`` of the CPUs busy meanwhile (Linux /proc), the pair is
        timed again after a pause, up to ``BUSY_RETRIES`` times, and the least disturbed
        kept: on a shared machine a rate measured under load is a different rate."""
        from jax import lax
        jax = self.jax
        r = max(least, min(most, int(self.budget / max(guess_s, 1e-9))))
        run = jax.jit(lambda c, n: lax.fori_loop(0, n, lambda i, x: body(x), c))
        f = run.lower(init, 0).compile(self.options or None)
        best = None
        for attempt in range(BUSY_RETRIES + 1):
            before = cpu_ticks()
            t1, t2 = self._paired(f, (init, r), (init, 2 * r))
            busy = other_share(before, cpu_ticks())
            if best is None or (busy or 0) < (best[2] or 0):
                best = (t1, t2, busy)
            if busy is None or busy < BUSY_SHARE or attempt == BUSY_RETRIES:
                break
            time.sleep(BUSY_WAIT_S)   # another process took the CPUs: measure again
        t1, t2, busy = best
        diff = statistics.median(b - a for a, b in zip(t1, t2)) / r
        per = diff if diff > 0 else statistics.median(t2) / (2 * r)   # noise: the mean
        self.log.append({"what": what, "iterations": r, "t_r_s": statistics.median(t1),
                         "t_2r_s": statistics.median(t2), "per_iteration_s": per,
                         "other_cpu_share": busy})
        return per

    def per_op(self, what: str, body, init, ops: int, guess_s: float, most: int = 256,
               least: int = 1):
        """Seconds of one of the ``ops`` ops an iteration of ``body`` runs, less the
        loop's own cost per iteration (``loop_s``) and the per-region overhead
        (``region_s``, which the time model adds once per region): what is left is the
        op's work.  Each is taken off only while at least half remains (noise)."""
        per = self.iteration(what, body, init, guess_s, most, least)
        op = (per - self.loop_s if per > 2 * self.loop_s else per) / ops
        return op - self.region_s if op > 2 * self.region_s else op / 2


def _scramble(keys):
    """Another order of int32 keys, as random as the first (an odd multiplier is a
    bijection modulo 2^32): the next iteration never sorts sorted keys."""
    import jax.numpy as jnp
    return keys * jnp.int32(-1640531535) + jnp.int32(12345)


def measure_overhead(t: Timer, quick: bool) -> float:
    """Per-region cost: loops whose body is a chain of K tiny dots (8 x 8, which XLA
    neither fuses nor merges); the slope over K is one region's cost, the intercept the
    loop's own, which later measurements take off."""
    import jax.numpy as jnp
    w = _arrays(t.jax, (8, 8), jnp.float32, 3, 8 ** -0.5)

    def chain(k):
        def body(x):
            for _ in range(k):
                x = x @ w
            return x
        return body

    x0 = _arrays(t.jax, (8, 8), jnp.float32, 4)
    lo, hi = 1, (9 if quick else 17)
    t_lo = t.iteration("overhead: loop of 1 tiny dot", chain(lo), x0, 2e-6, 2048)
    t_hi = t.iteration(f"overhead: loop of {hi} tiny dots", chain(hi), x0, hi * 1e-6, 2048)
    region = max((t_hi - t_lo) / (hi - lo), t_hi / (hi + 1) / 4)
    t.loop_s = max(t_lo - region, 0.0)
    t.region_s = region
    return region


def measure_matmul(t: Timer, shape, dtype: str) -> MatmulPoint:
    """One grid point: each iteration runs the product (m x k) @ (k x n) of exactly that
    shape (a batch of them when batch > 1), its input first updated in one element from
    the previous result (so the loop cannot hoist it; the update is in place and tiny).
    A single product (batch 1) is a plain 2-D dot, as in the models' projections."""
    import jax.numpy as jnp

    from comparator.cost.compiled import compute_dtype, matmul_precision
    m, k, n, b = shape
    ct = compute_dtype(dtype)
    lead = (b,) if b > 1 else ()
    w = _arrays(t.jax, lead + (k, n), ct, 1, k ** -0.5)
    corner = (0,) * (len(lead) + 2)

    def body(c):
        x, y = c
        x = x.at[corner].add((y[corner] > 3e38).astype(x.dtype))
        return x, jnp.matmul(x, w)

    init = (_arrays(t.jax, lead + (m, k), ct, 0), jnp.zeros(lead + (m, n), ct))
    flops = 2 * m * k * n * b
    with t.jax.default_matmul_precision(matmul_precision(dtype)):
        s = t.per_op(f"matmul {dtype} {b}x{m}x{k}x{n}", body, init, 1, flops / 5e10, 64)
    return MatmulPoint(m, k, n, b, dtype, flops / s)


def _bytes_accessed(t: Timer, op, args) -> float:
    """XLA's count of the bytes one ``op`` moves (its compiled cost analysis)."""
    ca = t.jax.jit(op).lower(*args).compile(t.options or None).cost_analysis()
    ca = ca[0] if isinstance(ca, (list, tuple)) else ca
    return float(ca["bytes accessed"])


def measure_first_touch(t: Timer, size: int) -> float:
    """Bytes/s of first writes to fresh memory, less the write itself: lone calls that
    fill a new ``size``-float array (each result freed before the next call, so the
    next takes fresh pages again), minus ``size * 4 / bandwidth``."""
    import jax.numpy as jnp
    fill = t.jax.jit(lambda v: jnp.full((size,), v, jnp.float32)).lower(
        jnp.float32(1)).compile(t.options or None)
    ts, _ = t._paired(fill, (jnp.float32(1),), (jnp.float32(2),))
    t_fill = statistics.median(ts)
    t_write = 4 * size / t.rates["bandwidth"]
    fresh = t_fill - t_write if t_fill > 2 * t_write else t_fill
    t.log.append({"what": "first touch: fill a fresh array", "iterations": 1,
                  "t_r_s": t_fill, "t_2r_s": t_fill, "per_iteration_s": fresh})
    return 4 * size / fresh


def measure_rates(t: Timer, quick: bool) -> dict:
    """Bandwidth, elementwise, transcendental, sort, gather and scatter rates."""
    import jax.numpy as jnp
    jax = t.jax
    f32, out = jnp.float32, {}
    a, c = jnp.float32(0.999), jnp.float32(1e-3)
    # streaming bandwidth: read + write of a large array
    size = (1 << 24) if quick else (1 << 25)   # 64 or 128 MB: beyond any cache
    stream = lambda x: x * a + c   # noqa: E731
    x = _arrays(jax, (size,), f32, 5)
    s = t.per_op("stream x*a+c", stream, x, 1, size * 8 / 4e10, 32, least=16)
    out["bandwidth"] = t.rates["bandwidth"] = _bytes_accessed(t, stream, (x,)) / s
    cpu = jax.devices()[0].platform == "cpu"
    out["first_touch"] = measure_first_touch(t, size) if cpu else None
    # elementwise arithmetic, compute-bound: 64 dependent multiply-adds in cache
    cached, depth = 1 << 15, 64

    def poly(x):
        for _ in range(depth):
            x = x * a + c
        return x

    x = _arrays(jax, (cached,), f32, 6)
    out["vector_flops"] = 2 * depth * cached / t.per_op(
        "vector: 64 multiply-adds", poly, x, 1, cached * depth * 2 / 2e10)
    # transcendentals: 8 x (tanh, exp) per element

    def trans(x):
        for _ in range(8):
            x = jnp.exp(jnp.tanh(x) * a)
        return x

    out["transcendentals"] = 16 * cached / t.per_op(
        "transcendentals: 8 x (tanh, exp)", trans, x, 1, cached * 16 / 5e8)
    # sort: rows of 16,384 random int32 keys (scrambled again each iteration)
    rows, width = (4 if quick else 16), 1 << 14
    keys = jax.random.randint(jax.random.PRNGKey(9), (rows, width), 0, 2 ** 31 - 1,
                              jnp.int32)
    out["sort"] = rows * width / t.per_op(
        "sort int32 rows", lambda k: jnp.sort(_scramble(k), axis=-1), keys, 1,
        rows * width / 5e7, 32)
    # gather and scatter-add of rows of 64 fp32 (256 bytes) by random indices
    table_rows, picks, d = 1 << 14, (1 << 14) if quick else (1 << 16), 64
    tab = _arrays(jax, (table_rows, d), f32, 7)
    upd = _arrays(jax, (picks, d), f32, 8)
    idx = jax.random.randint(jax.random.PRNGKey(10), (picks,), 0, table_rows, jnp.int32)
    nxt = lambda ix: (_scramble(ix) & 0x7FFFFFFF) % table_rows      # noqa: E731
    gather = lambda ix: jnp.take(tab, ix, axis=0, mode="clip")       # noqa: E731 (as LSH)
    s = t.per_op("gather rows", lambda c: (nxt(c[0]), gather(c[0])), (idx, upd), 1,
                 picks * d * 8 / 2e10, 64, least=8)
    out["gather"] = _bytes_accessed(t, gather, (idx,)) / s
    scatter = lambda ix: jnp.zeros((table_rows, d), f32).at[ix].add(upd)   # noqa: E731
    s = t.per_op("scatter-add rows", lambda c: (nxt(c[0]), scatter(c[0])), (idx, tab), 1,
                 picks * d * 12 / 1e10, 64, least=8)
    out["scatter"] = _bytes_accessed(t, scatter, (idx,)) / s
    out["reduce"] = measure_reduce(t, quick)
    out["reduce_max"] = measure_reduce(t, quick, jnp.max)
    out["transpose"] = measure_transposes(t, quick)
    return out


def device_name(accelerator: str | None = None) -> tuple[str, str]:
    """(device, kind) of the default jax device: ``cpu_name()`` on CPU; else
    ``accelerator`` (a catalogue name) when given, or ``"<platform>: <device kind>"``."""
    import jax
    dev = jax.devices()[0]
    if dev.platform == "cpu":
        return cpu_name(), "cpu"
    kind = "tpu" if dev.platform == "tpu" else "gpu"
    return accelerator or f"{dev.platform}: {dev.device_kind}", kind


def software(options: dict) -> dict:
    import jax
    import jaxlib
    from importlib import metadata
    try:
        own = metadata.version("comparator")
    except metadata.PackageNotFoundError:
        own = "0"
    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "comparator": own,
            "python": platform.python_version(), "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "compile_options": json.dumps(options, sort_keys=True)}


def measure(dtypes=("fp32",), quick: bool = False, accelerator: str | None = None,
            progress=None) -> tuple[DeviceProfile, list[dict]]:
    """(profile, log): the measured profile of the default jax device, and one row per
    timed loop (what, iterations R, the R and 2R loop times, seconds per iteration).
    ``progress(i, n, what)`` is called before each measurement."""
    import jax

    from comparator.cost.compiled import check_dtype
    from comparator.measure.bench import machine
    dtypes = [check_dtype(d) for d in dtypes]
    t = Timer(quick)
    cpu = jax.devices()[0].platform == "cpu"
    # first, before the process's heap holds the large free blocks the other
    # measurements leave behind (the allocator would reuse them)
    least = measure_first_touch_min(t) if cpu else None
    shapes = grid(quick, jax.devices()[0].platform)
    todo = [(d, s) for d in dtypes for s in shapes]
    n = len(todo) + 2
    if progress:
        progress(0, n, "per-region overhead")
    overhead = measure_overhead(t, quick)
    points = []
    for i, (d, s) in enumerate(todo, 1):
        if progress:
            progress(i, n, f"matmul {d} {s}")
        points.append(measure_matmul(t, s, d))
    if progress:
        progress(n - 1, n, "bandwidth, elementwise, sort, gather, scatter")
    rates = {**measure_rates(t, quick), "first_touch_min_bytes": least}
    device, kind = device_name(accelerator)
    now = datetime.datetime.now()
    p = DeviceProfile(
        device=device, kind=kind, calibrated=True,
        source=(f"comparator calibrate{' --quick' if quick else ''} on {machine()}, "
                f"{now.isoformat(timespec='seconds')}: marginal time of an op in a compiled "
                f"loop run R vs 2R times, median of {t.reps} runs"),
        date=now.date().isoformat(), software=software(t.options), matmul=tuple(points),
        overhead_s=overhead, **rates)
    return from_dict(to_dict(p)), t.log


__all__ = ["CUBE", "CUBE_BATCHES", "CUBE_FLOPS", "CUBE_SIZES", "FULL_GRID", "QUICK_GRID", "Timer", "device_name", "grid", "measure",
           "measure_matmul", "measure_overhead", "measure_rates", "software"]
