"""Published pre-training runs priced on today's accelerators (``comparator scenario``).

``data/scenarios.toml`` lists runs in the shape of Sharir, Peleg & Shoham (2020): a model
(architecture + preset), its published schedule (phases of steps x batch x length, each
sourced, assumptions marked) and the published cost estimate.  ``price(run, acc)`` counts
the training FLOPs of every phase analytically (our conventions: the real backward per
term, MLM heads on the masked positions, BERT with the next-sentence head and pooler it was
pre-trained with, T5 targets 114/512 of the input) and turns them into device-hours,
dollars and energy with ``costmodel.train_cost`` at the catalogue's default MFU, for one
run and for the tuning runs the published upper ends include.
Each record says how our figure compares with the published range, and why it can differ.
"""
from __future__ import annotations

from importlib import resources

import architectures

from comparator.cost import files
from comparator.cost import pricing as cm
from comparator.errors import FieldError

PACKAGED = "data/scenarios.toml"
META_KEYS = ("estimate_source", "tuning_runs", "tuning_note", "accelerators")
RUN_KEYS = ("name", "arch", "preset", "phases", "schedule_source", "published",
            "published_low")


class ScenarioError(FieldError):
    """A bad scenarios file: names the field, the value and what is allowed."""


def validate(data: dict) -> dict:
    """``data`` when it has the shape of ``data/scenarios.toml``, else a ScenarioError."""
    meta = data.get("meta")
    if not isinstance(meta, dict) or any(k not in meta for k in META_KEYS):
        raise ScenarioError("meta", meta, "a [meta] table with " + ", ".join(META_KEYS))
    runs = data.get("runs")
    if not isinstance(runs, list) or not runs:
        raise ScenarioError("runs", runs, "one or more [[runs]] tables")
    for run in runs:
        missing = [k for k in RUN_KEYS if k not in run]
        if missing:
            raise ScenarioError(f"runs.{missing[0]}", None,
                                f"a value in run {run.get('name', '?')!r}: each run has "
                                + ", ".join(RUN_KEYS))
        if run["arch"] not in architectures.NAMES:
            raise ScenarioError("runs.arch", run["arch"], "one of " + ", ".join(architectures.NAMES))
        presets = architectures.get(run["arch"]).PRESETS
        if run["preset"] not in presets:
            raise ScenarioError("runs.preset", run["preset"], f"a {run['arch']} preset: "
                                + ", ".join(presets))
        ok = lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0
        for ph in run["phases"] if isinstance(run["phases"], list) else [None]:
            if not (isinstance(ph, dict) and all(ok(ph.get(k)) for k in ("steps", "batch", "seq"))):
                raise ScenarioError("runs.phases", ph, "tables of positive integers steps, "
                                                       "batch and seq")
    return data


def load(path: str | None = None) -> dict:
    if path is None:
        text = resources.files("comparator").joinpath(PACKAGED).read_text(encoding="utf-8")
        return validate(files.parse(text, "toml", PACKAGED, "--scenarios", "a readable TOML "
                                    "file", ScenarioError))
    return validate(files.load(path, "--scenarios", "a readable TOML file", "toml",
                               ScenarioError))


def dtype_for(acc) -> str:
    """The device's training precision (``pricing.auto_dtype``): bf16 where it has it,
    fp16 mixed precision on the V100 and T4."""
    return cm.auto_dtype(acc)[0]


# the time model predicts a step of this many sequences per device (a phase's batch is
# spread over as many devices as it takes; the step of the whole batch on one device is
# batch / MICRO_BATCH such steps): an assumption, stated in the notes
MICRO_BATCH = 32
# the figures summed over a run's phases (with their _low/_high)
SUMMED = ("device_hours", "wall_clock_s", "dollars", "energy_kwh", "co2_kg")


def _phases(run, mod, cfg, acc, runs, pue, grid_intensity, step_time, **price):
    """Per-phase ``train_cost`` records (the time model's step when ``step_time``)."""
    out = []
    for ph in run["phases"]:
        per_step = mod.flops(cfg, ph["seq"], ph["batch"]).train
        kw = {}
        if step_time is not None:    # the time model: a device's share of the batch
            micro = min(ph["batch"], MICRO_BATCH)
            seconds, timing = step_time(mod, cfg, ph["seq"], micro, dtype_for(acc), acc)
            kw = {"step_time_s": seconds * ph["batch"] / micro, "time_model": timing}
        out.append(cm.train_cost(per_step, ph["steps"], acc, dtype="auto", runs=runs, pue=pue,
                                 grid_intensity=grid_intensity, **kw, **price))
    return out


