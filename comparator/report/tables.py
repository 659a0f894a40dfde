"""The only place that renders tables: text and Markdown (tabulate), LaTeX with booktabs
rules, CSV and JSON."""
from __future__ import annotations

import csv
import io
import json
import math

import tabulate as _tabulate
from tabulate import tabulate

FORMATS = ("text", "markdown", "latex", "csv", "json")

CONVENTIONS = ("FLOPs: 1 multiply-add = 2 FLOPs; training step = forward + backward "
               "(backward derived per term; reversible layers add a forward recomputation); "
               "causal attention counted as computed (full masked product; causal flash "
               "attention skips its masked blocks, so they are not counted)")

_SI = ((1e24, "Y"), (1e21, "Z"), (1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"),
       (1e6, "M"), (1e3, "k"))


def si(x, digits: int = 3) -> str:
    """1.23e+12 -> '1.23 T' (SI prefixes, ``digits`` significant digits)."""
    x = float(x)
    for p, s in _SI:
        if abs(x) >= p:
            return f"{x / p:.{digits}g} {s}"
    return f"{x:.{digits}g}"


def latex_sci(x, digits: int = 2) -> str:
    """1.4e18 -> '$1.4\\times10^{18}$' (plain numbers below 10^4)."""
    x = float(x)
    if x == 0 or 1e-2 <= abs(x) < 1e4:
        return f"${x:.{digits + 1}g}$"
    e = math.floor(math.log10(abs(x)))
    m = x / 10 ** e
    if round(m, digits - 1) >= 10:
        m, e = m / 10, e + 1
    return f"${m:.{digits - 1}f}\\times10^{{{e}}}$"


def convention_text(convention: str = "standard") -> str:
    """The counting convention a table's numbers follow, as its caption states it."""
    if convention == "standard":
        return CONVENTIONS
    from comparator.count.conventions import FORMULAS, LABELS
    return (f"FLOPs by the {LABELS[convention]} convention, not ours: {FORMULAS[convention]}; "
            "parameters and activation memory as ours")


def caption(scope: str, per: str = "sequence", batch: int | None = None,
            baseline: bool = False, method: str | None = None,
            convention: str = "standard") -> str:
    unit = "per token" if per == "token" else (
        "per sequence" if batch in (None, 1) else f"per step of {batch} sequences")
    scope_txt = ("matmul scope: contractions only" if scope == "matmul" else
                 "all scope: contractions + elementwise, softmax, norms, hashing, sorting")
    parts = [convention_text(convention), scope_txt, f"FLOPs {unit}"]
    if method:
        parts.append(f"method: {method}")
    parts.append("attention share: scores, softmax, context and LSH work of the training "
                 "step, with Linformer's sequence projections and Performer's features "
                 "(q, k, v and output projections excluded)")
    parts.append("activations: fp32 tensors autodiff keeps for the backward, per sequence")
    if baseline:
        parts.append("ratio: training FLOPs over the baseline's at the same length "
                     "(and size)")
    return "; ".join(parts) + "."


# -- sweep table ------------------------------------------------------------------

def sweep_rows(records, per: str = "sequence", point: bool = False):
    """Flat rows for the sweep table; numbers stay numbers (formatted at render time),
    priced figures 'value (low-high)' unless ``point``."""
    for r in records:
        row = {"arch": r["arch"], "preset": r["preset"], "params": r["params"],
               **({"active params": r["active_params"]} if "active_params" in r else {}),
               "seq": r["seq_len"]}
        if r["batch"] != 1:
            row["batch"] = r["batch"]
        row["method"] = r["method"]
        if r.get("convention", "standard") != "standard":
            row["convention"] = r["convention"]
        if per == "token":
            row["fwd FLOPs/token"] = r["fwd_flops_per_token"]
            row["train FLOPs/token"] = r["train_flops_per_token"]
        else:
            row["fwd FLOPs"] = r["fwd_flops"]
            row["train FLOPs"] = r["train_flops"]
            row["train FLOPs/token"] = r["train_flops_per_token"]
        row["attention share"] = r["attention_share"]
        if "activation_bytes_per_seq" in r:
            row["activations/seq"] = r["activation_bytes_per_seq"]
        if "ratio_train" in r:
            row["vs baseline"] = r["ratio_train"]
        if r.get("not_priced"):
            row["accelerator"] = r["accelerator"]
            row["note"] = "not priced: " + r["not_priced"]
        elif "accelerator" in r:
            a = r.get("assumptions", {})
            roofline = a.get("time_model") == "roofline"
            row["accelerator"] = device_label(r["accelerator"], a.get("time_model"),
                                              a.get("calibrated"))
            row["dtype"] = a.get("dtype", "")
            row["step s"] = r["step_time_s"]
            if roofline:
                row["memory-bound"] = f"{r['memory_bound_share']:.0%}"
                mfu = r.get("model_flops_utilisation", a["mfu"])
                row["MFU"] = f"{mfu:.1%}"
                if r.get("hardware_flops_utilisation") is not None:
                    row["HFU"] = f"{r['hardware_flops_utilisation']:.1%}"
            if "ratio_time" in r:
                row["time vs baseline"] = r["ratio_time"]
            if "ratio_dollars" in r:
                row["$ vs baseline"] = r["ratio_dollars"]
            row["device-hours"] = ranged(r, "device_hours", point)
            row["$"] = ranged(r, "dollars", point, money=True) or _gap(r, "dollars", "price")
            row["kWh"] = ranged(r, "energy_kwh", point) or _gap(r, "energy_kwh",
                                                                 "power figure")
            row["fits"] = "yes" if r["fits"] else (f"no (>= {r['min_devices']})"
                                                    if r["min_devices"] else "no (1 seq too big)")
        if r.get("unsupported"):
            row["unsupported"] = ", ".join(f"{k} x{v}" for k, v in sorted(r["unsupported"].items()))
        note = convention_note(r)
        if r.get("time_model_failed"):
            note = (note + "; " if note else "") + ("time model failed, flat MFU used: "
                                                    + r["time_model_failed"])
        if note:
            row["note"] = (row["note"] + "; " if "note" in row else "") + note
        yield row


def unsupported_text(records) -> str:
    """``prim xN, ...`` of the primitives without a cost rule in any of ``records`` (the
    most of each), or ``none``."""
    most: dict = {}
    for r in records:
        for k, v in (r.get("unsupported") or {}).items():
            most[k] = max(most.get(k, 0), v)
    return ", ".join(f"{k} x{v}" for k, v in sorted(most.items())) or "none"


def model_text(records, note: str = "") -> str:
    """The caption's sentence on a user's model (``--model``): what was counted, how its
    lengths were, its training FLOPs in the length n and its unsupported primitives."""
    r = records[0]
    form = r.get("train_formula")
    unsup = unsupported_text(records)
    where = f" ({r['model']})" if r["model"] != r["arch"] else ""
    return (f"Model {r['arch']}{where}: its traced training step, no analytic "
            f"formula (method traced); "
            + (f"training FLOPs = {form} in the length n; " if form else "")
            + (f"{note}; " if note else "")
            + f"unsupported primitives: {unsup}"
            + (" (counted as nothing: the FLOPs are lower bounds)." if unsup != "none"
               else "."))


def device_label(name: str, time_model, calibrated) -> str:
    """A priced device's name, marked "(uncalibrated)" where the time model used its
    datasheet profile (the flat MFU model has no profile to mark)."""
    return name + (" (uncalibrated)" if time_model == "roofline" and not calibrated else "")


def _short_number(v, money: bool = False) -> str:
    if money:
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"
    return f"{v:,.0f}" if abs(v) >= 1e4 else f"{v:.4g}"


def ranged(r: dict, key: str, point: bool = False, money: bool = False):
    """``r[key]`` as 'value (low-high)' from its ``_low``/``_high`` fields, the bare number
    with ``point`` (or when the record has no range), '' when it has no value."""
    v = r.get(key)
    if v is None:
        return ""
    lo, hi = r.get(key + "_low"), r.get(key + "_high")
    if point or lo is None or hi is None:
        return v
    return (f"{_short_number(v, money)} ({_short_number(lo, money)}-"
            f"{_short_number(hi, money)})")


def _gap(r: dict, key: str, what: str) -> str:
    """The cell of a figure a record has no value for: what is missing (reason: note)."""
    why = (r.get("missing") or {}).get(key, "")
    if "no public price" in why:
        return "no public price"
    return f"no {what}" if why else ""


def cost_rows(records, point: bool = False, fits=None) -> list[dict]:
    """Rows of the cost table, one per device, priced or not: figures as 'value
    (low-high)' (``point``: single numbers), a missing one named in its cell and its
    reason in ``note``; ``fits``: a record -> text of whether one device holds the step."""
    rows = []
    for r in records:
        a = r.get("assumptions", {})
        row = {"accelerator": device_label(r["accelerator"], a.get("time_model"),
                                           a.get("calibrated")),
               "dtype": a.get("dtype", "")}
        if r.get("not_priced"):
            rows.append({**row, "note": "not priced: " + r["not_priced"]})
            continue
        days = {k.replace("wall_clock_s", "days"): v / 86400 for k, v in r.items()
                if k.startswith("wall_clock_s") and v is not None and "all_runs" not in k}
        row.update({"devices": a["devices"], "MFU": a["mfu"], "step s": r["step_time_s"],
                    "memory-bound": "" if r.get("memory_bound_share") is None
                    else f"{r['memory_bound_share']:.1%}",
                    "days": ranged(days, "days", point),
                    "device-hours": ranged(r, "device_hours", point),
                    "$ / run": ranged(r, "dollars", point, money=True)
                    or _gap(r, "dollars", "price"),
                    f"$ x {r['runs']}": ranged(r, "dollars_all_runs", point, money=True),
                    "kWh": ranged(r, "energy_kwh", point) or _gap(r, "energy_kwh",
                                                                   "power figure"),
                    "CO2 kg": ranged(r, "co2_kg", point) or _gap(r, "co2_kg", "power figure")})
        if fits is not None:
            row["fits"] = fits(r)
        notes = [f"{k}: {v}" for k, v in (r.get("missing") or {}).items()
                 if k in ("dollars", "energy_kwh")]
        if notes:
            row["note"] = "; ".join(notes)
        rows.append(row)
    return rows


def convention_note(r: dict) -> str:
    """A record's convention gap: why it has no count, or the parts left undefined."""
    if r.get("reason"):
        return r["reason"]
    if r.get("not_defined"):
        return f"not defined by {r['convention']}: " + ", ".join(r["not_defined"])
    return ""


def not_defined_text(records) -> str:
    """Caption sentences: how each part a convention leaves undefined is counted."""
    seen: dict = {}
    for r in records:
        for k, how in (r.get("not_defined") or {}).items():
            by = seen.setdefault((k, how), [])
            if r["convention"] not in by:
                by.append(r["convention"])
    return " ".join(f"Not defined by {', '.join(by)}: {k} -- {how}."
                    for (k, how), by in seen.items())


def _cell(key: str, v, fmt: str):
    if v is None:      # a number the record does not have (a convention's gap)
        return ""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return _latex_escape(str(v)) if fmt == "latex" else v
    if "FLOPs" in key or key == "params" and fmt == "latex":
        return latex_sci(v) if fmt == "latex" else si(v)
    if key.startswith("$"):
        text = f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"
        return text if fmt != "latex" else text.replace(",", "{,}")
    if key == "activations/seq":
        return _bytes(v, fmt)
    if key in ("attention share",):
        return f"{100 * v:.1f}\\%" if fmt == "latex" else f"{100 * v:.1f}%"
    if key.startswith("vs "):
        return f"{v:.3g}$\\times$" if fmt == "latex" else f"{v:.3g}x"
    if isinstance(v, int):
        return f"{v:,}" if fmt != "latex" else f"{v:,}".replace(",", "{,}")
    return f"{v:.4g}"


def _bytes(v, fmt: str) -> str:
    """Bytes with binary prefixes: 808 MiB, 22.6 GiB."""
    for p, s in ((2 ** 40, "TiB"), (2 ** 30, "GiB"), (2 ** 20, "MiB"), (2 ** 10, "KiB")):
        if v >= p:
            return f"{v / p:.3g} {s}" if fmt != "latex" else f"{v / p:.3g}~{s}"
    return f"{v:.0f} B"


_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
                  "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}", "\\": r"\textbackslash{}"}


