"""``comparator budget``: argparse values -> a ``run.budget.BudgetRequest`` (with its
``Pricing``) -> its answers as a table (each with its cost and the cost of the next step
beyond it)."""
from __future__ import annotations

from comparator.cli.args import (UsageError, add_output_options, arch_list, build, given,
                                 int_list, large_int, number, positive_int, seq_list)
from comparator.cli.cost import add_price_args
from comparator.report import tables
from comparator.run import budget as bd
from comparator.run.requests import Pricing


def add_parser(sub, formats) -> None:
    b = sub.add_parser("budget", help="what a budget buys: the most tokens, the largest "
                       "model, the longest sequence; the length where one architecture "
                       "becomes cheaper (analytic, under a second)")
    b.add_argument("--dollars", help="budget in USD")
    b.add_argument("--device-hours", help="budget in device-hours")
    b.add_argument("--kwh", help="budget in kWh (device power x PUE)")
    b.add_argument("--arch", required=True, help="one or more architectures, comma separated")
    b.add_argument("--preset", help="a preset (or one per architecture, comma separated)")
    b.add_argument("--accelerator", default="all", help="a catalogue name, a list, or all")
    b.add_argument("--accelerators", help="a TOML/JSON file adding or overriding entries")
    b.add_argument("--find", default="tokens", choices=bd.FINDS,
                   help="tokens (default): the most tokens at --seq and --batch; model: the "
                        "largest model of the size grid; seq: the longest sequence")
    b.add_argument("--seq", help="sequence length (tokens, model)")
    b.add_argument("--batch", default="1", help="sequences per step (default 1)")
    b.add_argument("--tokens", help="model: every model trains on this many tokens; seq: the "
                   "run's tokens")
    b.add_argument("--steps", help="seq: the run's steps")
    b.add_argument("--tokens-per-param", help="model: train each model on this many tokens "
                   f"per parameter ({bd.CHINCHILLA_TOKENS_PER_PARAM}: Chinchilla's "
                   "compute-optimal rule, Hoffmann et al. 2022)")
    b.add_argument("--d-model", help="model: grid widths (default: the GPT-3 family's, "
                   "Brown et al. 2020, Table 2.1)")
    b.add_argument("--layers", help="model: grid depths (with --d-model: every pair)")
    b.add_argument("--seq-step", help="seq, break-even: length granularity (default: the "
                   "architecture's chunk, else 64)")
    b.add_argument("--break-even", action="store_true", help="with two architectures: the "
                   "length at which the second costs less per token than the first")
    b.add_argument("--devices", default="1", help="data-parallel devices (default 1)")
    b.add_argument("--dtype", default="auto", help="auto (default), bf16, fp16, fp32, tf32")
    b.add_argument("--mfu", help="model-FLOPs utilisation (default: the catalogue's)")
    b.add_argument("--pue", default="1.1", help="data-centre power usage effectiveness")
    b.add_argument("--grid-intensity", default="0.4", help="kg CO2 per kWh")
    add_price_args(b)
    add_output_options(b, formats)


def request(a) -> bd.BudgetRequest:
    """The one request value the argparse namespace describes, parsed."""
    sizes = None
    if a.d_model or a.layers:
        if not (a.d_model and a.layers):
            raise UsageError("--d-model" if not a.d_model else "--layers", None,
                             "both --d-model and --layers for a size grid")
        sizes = tuple((d, L) for d in int_list("--d-model", a.d_model)
                      for L in int_list("--layers", a.layers))
    seq = seq_list(a.seq) if a.seq else None
    if seq and len(seq) != 1:
        raise UsageError("--seq", a.seq, "one sequence length for budget")
    pricing = build(Pricing, a, accelerators=tuple(a.accelerator.split(",")),
                    accelerators_file=a.accelerators,
                    devices=positive_int("--devices", a.devices), dtype=a.dtype,
                    mfu=None if a.mfu is None else number("--mfu", a.mfu),
                    pue=number("--pue", a.pue),
                    grid_intensity=number("--grid-intensity", a.grid_intensity),
                    prices=a.prices, **given(price_kind=a.price_kind))
    budgets = {k: None if getattr(a, k) is None else number(bd.BUDGETS[f][0], getattr(a, k))
               for k, f in bd.LIMITS.items()}
    return build(
        bd.BudgetRequest, a, archs=tuple(arch_list(a.arch)), **budgets, find=a.find,
        preset=a.preset, seq=seq[0] if seq else None, batch=positive_int("--batch", a.batch),
        tokens=large_int("--tokens", a.tokens) if a.tokens else None,
        steps=large_int("--steps", a.steps) if a.steps else None,
        tokens_per_param=(number("--tokens-per-param", a.tokens_per_param)
                          if a.tokens_per_param else None),
        sizes=sizes, seq_step=positive_int("--seq-step", a.seq_step) if a.seq_step else None,
        break_even=a.break_even, pricing=pricing)


def cmd_budget(a) -> str:
    req = request(a)
    recs = bd.run(req)
    if a.format == "json":
        return tables.render(recs, "json")
    money = req.budget == "dollars"
    rows = []
    for r in recs:
        if r["find"] == "break_even":
            rows.append({"accelerator": r["accelerator"], "question": "break-even",
                         "arch": r["arch"], "answer": r["answer_text"],
                         f"{r['budget']} per token at it": _pair(r, "cost_a", "cost_b"),
                         "one step shorter": _pair(r, "before_cost_a", "before_cost_b")})
            continue
        rows.append({"accelerator": r["accelerator"], "question": r["find"],
                     "arch": r["arch"], "answer": r["answer_text"],
                     "cost": _exact(r.get("cost")),
                     "range": "" if a.point else tables.ranged(r, "cost", False, money)
                     .partition(" ")[2].strip("()"),
                     "next step": r.get("next_text", ""),
                     "its cost": _exact(r.get("next_cost"))})
    unit = bd.BUDGETS[req.budget][1] if req.budget else ""
    cap = ((f"What {req.amount:g} {unit} buys" if req.budget else "Break-even lengths")
           + " on the analytic path: closed-form training FLOPs at each device's flat "
           "utilisation (the catalogue's default MFU, or --mfu) and training precision "
           f"(dtype {a.dtype}); {req.pricing.price_kind} prices "
           + (f"listed on or before {req.pricing.as_of}" if req.pricing.prices else
              "(latest listed)")
           + ("; cost = the answer's, 'its cost' = the next step's, so cost <= budget < its "
              "cost; range = p5-p95 of the answer's cost over utilisation, offers, PUE and "
              "grid intensity (comparator/data/accelerators.toml [ranges])" if req.budget
              else "") + ". " + "; ".join(bd.RULES[k] for k in
                                     ([req.find] if req.budget else []) +
                                     (["break_even"] if req.break_even else [])) + ".")
    return tables.render(rows, a.format, cap, label="tab:budget")


def _exact(v) -> str:
    """A cost to every digit it has (one step can cost $0.00002 of a $10,000 budget)."""
    return "" if v is None else f"{v:,}"


def _pair(r: dict, a: str, b: str) -> str:
    if r.get(a) is None:
        return ""
    return f"{r[a]:.3g} vs {r[b]:.3g}"


__all__ = ["add_parser", "cmd_budget", "request"]
