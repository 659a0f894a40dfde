"""Which lengths one symbolic trace covers (``comparator.count.fasttrace``): no jax here.

* ``regions`` -- lengths grouped where the parameter shapes change form: a learned
  position table grows past ``max_len`` (``table_rows``), the Reformer's axial grid past
  its rows times columns;
* ``bounds`` -- the lengths of such a region, up to ``PROGRAM_MAX_LEN`` (a program
  traced for a whole region answers later lengths of it);
* ``step`` -- the finest step of lengths a model takes (its own check of a length);
* ``octaves``, ``split`` -- a range of ``k`` cut where JAX cannot decide a comparison over
  all of it: first into the octaves of the lengths (the Reformer's bucket count changes at
  each power of two), then at a part's largest power of two.
"""
from __future__ import annotations

import math
from collections import defaultdict

PROGRAM_MAX_LEN = 1 << 20


def table_rows(cfg) -> int:
    """Rows of a learned position table that grows past them (``max_len``; 0: none).  The
    Reformer's positions are an axial grid: its ``max_len`` enters the bucket rule only."""
    return 0 if getattr(cfg, "axial_shape", None) else getattr(cfg, "max_len", 0) or 0


def cuts(cfg) -> list:
    return [c for c in (table_rows(cfg),
                        math.prod(getattr(cfg, "axial_shape", ()) or (0,))) if c]


def regions(cfg, seqs):
    """Lengths grouped where the parameter shapes change form (position tables)."""
    at = cuts(cfg)
    groups = defaultdict(list)
    for s in sorted(seqs):
        groups[tuple(s > c for c in at)].append(s)
    return list(groups.values())


def bounds(cfg, seqs) -> tuple[int, int]:
    """The lengths of the region of ``seqs`` (``regions``): past every cut below them, up
    to the next cut or ``PROGRAM_MAX_LEN``."""
    lo, hi = 1, max(PROGRAM_MAX_LEN, max(seqs))
    for c in cuts(cfg):
        if seqs[0] > c:
            lo = max(lo, c + 1)
        else:
            hi = min(hi, c)
    return lo, hi


def step(mod, cfg, batch, seqs) -> int:
    """The finest step of lengths the model takes, a divisor of the lengths' gcd: the
    smallest ``d`` whose multiples next to the lengths pass the model's own check of a
    length (its analytic count)."""
    big = math.gcd(*seqs)
    for d in sorted({x for i in range(1, math.isqrt(big) + 1) if big % i == 0
                     for x in (i, big // i)}):
        try:
            for n in {seqs[0] + d, big + d, 3 * big + d}:
                mod.flops(cfg, n, batch)
        except Exception:  # noqa: BLE001 -- a length the model refuses: a coarser step
            continue
        return d
    return big


def octaves(ks: range, lengths, g: int) -> list[range]:
    """The parts of ``ks`` in the octaves (``2^p <= k < 2^(p+1)``) of the lengths ``g k``:
    where a comparison over the whole range fails, the Reformer's bucket count changes
    at each power of two; the first cut tried."""
    out = []
    for p in sorted({(s // g).bit_length() - 1 for s in lengths}):
        part = range(max(ks[0], 1 << p), min(ks[-1] + 1, 1 << (p + 1)))
        if len(part):
            out.append(part)
    return out


def split(ks: range) -> list[range]:
    """A range of k cut at its largest power of two (bucket counts change there)."""
    m = 1 << (ks[-1].bit_length() - 1)
    if m <= ks[0]:
        mid = (ks[0] + ks[-1] + 1) // 2
        return [range(ks[0], mid), range(mid, ks[-1] + 1)]
    return [range(ks[0], m), range(m, ks[-1] + 1)]


__all__ = ["PROGRAM_MAX_LEN", "bounds", "cuts", "octaves", "regions", "split", "step",
           "table_rows"]
