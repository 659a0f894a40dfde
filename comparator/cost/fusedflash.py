"""Flash attention on an accelerator: one fused kernel per layer and direction, priced by
FlashAttention's IO model (Dao et al. 2022, FlashAttention, Sec. 3.2 and App. B-C).

XLA:CPU compiles ``kernels/flash.py``'s blocks as separate ops: every block's scores and
running statistics go through memory, which a CPU really does, so the CPU profile prices
the regions as compiled.  On a GPU or TPU FlashAttention runs as one kernel whose tiles
stay in on-chip memory (SRAM) of ``M`` elements; its traffic to HBM is what Algorithm 1
(forward; Theorem 2: Theta(N^2 d^2 / M)) and Algorithm 4 (backward; Theorem 5) read and
write.  For one head of ``N`` tokens, ``d`` wide:

* tiles: ``B_c = ceil(M / 4d)`` key rows, ``B_r = min(B_c, d)`` query rows; the outer loop
  runs over the ``T_c = ceil(N / B_c)`` key blocks, and each pass reads the query blocks
  that meet its key block: ``R`` query rows in all, ``N T_c``; causal, only the query
  blocks not wholly before the key block's first position (``passed_rows``);
* forward (elements) = ``N d + 2N`` (O, l, m initialised) + ``2 N d`` (K, V read once)
  + ``R (2d + 2)`` (Q_i, O_i, l_i, m_i read) + ``R (d + 2)`` (O_i, l_i, m_i written);
* backward = ``N d`` (dQ initialised) + ``2 N d`` (K, V read once) + ``2 N d`` (dK, dV
  written once) + ``R (4d + 2)`` (Q_i, O_i, dO_i, dQ_i, l_i, m_i read) + ``R d`` (dQ_i
  written);

matrices in the training dtype's bytes (``M`` = on-chip bytes / those), the statistics
l, m in fp32.  ``fuse`` replaces the regions a flash stack's terms name (``attn/scores``,
``attn/softmax``, ``attn/context``) by two regions of kind ``fused`` per layer (forward,
backward): their FLOPs those regions' FLOPs as counted (the recomputation included), cut
between the directions as the flash terms' forward and backward + recomputed FLOPs are
(``architectures.zoo.flash_terms``), their bytes the formula's for every head, one
region's overhead each.  The time model prices a fused region at max(compute, bytes /
bandwidth) + overhead, its compute the compiled regions' arithmetic at the profile's rates
(``timemodel``).  No jax here.
"""
from __future__ import annotations

import math

from comparator.cost.regions import Region

TERMS = ("attn/scores", "attn/softmax", "attn/context")
STAT_BYTES = 4                     # l and m (the row max and sum) in fp32
SOURCE = ("Dao et al. 2022, FlashAttention, Algorithm 1 and Theorem 2 (forward), "
          "Algorithm 4 and Theorem 5 (backward)")


def tiles(sram_bytes: int, d: int, elem_bytes: int) -> tuple[int, int, int]:
    """``(M, B_c, B_r)``: on-chip elements, key rows and query rows of a tile."""
    m = sram_bytes // elem_bytes
    bc = math.ceil(m / (4 * d))
    return m, bc, min(bc, d)


def passed_rows(n: int, bc: int, br: int, causal: bool) -> int:
    """Query rows the outer loop's passes read, over all ``ceil(n / bc)`` key blocks:
    ``n`` each; causal, from the first query block that reaches the key block's first
    position (``floor(j bc / br)``) to the end."""
    tc = math.ceil(n / bc)
    if not causal:
        return n * tc
    return sum(n - br * (j * bc // br) for j in range(tc))


def traffic(n: int, d: int, sram_bytes: int, elem_bytes: int, causal: bool = False) -> dict:
    """HBM bytes of one head's forward and backward (the module docstring's formulas) and
    the tiles they follow."""
    m, bc, br = tiles(sram_bytes, d, elem_bytes)
    r = passed_rows(n, bc, br, causal)
    e, s = elem_bytes, STAT_BYTES
    forward = (n * d * e + 2 * n * s) + 2 * n * d * e + r * (2 * d * e + 2 * s) \
        + r * (d * e + 2 * s)
    backward = n * d * e + 2 * n * d * e + 2 * n * d * e + r * (4 * d * e + 2 * s) + r * d * e
    return {"forward": forward, "backward": backward, "M": m, "B_c": bc, "B_r": br,
            "rows_passed": r}


def forward_share(stack) -> float:
    """The forward's share of a flash layer's FLOPs (all scope): forward over forward +
    backward + recomputed, as ``zoo.flash_terms`` counts them."""
    from architectures import zoo
    t = zoo.flash_terms(1, 1, stack.n, stack.d_head, stack.attn.block_at(stack.n),
                        stack.causal).values()
    fwd = sum(x.fwd("all") for x in t)
    return fwd / sum(x.train("all") for x in t)


def fuse(regions, stacks, dtype: str, profile) -> tuple[list, tuple]:
    """``(regions, notes)``: on a profile with on-chip memory (not a CPU's) each flash
    stack's regions replaced by its fused kernels (the module docstring); otherwise the
    regions as they are and no note."""
    from comparator.cost.pricing import DTYPE_BYTES, dtype_key
    flash = [s for s in stacks if s.attn.kind == "flash"]
    sram = getattr(profile, "sram_bytes", None)
    if profile.kind == "cpu" or not flash:
        return list(regions), ()
    if not sram:
        return list(regions), (f"flash attention priced as compiled here: {profile.device} "
                               "has no on-chip memory size for its fused kernel",)
    e = DTYPE_BYTES[dtype_key(dtype)]
    out, notes = list(regions), []
    for s in flash:
        names = {s.term(t) for t in TERMS}
        parts = tuple(r for r in out if r.term in names)
        if not parts:
            continue
        out = [r for r in out if r.term not in names]
        io = traffic(s.n, s.d_head, sram, e, s.causal)
        share = forward_share(s)
        flops = sum(r.flops * r.count for r in parts)
        trans = sum(r.transcendentals * r.count for r in parts)
        for direction, frac in (("forward", share), ("backward", 1 - share)):
            out.append(Region(
                f"flash attention, fused ({direction})", "fused", s.term("attn/scores"),
                round(frac * flops / s.layers), round(frac * trans / s.layers),
                s.heads * io[direction], None, dtype_key(dtype), count=s.layers,
                op="fused", parts=parts, share=frac))
        notes.append(
            f"{s.group + ' ' if s.group else ''}flash attention: one fused kernel per layer "
            f"and direction on {profile.device}'s {sram // 1024:,} KiB of on-chip memory "
            f"(M = {io['M']:,} {dtype} elements: tiles of {io['B_r']} query x {io['B_c']} "
            f"key rows), HBM traffic by FlashAttention's IO model ({SOURCE}): {s.heads} heads x "
            f"{io['forward']:,} bytes forward, {io['backward']:,} backward a layer; FLOPs "
            f"as compiled (recomputation included), {share:.0%} of them forward")
    return out, tuple(notes)


__all__ = ["SOURCE", "STAT_BYTES", "TERMS", "forward_share", "fuse", "passed_rows", "tiles",
           "traffic"]
