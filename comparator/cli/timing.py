"""The step-time model's options in the cost commands (sweep --accelerator, cost,
scenario): ``--time-model roofline|mfu`` and ``--profile FILE``.  The model itself and its
``Timer`` are the run room's (``comparator.run.costing``, ``comparator.run.steps``).
"""
from __future__ import annotations

from comparator.cost.steptime import TIME_MODELS


def add_time_args(p) -> None:
    p.add_argument("--time-model", choices=TIME_MODELS,
                   help="how a step's FLOPs become seconds: roofline (default) = the time "
                        "model of the compiled step on the device's profile (calibrated by "
                        "'comparator calibrate', or datasheet x sourced fractions); mfu = "
                        "FLOPs / (peak x one flat MFU), the default with --mfu/--calibration")
    p.add_argument("--profile", help="a device profile JSON ('comparator calibrate -o FILE') "
                                     "describing the accelerator priced")


__all__ = ["TIME_MODELS", "add_time_args"]
