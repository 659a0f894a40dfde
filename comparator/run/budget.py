"""Budgets asked backwards (``comparator budget``): what a budget of dollars, device-hours or
kWh buys on a device -- the most tokens, the largest model on a size grid, the longest
sequence -- and the length at which one architecture becomes cheaper than another.

Every answer is found on the analytic path (closed-form FLOPs, the flat utilisation of
``pricing.train_cost``; no jax, nothing compiled) and is returned with its own cost and the
cost of the next step beyond it, so that cost(answer) <= budget < cost(next) can be read
off (and is checked by the tests, which recompute both with ``train_cost``):

- ``tokens``: whole training steps of ``batch`` x ``seq`` tokens; the next step is one
  more step;
- ``model``: the size grid ordered by parameters (default: the GPT-3 family's widths and
  depths, Brown et al. 2020, Table 2.1), each trained on ``tokens`` or on
  ``tokens_per_param`` x its parameters (Chinchilla's compute-optimal rule is 20, Hoffmann
  et al. 2022); the answer is the last model of the grid within budget, the next the one
  after it;
- ``seq``: lengths in multiples of ``seq_step`` (the architecture's chunk, else 64), for
  ``tokens`` (steps = ceil(tokens / (batch x seq))) or a fixed number of ``steps``; found by
  doubling then bisection, which assumes cost grows with length, and the answer is a
  length within budget whose next multiple is not;
- ``break_even``: the shortest such length at which ``b`` costs less per token than ``a``
  (one step of ``batch`` sequences); under a flat utilisation this is where the FLOPs
  cross, the same on every device with the same utilisation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import architectures

from comparator.run.costing import accelerators, train_kwargs
from comparator.run.requests import Pricing
from comparator.run.sweep import RequestError, resized, resolve
from comparator.run.values import MAX_SEQ, as_tuple, check_archs, option, positive

# budget field -> the option that sets it and its unit
BUDGETS = {"dollars": ("--dollars", "USD"), "device_hours": ("--device-hours", "device-hours"),
           "energy_kwh": ("--kwh", "kWh")}
# request field -> the record field it limits
LIMITS = {"dollars": "dollars", "device_hours": "device_hours", "kwh": "energy_kwh"}
FINDS = ("tokens", "model", "seq")
# the GPT-3 family's (d_model, n_layers), Brown et al. 2020, Table 2.1 (125M to 175B)
GPT3_SIZES = ((768, 12), (1024, 24), (1536, 24), (2048, 24), (2560, 32), (4096, 32),
              (5120, 40), (12288, 96))
CHINCHILLA_TOKENS_PER_PARAM = 20     # Hoffmann et al. 2022, compute-optimal training
SEQ_STEP = 64
# how each question steps, as a caption states it
RULES = {
    "tokens": "tokens: whole training steps of batch x seq tokens; the next step is one more",
    "model": "model: the size grid by parameters (default: the GPT-3 family's widths and "
             "depths, Brown et al. 2020, Table 2.1), each trained on --tokens or on "
             "--tokens-per-param x its parameters; the answer is the last model of the grid "
             "within budget, the next the one after it",
    "seq": "seq: lengths in multiples of the step (the architecture's chunk, else 64), found "
           "by doubling then bisection, which assumes the cost grows with length",
    "break_even": "break-even: the shortest length (in multiples of the step) at which the "
                  "second architecture costs less per token than the first, one step of "
                  "batch sequences each; under a flat utilisation that is where the FLOPs "
                  "cross, the same on every device",
}


@dataclass(frozen=True)
class BudgetRequest:
    """One ``comparator budget`` question: at most one budget, ``dollars``,
    ``device_hours`` or ``kwh`` (none: ``break_even`` only), and what to ``find`` with it
    ("tokens", "model" or "seq", see the module docstring) for each of ``archs`` (names,
    ``"all"``) at its ``preset`` (one, or one per architecture, comma separated); ``sizes``:
    the model grid as ``(d_model, n_layers)`` pairs (default ``GPT3_SIZES``).
    ``pricing``: the devices and how they are priced (``accelerators``, ``devices``,
    ``dtype``, ``mfu``, ``pue``, ``grid_intensity``, ``prices``, ``price_kind``,
    ``accelerators_file``); the rest of a ``Pricing`` (a run's length, memory, the time
    model) does not apply: answers are analytic, at each device's flat utilisation."""
    archs: tuple = ()
    dollars: float | None = None
    device_hours: float | None = None
    kwh: float | None = None
    find: str = "tokens"
    preset: str | None = None
    seq: int | None = None
    batch: int = 1
    tokens: int | None = None
    steps: int | None = None
    tokens_per_param: float | None = None
    sizes: tuple | None = None
    seq_step: int | None = None
    break_even: bool = False
    pricing: Pricing = field(default_factory=Pricing)

    def __post_init__(self):
        object.__setattr__(self, "archs", check_archs(self.archs))
        if not self.archs:
            raise RequestError("--arch", None, "one or more architectures")
        given = self._given()
        if len(given) > 1:
            raise RequestError(option(given[1][0]), given[1][1],
                               "one budget: --dollars, --device-hours or --kwh")
        if given:
            flag, a = option(given[0][0]), given[0][1]
            if isinstance(a, bool) or not isinstance(a, (int, float)) or \
                    not math.isfinite(a) or a <= 0:
                raise RequestError(flag, a, f"a budget > 0 in {BUDGETS[self.budget][1]}")
        elif not self.break_even:
            raise RequestError("--dollars", None, "a budget: --dollars, --device-hours or "
                                                  "--kwh (or --break-even)")
        if self.find not in FINDS:
            raise RequestError("--find", self.find, "one of " + ", ".join(FINDS))
        presets = as_tuple(self.preset)
        if len(presets) not in (0, 1, len(self.archs)):
            raise RequestError("--preset", self.preset, "one preset, or one per architecture "
                                                        "of --arch, comma separated")
        self._check_numbers()
        self._check_question()
        self._check_pricing()

    def _check_numbers(self) -> None:
        if self.seq is not None:
            positive("--seq", self.seq, MAX_SEQ)
        positive("--batch", self.batch)
        for name in ("tokens", "steps", "seq_step"):
            if getattr(self, name) is not None:
                positive(option(name), getattr(self, name), None)
        t = self.tokens_per_param
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float))
                              or not math.isfinite(t) or t <= 0):
            raise RequestError("--tokens-per-param", t, "a number > 0")
        if self.sizes is not None:
            sizes = tuple(tuple(s) for s in self.sizes)
            for s in sizes or [()]:
                if len(s) != 2:
                    raise RequestError("--sizes", s, "(d_model, n_layers) pairs, one or more")
                positive("--d-model", s[0]), positive("--layers", s[1])
            object.__setattr__(self, "sizes", sizes)

    def _check_question(self) -> None:
        if self.break_even and len(self.archs) != 2:
            raise RequestError("--arch", ",".join(self.archs), "two architectures with "
                               "--break-even: the one priced first, then the one that may "
                               "become cheaper (e.g. transformer,reformer)")
        if self.find in ("tokens", "model") and self.budget and self.seq is None:
            raise RequestError("--seq", None, f"a sequence length to find {self.find}")
        if self.find == "model" and self.budget and (self.tokens is None) == (
                self.tokens_per_param is None):
            raise RequestError("--tokens", self.tokens, "either --tokens (every model trains "
                               "on them) or --tokens-per-param (e.g. 20, Chinchilla's rule)")
        if self.find == "seq" and self.budget and (self.tokens is None) == (self.steps is None):
            raise RequestError("--tokens", self.tokens, "either --tokens or --steps to find "
                               "the longest sequence")

    def _check_pricing(self) -> None:
        p = self.pricing
        if not p.accelerators:
            raise RequestError("--accelerator", None, "a catalogue name, a list, or all")
        if p.time_model not in (None, "mfu"):
            raise RequestError("--time-model", p.time_model, "mfu: budget answers on the "
                               "analytic path, at each device's flat utilisation")
        for name in NOT_PRICING:
            value, default = getattr(p, name), Pricing.__dataclass_fields__[name].default
            if value != default:
                raise RequestError(option(name), value, "not with budget (its own --tokens "
                                   "and --steps set the run; answers are analytic, one run)")

    def _given(self) -> list:
        return [(k, getattr(self, k)) for k in LIMITS if getattr(self, k) is not None]

    @property
    def budget(self) -> str | None:
        """The record field the budget limits (a key of ``BUDGETS``), None without one."""
        given = self._given()
        return LIMITS[given[0][0]] if given else None

    @property
    def amount(self) -> float | None:
        """The budget in its unit (``BUDGETS[budget][1]``), None without one."""
        given = self._given()
        return float(given[0][1]) if given else None


