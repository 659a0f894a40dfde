"""Records priced on accelerators: time, dollars, energy, CO2 and memory of a run
(``Pricing`` of ``comparator.run.requests``), the step time by the time model or a flat
MFU (``Timer``), each device in its own training precision with ``dtype="auto"``.

``price_options`` turns a request's ``prices`` / ``price_kind`` / catalogue file into the
keyword arguments of ``pricing.train_cost`` (a date none of the devices has a price for is
refused, naming the earliest snapshot they have); ``unpriced`` is the row of a device a
request could not price, with the reason, so that ``"all"`` never drops a device.

``roofline`` (the default time model) prices a step by the time model of its compiled
regions on the device's profile (``comparator.cost.steptime``): a profile ``comparator
calibrate`` stored for that device, a ``profile`` file, else the datasheet profile (peak
and bandwidth x sourced achievable fractions, *uncalibrated*).  ``mfu`` is the flat
model, training FLOPs / (peak x one utilisation); it is what ``mfu`` and ``calibration``
mean, and what the paper conventions that define an MFU use.
"""
from __future__ import annotations

import architectures
from comparator.cost import prices as pr
from comparator.cost.catalogue import CatalogueError, load_ranges
from comparator.run.sweep import RequestError, check_policy


class Timer:
    """Step times of the records of one request: profiles resolved once per device, the
    compiled regions of a model and length once (``steptime`` caches them).  ``model``:
    ``roofline`` or ``mfu``; ``profile``: a device profile file; ``db``: the results store
    holding calibrated profiles and compiled regions."""

    def __init__(self, model: str, profile: str | None = None, db: str | None = None):
        self.model, self.profile_file, self.db = model, profile, db
        self.store, self.profiles = None, {}

    def _store(self):
        if self.store is None:
            from comparator.run.store import Store
            self.store = Store(self.db)
        return self.store

    def profile(self, acc):
        """The device's profile; a device without one (no bandwidth in the catalogue) is a
        ``CostError``, which a request pricing several devices skips, naming the reason."""
        from comparator.cost.devices import for_device
        from comparator.cost.profile import ProfileError
        from comparator.cost.pricing import CostError
        if acc.name not in self.profiles:
            try:
                self.profiles[acc.name] = for_device(self.profile_file or acc.name,
                                                     self._store(), expect=acc.name)
            except ProfileError as err:
                self.profiles[acc.name] = CostError(err.field, err.value, err.allowed)
        got = self.profiles[acc.name]
        if isinstance(got, Exception):
            raise got
        return got

    @property
    def step_seconds(self):
        """For the scenario: ``(mod, cfg, seq, batch, dtype, acc) -> (seconds, assumptions)``
        by the time model, or None under the flat one."""
        if self.model == "mfu":
            return None

        def seconds(mod, cfg, seq, batch, dtype, acc):
            from comparator.cost import steptime
            st = steptime.predict(mod, cfg, seq, batch, dtype, self.profile(acc),
                                  self._store())
            return st.total_s, steptime.fields(st)["time_assumptions"]
        return seconds

    def cost_kwargs(self, rec: dict, cfg, acc, devices: int, dtype: str,
                    policy: str | None = None) -> tuple[dict, dict]:
        """(keyword arguments for ``with_cost``, fields to add to the record); the step
        timed with its layers under the memory ``policy`` (None: the default), whose
        recomputation the hardware FLOPs count."""
        if self.model == "mfu" or cfg is None:
            return {}, {}
        from comparator.cost import steptime
        from comparator.cost.pricing import CostError, dtype_key, resolve_dtype
        dtype = resolve_dtype(dtype, acc)       # "auto": the device's training precision
        per_device = -(-rec["batch"] // devices)
        try:
            acc.peak(dtype_key(dtype))          # a dtype the device lacks: skipped, named
        except CatalogueError as err:
            raise CostError("--dtype", dtype, err.allowed) from None
        prof = self.profile(acc)
        try:
            if hasattr(cfg, "step_time"):   # a user's model (run.usermodel.UserStep)
                st = cfg.step_time(rec["seq_len"], per_device, dtype_key(dtype), prof)
            else:
                st = steptime.predict(architectures.get(rec["arch"]), cfg, rec["seq_len"],
                                      per_device, dtype_key(dtype), prof, self._store(),
                                      policy)
        except Exception as err:   # a model XLA:CPU cannot compile here: said, not guessed
            return {}, {"time_model_failed": f"{type(err).__name__}: {err}"[:200]}
        f = steptime.fields(st)
        return ({"step_time_s": f["step_time_s"], "time_model": f["time_assumptions"]},
                {**{k: v for k, v in f.items() if k != "time_assumptions"},
                 **({} if hasattr(cfg, "step_time") else utilisation_fields(
                     rec, cfg, per_device, st.total_s, acc.peak(dtype_key(dtype)), policy))})


def utilisation_fields(rec: dict, cfg, per_device: int, step_s: float, peak: float,
                       policy: str | None = None) -> dict:
    """MFU and HFU (``count.utilisation``, PaLM App. B) of one device's step of
    ``per_device`` sequences in ``step_s`` seconds: its model FLOPs (forward + backward)
    and hardware FLOPs (+ what the model recomputes: reversible layers, flash attention,
    and under the ``checkpoint`` policy every layer's forward) in the record's scope, over
    ``step_s`` x ``peak``.  Not for a user's model: its traced count does not say which
    FLOPs are recomputed (the table shows the time model's MFU of its traced FLOPs)."""
    from comparator.count import utilisation as ut
    terms = architectures.get(rec["arch"]).terms(cfg, per_device, rec["seq_len"])
    # the Reformer's terms count its reversible layers' recomputation whatever the policy
    # (one forward of every layer again: what checkpointing would add), so checkpoint adds
    # nothing to them (count.utilisation refuses it for the Reformer)
    recompute = "checkpoint" if policy == "checkpoint" and rec["arch"] != "reformer" \
        else "none"
    model, hardware = (int(x) for x in ut.split(terms, rec.get("scope", "matmul"),
                                                recompute))
    return {"model_flops_per_device": model, "hardware_flops_per_device": hardware,
            "model_flops_utilisation": model / (step_s * peak) if step_s else None,
            "hardware_flops_utilisation": hardware / (step_s * peak) if step_s else None}


def accelerators(names, overrides: str | None = None) -> list:
    """Catalogue entries of ``names`` (``("all",)``: every one), with an overrides file."""
    from comparator.cost.catalogue import load, lookup
    try:
        cat = load(overrides=overrides)
        names = list(cat) if tuple(names) == ("all",) else names
        return [lookup(cat, n) for n in names]
    except CatalogueError as err:
        field = "--accelerator" if err.field == "accelerator" else err.field
        raise RequestError(field, err.value, err.allowed) from None


def price_options(accs, p) -> dict:
    """``{"prices": date or None, "price_kind": kind, "ranges": distributions}`` of the
    ``Pricing`` ``p`` for the devices ``accs``: a date none of them has a ``price_kind``
    snapshot on or before is refused, as is a bad ``[ranges]`` table in the catalogue file."""
    try:
        pr.check_as_of(accs, p.as_of, p.price_kind, p.prices)
        ranges = load_ranges(overrides=p.accelerators_file)
    except CatalogueError as err:
        raise RequestError(err.field, err.value, err.allowed) from None
    return {"prices": p.as_of, "price_kind": p.price_kind, "ranges": ranges}


def train_kwargs(p, accs) -> dict:
    """The keyword arguments of ``pricing.train_cost`` a ``Pricing`` gives on ``accs``."""
    return dict(devices=p.devices, dtype=p.dtype, mfu=p.mfu, runs=p.runs, pue=p.pue,
                grid_intensity=p.grid_intensity, **price_options(accs, p))


def cost_kwargs(p, accs) -> dict:
    """The keyword arguments of ``with_cost`` a ``Pricing`` gives on ``accs``."""
    return dict(train_kwargs(p, accs), policy=p.policy, zero=p.zero, largest=p.largest)


def calibrated(p, acc, kw: dict, arch: str | None, convention: str) -> dict:
    """``kw`` with the calibration file's measured MFU for ``acc`` (``p.calibration``)."""
    if not p.calibration:
        return kw
    from comparator.cost import measured_mfu as cal
    from comparator.cost.pricing import resolve_dtype
    try:
        mfu, source = cal.mfu_for(cal.load(p.calibration), acc, resolve_dtype(p.dtype, acc),
                                  arch, convention)
    except cal.CalibrationError as err:
        raise RequestError(err.field, err.value, err.allowed) from None
    return {**kw, "mfu": mfu, "mfu_source": source}


def priced(recs, p, cfgs: dict, timer: Timer, convention: str = "standard",
           steps_of=None) -> tuple[list, list]:
    """(each record once per accelerator of ``p`` with its cost fields, the devices not
    priced, each named with its reason).  A device that cannot price a record (no such
    dtype, no MFU) is a visible ``unpriced`` row when there are several, an error when it
    is the only one.
    ``cfgs``: ``{(arch, preset): Config}`` of the records' models; ``steps_of(rec)``: the
    steps of the run (default: ``p.steps``, or ``p.tokens`` / tokens per step, or 1)."""
    from comparator.cost import pricing as cm
    if steps_of is None:
        def steps_of(r):
            return (cm.tokens_to_steps(p.tokens, r["batch"], r["seq_len"]) if p.tokens
                    else p.steps or 1)
    accs = accelerators(p.accelerators, p.accelerators_file)
    kw, out, skipped = cost_kwargs(p, accs), [], {}
    for acc in accs:
        for r in recs:
            if r["train_flops"] is None:    # not defined by its convention: nothing to price
                out.append(r)
                continue
            cfg = cfgs.get((r["arch"], r["preset"]))
            try:
                rkw = own_policy(calibrated(p, acc, kw, r["arch"], convention), r)
                tkw, extra = timer.cost_kwargs(r, cfg, acc, kw["devices"], kw["dtype"],
                                               rkw.get("policy"))
                out.append(with_tokens({**with_cost(r, acc, steps_of(r), cfg=cfg, **rkw, **tkw),
                                        **extra}, p.tokens))
            except cm.CostError as err:
                if len(accs) == 1:
                    raise RequestError(err.field, err.value, err.allowed) from None
                skipped[acc.name] = err.allowed       # a visible row says why
                out.append(unpriced(r, acc, err.allowed))
    return out, [f"{k} ({v})" for k, v in skipped.items()]


def own_policy(kw: dict, rec: dict) -> dict:
    """``kw`` for one record: a record whose architecture has not the requested memory
    policy is sized under its own default, which its ``memory_policy`` names.  Only a
    baseline can be one (the Transformer beside ``--policy reversible`` for the
    Reformer): the request refused every model asked for that lacks it
    (``requests.policy_archs``)."""
    policy = kw.get("policy")
    if policy is None or policy in architectures.get(rec["arch"]).POLICIES:
        return kw
    return {**kw, "policy": None}


def with_tokens(rec: dict, tokens: int | None) -> dict:
    """``rec`` (priced: it has ``assumptions``) with a note when its run's ``tokens`` were
    rounded up to whole steps."""
    from comparator.cost.pricing import tokens_note
    note = tokens_note(tokens, rec["batch"], rec["seq_len"])
    if note:
        rec["assumptions"] = {**rec["assumptions"], "tokens": note}
    return rec


def time_ratios(recs: list) -> list:
    """Each priced record compared with its baseline's on the same device: the ratios of
    step time and dollars beside the FLOP ratio (they differ where the time model says)."""
    base = {(r["arch"] + ":" + r["preset"], r["seq_len"], r["batch"], r.get("accelerator")): r
            for r in recs if "step_time_s" in r}
    for r in recs:
        b = base.get((r.get("baseline"), r["seq_len"], r["batch"], r.get("accelerator")))
        if b is not None and "step_time_s" in r and b["step_time_s"]:
            r["ratio_time"] = r["step_time_s"] / b["step_time_s"]
            if r.get("dollars") is not None and b.get("dollars"):
                r["ratio_dollars"] = r["dollars"] / b["dollars"]
    return recs


def unpriced(rec: dict, acc, reason: str) -> dict:
    """A row for ``acc`` that says why it has no time or cost: the record (its counts,
    every field of the record contract) with ``not_priced`` and the gap named."""
    return {**rec, "accelerator": acc.name, "not_priced": reason,
            "missing": {"step_time_s": f"{acc.name}: {reason}"}}


def with_cost(rec: dict, acc, steps: int, *, devices: int = 1, dtype: str = "auto",
              mfu=None, runs: int = 1, pue: float = 1.1, grid_intensity: float = 0.4,
              policy: str | None = None, zero: bool = False, largest: bool = False,
              cfg=None, mfu_source: str | None = None, step_time_s: float | None = None,
              time_model: dict | None = None, prices=None, price_kind: str = "on-demand",
              ranges: dict | None = None) -> dict:
    """A record with the cost of ``steps`` training steps on ``devices`` x ``acc`` added:
    time, dollars, energy, CO2 (one run and ``runs``), memory per device and whether it fits
    (``comparator.run.fits``: the traced step of ``cfg`` under ``policy``, default the
    architecture's own); ``zero``: shard the optimizer state over the devices (ZeRO-1);
    ``largest``: also search the largest batch and length that fit a device (traced peaks).
    A user's model (``cfg`` a ``usermodel.UserStep``): every activation stored, in closed
    form (``fits.closed_form_fields``).  ``dtype="auto"``: the device's training
    precision; ``prices``, ``price_kind``, ``ranges``: as ``pricing.train_cost``."""
    from comparator.cost import pricing as cm

    out = dict(rec)
    c = cm.train_cost(rec["train_flops"], steps, acc, devices=devices, dtype=dtype, mfu=mfu,
                      runs=runs, pue=pue, grid_intensity=grid_intensity, mfu_source=mfu_source,
                      step_time_s=step_time_s, time_model=time_model, prices=prices,
                      price_kind=price_kind, ranges=ranges)
    dtype = c["assumptions"]["dtype"]
    out.update({k: v for k, v in c.items() if k not in ("train_flops_per_step",)})
    from comparator.run.fits import closed_form_fields, memory_fields
    if hasattr(cfg, "step_time"):       # a user's model (run.usermodel.UserStep)
        out.update(closed_form_fields(rec, acc, dtype=dtype, devices=devices, zero=zero))
    elif cfg is None:
        raise RequestError("--arch", rec["arch"], "a model whose config is known (the memory "
                                                  "of its step is traced)")
    else:
        check_policy(rec["arch"], policy)
        out.update(memory_fields(rec, cfg, acc, policy=policy, dtype=dtype, devices=devices,
                                 zero=zero, largest=largest))
    out["accelerator"] = acc.name
    return out


__all__ = ["Timer", "accelerators", "calibrated", "cost_kwargs",
           "price_options", "priced", "time_ratios", "train_kwargs", "unpriced", "with_cost",
           "with_tokens"]
