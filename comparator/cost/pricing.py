"""Counts -> time, money, energy and memory on an accelerator (pure functions, no jax).

``train_cost`` turns training FLOPs per step into step time, wall-clock, device-hours,
dollars, energy and CO2, each with a low and a high (``ranges``), priced at today's or a
dated snapshot (``prices``) in the device's own training precision (``dtype="auto"``); ``memory_estimate`` adds up what one data-parallel device holds
(parameters, gradients, optimizer state, fp32 master weights, activations); ``fits`` and
``min_devices`` compare that with the device's memory.  Every returned record carries an
``assumptions`` dict with each number (and its catalogue source) the result depends on,
and a number that cannot be computed is None with its reason under ``missing``.

Units are SI: FLOP/s, seconds, bytes (1 GB = 1e9 bytes, as the catalogue), kWh, kg CO2.
Bad input is a ``CostError(field, value, allowed)`` naming the CLI option.
"""
from __future__ import annotations

import math

from comparator.cost import prices as pr
from comparator.cost import ranges as rg
from comparator.cost.catalogue import DTYPE_ALIASES, Accelerator, CatalogueError, load_ranges
from comparator.errors import FieldError

# storage width of parameters, gradients and activations per training dtype (tf32 is
# a matmul mode on fp32 storage; fp8 training keeps 16-bit weights, so it is not offered)
DTYPE_BYTES = {"fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2}
# fp32 optimizer-state bytes per parameter: Adam's two moments, SGD's momentum, plain SGD
OPTIMIZER_BYTES = {"adam": 8, "adamw": 8, "sgd-momentum": 4, "sgd": 0}
POLICIES = ("store_all", "checkpoint", "reversible")
FP32 = 4                       # activation_bytes from the architectures are fp32 residuals
MASTER_BYTES = 4               # fp32 master copy of each parameter under mixed precision
HEADROOM = 0.9                 # usable fraction of device memory by default
GB = 1e9


class CostError(FieldError):
    """Bad input to the cost model: names the field, the value and what is allowed."""


def _number(field, value, *, low=0.0, low_ok=False, high=None):
    """A finite real > low (>= low when ``low_ok``), <= high when given."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CostError(field, value, "a finite number")
    too_low = value < low if low_ok else value <= low
    if too_low or (high is not None and value > high):
        rng = f"{'[' if low_ok else '('}{low:g}, {high:g}]" if high is not None else \
            f"{'>=' if low_ok else '>'} {low:g}"
        raise CostError(field, value, f"a number {'in ' if high is not None else ''}{rng}")
    return value


def _count(field, value, low=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise CostError(field, value, f"an integer >= {low}")
    return value


def dtype_key(dtype) -> str:
    """A dtype name as the catalogue keys it (bfloat16 -> bf16, ...)."""
    return DTYPE_ALIASES.get(str(dtype).lower(), str(dtype).lower())


AUTO = "auto"


def auto_dtype(acc: Accelerator) -> tuple[str, str]:
    """``(dtype, why)``: the precision large models are trained in on ``acc``."""
    if acc.bf16 is not None:
        why = ("bf16: TPUs train in bfloat16 (their matrix units have no fp16 path)"
               if acc.kind == "tpu" else
               "bf16 mixed precision: the matrix cores run bf16 at the fp16 rate (CDNA 2/3 "
               "datasheet), so the wider-range format is used" if acc.vendor == "AMD" else
               "bf16 mixed precision: Ampere, Ada and later tensor cores run bf16 at the fp16 "
               "rate (A10G and L4 included), the default for training since the A100")
        return "bf16", why
    if acc.fp16 is not None:
        return "fp16", ("fp16 mixed precision with loss scaling: no bf16 on this device "
                        "(Volta/Turing tensor cores: fp16 inputs, fp32 accumulation)")
    return "fp32", "fp32: the device has no 16-bit peak in the catalogue"


def resolve_dtype(dtype, acc: Accelerator) -> str:
    """``dtype``, or with "auto" the device's own training precision."""
    return auto_dtype(acc)[0] if str(dtype).lower() == AUTO else dtype_key(dtype)


def _missing_reason(acc: Accelerator, field: str, default: str) -> str:
    """The catalogue's own reason for a missing number, else ``default``."""
    for item in acc.missing:
        head, _, why = item.partition(":")
        if head.strip() == field:
            return f"{acc.name}: {why.strip()}"
    return default


# ---------------------------------------------------------------- time, money, energy


def tokens_to_steps(tokens: int, batch: int, seq: int) -> int:
    """Steps to see ``tokens`` tokens with ``batch`` sequences of ``seq`` per step (ceil)."""
    _count("--tokens", tokens), _count("--batch", batch), _count("--seq", seq)
    return -(-tokens // (batch * seq))


def tokens_note(tokens: int | None, batch: int, seq: int) -> str | None:
    """What a run of ``tokens`` tokens became when they are not whole steps of ``batch``
    sequences of ``seq`` (``tokens_to_steps`` rounds up), else None."""
    per = batch * seq
    if not tokens or tokens % per == 0:
        return None
    steps = tokens_to_steps(tokens, batch, seq)
    return (f"{tokens:,} tokens are not whole steps of {per:,} (batch {batch} x seq {seq}): "
            f"rounded up to {steps:,} steps, {steps * per:,} tokens")


def train_cost(train_flops_per_step: float, steps: int, acc: Accelerator, *,
               devices: int = 1, dtype: str = "bf16", mfu: float | None = None,
               runs: int = 1, pue: float = 1.1, grid_intensity: float = 0.4,
               power_w: float | None = None, mfu_source: str | None = None,
               step_time_s: float | None = None, time_model: dict | None = None,
               prices=None, price_kind: str = "on-demand", ranges: dict | None = None) -> dict:
    """Time, device-hours, dollars, energy and CO2 of ``steps`` training steps.

    step_time = ``step_time_s`` when the time model predicted it (the step of one device's
    share of the batch; ``time_model``: its assumptions), else the flat model
    flops / (peak(dtype) x mfu x devices); wall-clock = steps x step_time;
    device-hours = devices x wall-clock / 3600; dollars = device-hours x price;
    energy = device-hours x power (kW) x PUE (power = TDP unless ``power_w``);
    CO2 = energy x grid_intensity (kg/kWh).  ``*_all_runs`` fields multiply by ``runs``
    (independent runs, e.g. seeds or a sweep; wall-clock as if run one after another).
    ``dtype="auto"``: the device's training precision (``auto_dtype``).  ``prices``: a
    date (``prices.as_of``) to price at the ``price_kind`` snapshot then in force, else
    the latest one.  Every time, device-hours, dollars, energy and CO2 field gets
    ``<field>_low``/``<field>_high`` from the ``ranges`` distributions (default: the
    catalogue's; ``comparator.cost.ranges``)."""
    _number("train_flops", train_flops_per_step)
    _count("--steps", steps), _count("--devices", devices), _count("--runs", runs)
    _number("--pue", pue, low=1.0, low_ok=True)
    _number("--grid-intensity", grid_intensity, low=0.0, low_ok=True)
    auto = str(dtype).lower() == AUTO
    dtype, dtype_why = auto_dtype(acc) if auto else (dtype_key(dtype), "given")
    try:
        peak = acc.peak(dtype)
    except CatalogueError as err:
        raise CostError("--dtype", dtype, err.allowed) from None
    if step_time_s is not None:
        _number("step_time_s", step_time_s)
        mfu = train_flops_per_step / (step_time_s * peak * devices)   # what it implies
        mfu_source = "implied by the time model's step time"
    elif mfu is None:
        if acc.default_mfu is None:
            raise CostError("--mfu", None, _missing_reason(
                acc, "default_mfu", f"{acc.name} has no default_mfu in the catalogue")
                + "; give an MFU in (0, 1]")
        mfu, mfu_source = acc.default_mfu, f"catalogue: {acc.mfu_source}"
    else:
        mfu_source = mfu_source or "given"
    if step_time_s is None:
        _number("--mfu", mfu, high=1.0)
    if power_w is not None:
        power, power_source = _number("--power", power_w), "given"
    else:
        power, power_source = acc.tdp_w, (f"catalogue TDP: {acc.sources.get('power', '')}"
                                          if acc.tdp_w is not None else None)

    step_time = (step_time_s if step_time_s is not None
                 else train_flops_per_step / (peak * mfu * devices))
    wall = steps * step_time
    hours = devices * wall / 3600
    missing = {}
    try:
        snap, no_price = pr.price_at(acc, prices, price_kind)
    except CatalogueError as err:
        raise CostError(err.field, err.value, err.allowed) from None
    dollars = None if snap is None else hours * snap.usd_per_hour
    if dollars is None:
        missing["dollars"] = f"{acc.name}: {no_price}"
    energy = co2 = None
    if power is None:
        missing["energy_kwh"] = missing["co2_kg"] = _missing_reason(
            acc, "tdp_w", f"{acc.name} has no TDP in the catalogue") + "; give --power"
    else:
        energy = hours * power / 1000 * pue
        co2 = energy * grid_intensity

    def times(x):
        return None if x is None else x * runs

    rec = {
        "train_flops_per_step": train_flops_per_step, "steps": steps, "runs": runs,
        "step_time_s": step_time, "wall_clock_s": wall, "device_hours": hours,
        "dollars": dollars, "energy_kwh": energy, "co2_kg": co2,
        "total_train_flops": train_flops_per_step * steps,
        "wall_clock_s_all_runs": wall * runs, "device_hours_all_runs": hours * runs,
        "dollars_all_runs": times(dollars), "energy_kwh_all_runs": times(energy),
        "co2_kg_all_runs": times(co2),
        "total_train_flops_all_runs": train_flops_per_step * steps * runs,
        "missing": missing,
        "assumptions": {
            "accelerator": acc.name, "dtype": dtype_key(dtype), "peak_flops": peak,
            "peak_source": acc.sources.get("peaks", ""), "mfu": mfu, "mfu_source": mfu_source,
            "achieved_flops": peak * mfu * devices, "devices": devices,
            "dtype_rule": dtype_why,
            "price_per_hour": snap and snap.usd_per_hour,
            "price_provider": snap and f"{snap.provider}, {snap.offer}".rstrip(", "),
            "price_date": snap and snap.date, "price_kind": price_kind,
            "price_source": snap and snap.source,
            "prices_as_of": prices.isoformat() if prices is not None else "latest",
            "power_w": power, "power_source": power_source, "pue": pue,
            "grid_intensity_kg_per_kwh": grid_intensity,
            "runs": "independent; *_all_runs = one run x runs",
            "time_model": (time_model or {}).get("time_model", "mfu"),
            **({k: v for k, v in (time_model or {}).items() if k != "time_model"}),
        },
    }
    return _with_ranges(rec, acc, mfu, pue, grid_intensity, snap, prices, price_kind,
                        ranges, energy)


def _with_ranges(rec, acc, mfu, pue, grid, snap, when, kind, ranges, energy) -> dict:
    """``rec`` with the low/high of every figure and the distributions in assumptions."""
    dist = load_ranges() if ranges is None else ranges
    # the offers the price is drawn from: every kind when on-demand is priced, else the kind
    offers = pr.offers_at(acc, when, None if kind == "on-demand" else kind) if snap else []
    fac = rg.factors(dist["utilisation"][:2], mfu, (pue, *dist["pue"][:2]),
                     (grid, *dist["grid_intensity"][:2]),
                     tuple(sorted(s.usd_per_hour for s in offers)),
                     snap.usd_per_hour if snap else None)
    rec.update(rg.spread(rec, fac, energy))
    rec["assumptions"]["ranges"] = rg.describe(
        dist["utilisation"][:2], dist["utilisation"][2], (pue, *dist["pue"][:2]),
        dist["pue"][2], (grid, *dist["grid_intensity"][:2]), dist["grid_intensity"][2],
        offers, when)
    return rec


# ---------------------------------------------------------------- memory


def memory_estimate(params: int, activation_bytes_per_seq: float, batch: int, *,
                    dtype: str = "bf16", optimizer: str = "adam", policy: str = "store_all",
                    layers: int | None = None, layer_boundary_bytes_per_seq: float | None = None,
                    zero: bool = False, devices: int = 1) -> dict:
    """Bytes one data-parallel device holds during a training step of ``batch`` sequences,
    in closed form from residual counts (no working set, no compiler).  Priced records use
    the traced peak of the real step instead (``comparator.run.fits``, validated against
    XLA by ``comparator memory``); this stays for quick what-ifs from a parameter count.

    ``activation_bytes_per_seq`` and ``layer_boundary_bytes_per_seq`` are fp32 bytes (as
    the sweep records' ``activation_bytes_per_seq``); both are scaled to the dtype width.
    Policies: ``store_all`` keeps every residual; ``checkpoint`` keeps each layer's input
    (boundary x batch x layers) and recomputes one layer at a time (store_all / layers);
    ``reversible`` takes the given bytes as already what a reversible stack keeps.
    ``zero=True`` (ZeRO-1) shards optimizer state and master weights over ``devices``."""
    _count("params", params, low=0), _count("--batch", batch), _count("--devices", devices)
    _number("activation_bytes", activation_bytes_per_seq, low=0.0, low_ok=True)
    key = dtype_key(dtype)
    if key not in DTYPE_BYTES:
        raise CostError("--dtype", dtype, "a training dtype: " + ", ".join(DTYPE_BYTES))
    if optimizer not in OPTIMIZER_BYTES:
        raise CostError("--optimizer", optimizer, "choose from " + ", ".join(OPTIMIZER_BYTES))
    if policy not in POLICIES:
        raise CostError("--policy", policy, "choose from " + ", ".join(POLICIES))
    width = DTYPE_BYTES[key]
    scale = width / FP32
    store_all = activation_bytes_per_seq * batch * scale
    if policy == "checkpoint":
        if layers is None or layer_boundary_bytes_per_seq is None:
            raise CostError("--policy", policy, "checkpoint needs layers and "
                                                "layer_boundary_bytes_per_seq")
        _count("--layers", layers)
        _number("layer_boundary_bytes", layer_boundary_bytes_per_seq, low=0.0, low_ok=True)
        activations = layer_boundary_bytes_per_seq * batch * layers * scale + store_all / layers
    else:
        activations = store_all
    shards = devices if zero else 1
    master = params * MASTER_BYTES if width < 4 else 0
    parts = {"parameters": params * width, "gradients": params * width,
             "optimizer": params * OPTIMIZER_BYTES[optimizer] / shards,
             "master_weights": master / shards, "activations": activations}
    return {
        **parts, "total_bytes": sum(parts.values()), "batch_per_device": batch,
        "assumptions": {
            "dtype": key, "bytes_per_parameter": width, "optimizer": optimizer,
            "optimizer_bytes_per_parameter": OPTIMIZER_BYTES[optimizer],
            "master_weights": "fp32 copy, 4 bytes/parameter" if master else "none (fp32 training)",
            "policy": policy, "layers": layers,
            "activation_scale": f"fp32 residuals x {width}/4 (int32 indices and boolean "
                                "masks scaled too: an approximation)",
            "checkpoint": ("layer inputs kept + one layer recomputed (store_all / layers; "
                           "embedding and head counted as spread over layers)"
                           if policy == "checkpoint" else None),
            "zero": "ZeRO-1: optimizer state and master weights / devices" if zero else "off",
            "devices": devices,
            "not_counted": "framework workspace, allocator fragmentation, temporaries "
                           "outside the residuals, input batches",
        },
    }


def usable_bytes(acc: Accelerator, headroom: float = HEADROOM) -> float:
    """The part of ``acc``'s memory a step may use: headroom x memory_gb x 1e9."""
    _number("--headroom", headroom, high=1.0)
    if acc.memory_gb is None:
        raise CostError("--accelerator", acc.name, "a device with memory_gb in the catalogue")
    return headroom * acc.memory_gb * GB


def fits(estimate: dict, acc: Accelerator, headroom: float = HEADROOM) -> bool:
    """Whether ``memory_estimate``'s per-device total fits in headroom x acc.memory_gb."""
    return estimate["total_bytes"] <= usable_bytes(acc, headroom)


def min_devices(params: int, activation_bytes_per_seq: float, batch: int, acc: Accelerator,
                *, headroom: float = HEADROOM, zero: bool = False, **memory) -> dict:
    """Fewest data-parallel devices whose per-device total fits, for a global ``batch``.

    With D devices each holds ceil(batch / D) sequences (at least one) and, with ``zero``,
    1/D of the optimizer state; parameters and gradients stay whole on every device.  D
    runs from 1 to ``batch``.  ``devices`` is None with a ``reason`` when even one
    sequence per device does not fit.  ``memory``: the other memory_estimate keywords."""
    _count("--batch", batch)
    usable = usable_bytes(acc, headroom)

    def at(d):
        return memory_estimate(params, activation_bytes_per_seq, -(-batch // d),
                               zero=zero, devices=d, **memory)

    notes = {"accelerator": acc.name, "memory_gb": acc.memory_gb, "headroom": headroom,
             "split": "ceil(batch / devices) sequences per device"}
    lo, hi = 1, batch            # per-device total is non-increasing in D: bisect
    if at(hi)["total_bytes"] > usable:
        est = at(hi)
        floor = est["parameters"] + est["gradients"] + est["activations"]
        why = (f"parameters + gradients + one sequence's activations alone are "
               f"{floor / GB:.3g} GB" if floor > usable else
               f"{batch} device(s) with one sequence each still need "
               f"{est['total_bytes'] / GB:.3g} GB")
        return {"devices": None, "usable_bytes": usable, "estimate": est,
                "reason": f"{why} > {usable / GB:.3g} GB usable on {acc.name} "
                          f"({headroom:g} x {acc.memory_gb:g} GB); data parallelism does "
                          "not shrink parameters, gradients or per-sequence activations"
                          + ("" if zero else " (ZeRO would shard the optimizer state)")
                          + "; needs model parallelism or a leaner policy/dtype",
                "assumptions": notes}
    while lo < hi:
        mid = (lo + hi) // 2
        if at(mid)["total_bytes"] <= usable:
            hi = mid
        else:
            lo = mid + 1
    return {"devices": lo, "usable_bytes": usable, "estimate": at(lo), "reason": None,
            "assumptions": notes}
