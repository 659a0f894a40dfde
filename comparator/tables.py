"""The only place that renders: records -> text, Markdown, CSV or JSON."""
from __future__ import annotations

import csv
import io
import json

from tabulate import tabulate

FORMATS = ("text", "markdown", "csv", "json")

CONVENTIONS = ("FLOPs: 1 multiply-add = 2 FLOPs; training step = forward + backward "
               "(backward derived per term; reversible layers add a forward recomputation); "
               "causal attention counted as computed (full masked product); "
               "per sequence batch as given.")


def si(x) -> str:
    """1.23e+12 -> '1.23 T' (SI prefixes, 3 significant digits)."""
    x = float(x)
    for p, s in ((1e24, "Y"), (1e21, "Z"), (1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"),
                 (1e6, "M"), (1e3, "k")):
        if abs(x) >= p:
            return f"{x / p:.3g} {s}"
    return f"{x:.3g}"


SWEEP_COLUMNS = [("arch", "arch"), ("preset", "preset"), ("params", "params"),
                 ("seq_len", "seq"), ("batch", "batch"), ("method", "method"),
                 ("scope", "scope"), ("fwd_flops", "fwd FLOPs"), ("train_flops", "train FLOPs")]


def sweep_rows(records):
    for r in records:
        row = {label: r[key] for key, label in SWEEP_COLUMNS}
        if r.get("unsupported"):
            row["unsupported"] = ", ".join(f"{k} x{v}" for k, v in sorted(r["unsupported"].items()))
        yield row


def render(records, fmt: str, columns=None, caption: str = CONVENTIONS) -> str:
    """Render a list of flat dicts (a table) or full records (json)."""
    if fmt == "json":
        return json.dumps(records, indent=2)
    rows = list(columns(records) if columns else records)
    if fmt == "csv":
        buf = io.StringIO()
        keys = list(dict.fromkeys(k for r in rows for k in r))
        w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        return buf.getvalue()
    human = [{k: (si(v) if isinstance(v, int) and k.endswith("FLOPs") else v)
              for k, v in r.items()} for r in rows]
    table = tabulate(human, headers="keys", tablefmt="github" if fmt == "markdown" else "simple",
                     intfmt=",", disable_numparse=False)
    return f"{table}\n\n{caption}\n"


def render_explain(rows, fmt: str, caption: str) -> str:
    if fmt == "json":
        return json.dumps(rows, indent=2)
    return render(rows, fmt, caption=caption)
