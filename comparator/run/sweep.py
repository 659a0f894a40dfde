"""Expand models x lengths into points and compute records for them.

A record follows the contract of DESIGN.md:
``arch, preset, seq_len, batch, params, method, scope, fwd_flops, train_flops,
breakdown {term: fwd_flops}, unsupported {primitive: count}``, plus
``train_breakdown {term: train_flops}``, ``flagged`` (traced cond/while
approximations), ``tokens`` and per-token counts, ``attention_flops`` /
``attention_share`` (the sequence-mixing core of the training step),
``activation_bytes`` / ``activation_bytes_per_seq`` (fp32 residuals that
autodiff keeps for the backward), ``trace`` (traced rows: how they were traced), and,
against a baseline, ``baseline``, ``baseline_train_flops``, ``ratio_train``; with an
accelerator, the cost fields of ``costing.with_cost``.
The analytic path imports no jax; jax is imported only for traced points.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterator

import architectures

from comparator.errors import FieldError

METHODS = ("analytic", "traced")
SCOPES = ("matmul", "all")
# how traced points are traced: "fast" reuses shallow and symbolic-length traces
# (comparator.count.fasttrace, each symbolic program checked against a concrete trace),
# "checked" also compares one length with the full model, "full" traces every point whole
TRACES = ("fast", "checked", "full")
# the sequence-mixing core; projections are per-token and excluded (Linformer's E and F
# project along the sequence: they mix it)
ATTENTION_TERMS = ("attn/scores", "attn/softmax", "attn/context", "attn/relbias",
                   "attn/proj_k", "attn/proj_v", "attn/features", "attn/normalizer")
ATTENTION_ROOTS = ("lsh",)
GROUPS = ("gen", "disc", "enc", "dec")


class RequestError(FieldError):
    """A request value refused (an unknown preset, convention, trace mode, ...): names the
    field, the value and what is allowed.  The CLI reports it like its own usage errors."""



def suggest(value: str, choices) -> str:
    close = difflib.get_close_matches(str(value), list(choices), n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return "choose from " + ", ".join(choices) + hint


@dataclass(frozen=True)
class Model:
    arch: str
    preset: str    # a preset name, or a label for a resized / loaded config
    cfg: object
    base: "Model | None" = None   # its default baseline, when not the architecture's
    #                               (an attention variant's: comparator.run.variants)


@dataclass(frozen=True)
class Point:
    arch: str
    preset: str
    seq: int
    batch: int = 1
    cfg: object = None
    base: Model | None = None

    @property
    def model(self) -> Model:
        return Model(self.arch, self.preset, self.cfg or resolve(self.arch, self.preset)[2],
                     self.base)


def resolve(arch: str, preset: str | None):
    """(module, preset name, Config) for an architecture and optional preset."""
    if arch not in architectures.NAMES:
        raise RequestError("--arch", arch, suggest(arch, architectures.NAMES))
    mod = architectures.get(arch)
    name = preset or mod.DEFAULT_PRESET
    if name not in mod.PRESETS:
        raise RequestError("--preset", name, f"{arch} presets: " + suggest(name, mod.PRESETS))
    return mod, name, mod.PRESETS[name][0]


def arch_of(preset: str) -> str:
    """The architecture that has ``preset`` (preset names are unique across them)."""
    for arch, name, _, _ in architectures.all_presets():
        if name == preset:
            return arch
    names = [name for _, name, _, _ in architectures.all_presets()]
    raise RequestError("--preset", preset, suggest(preset, names))


def models(archs, presets=(), sizes=None) -> list[Model]:
    """Models of each architecture: its named presets (default: the BERT-base-sized one),
    each at every (d_model, n_layers, n_heads, d_ff) of ``sizes`` when given (with attention
    choices: ``comparator.run.variants.models``)."""
    out = []
    for arch in archs:
        mod = resolve(arch, None)[0]
        names = [p for p in presets if p in mod.PRESETS] if presets else [mod.DEFAULT_PRESET]
        if presets and not names:
            raise RequestError("--preset", ",".join(presets),
                             f"{arch} presets: " + suggest(presets[0], mod.PRESETS))
        for p in names:
            cfg = mod.PRESETS[p][0]
            for size in sizes or [None]:
                out.append(Model(arch, p, cfg) if size is None else resized(arch, p, cfg, size))
    return out


def resized(arch: str, label: str, cfg, size) -> Model:
    d, L, h, ff = size
    new = architectures.get(arch).resize(cfg, d_model=d, n_layers=L, n_heads=h, d_ff=ff)
    tag = "".join(f"{k}{v}" for k, v in (("d", d), ("L", L), ("h", h), ("ff", ff)) if v)
    return Model(arch, f"{label}@{tag}", new)


def baseline_for(m: Model, spec: str | None) -> Model | None:
    """The Transformer of the same widths (default; ``m.base`` when it has one), or
    ``ARCH[:PRESET]`` at m's size."""
    if spec is None:
        if m.base is not None:
            return m.base
        if m.arch == "transformer":
            return None
        cfg = architectures.get(m.arch).transformer_baseline(m.cfg)
        tr = architectures.get("transformer")
        name = next((p for p, (c, _) in tr.PRESETS.items() if c == cfg), f"{m.preset}-widths")
        return Model("transformer", name, cfg)
    arch, _, preset = spec.partition(":")
    mod, name, cfg = resolve(arch, preset or None)
    if "@" in m.preset:  # a size grid: the baseline at the same width and depth
        return resized(arch, name, cfg, _size_of(m.cfg))
    return Model(arch, name, cfg)


