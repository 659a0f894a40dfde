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

from .cliargs import InputError

TIME_MODELS = ("roofline", "mfu")


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
        raise InputError("--time-model", tm, "mfu with --mfu or --calibration (a flat "
                                             "utilisation is the mfu model)")
    if tm == "roofline" and conv != "standard":
        raise InputError("--time-model", tm, f"mfu with --convention {conv}: the time model "
                                             "times the traced step, which is ours")
    return tm


class Timer:
    """Step times of the records of one command: profiles resolved once per device, the
    compiled regions of a model and length once (``steptime`` caches them)."""

    def __init__(self, a):
        self.a, self.model = a, time_model_of(a)
        self.store, self.profiles, self.failed = None, {}, {}

    def _store(self):
        if self.store is None:
            from .store import Store
            self.store = Store(getattr(self.a, "db", None))
        return self.store

    def profile(self, acc):
        from .cost.profile import ProfileError, for_device
        if acc.name not in self.profiles:
            try:
                self.profiles[acc.name] = for_device(
                    getattr(self.a, "profile", None) or acc.name, self._store(),
                    expect=acc.name)
            except ProfileError as err:
                raise InputError(err.field, err.value, err.allowed) from None
        return self.profiles[acc.name]

    def cost_kwargs(self, rec: dict, cfg, acc, devices: int, dtype: str) -> tuple[dict, dict]:
        """(keyword arguments for ``sweep.with_cost``, fields to add to the record)."""
        if self.model == "mfu" or cfg is None:
            return {}, {}
        import architectures
        from .cost import steptime
        from .costmodel import dtype_key
        per_device = -(-rec["batch"] // devices)
        prof = self.profile(acc)
        try:
            st = steptime.predict(architectures.get(rec["arch"]), cfg, rec["seq_len"],
                                  per_device, dtype_key(dtype), prof, self._store())
        except Exception as err:   # a model XLA:CPU cannot compile here: said, not guessed
            why = f"{type(err).__name__}: {err}"[:200]
            self.failed[(rec["arch"], rec["preset"], rec["seq_len"])] = why
            return {}, {"time_model_failed": why}
        f = steptime.fields(st)
        return ({"step_time_s": f["step_time_s"], "time_model": f["time_assumptions"]},
                {k: v for k, v in f.items() if k != "time_assumptions"})


__all__ = ["TIME_MODELS", "Timer", "add_time_args", "time_model_of"]
