"""The step time of a model on a device: the time model of the compiled step (default) or
the flat MFU, as the cost commands use them.

``predict(mod, cfg, seq, batch, dtype, profile)`` compiles the training step (XLA:CPU, the
only compiler here: its fusion decisions stand in for the target's, stated in every
record) at reduced depth -- a and a + p layers, p the layer period, as ``fasttrace``
counts FLOPs -- reads its regions (``regions.step_regions``) and predicts each on the
profile (``timemodel.predict``).  Every region's time is additive, so the full depth's
is ``t(a) + (q - 1) (t(a + p) - t(a))``, term by term, exactly as for FLOPs.  The regions
depend on the model and the length, not on the device: they are kept per process and in
the results store, so pricing one step on many devices compiles it once.

On an accelerator's profile flash attention is priced as the one kernel per layer and
direction it runs there (``fusedflash``: FlashAttention's IO model on the device's on-chip
memory), not as XLA:CPU's separate blocks; the CPU profile prices what XLA:CPU compiled.

``fields(st, ...)`` turns a ``StepTime`` into the record fields the tables show
(``step_time_s``, ``memory_bound_share``, ``achieved_utilisation``) and the assumptions
that name the time model, the profile, whether it was calibrated and how fused attention
was priced (``fused_attention``).
"""
from __future__ import annotations

from collections import defaultdict

TIME_MODELS = ("roofline", "mfu")   # the first is the default
COMPILER_NOTE = ("regions and fusion from XLA:CPU's compilation of the step (the target "
                 "compiler's fusion is not available here); its fp32 contractions of a 16-bit "
                 "step in the training dtype on an accelerator")
_REGIONS: dict = {}
# called with one line before each compilation (the CLI writes it to stderr): the first
# time a model and length are priced, compiling its step takes seconds
PROGRESS = None


def _key(mod, cfg, seq, batch, dtype, policy=None) -> tuple:
    key = (getattr(mod, "NAME", str(mod)), repr(cfg), int(seq), int(batch), dtype)
    return key if policy is None else key + (policy,)


def regions_at(mod, cfg, seq: int, batch: int, dtype: str, store=None,
               policy: str | None = None) -> list:
    """The compiled step's regions (cached in the process and, with ``store``, on disk);
    ``policy``: the memory policy its layers are built under (None: the default)."""
    from comparator.cost import regions as R
    key = _key(mod, cfg, seq, batch, dtype, policy)
    return cached(key, lambda: R.step_regions(mod, cfg, seq, batch, dtype, policy), store,
                  f"{key[0]} ({getattr(cfg, 'n_layers', '?')} layers) at {seq} tokens x "
                  f"{batch} in {dtype}")


def cached(key: tuple, compile_regions, store=None, what: str = "") -> list:
    """The regions kept under ``key`` in the process, else in ``store``, else
    ``compile_regions()`` (said first through ``PROGRESS``), kept in both."""
    if key in _REGIONS:
        return _REGIONS[key]
    got = store.get_regions(key) if store is not None else None
    if got is None:
        if PROGRESS is not None:
            PROGRESS(f"compiling {what or key[0]} for the time model (stored afterwards)")
        got = compile_regions()
        if store is not None:
            store.put_regions(key, got)
    _REGIONS[key] = got
    return got


