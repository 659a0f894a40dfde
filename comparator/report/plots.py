"""The only place that draws: records -> a log-log figure (PNG, PDF or SVG).

One line per series, markers at the points, the fitted scaling exponent in the
legend and every crossover between two series marked and returned.  The
analysis (`run.series.analyse`) is pure Python; matplotlib is imported only inside `plot`,
so the analytic CLI path stays fast, and the figure is a bare
``matplotlib.figure.Figure`` on the Agg canvas: pyplot and its global figure
registry are never touched.

Series: with ``x="seq_len"`` a series is one (arch, preset, method); with
``x="params"`` (a size sweep) the size varies along the series, so it is one
(arch, base preset, method), the base preset being the name before any
``@size`` tag (``bert-base@d512L8`` -> ``bert-base``).  Scope, batch, the
accelerator a time was predicted on (and, for ``params``, the sequence length)
join the key and the label only when they vary across the records.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

from comparator.report.tables import si
from comparator.run.series import analyse

SUFFIXES = (".png", ".pdf", ".svg")
COLUMN_WIDTH_IN = 3.5          # one column of a two-column paper
FONT_PT = 7
LABELS = {"seq_len": "sequence length (tokens)", "params": "parameters",
          "train_flops": "training FLOPs per step", "fwd_flops": "forward FLOPs per step",
          "step_time_s": "step time (s)", "dollars": "cost (US$)", "energy_j": "energy (J)",
          "memory_bytes": "memory (bytes)", "tokens": "tokens per step",
          "train_flops_per_token": "training FLOPs per token",
          "fwd_flops_per_token": "forward FLOPs per token",
          "attention_flops": "attention training FLOPs per step",
          "attention_share": "attention share of training FLOPs",
          "ratio_train": "training FLOPs / baseline"}
UNITS = {"_s": "s", "_j": "J", "_bytes": "bytes", "_usd": "US$", "_w": "W"}
X_UNIT = {"seq_len": "tokens", "params": "params"}
MARKERS = "os^Dv<>pP*hX"
LINESTYLES = ("-", "--", "-.", ":")        # tell apart series that lie on top of each other


def axis_label(key: str) -> str:
    """Human axis label with its unit: known keys by name, others from their suffix."""
    if key in LABELS:
        return LABELS[key]
    for suffix, unit in UNITS.items():
        if key.endswith(suffix):
            return f"{key[:-len(suffix)].replace('_', ' ')} ({unit})"
    return key.replace("_", " ").replace("flops", "FLOPs")


def _si_tick(v, _pos=None) -> str:
    return si(v) if v >= 1 else f"{v:.3g}"


def _short(label: str, labels) -> str:
    """The architecture name when it alone tells the series apart, else the full label."""
    arch = label.split(":")[0].split(" ")[0]
    return arch if sum(lb.split(":")[0].split(" ")[0] == arch for lb in labels) == 1 else label


def _corner(ax, curves, avoid, width: float, height: float):
    """(x, y) in axes fraction of the corner box (width x height) that holds the fewest
    curve samples and does not overlap the ``avoid`` box (x0, y0, x1, y1) (the legend)."""
    samples = []
    for pts in curves.values():
        for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
            samples += [(x0 * (x1 / x0) ** (t / 16), y0 * (y1 / y0) ** (t / 16))
                        for t in range(16)]
        samples.append(pts[-1])
    to_axes = ax.transAxes.inverted()
    frac = to_axes.transform(ax.transData.transform(samples))
    best = None
    for cx in (1.0, 0.0):
        for cy in (0.0, 1.0):
            bx = (1 - width, 1.0) if cx else (0.0, width)
            by = (0.0, height) if cy == 0 else (1 - height, 1.0)
            score = sum(bx[0] <= u <= bx[1] and by[0] <= v <= by[1] for u, v in frac)
            if not (bx[1] < avoid[0] or bx[0] > avoid[2] or by[1] < avoid[1] or by[0] > avoid[3]):
                score += 10 ** 6
            if best is None or score < best[0]:
                best = (score, cx, cy)
    return best[1], best[2]


def _annotate(ax, result, x, legend) -> None:
    """Note every crossover in a column in the emptiest corner the legend leaves free."""
    cross, labels = result["crossovers"], list(result["series"])
    if not cross:
        return
    step = 0.075
    box = legend.get_window_extent(ax.figure.canvas.get_renderer())
    avoid = box.transformed(ax.transAxes.inverted()).extents
    cx, cy = _corner(ax, result["series"], avoid, 0.62, 0.04 + step * len(cross))
    for k, c in enumerate(sorted(cross, key=lambda c: c["y"], reverse=bool(cy))):
        note = (f"{_short(c['a'], labels)} < {_short(c['b'], labels)} beyond "
                f"≈ {si(c['x']).replace(' ', '')} {X_UNIT[x]}")
        ypos = 0.96 - step * k if cy else 0.04 + step * k
        ax.annotate(note, xy=(c["x"], c["y"]), xytext=(0.98 if cx else 0.02, ypos),
                    textcoords="axes fraction", ha="right" if cx else "left",
                    va="top" if cy else "bottom", fontsize=FONT_PT - 1.5,
                    arrowprops={"arrowstyle": "-", "color": "0.35", "linewidth": 0.5,
                                "shrinkB": 3.5, "relpos": (1.0 - cx, 0.5)},
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none",
                          "alpha": 0.85}, zorder=5)


def plot(records: list[dict], out: str, *, x: str = "seq_len", y: str = "train_flops",
         title: str | None = None, caption: str | None = None) -> dict:
    """Draw ``y`` against ``x`` on log-log axes into ``out`` (.png, .pdf or .svg).

    Returns ``{"exponents": {label: slope}, "local_exponents": {label: slope},
    "crossovers": [{"a", "b", "x", "y"}], "series": {label: [(x, y)]}, "path": out}``.
    """
    suffix = Path(out).suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"output {out!r}: suffix {suffix or '(none)'!r} is not allowed; "
                         f"choose from {', '.join(SUFFIXES)}")
    result = analyse(records, x, y)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    var = "n" if x == "seq_len" else "N"
    cap_lines = textwrap.wrap(caption, int(COLUMN_WIDTH_IN * 72 / (0.56 * (FONT_PT - 1)))) \
        if caption else []
    cap_h = (len(cap_lines) * (FONT_PT - 1) * 1.25 + 4) / 72 if cap_lines else 0.0
    height = 2.7 + cap_h
    fig = Figure(figsize=(COLUMN_WIDTH_IN, height))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_xscale("log")
    ax.set_yscale("log")
    for i, (label, pts) in enumerate(result["series"].items()):
        g, loc = result["exponents"][label], result["local_exponents"].get(label)
        text = label
        if g is not None:
            text += rf"  $\propto {var}^{{{g:.2f}}}$"
        if loc is not None:
            text += rf" (local ${var}^{{{loc:.2f}}}$)"
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=MARKERS[i % len(MARKERS)],
                linestyle=LINESTYLES[i % len(LINESTYLES)], markersize=3.2, linewidth=1.0,
                markerfacecolor="none", markeredgewidth=0.8, label=text, zorder=2)
    for c in result["crossovers"]:          # before the legend, so that "best" avoids them
        ax.plot([c["x"]], [c["y"]], marker="o", markersize=6, markerfacecolor="none",
                markeredgecolor="black", markeredgewidth=0.9, linestyle="none", zorder=4)
    for axis, (lo, hi) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        # short ranges: label 2x, 5x (and 3x) as well as the powers of ten
        subs = (1.0, 2.0, 3.0, 5.0) if hi / lo < 30 else (1.0, 2.0, 5.0) if hi / lo < 1e3 \
            else (1.0,)
        axis.set_major_locator(LogLocator(base=10, subs=subs))
        axis.set_major_formatter(FuncFormatter(_si_tick))
        axis.set_minor_formatter(NullFormatter())
    ax.tick_params(labelsize=FONT_PT - 0.5, which="both")
    ax.set_xlabel(axis_label(x), fontsize=FONT_PT)
    ax.set_ylabel(axis_label(y), fontsize=FONT_PT)
    ax.grid(True, which="major", linewidth=0.4, alpha=0.4)
    legend = ax.legend(fontsize=FONT_PT - 1.5, loc="best", frameon=True, framealpha=0.9,
                       handlelength=2.2, borderaxespad=0.4)
    if title:
        ax.set_title(title, fontsize=FONT_PT + 0.5)
    if cap_lines:
        fig.text(0.02, 0.01, "\n".join(cap_lines), fontsize=FONT_PT - 1, va="bottom",
                 ha="left", color="0.25", linespacing=1.25)
    fig.tight_layout(pad=0.3, rect=(0, cap_h / height, 1, 1))
    _annotate(ax, result, x, legend)            # after the layout: needs the legend's place
    fig.savefig(out, dpi=300 if suffix == ".png" else None)
    fig.clear()
    return {**result, "path": out}
