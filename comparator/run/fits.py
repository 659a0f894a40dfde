"""Whether a training step fits a device, from the validated memory model.

The memory a priced record needs per device is the peak of its real training step traced
under its memory policy (``comparator.cost.stepmemory``: Adam with parameters and moments
donated, the record's dtype, ``ceil(batch / devices)`` sequences), with the schedule of
an accelerator's compiler (``memory``: a memory-minimising order, as XLA:GPU/TPU choose;
the model is validated against XLA on the CPU by ``comparator memory``).  ZeRO-1 divides
the optimizer moments by the devices.  A device fits the step when that peak is within
``pricing.HEADROOM`` of its memory: the rest is the stated allowance for the framework's
and allocator's own memory.

Beside the verdict: the fewest data-parallel devices that fit the global batch, and, when
asked (``largest``; ``--largest`` on the command line), per device the largest batch at
this length and the largest length (this length doubled or halved) at one sequence.
The peak is close to affine in the batch (every activation scales with it, parameters
and moments do not): the fewest devices come from the traced peaks at one and two
sequences; the largest batch is searched from that line's guess with traced peaks.

A user's model (``--model``) has no layers to checkpoint and no config to resize:
``closed_form_fields`` sizes it from its traced residuals (``pricing.memory_estimate``,
every activation stored), and says so in ``memory_model``.
"""
from __future__ import annotations

import architectures

SCHEDULE = "memory"
MAX_DOUBLINGS = 8


def _dtype(dtype: str) -> str:
    return dtype if dtype in ("fp32", "tf32", "fp16") else "bf16"


def memory_fields(rec: dict, cfg, acc, *, policy: str | None, dtype: str, devices: int = 1,
                  zero: bool = False, largest: bool = False) -> dict:
    """The memory fields of a record priced on ``devices`` x ``acc`` (module doc); the
    largest batch and length only with ``largest`` (None otherwise: each search traces
    several more steps, and a command pricing every device would spend minutes on them)."""
    from comparator.cost import pricing as cm
    from comparator.cost import stepmemory as sm
    mod = architectures.get(rec["arch"])
    policy = policy or mod.DEFAULT_POLICY       # one of mod.POLICIES (costing.with_cost checks)
    dt, seq = _dtype(dtype), rec["seq_len"]
    usable = cm.usable_bytes(acc)

    def need(batch, length=seq):
        return sm.estimate(mod, cfg, length, batch, policy, dt, SCHEDULE)

    def shard(e, d):     # ZeRO-1: each device keeps 1/d of the moments
        return e["optimizer"] * (1 - 1 / d) if zero else 0

    per_device = -(-rec["batch"] // devices)
    est = need(per_device)
    total = est["estimated_bytes"] - shard(est, devices)
    e1 = need(1)
    one, two = e1["estimated_bytes"], need(2)["estimated_bytes"]
    slope, base = two - one, 2 * one - two          # peak(b) ~ base + slope * b
    md = next((d for d in range(1, rec["batch"] + 1)
               if base - shard(e1, d) + slope * -(-rec["batch"] // d) <= usable), None)
    room = usable - base + shard(e1, devices)
    parts = {k: est[k] for k in sm.PARTS}
    if zero:
        parts["optimizer"] = est["optimizer"] / devices
    return {
        "memory_bytes_per_device": total, "memory": {**parts, "total_bytes": total,
                                                     "batch_per_device": per_device},
        "fits": total <= usable, "min_devices": md,
        "min_devices_reason": None if md else (
            f"one sequence per device needs {(one - shard(e1, rec['batch'])) / cm.GB:.3g} GB > "
            f"{usable / cm.GB:.3g} GB "
            f"usable on {acc.name}; needs model parallelism or a leaner policy/dtype"),
        "max_batch_per_device": _largest_batch(
            lambda b: need(b)["estimated_bytes"] - shard(e1, devices) <= usable,
            int(room // slope) if slope > 0 else None) if largest else None,
        "max_seq_per_device": _longest(
            lambda n: need(1, n)["estimated_bytes"] - shard(e1, devices) <= usable, mod, cfg,
            seq) if largest else None,
        "memory_policy": policy, "memory_model": (
            f"traced step peak (liveness of XLA's buffers, {SCHEDULE} schedule), {dt}, "
            f"Adam; {100 * (1 - cm.HEADROOM):.0f}% of device memory kept for the "
            "framework and allocator" + ("" if largest else "; largest batch and length "
                                          "per device not searched (--largest)")),
    }


def closed_form_fields(rec: dict, acc, *, dtype: str, devices: int = 1,
                       zero: bool = False) -> dict:
    """The memory fields of a user's model's record (module doc): parameters, gradients,
    Adam's moments and every traced residual, ``store_all``."""
    from comparator.cost import pricing as cm
    how = dict(dtype=_dtype(dtype), policy="store_all")
    mem = cm.memory_estimate(rec["params"], rec["activation_bytes_per_seq"],
                             -(-rec["batch"] // devices), zero=zero, devices=devices, **how)
    md = cm.min_devices(rec["params"], rec["activation_bytes_per_seq"], rec["batch"], acc,
                        zero=zero, **how)
    return {"memory_bytes_per_device": mem["total_bytes"],
            "memory": {k: v for k, v in mem.items() if k != "assumptions"},
            "fits": cm.fits(mem, acc), "min_devices": md["devices"],
            "min_devices_reason": md["reason"], "memory_policy": "store_all",
            "memory_model": "closed form from the traced residuals (a user's model: "
                            "not validated against XLA's buffers), Adam"}


def _largest_batch(fits, guess):
    """The largest batch ``fits`` accepts, searched from the affine ``guess`` (the peak
    is nearly affine in the batch; the search makes the answer the model's own)."""
    if guess is None or guess < 1:
        if not fits(1):
            return 0
        guess = 1
    lo, hi = (guess, None) if fits(guess) else (0, guess)
    step = 1                               # the guess is usually right: guess + 1 first
    while hi is None:                      # bracket: lo fits, hi does not
        hi = lo + step if not fits(lo + step) else None
        if hi is None:
            lo, step = lo + step, 2 * step
    if lo == 0:
        lo = guess - 1
        while lo and not fits(lo):
            hi, lo, step = lo, max(0, lo - step), 2 * step
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def _longest(fits, mod, cfg, seq: int):
    """The largest of seq x 2^k (k >= 0; or seq / 2^k when seq itself does not fit) whose
    step fits; None when none does.  A length the model refuses, or cannot trace (an LSH
    index past int32), ends the search."""
    def ok(s):
        try:
            return _valid(mod, cfg, s) and fits(s)
        except (ValueError, OverflowError):
            return False

    if ok(seq):
        best = seq
        for _ in range(MAX_DOUBLINGS):
            if not ok(best * 2):
                break
            best *= 2
        return best
    s = seq
    while s % 2 == 0 and s > 1:
        s //= 2
        if not _valid(mod, cfg, s):
            return None
        if ok(s):
            return s
    return None


def _valid(mod, cfg, seq: int) -> bool:
    from architectures.config import ConfigError
    try:
        mod.terms(cfg, 1, seq)
        return True
    except ConfigError:
        return False


__all__ = ["SCHEDULE", "closed_form_fields", "memory_fields"]