# the fields of a Pricing a budget does not use (each must keep its default)
NOT_PRICING = ("tokens", "steps", "runs", "policy", "zero", "calibration", "profile")


# ---------------------------------------------------------------- costs


def _cost(mod, cfg, seq: int, batch: int, steps: int, acc, kw: dict) -> dict:
    from comparator.cost import pricing as cm
    per_step = mod.flops(cfg, seq, batch).train
    return cm.train_cost(per_step, steps, acc, **kw)


def _spent(c: dict, budget: str):
    return c.get(budget)


def _step_of(cfg) -> int:
    """The length granularity: the architecture's chunks (their lcm), else SEQ_STEP."""
    chunks = [getattr(cfg, k, 0) or 0 for k in ("lsh_chunk", "local_chunk", "ffn_chunk")]
    chunks = [c for c in chunks if c]
    return math.lcm(*chunks) if chunks else SEQ_STEP


def _answer(req, kind, arch, label, acc, answer, text, cost, nxt, next_text, **extra) -> dict:
    """One record: the answer, what it costs (with its range) and what the next step costs."""
    b = req.budget
    out = {"find": kind, "arch": arch, "preset": label, "accelerator": acc.name,
           "budget": b, "budget_amount": req.amount, "answer": answer, "answer_text": text,
           "cost": None if cost is None else _spent(cost, b),
           "cost_low": None if cost is None else cost.get(f"{b}_low"),
           "cost_high": None if cost is None else cost.get(f"{b}_high"),
           "next_text": next_text, "next_cost": None if nxt is None else _spent(nxt, b),
           **extra}
    ref = cost or nxt
    if ref is not None:
        a = ref["assumptions"]
        out["assumptions"] = {k: a[k] for k in ("dtype", "dtype_rule", "mfu", "mfu_source",
                                                "price_per_hour", "price_date", "price_kind",
                                                "price_source", "power_w", "pue",
                                                "grid_intensity_kg_per_kwh", "devices")}
        out["assumptions"]["time_model"] = "mfu (analytic path: flat utilisation)"
        out["missing"] = ref["missing"]
    return out


