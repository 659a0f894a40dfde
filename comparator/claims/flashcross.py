"""FlashAttention against approximate attention (Dao et al. 2022, Sec. 4.3 and App. E.6):
"the approximate attention runtimes begin to cross over with FlashAttention at sequences
between 512 and 1024" -- FlashAttention, exact, is faster on short sequences.

The published side is Table 20 (forward + backward runtime of the attention alone, no
dropout or masking, one A100 40 GB, batch 16, 8 heads of dimension 64, FP16), for the
approximate methods of the zoo it measured: Linformer, local attention and the
Reformer's LSH.  Each method's *crossover* is the first length from which it stays
faster than FlashAttention over every longer length both ran (``first_faster``); the
claim's "begin to cross over" is the earliest of them, judged to lie in (512, 1024].

Ours recomputes each kernel at the same shapes: its training FLOPs (``architectures``:
the zoo's terms, the Reformer's LSH terms) on the FLOP line, and on the time line the
time model's forward + backward of the kernel as compiled here
(``measure.kernelbench.train_regions``) on the uncalibrated a100-40gb profile, in fp16,
FlashAttention as the one fused kernel it is there (``cost.fusedflash``: its IO model on
the A100's 164 KiB of shared memory per SM), the others as compiled.
The benchmark compresses "by a ratio of 1/8, or to 256, whichever is smaller"
(``compressed``): Linformer's projected length, the local window and the LSH chunk.
Importing this module imports no jax.
"""
from __future__ import annotations

import architectures
from architectures import terms as T
from architectures import zoo

from comparator.claims import speed as cs

LENGTHS = tuple(128 * 2 ** k for k in range(10))            # 128 .. 65,536
APPROXIMATE = ("linformer", "local", "lsh")
LABELS = {"flash": "FlashAttention", "linformer": "Linformer", "local": "local attention",
          "lsh": "Reformer"}
# Dao et al. 2022, App. E.6, Table 20: "Forward pass + backward pass runtime (ms) of
# various exact/approximate/sparse attention mechanisms by sequence length" (no dropout,
# no masking), 128 .. 65,536 tokens; None: not run (out of memory on the 40 GB A100).
RUNTIME_MS = {
    "flash": (0.31, 0.31, 0.73, 2.29, 7.64, 30.09, 118.50, 470.51, 1876.08, 7492.85),
    "linformer": (1.31, 1.25, 1.30, 1.29, 3.20, 6.10, 11.93, 23.39, 46.72, 100.52),
    "local": (1.09, 1.27, 1.99, 5.38, 18.32, 36.77, 73.67, 147.29, 296.35, None),
    "lsh": (3.93, 7.01, 13.15, 25.89, 52.09, 105.00, 215.13, None, None, None),
}
# App. E.6 "Setup": 8 heads of dimension 64, batch 16, one A100 40 GB, FP16 (local
# attention FP32 -- its implementation's only precision).
BATCH, HEADS, D_HEAD, DEVICE, DTYPE = 16, 8, 64, "a100-40gb", "fp16"
CLAIMED = (512, 1024)          # "between 512 and 1024"
FLASH_BLOCK = 128              # ours (zoo.Attn().block); the CUDA kernel's tiles are its own
# Not stated for the Reformer: ASSUMPTIONS, the fewest hash rounds (the cheapest LSH, the
# one most likely to cross early) and the reference implementations' bucket rule.
LSH_HASHES = 1


