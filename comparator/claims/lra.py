"""The Long Range Arena efficiency table (Tay et al. 2021, Table 2) for every attention
choice of ours it measured: local attention, Linformer, the Reformer's LSH and the
Performer, each against the vanilla Transformer at 1K-4K tokens on TPU v3 -- steps per
second and peak memory per device, recomputed from our counts (training FLOPs, the
memory model) and, on a time line, from the time model's predicted step times.

The claim is the table's direction: which choices train faster than the Transformer
(more steps per second) and which need less memory.  Our numbers agree with a published
one when they fall on the same side of 1 (fewer FLOPs or a shorter predicted step for a
faster model; less memory for a smaller one); the verdict is ``holds`` when all agree,
else ``holds except <choice> <speed|memory> [in FLOPs] [(<where it does>)]``.

Importing this module imports no jax; the time line compiles steps (``speed.Timing``).
"""
from __future__ import annotations

import dataclasses

from comparator.claims import speed as cs
from comparator.claims.checks import rec

LENGTHS = tuple(n for n, *_ in cs.LRA_TABLE)            # 1K, 2K, 3K, 4K
CHOICES = ("local", "linformer", "lsh", "performer")
LABELS = {"local": "local attention", "linformer": "Linformer", "lsh": "Reformer",
          "performer": "Performer"}
# Tay et al. 2021, Table 2 ("Benchmark results of all Xformer models with a consistent
# batch size of 32 ... Memory usage refers to per device memory usage across each TPU
# device. Benchmarks are run on 4x4 TPU V3 Chips"), byte-level text classification at
# 1K, 2K, 3K, 4K tokens: steps per second (the Transformer and Reformer rows are
# speed.LRA_TABLE's) and peak memory usage in GB.
STEPS_PER_S = {"transformer": tuple(t for _, t, _ in cs.LRA_TABLE),
               "local": (9.2, 8.4, 7.4, 7.4), "linformer": (9.3, 9.1, 8.5, 7.7),
               "lsh": tuple(r for *_, r in cs.LRA_TABLE), "performer": (9.5, 9.4, 8.7, 8.0)}
MEMORY_GB = {"transformer": (0.85, 2.65, 5.51, 9.48), "local": (0.42, 0.76, 1.06, 1.37),
             "linformer": (0.37, 0.55, 0.99, 0.99), "lsh": (0.48, 0.99, 1.53, 2.28),
             "performer": (0.37, 0.59, 0.82, 1.06)}
# The released code's defaults (google-research/long-range-arena, lra_benchmarks/models):
# local attention in blocks of 50 tokens attending within their block -- ours: windows
# of 16 seeing their own and both neighbours, 48 keys a query (a window must divide the
# length); Linformer low_rank_features=16 (one projection shared by keys and values; ours
# E and F); the Performer's default "generalized" attention with deterministic features
# maps queries and keys through ReLU to their own 64 dimensions -- ours draws 64 random
# features (FAVOR+), adding their projection.  The Reformer: speed.lra_models().
WINDOW, PROJ_LEN, FEATURES = 16, 16, 64
# "per device memory": JAX sees each TPU v3 core (16 GiB) as a device, 32 of them for
# the batch of 32: one sequence each; fp32 training with Adam (the released code's
# optimizer), parameters, gradients and two moments beside the activations.
MEMORY_BATCH, MEMORY_DTYPE = 1, "fp32"


def model(m, choice: str, n: int):
    """(arch, config) of the LRA model with attention ``choice`` at ``n`` tokens."""
    if choice == "lsh":
        return "reformer", cs.lra_reformer_at(m["lra-reformer"][1], n)
    arch, dense = m["lra-transformer"]
    if choice == "transformer":
        return arch, dense
    size = {"local": {"window": WINDOW}, "linformer": {"proj_len": PROJ_LEN},
            "performer": {"features": FEATURES}}[choice]
    return arch, dataclasses.replace(dense, attention=choice, **size)


def memory_bytes(r: dict) -> float:
    """A sweep record's bytes on one device (``pricing.memory_estimate``)."""
    from comparator.cost.pricing import memory_estimate
    return memory_estimate(r["params"], r["activation_bytes_per_seq"], MEMORY_BATCH,
                           dtype=MEMORY_DTYPE)["total_bytes"]


def _ratios(table: dict, choice: str, invert: bool = False) -> list:
    base = table["transformer"]
    return [(b / x if invert else x / b) for x, b in zip(table[choice], base)]


def published() -> dict:
    """{choice: {speedup, memory_ratio}} of Table 2 against its Transformer."""
    return {c: {"speedup": _ratios(STEPS_PER_S, c), "memory_ratio": _ratios(MEMORY_GB, c)}
            for c in CHOICES}