def _no_budget_field(req, kind, arch, label, acc, c) -> dict:
    why = c["missing"].get(req.budget, f"no {req.budget}")
    return _answer(req, kind, arch, label, acc, None, f"cannot say: {why}", None, c, "")


def tokens(req: BudgetRequest, arch: str, label: str, cfg, acc, kw: dict) -> dict:
    """The most whole steps (and tokens) of ``batch`` x ``seq`` the budget pays for."""
    mod, B, seq = architectures.get(arch), req.budget, req.seq
    one = _cost(mod, cfg, seq, req.batch, 1, acc, kw)
    if _spent(one, B) is None:
        return _no_budget_field(req, "tokens", arch, label, acc, one)
    n = int(req.amount // _spent(one, B))
    cost = lambda s: _cost(mod, cfg, seq, req.batch, s, acc, kw)   # noqa: E731
    while n > 0 and _spent(cost(n), B) > req.amount:      # float rounding at the boundary
        n -= 1
    while _spent(cost(n + 1), B) <= req.amount:
        n += 1
    per = req.batch * seq
    return _answer(req, "tokens", arch, label, acc, n * per,
                   f"{n * per:,} tokens ({n:,} steps of {req.batch} x {seq})",
                   cost(n) if n else None, cost(n + 1), f"{(n + 1) * per:,} tokens",
                   steps=n, seq_len=seq, batch=req.batch, params=mod.params(cfg, seq))


def _sizes(req: BudgetRequest, arch: str, label: str, cfg) -> list:
    """(params, label, cfg) of the grid, by parameters."""
    mod = architectures.get(arch)
    grid = req.sizes or GPT3_SIZES
    models = [resized(arch, label, cfg, (d, L, None, None)) for d, L in grid]
    return sorted(((mod.params(m.cfg, req.seq), m.preset, m.cfg) for m in models),
                  key=lambda x: x[0])


def largest_model(req: BudgetRequest, arch: str, label: str, cfg, acc, kw: dict) -> dict:
    """The last model of the size grid (by parameters) whose training fits the budget."""
    mod, B = architectures.get(arch), req.budget
    rows = []
    for params, name, c in _sizes(req, arch, label, cfg):
        n_tokens = req.tokens or math.ceil(req.tokens_per_param * params)
        steps = -(-n_tokens // (req.batch * req.seq))
        rows.append((params, name, steps, _cost(mod, c, req.seq, req.batch, steps, acc, kw)))
    if _spent(rows[0][3], B) is None:
        return _no_budget_field(req, "model", arch, label, acc, rows[0][3])
    fit = [i for i, r in enumerate(rows) if _spent(r[3], B) <= req.amount]
    last = fit[-1] if fit else -1
    ans = rows[last] if last >= 0 else None
    nxt = rows[last + 1] if last + 1 < len(rows) else None
    rule = (f"{req.tokens:,} tokens" if req.tokens else
            f"{req.tokens_per_param:g} tokens per parameter")
    return _answer(req, "model", arch, label, acc, ans and ans[0],
                   f"{ans[1]}: {ans[0]:,} parameters, {ans[2]:,} steps ({rule})" if ans
                   else f"none of the grid (the smallest, {rows[0][1]}, costs more)",
                   ans and ans[3], nxt and nxt[3],
                   f"{nxt[1]}: {nxt[0]:,} parameters" if nxt else "none (end of the grid)",
                   seq_len=req.seq, batch=req.batch, steps=ans and ans[2],
                   grid=[{"preset": r[1], "params": r[0], "steps": r[2],
                          "cost": _spent(r[3], B)} for r in rows])


def _bisect(ok, lo: int, hi: int, step: int) -> tuple[int, int]:
    """Adjacent multiples (a, a + step) of ``step`` in [lo, hi] with ok(a) and not ok(a +
    step), given ok(lo) and not ok(hi)."""
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step
        mid = min(max(mid, lo + step), hi - step)
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo, hi


def _search(ok, step: int, limit: int):
    """(a, a + step) with ok(a) and not ok(a + step) by doubling from ``step``, or
    (None, step) when not ok(step), or (limit, None) when ok(limit)."""
    if not ok(step):
        return None, step
    lo = step
    while lo * 2 <= limit and ok(lo * 2):
        lo *= 2
    hi = min(lo * 2, limit // step * step)
    if hi <= lo or ok(hi):
        return (hi if hi > lo else lo), None
    return _bisect(ok, lo, hi, step)


def longest_seq(req: BudgetRequest, arch: str, label: str, cfg, acc, kw: dict) -> dict:
    """The longest length (a multiple of the step) whose run fits the budget."""
    mod, B = architectures.get(arch), req.budget
    step = req.seq_step or _step_of(cfg)
    costs: dict = {}

    def cost(L):
        if L not in costs:
            steps = req.steps or -(-req.tokens // (req.batch * L))
            costs[L] = _cost(mod, cfg, L, req.batch, steps, acc, kw)
        return costs[L]

    if _spent(cost(step), B) is None:
        return _no_budget_field(req, "seq", arch, label, acc, cost(step))
    ans, nxt = _search(lambda L: _spent(cost(L), B) <= req.amount, step, MAX_SEQ)
    what = (f"{req.tokens:,} tokens" if req.tokens else f"{req.steps:,} steps")
    return _answer(req, "seq", arch, label, acc, ans,
                   f"{ans:,} tokens per sequence ({what}, batch {req.batch})" if ans
                   else f"none: {step} tokens already cost more", ans and cost(ans),
                   nxt and cost(nxt), f"{nxt:,}" if nxt else f"none (limit {MAX_SEQ:,})",
                   seq_step=step, batch=req.batch)


def break_even(req: BudgetRequest, models: list, acc, kw: dict) -> dict:
    """The shortest length at which ``models[1]`` costs less per token than ``models[0]``."""
    (a_arch, a_label, a_cfg), (b_arch, b_label, b_cfg) = models
    step = req.seq_step or math.lcm(_step_of(a_cfg), _step_of(b_cfg))
    probe = _cost(architectures.get(a_arch), a_cfg, step, req.batch, 1, acc, kw)
    field_ = req.budget or ("dollars" if probe.get("dollars") is not None else "device_hours")
    costs: dict = {}

    def per_token(arch, cfg, L):
        key = (arch, L)
        if key not in costs:
            c = _cost(architectures.get(arch), cfg, L, req.batch, 1, acc, kw)
            costs[key] = c[field_] / (req.batch * L)
        return costs[key]

    def not_cheaper(L):
        return per_token(b_arch, b_cfg, L) >= per_token(a_arch, a_cfg, L)

    before, at = _search(not_cheaper, step, MAX_SEQ)
    rec = {"find": "break_even", "arch": f"{a_arch},{b_arch}",
           "preset": f"{a_label},{b_label}", "accelerator": acc.name, "budget": field_,
           "per": "token, one step of batch sequences", "seq_step": step, "batch": req.batch,
           "assumptions": {k: probe["assumptions"][k] for k in ("dtype", "mfu", "price_per_hour",
                                                                "price_date", "devices")}}
    if at is None:
        rec.update(answer=None, answer_text=f"{b_arch} is not cheaper up to {MAX_SEQ:,} tokens")
        return rec
    rec.update(answer=at, answer_text=f"{b_arch} cheaper than {a_arch} from {at:,} tokens",
               cost_a=per_token(a_arch, a_cfg, at), cost_b=per_token(b_arch, b_cfg, at),
               before=before)
    if before is not None:
        rec.update(before_cost_a=per_token(a_arch, a_cfg, before),
                   before_cost_b=per_token(b_arch, b_cfg, before))
    else:
        rec["answer_text"] += " (the shortest length tried)"
    return rec


def run(req: BudgetRequest) -> list[dict]:
    """Every answer of ``req``: per device, per architecture (or the break-even).  A device
    that cannot be priced (no such dtype, no MFU) is a row saying why when there are
    several, a ``RequestError`` when it is the only one."""
    from comparator.cost.pricing import CostError
    p = req.pricing
    accs = accelerators(p.accelerators, p.accelerators_file)
    kw = train_kwargs(p, accs)
    presets = as_tuple(req.preset) or (None,)
    if len(presets) == 1:
        presets *= len(req.archs)
    models = [(arch, *resolve(arch, pre)[1:]) for arch, pre in zip(req.archs, presets)]
    find = {"tokens": tokens, "model": largest_model, "seq": longest_seq}[req.find]
    out = []
    for acc in accs:
        try:
            if req.budget is not None:
                out += [find(req, arch, label, cfg, acc, kw) for arch, label, cfg in models]
            if req.break_even:
                out.append(break_even(req, models, acc, kw))
        except CostError as err:
            if len(accs) == 1:
                raise RequestError(err.field, err.value, err.allowed) from None
            out.append({"find": req.find, "arch": ",".join(req.archs),
                        "accelerator": acc.name, "answer": None,
                        "answer_text": f"not priced: {err.allowed}"})
    return out


__all__ = ["BUDGETS", "BudgetRequest", "CHINCHILLA_TOKENS_PER_PARAM", "FINDS", "GPT3_SIZES",
           "LIMITS", "NOT_PRICING", "break_even", "largest_model", "longest_seq", "run", "tokens"]