def compressed(n: int) -> int:
    """App. E.6: "a compression ratio of 1/8, or a compressed sequence length of 256,
    whichever is smaller"."""
    return min(n // 8, 256)


def lsh_config(n: int):
    """The Reformer config whose LSH layer is the benchmark's: 8 heads of 64, one hash
    round, chunks of ``compressed(n)``."""
    R = architectures.get("reformer")
    return R.Config(d_model=HEADS * D_HEAD, n_heads=HEADS, n_hashes=LSH_HASHES,
                    lsh_chunk=compressed(n), axial_dims=(HEADS * D_HEAD // 2,) * 2)


def kernel_terms(choice: str, n: int) -> dict:
    """The FLOP terms of one kernel over ``BATCH`` x ``HEADS`` heads of ``n`` tokens."""
    b, h, dh, c = BATCH, HEADS, D_HEAD, compressed(n)
    if choice == "flash":
        return zoo.flash_terms(b, h, n, dh, min(FLASH_BLOCK, n), False)
    if choice == "linformer":
        return zoo.linformer_terms(b, h, n, dh, c)
    if choice == "local":
        return zoo.local_terms(b, h, n, dh, c, 1, 1, False)
    if choice == "lsh":
        return architectures.get("reformer").lsh_terms(lsh_config(n), b, n)
    raise ValueError(choice)


def train_flops(choice: str, n: int) -> int:
    return T.count(kernel_terms(choice, n), "all").train


def first_faster(lengths, mine, flash):
    """The first length from which ``mine`` stays below ``flash`` at every longer length
    where both have a value (None where there is none)."""
    both = [(n, a, b) for n, a, b in zip(lengths, mine, flash)
            if a is not None and b is not None]
    for i, (n, *_) in enumerate(both):
        if all(a < b for _, a, b in both[i:]):
            return n
    return None


def _first(cross: dict):
    found = [x for x in cross.values() if x is not None]
    return min(found) if found else None


def judge(first, lengths) -> str:
    """Holds when the earliest crossover lies in ``CLAIMED`` (after 512, by 1,024)."""
    if first is None:
        return f"does not hold (no crossing up to {lengths[-1]:,} tokens)"
    if CLAIMED[0] < first <= CLAIMED[1]:
        return "holds"
    return f"does not hold (first crossing at {first:,} tokens)"


def published_crossovers() -> dict:
    return {c: first_faster(LENGTHS, RUNTIME_MS[c], RUNTIME_MS["flash"]) for c in APPROXIMATE}


def _cross_text(cross: dict) -> str:
    return ", ".join(f"{LABELS[c]} " + (f"from {x:,} tokens" if x else "never")
                     for c, x in cross.items())


def crossover(m=None, bench=None, lengths=LENGTHS):
    """The published crossovers beside those of our training FLOPs (all scope)."""
    pub = published_crossovers()
    flops = {c: [train_flops(c, n) for n in lengths] for c in ("flash", *APPROXIMATE)}
    ours = {c: first_faster(lengths, flops[c], flops["flash"]) for c in APPROXIMATE}
    verdict = judge(_first(ours), lengths)
    nums = {"lengths": list(lengths), "batch": BATCH, "heads": HEADS, "d_head": D_HEAD,
            "published_runtime_ms": RUNTIME_MS, "published_crossover": pub,
            "published_first": _first(pub), "train_flops": flops, "flops_crossover": ours,
            "flops_ratio": {c: [a / f for a, f in zip(flops[c], flops["flash"])]
                            for c in APPROXIMATE}}
    ratios = "; ".join(f"{LABELS[c]} {nums['flops_ratio'][c][0]:.2f}x at {lengths[0]:,}, "
                       f"{nums['flops_ratio'][c][-1]:.3g}x at {lengths[-1]:,}"
                       for c in APPROXIMATE)
    return (verdict if verdict == "holds" else verdict.replace("does not hold",
                                                               "does not hold in FLOPs", 1)), \
        nums, (f"Table 20 (A100, batch {BATCH}, {HEADS} heads of {D_HEAD}) has approximate "
               f"attention faster than FlashAttention {_cross_text(pub)}; in "
               f"training FLOPs {_cross_text(ours)} (FlashAttention recomputes its "
               f"scores: more FLOPs than dense attention, fewer memory accesses -- what "
               f"FLOPs cannot see).  FLOPs over FlashAttention's: {ratios}; compressed "
               f"length min(n/8, 256), LSH {LSH_HASHES} hash round (assumed)")


def crossover_time(m, timing, lengths=LENGTHS, device: str = DEVICE):
    """The crossovers of the time model's predicted kernel times on ``device``."""
    steps = {c: [_kernel(timing, c, n, device) for n in lengths]
             for c in ("flash", *APPROXIMATE)}
    sec = {c: [st.total_s for st in v] for c, v in steps.items()}
    ours = {c: first_faster(lengths, sec[c], sec["flash"]) for c in APPROXIMATE}
    fused = list(dict.fromkeys(x for st in steps["flash"] for x in st.notes))
    nums = {"device": device, **cs._profiles(timing, [device])[device], "dtype": DTYPE,
            "predicted_ms": {c: [1e3 * s for s in v] for c, v in sec.items()},
            "crossover": ours, "published_crossover": published_crossovers(),
            **({"flash_priced": fused} if fused else {})}
    at = lengths.index(1024) if 1024 in lengths else -1
    return judge(_first(ours), lengths), nums, (
        f"kernels compiled here (XLA:CPU's fusion, not the CUDA kernels'"
        + ("; FlashAttention as its one fused kernel a layer and direction, HBM traffic by "
           "its IO model on the device's on-chip memory" if fused else "")
        + f"), forward + backward on {cs.profile_text(timing, [device])} in {DTYPE}: "
        f"approximate attention faster than FlashAttention {_cross_text(ours)}; at "
        f"{lengths[at]:,} tokens " + ", ".join(
            f"{LABELS[c]} {nums['predicted_ms'][c][at]:.3g} ms" for c in sec)
        + f" (published " + ", ".join(f"{RUNTIME_MS[c][LENGTHS.index(lengths[at])]}"
                                      for c in sec) + ")")


def _kernel(timing, choice: str, n: int, device: str):
    """The time model's ``StepTime`` of one kernel at the benchmark's shapes."""
    c = compressed(n)
    variant = f"lsh-{LSH_HASHES}" if choice == "lsh" else choice
    sizes = {"block": min(FLASH_BLOCK, n), "window": c, "proj_len": c}
    return timing.kernel(variant, n, device, batch=BATCH, heads=HEADS, d_head=D_HEAD,
                         chunk=c, sizes=sizes, dtype=DTYPE)


__all__ = ["APPROXIMATE", "LENGTHS", "RUNTIME_MS", "compressed", "crossover", "crossover_time",
           "first_faster", "judge", "kernel_terms", "lsh_config", "published_crossovers",
           "train_flops"]