def _latex_escape(s: str) -> str:
    return "".join(_LATEX_SPECIAL.get(c, c) for c in s)


def _booktabs_raw():
    """tabulate's booktabs layout with raw cells (we escape text cells ourselves)."""
    fmts = _tabulate._table_formats
    return fmts["latex_booktabs"]._replace(headerrow=fmts["latex_raw"].headerrow,
                                           datarow=fmts["latex_raw"].datarow)


def claim_rows(records, full: bool = True):
    """Rows of the claims table: every field for papers (``full``), else id, verdict and
    the numbers behind it."""
    for r in records:
        row = {"claim": r["id"]}
        if full:
            row.update({"source": r["source"], "statement": r["statement"],
                        "check": r["check"]})
        else:
            row["statement"] = r["statement"]
        row.update({"verdict": r["verdict"], "numbers": r["detail"]})
        yield row


def _flat(prefix: str, v):
    if isinstance(v, dict):
        for k, x in v.items():
            yield from _flat(f"{prefix}.{k}" if prefix else str(k), x)
    elif isinstance(v, (list, tuple)):
        yield prefix, ", ".join(_short(x) for x in v)
    else:
        yield prefix, v


def _short(x) -> str:
    """A number inside a list cell: integers with separators (SI above 1e7), floats 4g."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    if abs(x) >= 1e7:
        return si(x)
    return f"{x:,}" if isinstance(x, int) else f"{x:.4g}"


def number_rows(record: dict):
    """One claim's numbers, flattened to (quantity, value) rows."""
    return [{"quantity": k, "value": v} for k, v in _flat("", record["numbers"])]