def _size_of(cfg):
    return (cfg.d_model, cfg.n_layers, None, None)


def points(ms, seqs, batch) -> Iterator[Point]:
    for m in ms:
        for s in seqs:
            yield Point(m.arch, m.preset, s, batch, m.cfg, m.base)


def analytic(pt: Point, scope: str, convention: str = "standard") -> dict:
    """The closed-form record; ``convention`` another paper's accounting of the same config
    (``comparator.count.conventions``).  Parameters and activation memory do not depend on it."""
    m = pt.model
    mod = architectures.get(m.arch)
    if convention == "standard":
        f, extra = mod.flops(m.cfg, pt.seq, pt.batch, scope), {}
    else:   # a model the convention does not define: FLOP fields null, with a reason
        from comparator.count import conventions as cv
        f, extra = cv.counted(convention, m.arch, m.cfg, pt.seq, pt.batch, scope)
    rec = _record(pt, mod.params(m.cfg, pt.seq), "analytic", scope, f.fwd, f.train,
                  f.breakdown, f.train_breakdown, {}, {}, convention)
    rec.update(extra)
    return _with_memory(rec, mod.activation_bytes(m.cfg, pt.seq, pt.batch))


def require_defined(convention: str, arch: str, cfg=None) -> None:
    """A one-model command (explain, cost, roofline) whose convention does not define the
    architecture (or its config ``cfg``: the modern blocks a paper's formula does not
    describe) has nothing to show: one error."""
    from comparator.count import conventions as cv
    try:
        cv.check_defined(convention, arch, cfg)
    except cv.ConventionError as err:
        raise RequestError(err.field, err.value, err.allowed) from None


def check_convention(convention: str, methods=("analytic",)) -> str:
    """``convention`` when known and computable by ``methods``: a paper convention is a
    closed form over the config, so it has no traced count (traces are ours)."""
    from comparator.count import conventions as cv
    if convention not in cv.NAMES:
        raise RequestError("--convention", convention, suggest(convention, cv.NAMES))
    if convention != cv.STANDARD and "traced" in methods:
        raise RequestError("--method", "traced" if len(methods) == 1 else "both",
                         f"analytic with --convention {convention}: a paper's convention is "
                         "a closed form over the config, traced counts follow the standard "
                         "convention only (use --convention standard to trace)")
    return convention


def traced(pt: Point, scope: str, trace: str = "full") -> dict:
    """Trace the real forward and training step of the model on abstract inputs."""
    return traced_all([pt], scope, trace)[_key(pt)]


def _key(pt: Point):
    return (pt.arch, pt.preset, pt.seq, pt.batch)


def traced_all(pts, scope: str, trace: str = "fast", progress=None, limits=None) -> dict:
    """Traced records of ``pts``, by ``(arch, preset, seq, batch)``.  Points of one model
    and batch are traced together (``TRACES``): ``fast`` and ``checked`` count every
    length from shallow and symbolic-length traces equal to the full ones
    (``comparator.count.fasttrace``); ``full`` traces each point whole.  A point beyond
    ``limits`` (``comparator.run.limits``) is refused before any work."""
    from comparator.run.jaxside import ready_to_trace

    if trace not in TRACES:
        raise RequestError("--trace", trace, "choose from " + ", ".join(TRACES))
    ft = ready_to_trace(pts, trace, limits)
    groups: dict = {}
    for pt in pts:
        m = pt.model
        groups.setdefault((m.arch, m.preset, pt.batch, m.cfg), set()).add(pt.seq)
    out, n, total = {}, 0, sum(len(v) for v in groups.values())
    for (arch, preset, batch, cfg), seqs in groups.items():
        mod = architectures.get(arch)
        if trace == "full":
            counts = {s: ft.full_count(mod, cfg, s, batch, memory=True) for s in sorted(seqs)}
        else:
            counts = ft.traced_counts(mod, cfg, seqs, batch, memory=True,
                                      verify="full" if trace == "checked" else "point")
        for s, fc in counts.items():
            pt = Point(arch, preset, s, batch, cfg)
            out[_key(pt)] = _traced_record(pt, scope, fc)
        n += len(seqs)
        if progress:
            progress(n, total)
    return out


def _traced_record(pt: Point, scope: str, fc) -> dict:
    fwd, train = fc.fwd, fc.train
    unsupported = dict(fwd.unsupported)
    for k, v in train.unsupported.items():
        unsupported[k] = max(unsupported.get(k, 0), v)
    flagged = {**fwd.flagged, **train.flagged}
    rec = _record(pt, fc.params, "traced", scope, fwd.flops(scope), train.flops(scope),
                  _nonzero(fwd.breakdown(scope)), _nonzero(train.breakdown(scope)),
                  unsupported, flagged)
    rec["trace"] = fc.method
    return _with_memory(rec, fc.activation_bytes)


