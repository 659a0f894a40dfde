"""The ``calibrate`` command: measure this device into a profile (a ``CalibrateRequest``
run by ``comparator.run.measuring``), print what was measured, write the profile's JSON
(``-o``) and keep it in the results store; ``--show`` prints a profile instead (a stored or
datasheet one, or a file)."""
from __future__ import annotations

import sys

from comparator.run import measuring
from comparator.run.measurerequests import CalibrateRequest
from comparator.report import tables
from comparator.cli.args import UsageError, add_output_options, build

UNITS = {"bandwidth": ("streaming bandwidth (read + write)", "B/s"),
         "vector_flops": ("elementwise arithmetic, compute-bound", "FLOP/s"),
         "transcendentals": ("transcendentals (exp, tanh)", "/s"),
         "sort": ("sort, int32 keys", "keys/s"),
         "gather": ("gather, bytes as XLA counts them", "B/s"),
         "scatter": ("scatter-add, bytes as XLA counts them", "B/s"),
         "overhead_s": ("overhead per compiled region", "s"),
         "first_touch": ("first writes to fresh memory (page faults)", "B/s"),
         "first_touch_min_bytes": ("least buffer taken afresh at every run", "B"),
         "reduce": ("adding reduction (row sum), bytes read", "B/s"),
         "reduce_max": ("comparing reduction (row max), bytes read", "B/s")}


def add_parser(sub, formats) -> None:
    c = sub.add_parser("calibrate", help="measure this device (matmuls over a grid of "
                       "shapes, bandwidth, elementwise, sort, gather, scatter, per-region "
                       "overhead) into a profile for the time model, or --show a profile")
    c.add_argument("--quick", action="store_true", help="a small grid and few repetitions "
                   "(under a minute on two cores; for tests)")
    c.add_argument("--dtype", help="matmul dtypes, comma separated: fp32 (default when "
                   "measuring), tf32, bf16, fp16; with --show, a datasheet profile's dtype "
                   "(default: every one the device has a peak for)")
    c.add_argument("-o", "--output", dest="profile_out", help="write the profile's JSON here")
    c.add_argument("--db", help="the results store that keeps profiles (default: "
                   "results.sqlite in $COMPARATOR_CACHE_DIR, else the user cache)")
    c.add_argument("--no-store", action="store_true", help="do not keep the measured "
                   "profile in the results store")
    add_output_options(c, formats, output=False)
    c.add_argument("--show", action="store_true", help="print a profile instead of "
                   "measuring: --profile FILE, --accelerator NAME (the stored calibrated "
                   "profile, else the datasheet one), or this machine's stored CPU profile")
    c.add_argument("--accelerator", help="with --show: a catalogue device; when measuring "
                   "on an accelerator: the catalogue name of the device measured")
    c.add_argument("--accelerators", help="a TOML/JSON file adding or overriding catalogue "
                   "entries")
    c.add_argument("--profile", help="with --show: a profile JSON file")


def _dtypes(text: str) -> list[str]:
    from comparator.cost.compiled import DTYPES, check_dtype
    names = [d.strip() for d in str(text).split(",") if d.strip()]
    try:
        out = list(dict.fromkeys(check_dtype(d) for d in names))
    except ValueError:
        out = []
    if not out:
        raise UsageError("--dtype", text, ", ".join(DTYPES) + " (comma separated)")
    return out


def _profile_error(err) -> UsageError:
    return UsageError(err.field, err.value, err.allowed)


def profile_rows(p) -> list[dict]:
    """One row per number of the profile: what, shape, value with its unit."""
    rows = [{"quantity": f"matmul {pt.dtype}", "shape (batch x m x k x n)":
             f"{pt.batch} x {pt.m} x {pt.k} x {pt.n}",
             "rate": tables.si(pt.flops_per_s) + "FLOP/s"} for pt in p.matmul]
    rows += [{"quantity": "transposing copy (bytes read + written)",
              "shape (batch x m x k x n)": f"runs of {run} elements",
              "rate": tables.si(rate) + "B/s"} for run, rate in p.transpose]
    for key, (what, unit) in UNITS.items():
        v = getattr(p, key)
        rate = ("not measured" if v is None else f"{v * 1e6:.3g} us" if unit == "s"
                else tables.si(v) + unit)
        rows.append({"quantity": what, "shape (batch x m x k x n)": "", "rate": rate})
    return rows


def _caption(p) -> str:
    sw = ", ".join(f"{k} {v}" for k, v in p.software.items())
    return (f"{p.device} ({p.kind}), {'calibrated' if p.calibrated else 'UNCALIBRATED'}, "
            f"{p.date}. Throughputs are the marginal cost of one more such op in a compiled "
            f"program, without the per-region overhead. Software: {sw}. Source: {p.source}")


def _render(p, fmt: str) -> str:
    from comparator.cost.profile import to_dict
    if fmt == "json":
        import json
        return json.dumps(to_dict(p), indent=2) + "\n"
    return tables.render(profile_rows(p), fmt, _caption(p), label="tab:profile")


def calibrate_request(a) -> CalibrateRequest:
    return build(CalibrateRequest, a, show=a.show, quick=a.quick,
                 dtypes=_dtypes(a.dtype) if a.dtype is not None else None, profile=a.profile,
                 accelerator=a.accelerator, accelerators_file=a.accelerators, db=a.db,
                 no_store=a.no_store)


def cmd_calibrate(a) -> str:
    from comparator.cost.profile import ProfileError, save
    req = calibrate_request(a)
    if req.show:
        p = measuring.show_profile(req)
        try:
            if a.profile_out:
                save(p, a.profile_out)
        except ProfileError as err:
            raise _profile_error(err) from None
        return _render(p, a.format)

    def progress(i, n, what):
        if sys.stderr.isatty():
            sys.stderr.write(f"\r[{i + 1}/{n}] {what:<60}")
            sys.stderr.flush()

    def keep(p):
        if sys.stderr.isatty():
            sys.stderr.write("\n")
        try:
            if a.profile_out:
                save(p, a.profile_out)
        except ProfileError as err:
            sys.stdout.write(_render(p, a.format))   # measured: print it before the error
            raise _profile_error(err) from None

    return _render(measuring.calibrate(req, progress, keep), a.format)


__all__ = ["add_parser", "calibrate_request", "cmd_calibrate", "profile_rows"]
