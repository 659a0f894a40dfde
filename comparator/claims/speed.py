"""Claims of speed, checked in time as well as in FLOPs (issue 14): the Long Range Arena
speed comparison, and the time-model line of every claim about speed or cost.

A *time line* is a function ``(models, timing) -> (time_verdict, numbers, text)``: the
claim judged from step times that the time model predicts (``comparator.cost.steptime``:
each compiled region of the training step takes max(FLOPs / achievable rate, bytes /
bandwidth) + an overhead, on a device profile) instead of from FLOPs.  ``Timing`` holds
what the time model needs: the results store (compiled regions kept on disk) and the
device profiles it resolves by name -- a profile ``comparator calibrate`` stored, else the
datasheet profile, *uncalibrated*, which every line says.  Importing this module imports
no jax; predicting a step does.
"""
from __future__ import annotations

import dataclasses

import architectures

from comparator.claims.checks import _baseline, models as flop_models, rec
from comparator.run.series import crossovers

# Tay et al. 2021, Long Range Arena (ICLR), Table 2 ("Benchmark results of all Xformer
# models with a consistent batch size of 32 ... run on 4x4 TPU V3 Chips"): training steps
# per second on byte-level text classification, (length, Transformer, Reformer).
LRA_TABLE = ((1024, 8.1, 4.4), (2048, 4.9, 2.2), (3072, 2.3, 1.5), (4096, 1.4, 1.1))
# App. A.1.2 (byte-level document classification): 6 layers, 8 heads, 512 hidden
# dimensions, 2048 for the FFN, batch 32 -- every model the same size.  4x4 TPU v3 = 16
# chips (32 cores); data parallel, 32 / 16 = 2 sequences per chip (the catalogue's device).
LRA_SIZES = {"d_model": 512, "n_layers": 6, "n_heads": 8, "d_ff": 2048}
LRA_BATCH, LRA_CHIPS, LRA_DEVICE = 32, 16, "tpu-v3"
# Not stated in the paper: ASSUMPTIONS.  Bytes: 256 symbols + padding.  LSH as the
# released code runs it (google-research/long-range-arena, models/reformer: one hash round,
# 10 buckets, the sorted sequence cut into n_hashes x n_buckets = 10 chunks, each seeing
# itself and the one before): chunks of seq / 8 here, the nearest count dividing every
# length.  Both models use the same MLP block (GELU).
LRA_VOCAB, LRA_HASHES, LRA_BUCKETS, LRA_CHUNKS = 257, 1, 10, 8
# reformer-crossover in time: lengths, devices, and a step of 32,768 tokens per device
CROSS_LENGTHS = (1024, 2048, 4096, 16384, 65536)
CROSS_DEVICES = ("h100-sxm", "tpu-v3")
TOKENS_PER_STEP = 32768
MODEL_TEXT = "the roofline of the compiled step's regions"


def lra_models() -> dict:
    """The LRA benchmark's two models at its sizes (the Reformer's chunk is per length)."""
    R = architectures.get("reformer")
    ref = dataclasses.replace(R.resize(R.preset("reformer-base"), **LRA_SIZES),
                              vocab=LRA_VOCAB, n_hashes=LRA_HASHES, n_buckets=LRA_BUCKETS,
                              act="gelu")
    dense = dataclasses.replace(R.transformer_baseline(ref), type_vocab=0)
    return {"lra-reformer": ("reformer", ref), "lra-transformer": ("transformer", dense)}


def models() -> dict:
    """Every claim's models by role: ``claimchecks.models()`` and the LRA pair."""
    return {**flop_models(), **lra_models()}


