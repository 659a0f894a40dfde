"""Data-movement rates of a device profile (``calibrate`` calls them): reductions that
add and that compare, copies that reorder memory by runs of contiguous elements, and on a
CPU the least buffer its runtime maps afresh at every run.  Each rate is the marginal
cost of one more op in a compiled loop (``calibrate.Timer.per_op``)."""
from __future__ import annotations

PAGE = 4096
MIB = 1 << 20
FRESH_SIZES = tuple(k * MIB for k in (1, 2, 4, 8, 16, 24, 32, 48, 64))
TRANSPOSE_RUNS = (1, 16, 64, 1024)


def _arrays(jax, shape, dtype, seed, scale=1.0):
    """Random normal arrays (the calibration's inputs)."""
    return jax.random.normal(jax.random.PRNGKey(seed), shape, dtype) * scale


def _minor_faults() -> int | None:
    """Minor page faults of this process so far (Linux /proc), or None."""
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[7])
    except (OSError, ValueError, IndexError):
        return None


def measure_first_touch_min(t) -> int | None:
    """The smallest fresh buffer the runtime maps anew at every run: lone calls filling
    an array of each size in ``FRESH_SIZES`` (after warm-up calls; the largest first)
    count their page faults; the least size from which every larger one faults on most
    of its pages.  None where page faults cannot be counted (not Linux) or no size
    faults.  The allocator's state depends on what the process did before: measure this
    first."""
    import jax.numpy as jnp
    if _minor_faults() is None:
        return None
    faulted = []
    for size in reversed(FRESH_SIZES):
        n = size // 4
        fill = t.jax.jit(lambda v: jnp.full((n,), v, jnp.float32)).lower(
            jnp.float32(1)).compile(t.options or None)
        for _ in range(3):
            fill(jnp.float32(1)).block_until_ready()
        f0 = _minor_faults()
        for _ in range(3):
            fill(jnp.float32(1)).block_until_ready()
        faulted.append((_minor_faults() - f0) * PAGE / 3 > size / 2)
    least = None
    for size, hit in zip(reversed(FRESH_SIZES), faulted):
        if not hit:
            break
        least = size
    t.log.append({"what": "first touch: least fresh buffer (bytes)", "iterations": 3,
                  "t_r_s": 0.0, "t_2r_s": 0.0, "per_iteration_s": float(least or 0)})
    return least


def measure_reduce(t, quick: bool, combine=None) -> float:
    """Bytes/s a reduction along the contiguous axis reads: the row sum (``combine``:
    the row max, ...) of a 4096 x 1024 (quick: 1024 x 1024) fp32 array, updated in one
    element from the previous result each iteration (in place; the reduction reads it
    whole, unfused)."""
    import jax.numpy as jnp
    combine = combine or jnp.sum
    rows, cols = (1024 if quick else 4096), 1024
    x = _arrays(t.jax, (rows, cols), jnp.float32, 11)

    def body(c):
        a, m = c
        a = a.at[0, 0].add((m[0] > 3e38).astype(a.dtype))
        return a, combine(a, axis=-1)

    s = t.per_op(f"reduce: row {combine.__name__}", body,
                 (x, jnp.zeros((rows,), jnp.float32)), 1, rows * cols * 4 / 5e9, 64)
    return rows * cols * 4 / s


def measure_transposes(t, quick: bool) -> tuple:
    """((run, bytes/s), ...) of copies that reorder memory, ``run`` contiguous elements at a
    time (``TRANSPOSE_RUNS``): each iteration transposes a pair of arrays into each other
    (bytes: read + written; arrays of 4 MB, an activation's size at these widths)."""
    import jax.numpy as jnp
    out = []
    for run in TRANSPOSE_RUNS:
        side = int(((1 << 20) // run) ** 0.5)
        shape, perm = ((side, side), (1, 0)) if run == 1 else ((side, side, run), (1, 0, 2))
        a = _arrays(t.jax, shape, jnp.float32, 12)
        pair = (a, jnp.transpose(a, perm))
        nbytes = 2 * 2 * a.size * 4

        def body(c, perm=perm):
            return (jnp.transpose(c[1], perm) * 0.999, jnp.transpose(c[0], perm) * 0.999)

        s = t.per_op(f"transpose: run {run}", body, pair, 2, nbytes / 2 / 5e9, 64)
        out.append((run, nbytes / 2 / s))
    return tuple(out)


__all__ = ["FRESH_SIZES", "TRANSPOSE_RUNS", "measure_first_touch_min", "measure_reduce",
           "measure_transposes"]