def judge(lengths, agree: dict, how: dict | None = None) -> str:
    """``holds`` when every (choice, quantity) agrees at every length, else ``holds
    except`` the ones that do not (``how[quantity]`` after each: "in FLOPs"), with where
    they do agree (``speed.range_verdict``) unless nowhere."""
    bad = []
    for (c, q), ok in agree.items():
        if all(ok):
            continue
        where = cs.range_verdict(lengths, ok)
        bad.append(f"{LABELS[c]} {q}" + (f" {how[q]}" if how and how.get(q) else "")
                   + ("" if where == "does not hold" else f" ({where})"))
    return "holds" if not bad else "holds except " + "; ".join(bad)


def _list(xs) -> str:
    return "/".join(f"{x:.2f}" for x in xs)


def efficiency(m, bench=None, lengths=LENGTHS, batch: int = cs.LRA_BATCH // cs.LRA_CHIPS):
    """Table 2's speedups and memory ratios beside our training FLOP ratios (all scope,
    ``batch`` sequences a chip) and memory ratios (one sequence a device)."""
    pub = published()
    recs = {c: [rec({c: model(m, c, n)}, c, n, batch) for n in lengths]
            for c in ("transformer", *CHOICES)}
    mem = {c: [rec({c: model(m, c, n)}, c, n, MEMORY_BATCH) for n in lengths]
           for c in ("transformer", *CHOICES)}
    flops = {c: [r["train_flops"] for r in rs] for c, rs in recs.items()}
    mbytes = {c: [memory_bytes(r) for r in rs] for c, rs in mem.items()}
    nums = {"lengths": list(lengths), "batch_per_chip": batch,
            "memory_batch_per_device": MEMORY_BATCH, "published_steps_per_s": STEPS_PER_S,
            "published_memory_gb": MEMORY_GB, "train_flops": flops, "memory_bytes": mbytes,
            "choices": {}}
    agree = {}
    for c in CHOICES:
        fr = [x / b for x, b in zip(flops[c], flops["transformer"])]
        mr = [x / b for x, b in zip(mbytes[c], mbytes["transformer"])]
        p = pub[c]
        nums["choices"][c] = {"published_speedup": p["speedup"], "flops_ratio": fr,
                              "published_memory_ratio": p["memory_ratio"], "memory_ratio": mr}
        agree[(c, "speed")] = [(s > 1) == (f < 1) for s, f in zip(p["speedup"], fr)]
        agree[(c, "memory")] = [(a < 1) == (b < 1) for a, b in zip(p["memory_ratio"], mr)]
    side = "; ".join(f"{LABELS[c]} {_list(v['published_speedup'])}x faster, FLOPs "
                     f"{_list(v['flops_ratio'])}x, memory {_list(v['published_memory_ratio'])}"
                     f"x (ours {_list(v['memory_ratio'])}x)" for c, v in nums["choices"].items())
    return judge(lengths, agree, {"speed": "in FLOPs"}), nums, (
        f"against the Transformer at {lengths[0]:,}-{lengths[-1]:,} tokens, published "
        f"speed and memory beside our training FLOPs (all scope, {batch} sequences a chip) "
        f"and memory ({MEMORY_BATCH} sequence a device, {MEMORY_DTYPE}, Adam): {side}.  "
        f"Our Transformer needs {mbytes['transformer'][-1] / 1e9:.2f} GB at "
        f"{lengths[-1]:,} tokens (published {MEMORY_GB['transformer'][-1]} GB); local "
        f"windows of {WINDOW} (3 a query), Linformer k = {PROJ_LEN}, Performer "
        f"{FEATURES} features, LSH as lra-reformer-speed")


def efficiency_time(m, timing, lengths=LENGTHS, batch: int = cs.LRA_BATCH // cs.LRA_CHIPS,
                    device: str = cs.LRA_DEVICE):
    """Predicted speedups (the Transformer's step time over each choice's) on ``device``
    beside the published ones: faster where Table 2 has it faster?"""
    pub = published()
    step = {c: [timing.step(*model(m, c, n), n, batch, device).total_s for n in lengths]
            for c in ("transformer", *CHOICES)}
    nums = {"device": device, **cs._profiles(timing, [device])[device],
            "batch_per_chip": batch, "step_s": step, "choices": {}}
    agree = {}
    for c in CHOICES:
        sp = [b / x for x, b in zip(step[c], step["transformer"])]
        nums["choices"][c] = {"predicted_speedup": sp, "published_speedup": pub[c]["speedup"]}
        agree[(c, "speed")] = [(a > 1) == (b > 1) for a, b in zip(sp, pub[c]["speedup"])]
    side = "; ".join(f"{LABELS[c]} {_list(v['predicted_speedup'])}x (published "
                     f"{_list(v['published_speedup'])}x)" for c, v in nums["choices"].items())
    return judge(lengths, agree), nums, (
        f"{cs.MODEL_TEXT} on {cs.profile_text(timing, [device])}: the Transformer's step "
        f"time over each choice's, {lengths[0]:,}-{lengths[-1]:,} tokens: {side}")


__all__ = ["CHOICES", "FEATURES", "LENGTHS", "MEMORY_GB", "PROJ_LEN", "STEPS_PER_S", "WINDOW",
           "efficiency", "efficiency_time", "judge", "model", "published"]
