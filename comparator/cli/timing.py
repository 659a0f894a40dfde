"""The step-time model in the cost commands (sweep --accelerator, cost, scenario, plot):
``--time-model roofline|mfu`` and ``--profile FILE``; argparse values in, plain values out.

``roofline`` (the default) prices a step by the time model of its compiled regions on the
device's profile (``comparator.cost.steptime``): a profile ``comparator calibrate`` stored
for that device, a ``--profile`` file, else the datasheet profile (peak and bandwidth x
sourced achievable fractions, *uncalibrated*).  ``mfu`` is the flat model, training FLOPs
/ (peak x one utilisation); it is what ``--mfu`` and ``--calibration`` mean, and what the
paper conventions that define an MFU use.
"""
from __future__ import annotations

from comparator.cost.steptime import TIME_MODELS
from comparator.cli.args import UsageError


def add_time_args(p) -> None:
    p.add_argument("--time-model", choices=TIME_MODELS,
                   help="how a step's FLOPs become seconds: roofline (default) = the time "
                        "model of the compiled step on the device's profile (calibrated by "
                        "'comparator calibrate', or datasheet x sourced fractions); mfu = "
                        "FLOPs / (peak x one flat MFU), the default with --mfu/--calibration")
    p.add_argument("--profile", help="a device profile JSON ('comparator calibrate -o FILE') "
                                     "describing the accelerator priced")


def time_model_of(a) -> str:
    """The time model ``a`` asks for (``--mfu``/``--calibration`` imply the flat one)."""
    tm = getattr(a, "time_model", None)
    flat = getattr(a, "mfu", None) is not None or bool(getattr(a, "calibration", None))
    conv = getattr(a, "convention", "standard") or "standard"
    if tm is None:
        return "mfu" if flat or conv != "standard" else "roofline"
    if tm == "roofline" and flat:
        raise UsageError("--time-model", tm, "mfu with --mfu or --calibration (a flat "
                                             "utilisation is the mfu model)")
    if tm == "roofline" and conv != "standard":
        raise UsageError("--time-model", tm, f"mfu with --convention {conv}: the time model "
                                             "times the traced step, which is ours")
    return tm


class Timer:
    """Step times of the records of one command: profiles resolved once per device, the
    compiled regions of a model and length once (``steptime`` caches them)."""

    def __init__(self, a, model: str | None = None):
        self.a, self.model = a, model or time_model_of(a)
        self.store, self.profiles = None, {}

    def _store(self):
        if self.store is None:
            from comparator.run.store import Store
            self.store = Store(getattr(self.a, "db", None))
        return self.store

    def profile(self, acc):
        """The device's profile; a device without one (no bandwidth in the catalogue) is a
        ``CostError``, which a command pricing several devices skips, naming the reason."""
        from comparator.cost.devices import for_device
        from comparator.cost.profile import ProfileError
        from comparator.cost.pricing import CostError
        if acc.name not in self.profiles:
            try:
                self.profiles[acc.name] = for_device(
                    getattr(self.a, "profile", None) or acc.name, self._store(),
                    expect=acc.name)
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

    def cost_kwargs(self, rec: dict, cfg, acc, devices: int, dtype: str) -> tuple[dict, dict]:
        """(keyword arguments for ``sweep.with_cost``, fields to add to the record)."""
        if self.model == "mfu" or cfg is None:
            return {}, {}
        import architectures
        from comparator.cost.catalogue import CatalogueError
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
            st = steptime.predict(architectures.get(rec["arch"]), cfg, rec["seq_len"],
                                  per_device, dtype_key(dtype), prof, self._store())
        except Exception as err:   # a model XLA:CPU cannot compile here: said, not guessed
            return {}, {"time_model_failed": f"{type(err).__name__}: {err}"[:200]}
        f = steptime.fields(st)
        return ({"step_time_s": f["step_time_s"], "time_model": f["time_assumptions"]},
                {k: v for k, v in f.items() if k != "time_assumptions"})


def predict_one(a, acc, mod, cfg, seq: int, batch: int):
    """``(StepTime, peak FLOP/s)`` of one step on ``acc`` at ``a.dtype`` by the time model,
    for the one-point commands (roofline, explain): a dtype the device lacks or a device
    without a profile is an input error naming the field."""
    from comparator.cost.catalogue import CatalogueError
    from comparator.cost import steptime
    from comparator.cost.pricing import DTYPE_BYTES, CostError, dtype_key
    key = dtype_key(a.dtype)
    try:
        if key not in DTYPE_BYTES:
            raise CatalogueError("--dtype", a.dtype, "a training dtype: " + ", ".join(DTYPE_BYTES))
        peak = acc.peak(key)
    except CatalogueError as err:
        raise UsageError("--dtype", a.dtype, err.allowed) from None
    timer = Timer(a, model="roofline")
    try:
        prof = timer.profile(acc)
    except CostError as err:
        raise UsageError(err.field, err.value, err.allowed) from None
    return steptime.predict(mod, cfg, seq, batch, key, prof, timer._store()), peak