def lra_reformer_at(cfg, seq: int):
    """The LRA Reformer at ``seq``: the sorted sequence in ``LRA_CHUNKS`` chunks."""
    return dataclasses.replace(cfg, lsh_chunk=seq // LRA_CHUNKS)


class Timing:
    """The time model's inputs for the claims: device profiles by name (resolved once)
    and step times of compiled regions (cached by ``steptime`` per process and, with a
    ``store`` -- a ``comparator.run.store.Store`` -- on disk)."""

    def __init__(self, store=None):
        self.store, self._profiles = store, {}

    def profile(self, device: str):
        from comparator.cost.devices import for_device
        if device not in self._profiles:
            self._profiles[device] = for_device(device, self.store)
        return self._profiles[device]

    def step(self, arch: str, cfg, seq: int, batch: int, device: str, dtype: str = "bf16"):
        """The ``StepTime`` of one training step of ``batch`` sequences on ``device``."""
        from comparator.cost import steptime
        return steptime.predict(architectures.get(arch), cfg, seq, batch, dtype,
                                self.profile(device), self.store)

    def kernel(self, variant: str, n: int, device: str, *, batch: int, heads: int,
               d_head: int, chunk: int = 64, sizes: dict | None = None,
               dtype: str = "fp16"):
        """The ``StepTime`` of one attention kernel's forward + backward (a
        ``measure.kernelbench`` variant over ``batch`` x ``heads`` heads of ``n`` tokens),
        its compiled regions kept as a step's are; flash on an accelerator as its fused
        kernel (``cost.fusedflash``)."""
        from comparator.cost import fusedflash, steptime, timemodel
        from comparator.measure.kernelbench import train_regions
        key = ("kernel", variant, int(n), int(batch), int(heads), int(d_head), int(chunk),
               tuple(sorted((sizes or {}).items())), "fp32")
        regions = steptime.cached(key, lambda: train_regions(
            variant, n, batch=batch, heads=heads, d_head=d_head, chunk=chunk, sizes=sizes),
            self.store, f"the {variant} kernel at {n} tokens x {batch} x {heads} heads")
        profile = self.profile(device)
        regions, notes = fusedflash.fuse(steptime.retarget(regions, dtype, profile),
                                         _kernel_stacks(variant, n, batch, heads, d_head,
                                                        sizes), dtype, profile)
        return timemodel.predict(regions, profile, notes)

    def seconds(self, mod, cfg, seq, batch, dtype, acc):
        """``scenario.price``'s step_time: (seconds, the time model's assumptions)."""
        from comparator.cost import steptime
        st = steptime.predict(mod, cfg, seq, batch, dtype, self.profile(acc.name), self.store)
        return st.total_s, steptime.fields(st)["time_assumptions"]


def profile_text(timing: Timing, devices) -> str:
    """'tpu-v3, h100-sxm (uncalibrated: datasheet x sourced fractions)': the devices,
    grouped by whether their profile was measured."""
    groups: dict = {}
    for d in devices:
        groups.setdefault(bool(timing.profile(d).calibrated), []).append(d)
    return "; ".join(", ".join(ds) + (" (calibrated)" if cal else
                                      " (uncalibrated: datasheet x sourced fractions)")
                     for cal, ds in groups.items())


def _profiles(timing: Timing, devices) -> dict:
    return {d: {"profile": timing.profile(d).device,
                "calibrated": timing.profile(d).calibrated} for d in devices}


def range_verdict(lengths, ok) -> str:
    """Where a claim holds over ``lengths`` (``ok``: one bool per length): holds, does not
    hold, holds only below X (a prefix), holds only beyond X (a suffix), or holds only at
    the lengths listed."""
    ok = list(ok)
    if all(ok):
        return "holds"
    if not any(ok):
        return "does not hold"
    first_bad, last_bad = ok.index(False), len(ok) - 1 - ok[::-1].index(False)
    if not any(ok[first_bad:]):
        return f"holds only below {lengths[first_bad]:,} tokens"
    if not any(ok[:last_bad + 1]):
        return f"holds only beyond {lengths[last_bad]:,} tokens"
    return "holds only at " + ", ".join(f"{n:,}" for n, y in zip(lengths, ok) if y) + " tokens"


def _in(verdict: str, what: str) -> str:
    """A ``range_verdict`` as a phrase after 'holds in measured time'."""
    if verdict == "holds":
        return f" and in {what}"
    if verdict == "does not hold":
        return f", not in {what}"
    return f", in {what} " + verdict[len("holds "):]


def measured_verdict(lengths, published, flops) -> str:
    """A measured slowdown (time ratios > 1 where it holds) judged beside FLOP ratios:
    e.g. 'holds in measured time, not in FLOPs'."""
    measured = range_verdict(lengths, [r > 1 for r in published])
    head = {"holds": "holds in measured time",
            "does not hold": "does not hold in measured time"}.get(
        measured, "holds in measured time " + measured[len("holds "):])
    return head + _in(range_verdict(lengths, [r > 1 for r in flops]), "FLOPs")


def _ratios(xs) -> str:
    return ", ".join(f"{x:.2f}x" for x in xs)


# -- Long Range Arena --------------------------------------------------------------

def lra_speed(m, bench=None, table=LRA_TABLE, batch: int = LRA_BATCH // LRA_CHIPS):
    """Published Reformer/Transformer time ratios (steps/s of the Transformer over the
    Reformer's) beside the training FLOP ratio at the same sizes, per length."""
    lengths = [n for n, *_ in table]
    published = [t / r for _, t, r in table]
    ref = [rec({"r": ("reformer", lra_reformer_at(m["lra-reformer"][1], n))}, "r", n,
               batch)["train_flops"] for n in lengths]
    den = [rec(m, "lra-transformer", n, batch)["train_flops"] for n in lengths]
    flops = [r / d for r, d in zip(ref, den)]
    nums = {"lengths": lengths, "batch_per_chip": batch,
            "published_steps_per_s": {"transformer": [t for _, t, _ in table],
                                      "reformer": [r for *_, r in table]},
            "published_time_ratio": published, "reformer_train_flops": ref,
            "transformer_train_flops": den, "flops_ratio": flops}
    return measured_verdict(lengths, published, flops), nums, (
        f"Reformer/Transformer step time as published {_ratios(published)} at "
        f"{lengths[0]:,}-{lengths[-1]:,} tokens; training FLOPs {_ratios(flops)} (all scope, "
        f"{batch} sequences a chip; LSH: {LRA_HASHES} hash, {LRA_BUCKETS} buckets, chunks "
        f"of n/{LRA_CHUNKS}, as the released code; our Reformer is reversible, theirs not)")


def lra_speed_time(m, timing: Timing, table=LRA_TABLE, batch: int = LRA_BATCH // LRA_CHIPS,
                   device: str = LRA_DEVICE):
    """The time model's Reformer/Transformer step-time ratio on ``device`` per length,
    beside the published one: does it predict the Reformer slower?"""
    lengths = [n for n, *_ in table]
    published = [t / r for _, t, r in table]
    ref = [timing.step("reformer", lra_reformer_at(m["lra-reformer"][1], n), n, batch,
                       device).total_s for n in lengths]
    den = [timing.step(*m["lra-transformer"], n, batch, device).total_s for n in lengths]
    ratio = [r / d for r, d in zip(ref, den)]
    verdict = range_verdict(lengths, [r > 1 for r in ratio])
    nums = {"device": device, **_profiles(timing, [device])[device], "batch_per_chip": batch,
            "reformer_step_s": ref, "transformer_step_s": den, "time_ratio": ratio,
            "published_time_ratio": published,
            "predicted_steps_per_s": {"transformer": [1 / d for d in den],
                                      "reformer": [1 / r for r in ref]}}
    return verdict, nums, (
        f"{MODEL_TEXT} on {profile_text(timing, [device])}: Reformer/Transformer step time "
        f"{_ratios(ratio)} (published {_ratios(published)}); "
        f"{1 / den[0]:.3g}-{1 / den[-1]:.3g} Transformer steps/s predicted against "
        f"{table[0][1]}-{table[-1][1]} measured (the data-parallel all-reduce and input "
        f"pipeline are not modelled)")


# -- time lines of the FLOP claims ----------------------------------------------------

def _crossing(lengths, ref, den) -> tuple[str, float | None]:
    """(verdict, the length where ``ref`` falls below ``den``), as reformer_crossover."""
    found = crossovers({"reformer": list(zip(lengths, ref)), "dense": list(zip(lengths, den))})
    below = [c["x"] for c in found if c["a"] == "reformer"]
    if below:
        return f"holds only beyond {below[0]:,.0f} tokens", below[0]
    return ("holds" if all(r < d for r, d in zip(ref, den)) else "does not hold"), None


def _per_device(verdicts: dict) -> str:
    """One verdict when every device gives it, else 'dev: verdict; ...'."""
    if len(set(verdicts.values())) == 1:
        return next(iter(verdicts.values()))
    return "; ".join(f"{d}: {v}" for d, v in verdicts.items())


def crossover_time(m, timing: Timing, lengths=CROSS_LENGTHS, devices=CROSS_DEVICES,
                   tokens: int = TOKENS_PER_STEP):
    """Where the predicted step times of reformer-base and its dense Transformer cross."""
    base = {**m, "dense": _baseline(m, "reformer")}
    batches = [max(1, tokens // n) for n in lengths]
    flops = [rec(base, "reformer", n, b)["train_flops"] / rec(base, "dense", n, b)["train_flops"]
             for n, b in zip(lengths, batches)]
    flop_verdict, flop_x = _crossing(lengths, flops, [1.0] * len(lengths))
    nums = {"lengths": list(lengths), "batch": batches, "flops_ratio": flops,
            "flops_crossover": flop_x, "devices": {}}
    verdicts = {}
    for dev in devices:
        ref, den = ([timing.step(*base[role], n, b, dev).total_s
                     for n, b in zip(lengths, batches)] for role in ("reformer", "dense"))
        verdicts[dev], x = _crossing(lengths, ref, den)
        nums["devices"][dev] = {**_profiles(timing, [dev])[dev], "reformer_step_s": ref,
                                "dense_step_s": den, "crossover": x,
                                "time_ratio": [r / d for r, d in zip(ref, den)]}
    where = "; ".join(f"{d} {_ratios(v['time_ratio'])}" + (
        f", crossing at {v['crossover']:,.0f}" if v["crossover"] else "")
        for d, v in nums["devices"].items())
    return _per_device(verdicts), nums, (
        f"{MODEL_TEXT} on {profile_text(timing, devices)}, steps of {tokens:,} tokens "
        f"({batches[0]}-{batches[-1]} sequences): step-time ratio to dense over "
        f"{lengths[0]:,}-{lengths[-1]:,} tokens {where}; FLOPs {_ratios(flops)}"
        + (f", crossing at {flop_x:,.0f} on this grid" if flop_x else ""))


def _ratio_line(m, timing: Timing, roles, seq: int, batch: int, devices, target: float,
                tolerance: float):
    """The predicted step time of ``roles[0]`` over ``roles[1]`` on each device, judged
    within ``tolerance`` of ``target``: (verdict, numbers, the line's start, the ratios)."""
    ratio = {d: timing.step(*m[roles[0]], seq, batch, d).total_s
             / timing.step(*m[roles[1]], seq, batch, d).total_s for d in devices}
    verdict = _per_device({d: "holds" if abs(r / target - 1) <= tolerance else "does not hold"
                           for d, r in ratio.items()})
    nums = {"seq": seq, "batch": batch,
            "devices": {d: {**_profiles(timing, [d])[d], "time_ratio": r}
                        for d, r in ratio.items()}}
    return verdict, nums, (f"{MODEL_TEXT} on {profile_text(timing, devices)}, {batch} x "
                           f"{seq} tokens a step: "), ", ".join(f"{r:.2f}x ({d})"
                                                                for d, r in ratio.items())


def albert_time(m, timing: Timing, seq: int = 512, batch: int = 32,
                devices=("tpu-v3", "h100-sxm"), reported: float = 3.2,
                tolerance: float = 0.25):
    """albert-xxlarge / bert-large predicted step time against the reported 3.2x (within
    the FLOP check's 25%)."""
    verdict, nums, head, side = _ratio_line(m, timing, ("albert-xxlarge", "bert-large"), seq,
                                            batch, devices, reported, tolerance)
    return verdict, {**nums, "reported_speed_ratio": reported}, (
        f"{head}albert-xxlarge takes {side} bert-large's step time, reported {reported}x")


def electra_time(m, timing: Timing, seq: int = 512, batch: int = 32, devices=("tpu-v3",),
                 steps=(766_000, 1_000_000), tolerance: float = 0.1):
    """electra-base / bert-base predicted step time against the 1M/766k the claim needs."""
    target = steps[1] / steps[0]
    verdict, nums, head, side = _ratio_line(m, timing, ("electra-base", "bert-base"), seq,
                                            batch, devices, target, tolerance)
    return verdict, {**nums, "needed_ratio": target}, (
        f"{head}an ELECTRA-Base step takes {side} BERT-Base's, {target:.2f}x needed")


def cost_time(run_name: str):
    """One run's price with the time model's step times (``scenario.price``) on the
    scenario's accelerators, against the published range."""
    def check(m, timing: Timing):
        from comparator.cost import scenario as sc
        from comparator.cost.catalogue import load
        data = sc.load()
        run = next(r for r in data["runs"] if r["name"] == run_name)
        cat = load()
        names = data["meta"]["accelerators"]
        recs = [sc.price(run, cat[n], data["meta"]["tuning_runs"], step_time=timing.seconds)
                for n in names]
        nums = {"devices": {r["accelerator"]: {**_profiles(timing, [r["accelerator"]])[
            r["accelerator"]], "dollars": r["dollars"], "implied_mfu": r["mfu"],
            "device_hours": r["device_hours"]} for r in recs},
            "batch_per_device": sc.MICRO_BATCH}
        low, high = run["published_low"], run.get("published_high") or float("inf")
        inside = [r["accelerator"] for r in recs if low <= r["dollars"] <= high]
        d = [r["dollars"] for r in recs]
        mfu = [r["mfu"] for r in recs]
        side = ("within the published range on " + ", ".join(inside) if inside else
                f"{'below' if max(d) < low else 'outside'} the published ${low:,}"
                + (f"-${high:,}" if high != float("inf") else ""))
        return ("holds" if inside else "does not hold"), nums, (
            f"{MODEL_TEXT} on {profile_text(timing, names)}, {sc.MICRO_BATCH} sequences a "
            f"device: one run ${min(d):,.0f}-${max(d):,.0f} (implied MFU {min(mfu):.1%}-"
            f"{max(mfu):.1%}), {side}")
    return check


def _kernel_stacks(variant: str, n: int, batch: int, heads: int, d_head: int,
                   sizes: dict | None) -> tuple:
    """The attention a kernel variant is, as ``zoo.Stack``s (one layer): flash's (causal
    for ``flash-causal``); the others have no fused pricing."""
    from architectures import zoo
    from comparator.measure.kernelbench import SIZES
    if not variant.startswith("flash"):
        return ()
    block = {**SIZES, **(sizes or {})}["block"]
    return (zoo.Stack("", zoo.Attn("flash", block=block), batch * heads, n, d_head,
                      variant.endswith("causal"), 1),)


__all__ = ["CROSS_DEVICES", "CROSS_LENGTHS", "LRA_TABLE", "Timing", "albert_time",
           "cost_time", "crossover_time", "electra_time", "lra_models", "lra_speed",
           "lra_speed_time", "measured_verdict", "models", "range_verdict"]