def _wrap(rows, keys, widths: dict):
    import textwrap
    return [[("\n".join(textwrap.wrap(c, widths[k])) if k in widths and isinstance(c, str)
              else c) for k, c in zip(keys, row)] for row in rows]


def render(rows, fmt: str, cap: str = "", label: str = "tab:comparator",
           wrap: dict | None = None) -> str:
    """Render flat dict rows.  JSON and CSV keep raw values (they round-trip).  ``wrap``:
    {column: width} of text cells wrapped in the plain-text format."""
    rows = list(rows)
    if fmt == "json":
        return json.dumps(rows, indent=2) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        keys = list(dict.fromkeys(k for r in rows for k in r))
        w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        return buf.getvalue()
    keys = list(dict.fromkeys(k for r in rows for k in r))
    cells = [[_cell(k, r.get(k, ""), fmt) for k in keys] for r in rows]
    if fmt == "latex":
        head = [_latex_escape(k) for k in keys]
        body = tabulate(cells, headers=head, tablefmt=_booktabs_raw(), disable_numparse=True)
        return ("\\begin{table}[t]\n\\centering\n\\small\n" + body +
                f"\n\\caption{{{_latex_escape(cap)}}}\n\\label{{{label}}}\n\\end{{table}}\n")
    if wrap and fmt == "text":
        cells = _wrap(cells, keys, wrap)
    table = tabulate(cells, headers=keys, disable_numparse=True,
                     tablefmt="github" if fmt == "markdown" else "simple",
                     colalign=["left" if not _numeric(rows, k) else "right" for k in keys])
    return f"{table}\n\n{cap}\n" if cap else table + "\n"


def _numeric(rows, key) -> bool:
    return all(isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)
               for r in rows if r.get(key) is not None)