def _with_memory(rec: dict, activation_bytes: int) -> dict:
    """Activations autodiff keeps for the backward (fp32), per step and per sequence."""
    rec["activation_bytes"] = int(activation_bytes)
    rec["activation_bytes_per_seq"] = int(activation_bytes) / rec["batch"]
    return rec


def _nonzero(d: dict) -> dict:
    return {k: v for k, v in d.items() if v}


def is_attention(term: str) -> bool:
    parts = term.split("/")
    if parts[0] in GROUPS:
        parts = parts[1:]
    return "/".join(parts[:2]) in ATTENTION_TERMS or parts[0] in ATTENTION_ROOTS


def _record(pt, params, method, scope, fwd, train, breakdown, train_breakdown,
            unsupported, flagged, convention: str = "standard") -> dict:
    tokens = pt.batch * pt.seq
    att = sum(int(v) for k, v in train_breakdown.items() if is_attention(k))
    active = (getattr(architectures.get(pt.arch), "active_params", None)  # mixture of experts
              if pt.arch in architectures.NAMES else None)              # (not a user model)
    active = active(pt.model.cfg, pt.seq) if active else params
    return {
        "arch": pt.arch, "preset": pt.preset, "seq_len": pt.seq, "batch": pt.batch,
        "params": int(params), **({"active_params": int(active)} if active != params else {}),
        "method": method, "scope": scope,
        "fwd_flops": int(fwd), "train_flops": int(train),
        "breakdown": {k: int(v) for k, v in breakdown.items()},
        "train_breakdown": {k: int(v) for k, v in train_breakdown.items()},
        "unsupported": dict(unsupported), "flagged": dict(flagged),
        "tokens": tokens, "fwd_flops_per_token": int(fwd) / tokens,
        "train_flops_per_token": int(train) / tokens,
        "attention_flops": att, "attention_share": att / int(train) if train else 0.0,
        "convention": convention,
    }


def compare(rec: dict, base: dict) -> dict:
    """``rec`` with its ratio to a baseline record of the same length, batch and scope."""
    rec = dict(rec)
    rec["baseline"] = f"{base['arch']}:{base['preset']}"
    rec["baseline_train_flops"] = base["train_flops"]
    rec["ratio_train"] = (rec["train_flops"] / base["train_flops"] if rec["train_flops"]
                          is not None and base["train_flops"] else None)
    return rec


def run(pts, methods=("analytic",), scope: str = "matmul", progress=None,
        baseline: str | None = None, with_baseline: bool = True,
        trace: str = "fast", convention: str = "standard", tracer=None) -> list[dict]:
    """Records for every point and method (analytic before traced); each non-baseline
    model is compared with its baseline, whose rows come first.  Traced points are
    traced together, model by model, by ``tracer`` (default ``traced_all``; a
    ``runner.Tracer`` goes through the results store and workers).  A traced point the
    tracer returns no record for (it failed, and the tracer reports it) has no row; a
    row whose baseline failed has no ratio.  ``convention``: the accounting of the
    analytic rows (a paper's refuses traced ones: ``check_convention``)."""
    if scope not in SCOPES:
        raise RequestError("--scope", scope, "choose from " + ", ".join(SCOPES))
    for m in methods:
        if m not in METHODS:
            raise RequestError("--method", m, "choose from analytic, traced, both")
    check_convention(convention, methods)
    pts = list(pts)
    pairs = []
    for pt in pts:
        base = baseline_for(pt.model, baseline) if with_baseline else None
        pairs.append((pt, Point(base.arch, base.preset, pt.seq, pt.batch, base.cfg)
                      if base else None))
    done = {}
    if "traced" in methods:
        every = [q for pair in pairs for q in pair if q is not None]
        for k, rec in (tracer or traced_all)(every, scope, trace, progress).items():
            done[(*k, "traced")] = rec
    out, emitted = [], set()

    def compute(pt, m):
        key = (*_key(pt), m)
        if key not in done and m == "analytic":
            done[key] = analytic(pt, scope, convention)
        return done.get(key)    # None: a traced point that failed

    for pt, bpt in pairs:
        for m in methods:
            b = compute(bpt, m) if bpt is not None else None
            if b is not None and id(b) not in emitted:
                emitted.add(id(b))
                out.append(b)
            r = compute(pt, m)
            if r is not None and (b is not None or id(r) not in emitted):
                emitted.add(id(r))      # a model that is also a baseline: one row
                out.append(compare(r, b) if b is not None else r)
    return out


def check_policy(arch: str, policy: str | None) -> None:
    """``policy`` (None: the architecture's default), one ``arch``'s model is built with."""
    pols = architectures.get(arch).POLICIES
    if policy is not None and policy not in pols:
        raise RequestError("--policy", policy, f"{arch}: " + ", ".join(pols))