def _total(cs: list, key: str):
    vals = [c.get(key) for c in cs]
    return None if any(v is None for v in vals) else sum(vals)


def price(run: dict, acc, runs: int, pue: float = 1.1, grid_intensity: float = 0.4,
          catalogue=None, step_time=None, prices=None, price_kind: str = "on-demand",
          ranges: dict | None = None) -> dict:
    """One record: the run's FLOPs, tokens, device-hours, dollars and energy on ``acc``
    (each with its low and high) at today's prices; with ``prices`` (a date) also the
    ``*_period`` dollars at the snapshot then in force, beside today's.  With the run's
    ``reported`` hardware and a ``catalogue``, the MFU the original run reached (our
    FLOPs / (devices x hours x dense peak))."""
    mod = architectures.get(run["arch"])
    cfg = mod.PRESETS[run["preset"]][0]
    dtype = dtype_for(acc)
    cs = _phases(run, mod, cfg, acc, runs, pue, grid_intensity, step_time,
                 price_kind=price_kind, ranges=ranges)
    flops = sum(c["total_train_flops"] for c in cs)
    timing = cs[0]["assumptions"] if cs[0]["assumptions"]["time_model"] != "mfu" else {}
    a = cs[0]["assumptions"]
    low, high = run.get("published_low"), run.get("published_high")
    rec = {
        "run": run["name"], "arch": run["arch"], "preset": run["preset"],
        "params": mod.params(cfg),
        "steps": sum(ph["steps"] for ph in run["phases"]),
        "tokens": sum(ph["steps"] * ph["batch"] * ph["seq"] for ph in run["phases"]),
        "total_train_flops": flops, "accelerator": acc.name, "dtype": dtype,
        "dtype_rule": a["dtype_rule"], "peak_flops": acc.peak(dtype),
        "mfu_source": ("implied by the time model's step times" if timing
                       else acc.mfu_source),
        "time_model": a["time_model"], "calibrated": timing.get("calibrated"),
        "price_per_hour": a["price_per_hour"], "price_provider": a["price_provider"],
        "price_date": a["price_date"], "price_kind": price_kind,
        "price_source": a["price_source"], "runs": runs,
        "published": run["published"], "published_low": low, "published_high": high,
        "schedule_source": run["schedule_source"],
        "missing": {k: v for c in cs for k, v in c["missing"].items()},
        "ranges": a["ranges"],
    }
    for key in SUMMED:
        for k in (key, key + "_low", key + "_high"):
            rec[k] = _total(cs, k)
    rec["mfu"] = flops / (rec["device_hours"] * 3600 * acc.peak(dtype)) if timing \
        else acc.default_mfu
    for key in ("dollars", "energy_kwh"):
        for k in (key, key + "_low", key + "_high"):
            rec[k.replace(key, key + "_all_runs")] = None if rec[k] is None else rec[k] * runs
    if prices is not None:      # the same run at the prices listed then, beside today's
        ps = _phases(run, mod, cfg, acc, runs, pue, grid_intensity, step_time, prices=prices,
                     price_kind=price_kind, ranges=ranges)
        pa = ps[0]["assumptions"]
        rec.update({f"dollars_period{s}": _total(ps, "dollars" + s)
                    for s in ("", "_low", "_high")})
        rec["dollars_period_all_runs"] = (None if rec["dollars_period"] is None
                                          else rec["dollars_period"] * runs)
        rec.update(prices_as_of=prices.isoformat(), period_price_per_hour=pa["price_per_hour"],
                   period_price_date=pa["price_date"], period_price_source=pa["price_source"],
                   period_price_provider=pa["price_provider"],
                   period_missing=ps[0]["missing"].get("dollars"))
        rec["vs_published_period"] = compare(rec, "dollars_period")
    rec["vs_published"] = compare(rec)
    rec["range_vs_published"] = overlap(rec)
    # the utilisation at which our count costs the published low end on this device
    d = rec["dollars"]
    rec["mfu_to_match_low"] = rec["mfu"] * d / low if d is not None and low and rec["mfu"] \
        else None
    rep = run.get("reported")
    rec["reported_mfu"] = None
    if rep and catalogue is not None:
        from comparator.cost.catalogue import lookup
        dev = lookup(catalogue, rep["accelerator"])
        rec["reported_mfu"] = flops / (rep["devices"] * rep["hours"] * 3600 *
                                       dev.peak(dtype_for(dev)))
        rec["reported_hardware"] = (f"{rep['devices']} x {dev.name}, {rep['hours']} h "
                                    f"({rep['source']})")
    return rec