def retarget(regions, dtype: str, profile) -> list:
    """Regions compiled here, as the target runs them: XLA:CPU computes 16-bit contractions
    in fp32 (it converts their operands); an accelerator runs them in the training dtype,
    reading half the bytes.  A CPU profile takes the regions as compiled."""
    import dataclasses
    if profile.kind == "cpu" or dtype not in ("bf16", "fp16"):
        return regions
    return [dataclasses.replace(r, dtype=dtype, bytes=r.bytes // 2)
            if r.kind == "matmul" and r.dtype == "fp32" else r for r in regions]


def combine(parts):
    """``sum(coef * StepTime)`` term by term (``parts``: [(coef, StepTime)])."""
    from comparator.cost.timemodel import StepTime
    term_s, mem_s, bound_s = defaultdict(float), defaultdict(float), defaultdict(float)
    flops, first = 0.0, parts[0][1]
    unknown: dict = defaultdict(int)
    notes: dict = {}
    for coef, st in parts:
        notes.update(dict.fromkeys(st.notes))
        for k, v in st.term_s.items():
            term_s[k] += coef * v
            mem_s[k] += coef * v * st.term_memory_share.get(k, 0.0)
        for k, v in st.bound_share.items():
            bound_s[k] += coef * v * st.total_s
        flops += coef * st.matmul_flops
        for k, v in st.unknown.items():
            unknown[k] = max(unknown[k], v)
    total = sum(term_s.values())
    best = first.matmul_flops / (first.utilisation * first.total_s) if (
        first.utilisation and first.total_s) else 0.0
    return StepTime(
        total_s=total, term_s=dict(sorted(term_s.items())),
        term_memory_share={k: mem_s[k] / v if v else 0.0 for k, v in sorted(term_s.items())},
        bound_share={k: v / total if total else 0.0 for k, v in bound_s.items()},
        matmul_flops=int(round(flops)), utilisation=flops / (total * best) if total and best
        else 0.0, device=first.device, calibrated=first.calibrated,
        time_model=first.time_model, unknown=dict(unknown), notes=tuple(notes))


def predict(mod, cfg, seq: int, batch: int, dtype: str, profile, store=None,
            policy: str | None = None):
    """The time model's ``StepTime`` of one training step of ``batch`` sequences, its
    layers under the memory ``policy`` (None: the architecture's default; ``checkpoint``
    pays the recomputation); on an accelerator flash attention as its fused kernel
    (``fusedflash``)."""
    from comparator.count.fasttrace import depth_plan
    from comparator.cost.timemodel import predict as predict_regions
    plan, _ = depth_plan(mod, cfg, reduce_jitted=True)
    parts = []
    for coef, c in plan:
        regions = retarget(regions_at(mod, c, seq, batch, dtype, store, policy), dtype,
                           profile)
        regions, notes = fused(regions, mod, c, seq, batch, dtype, profile)
        parts.append((coef, predict_regions(regions, profile, notes)))
    return parts[0][1] if len(parts) == 1 else combine(parts)


def fused(regions, mod, cfg, seq: int, batch: int, dtype: str, profile) -> tuple:
    """``(regions, notes)``: ``fusedflash.fuse`` of the model's attention layers (an
    architecture with an attention choice: ``attention_stacks``)."""
    from comparator.cost import fusedflash
    stacks = getattr(mod, "attention_stacks", None)
    if stacks is None:
        return regions, ()
    return fusedflash.fuse(regions, stacks(cfg, batch, seq), dtype, profile)


def predict_program(prog, args, dtype: str, profile, terms=(), key=None, label: str = ""):
    """The time model's ``StepTime`` of any training step ``prog`` (a user's: ``loss`` and
    ``train_step``) compiled for its abstract ``args`` -- the whole step, no depth plan --
    its regions named by ``terms`` or their kind (``regions.program_regions``) and kept in
    this process under ``key``."""
    from comparator.cost import regions as R
    from comparator.cost.timemodel import predict as predict_regions
    got = _REGIONS.get(key) if key is not None else None
    if got is None:
        if PROGRESS is not None:
            PROGRESS(f"compiling {label or 'the step'} in {dtype} for the time model")
        got = R.program_regions(prog, args, dtype, terms)
        if key is not None:
            _REGIONS[key] = got
    return predict_regions(retarget(got, dtype, profile), profile)


def fields(st) -> dict:
    """Record fields of a ``StepTime`` (of one device's share of a data-parallel batch)."""
    return {"step_time_s": st.total_s, "memory_bound_share": st.memory_share,
            "achieved_utilisation": st.utilisation,
            "time_breakdown_s": dict(st.term_s),
            "time_assumptions": {"time_model": st.time_model, "profile": st.device,
                                 "calibrated": st.calibrated, "regions": COMPILER_NOTE,
                                 **({"unmodelled_ops": st.unknown} if st.unknown else {}),
                                 **({"fused_attention": list(st.notes)} if st.notes else {})}}


__all__ = ["COMPILER_NOTE", "TIME_MODELS", "cached", "combine", "fields", "fused", "predict",
           "predict_program", "regions_at"]