def fused_roofline(a, arch, preset, mod, cfg, seq: int, batch: int, acc, top, convention):
    """``comparator roofline`` by the time model: seconds per term, their memory-bound
    share and the utilisation the step reaches, beside each term's training FLOPs."""
    from comparator.run import sweep
    from comparator.report import tables
    from comparator.cost import steptime
    st, peak = predict_one(a, acc, mod, cfg, seq, batch)
    rec = sweep.analytic(sweep.Point(arch, preset, seq, batch, cfg), "all")
    flops = rec["train_breakdown"]
    order = sorted(st.term_s, key=lambda k: -st.term_s[k])
    order = order[:top] if top else order
    rows = [{"term": k, "train FLOPs": flops.get(k, 0), "time s": st.term_s[k],
             "share": st.term_s[k] / st.total_s,
             "memory-bound": st.term_memory_share.get(k, 0.0)} for k in order]
    rows.append({"term": "total", "train FLOPs": rec["train_flops"], "time s": st.total_s,
                 "share": 1.0, "memory-bound": st.memory_share})
    summary = {"arch": arch, "preset": preset, "seq_len": seq, "batch": batch,
               "accelerator": acc.name, "dtype": a.dtype, "time_model": st.time_model,
               "profile": st.device, "calibrated": st.calibrated,
               "achieved_utilisation": st.utilisation, "bound_share": st.bound_share,
               "unmodelled_ops": st.unknown, "convention": convention,
               "regions": steptime.COMPILER_NOTE}
    conv_text = ""
    if convention != "standard":    # the paper's whole formula over the same step time
        conv = sweep.analytic(sweep.Point(arch, preset, seq, batch, cfg), "all",
                              convention)["train_flops"]
        summary.update(convention_train_flops=conv,
                       utilisation_convention=conv / (peak * st.total_s))
        conv_text = (f"  By the {convention} convention the step is {conv:.3g} training "
                     f"FLOPs: {summary['utilisation_convention']:.1%} of the {a.dtype} peak "
                     f"in the same time.")
    if a.format == "json":
        return tables.render([{**r, **(summary if r["term"] == "total" else {})}
                              for r in rows], "json")
    shown = [{**r, "share": f"{r['share']:.1%}", "memory-bound": f"{r['memory-bound']:.0%}"}
             for r in rows]
    b = st.bound_share
    cap = (f"{arch}:{preset}, seq {seq}, batch {batch}, training step on {acc.name} "
           f"({a.dtype}, profile {st.device}, "
           f"{'calibrated' if st.calibrated else 'uncalibrated: datasheet x sourced fractions'}"
           f"): {st.total_s:.3g} s per step by the time model, "
           f"{b.get('memory', 0):.0%} of it in memory-bound regions, "
           f"{b.get('overhead', 0):.0%} overhead-bound; achieved utilisation "
           f"{st.utilisation:.1%} of the best matmul rate.  Each compiled region takes "
           f"max(FLOPs / achievable rate for its kind and shape, bytes it moves / achievable "
           f"bandwidth) + a per-region overhead; {steptime.COMPILER_NOTE}; terms are the "
           f"FLOP breakdown's.  --time-model unfused: every traced equation through memory."
           + (f"  Unmodelled ops (bytes only): {st.unknown}." if st.unknown else "")
           + conv_text)
    return tables.render(shown, a.format, cap, label="tab:roofline")


def explain_times(a, mod, cfg, pt, rows):
    """``explain --accelerator``: each term's predicted seconds and memory-bound share
    beside its FLOPs (the time model on the device's profile), and a caption sentence."""
    from comparator.cost.catalogue import CatalogueError, get
    from comparator.cost import steptime
    try:
        acc = get(a.accelerator)
    except CatalogueError as err:
        raise UsageError("--accelerator", err.value, err.allowed) from None
    st, _ = predict_one(a, acc, mod, cfg, pt.seq, pt.batch)
    out = []
    for r in rows:
        t = st.total_s if r["term"] == "total" else st.term_s.get(r["term"], 0.0)
        mem = st.memory_share if r["term"] == "total" else st.term_memory_share.get(r["term"], 0)
        out.append({**r, "time_s": t, "memory_bound": mem})
    extra = sorted(set(st.term_s) - {r["term"] for r in rows})
    for k in extra:   # compiled regions outside every FLOP term (copies, layout changes)
        out.insert(-1, {"term": k, "time_s": st.term_s[k],
                        "memory_bound": st.term_memory_share.get(k, 0.0)})
    cap = (f"Time on {acc.name} ({a.dtype}, {st.time_model} time model, profile "
           f"{st.device}, {'calibrated' if st.calibrated else 'uncalibrated'}): "
           f"{st.total_s:.3g} s per step, {st.memory_share:.0%} memory-bound; "
           f"{steptime.COMPILER_NOTE}. ")
    return out, cap


__all__ = ["TIME_MODELS", "Timer", "add_time_args", "explain_times", "fused_roofline",
           "predict_one", "time_model_of"]