def compare(rec: dict, key: str = "dollars") -> str:
    """Where our one-run and all-runs dollars fall against the published range."""
    d, low, high = rec[key], rec["published_low"], rec["published_high"]
    if d is None:
        return "no price for this device" + (f" on or before {rec['prices_as_of']}"
                                             if key != "dollars" else "")
    parts = [f"1 run {d / low:.2g}x the low end"]
    if high:
        parts.append(f"{rec['runs']} runs {d * rec['runs'] / high:.2g}x the high end")
    return "; ".join(parts)


def overlap(rec: dict) -> str | None:
    """Our range (one run's low to ``runs`` runs' high, as the published range spans
    one run to the tuning runs) against the published range: overlap or the gap."""
    lo, hi = rec.get("dollars_low"), rec.get("dollars_all_runs_high")
    plo, phi = rec["published_low"], rec["published_high"]
    if lo is None or hi is None:
        return None
    ours = f"ours ${lo:,.0f}-${hi:,.0f}"
    if hi < plo:
        return f"{ours}: {plo / hi:.2g}x below the published low end"
    if phi is None:                     # "over $1.3M": a lower bound only
        return f"{ours} reaches the published lower bound ${plo:,.0f}"
    if lo > phi:
        return f"{ours}: {lo / phi:.2g}x above the published high end"
    return f"{ours} overlaps the published ${plo:,.0f}-${phi:,.0f}"


def records(accelerators, runs: int | None = None, path: str | None = None,
            pue: float = 1.1, grid_intensity: float = 0.4,
            catalogue=None, step_time=None, prices=None, price_kind: str = "on-demand",
            ranges: dict | None = None) -> tuple[list, dict]:
    """Records for every run x accelerator, and the file's ``meta`` table.  ``step_time``:
    ``(mod, cfg, seq, batch, dtype, acc) -> (seconds, time-model assumptions)`` (the time
    model), or None for the catalogue's flat MFU; ``prices``: a date to price each run at
    the snapshots then in force too (``*_period`` fields)."""
    data = load(path)
    meta = data["meta"]
    n = meta["tuning_runs"] if runs is None else runs
    out = []
    for run in data["runs"]:
        for acc in accelerators:
            out.append(price(run, acc, n, pue, grid_intensity, catalogue, step_time,
                             prices, price_kind, ranges))
    return out, meta


NOTES = (
    "Why ours can differ from the published ranges: (1) utilisation -- by default the time "
    "model predicts a step of 32 sequences per device from its compiled regions on the "
    "device's profile (MFU = what that implies); --time-model mfu applies the catalogue's "
    "default utilisation, measured on large, tuned runs; 'MFU to match' is the utilisation "
    "at which our count costs the published low end, and 'original MFU' what BERT's own "
    "run reached on the hardware and time its paper reports; (2) prices -- today's on-demand "
    "prices per device (--prices 2020 adds the prices listed then), and the low/high draw "
    "from every offer listed, spot and preemptible included; (3) counts "
    "-- ours are exact FLOPs of the architecture as pre-trained (BERT with its MLM and next-"
    "sentence heads and pooler, Hugging Face BertForPreTraining; MLM heads on masked positions "
    "only), where estimates usually use 6 x parameters x tokens; (4) GPT-2's step count is our "
    "assumption (none was published).")


__all__ = ["NOTES", "ScenarioError", "compare", "dtype_for", "load", "overlap", "price",
           "records", "validate"]
