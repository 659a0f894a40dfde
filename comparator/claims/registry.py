"""Efficiency claims of the papers, each checked from the tool's own counts (no jax).

A ``Claim`` has its source (paper and table or section), its statement, how it is checked
and a check: a function of the models it is about (``models()``: role -> (arch, Config),
the presets by default) returning a verdict and the numbers behind it.  Nothing here is a
stored answer: change a model and the numbers and the verdict follow (tests do).  Verdicts
are one of ``holds``, ``does not hold`` (``... in FLOPs`` where a measured speed is the
claim), ``holds only beyond X``, ``holds only below X``, ``holds in FLOPs but not in
measured time``, ``holds in measured time, not in FLOPs`` (a published measurement
our FLOPs do not explain), ``holds only under <one> convention`` (a claim checked under
the paper's accounting and ours), ``holds only without <terms>`` (a published count
reproduced only when terms its own formula names are left out), ``holds except <what>``
(a table of several models whose rows agree but for those named: ``claims.lra``),
``does not hold (first crossing at X tokens)`` (a crossover outside the published range:
``claims.flashcross``) or ``not checked`` (a measurement is missing).

A claim about speed or cost also has a *time line* (``timed``, ``claimchecks_speed``):
the claim judged from the step times the time model predicts on a device profile, not
from FLOPs -- its verdict (``time_verdict``), numbers (``numbers["time_model"]``) and a
sentence in the detail naming the model, the device and whether its profile was
calibrated.  ``evaluate`` runs them only when given a ``Timing`` (they compile steps).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from comparator.run.requests import ClaimsRequest
from comparator.run.sweep import RequestError, suggest
from comparator.claims.checks import (albert_params, albert_sharing, albert_xxlarge, bert_small,
                                      chinchilla_table, cost_claim, electra_generator, electra_small,
                                      nlogn_local, reformer_crossover, reformer_measured,
                                      reformer_memory, reformer_scaling, six_nd)
from comparator.claims import flashcross, lra
from comparator.claims.speed import (Timing, albert_time, cost_time, crossover_time,
                                     electra_time, lra_speed, lra_speed_time, models)


@dataclass(frozen=True)
class Claim:
    id: str
    topic: str
    source: str
    statement: str
    check: str
    run: Callable   # (models, bench) -> (verdict, numbers, detail): comparator.claims.checks
    history: str = ""   # how an earlier release judged it, where the verdict changed
    timed: Callable | None = None   # (models, Timing) -> (time verdict, numbers, text)


# -- the registry -----------------------------------------------------------------------

_KITAEV = "Kitaev, Kaiser & Levskaya 2020, Reformer (ICLR)"
_LAN = "Lan et al. 2020, ALBERT (ICLR)"
_CLARK = "Clark et al. 2020, ELECTRA (ICLR)"
_SHARIR = "Sharir, Peleg & Shoham 2020, The Cost of Training NLP Models, Sec. 1"
_TAY = "Tay et al. 2021, Long Range Arena (ICLR)"
CLAIMS = (
    Claim("reformer-lsh-scaling", "Reformer", _KITAEV + ", Sec. 3 and Table 3",
          "LSH attention costs O(n log n) in the sequence length, dense attention O(n^2)",
          "fitted and local exponents of the attention FLOPs (all scope) of reformer-base "
          "and of the dense Transformer of its widths, 1k-64k tokens", reformer_scaling,
          history="until 2026-12 'holds only below 8,192 tokens': the LSH layers took "
                  "n_buckets = 2n/chunk, unrounded and unfactorised, so hashing grew as "
                  "n^2/chunk; the reference rule (a power of two, factorised above a limit) "
                  "keeps it near linear"),
    Claim("reformer-crossover", "Reformer", _KITAEV + ", Sec. 5",
          "the Reformer is cheaper than a Transformer on long sequences",
          "training FLOPs (all scope) of reformer-base and the dense Transformer of its "
          "widths, 1k-64k tokens: where they cross", reformer_crossover,
          history="until 2026-12 the crossover was at 1,892 tokens (2n/chunk buckets, "
                  "hashing again in the backward)", timed=crossover_time),
    Claim("reformer-memory-depth", "Reformer", _KITAEV + ", Sec. 3 (Table 5)",
          "reversible layers make activation memory independent of the number of layers",
          "activation memory at the training step's peak (what the forward keeps plus the "
          "backward's working set, recomputation included) from the memory model validated "
          "against XLA (comparator memory), fp32, at 6, 12, 24 layers, 4,096 tokens",
          reformer_memory,
          history="until 2026-12 judged from the residuals autodiff keeps (activation_bytes, "
                  "no working set): 1.5 MiB a layer, 0.09% of the dense model's; re-derived "
                  "from the validated memory model (issue 18), the recomputed layer's working "
                  "set included"),
    Claim("reformer-measured-crossover", "Reformer", _KITAEV + ", Sec. 5 (Fig. 5)",
          "LSH attention is faster than dense attention beyond some length",
          "'comparator bench --kernel attention' results (--bench FILE): the first length "
          "from which LSH stays faster (fwd+bwd), beside the FLOP crossover",
          reformer_measured),
    Claim("lra-reformer-speed", "Reformer", _TAY + ", Table 2 and App. A.1.2",
          "the Reformer trains slower than the vanilla Transformer at 1K-4K tokens on TPU "
          "v3 (0.4x-0.8x its steps per second)",
          "the published steps per second (byte-level text classification, 6 layers, "
          "d_model 512, 8 heads, FFN 2048, batch 32 on 16 TPU v3 chips) as a step-time "
          "ratio, beside our training FLOPs at those sizes (2 sequences a chip) and the "
          "time model's predicted step times on tpu-v3", lra_speed, timed=lra_speed_time),
    Claim("lra-efficiency", "Attention", _TAY + ", Table 2 and Sec. 3.4",
          "local attention, Linformer and the Performer train faster than the vanilla "
          "Transformer at 1K-4K tokens on TPU v3 (1.1x-5.7x its steps per second), the "
          "Reformer slower (0.4x-0.8x), and all four need less memory per device "
          "(0.10x-0.56x)",
          "each choice's published steps per second and peak memory over the "
          "Transformer's, beside our training FLOPs (2 sequences a chip) and memory (one "
          "sequence a device, fp32, Adam) at the paper's sizes with the released code's "
          "settings (local blocks, Linformer k = 16, 64 Performer features); a row agrees "
          "where ours falls on the same side of 1", lra.efficiency,
          timed=lra.efficiency_time),
    Claim("flash-crossover", "Attention",
          "Dao et al. 2022, FlashAttention (NeurIPS), Sec. 4.3 and App. E.6 (Table 20)",
          "FlashAttention runs faster than approximate attention on short sequences; "
          "their runtimes begin to cross over with it between 512 and 1,024 tokens",
          "the first length from which Linformer, local attention and the Reformer's LSH "
          "stay faster than FlashAttention (forward + backward, batch 16, 8 heads of 64, "
          "128-64K tokens, compressed to min(n/8, 256)) in Table 20, beside the same in "
          "our training FLOPs of each kernel; the earliest judged in (512, 1,024]",
          flashcross.crossover, timed=flashcross.crossover_time),
    Claim("albert-params", "ALBERT", _LAN + ", Table 2",
          "ALBERT-large has about 18x fewer parameters than BERT-large",
          "parameters of each ALBERT preset and of BERT at its width and depth",
          albert_params),
    Claim("albert-sharing-flops", "ALBERT", _LAN + ", Sec. 3.1 and 4.3",
          "cross-layer sharing reduces parameters, not the computation per token",
          "albert-base with and without sharing at 512 tokens: parameters and training "
          "FLOPs", albert_sharing),
    Claim("albert-xxlarge-speed", "ALBERT", _LAN + ", Table 2 (speedup column)",
          "BERT-large trains about 3.2x faster than ALBERT-xxlarge",
          "training FLOPs per step (matmul) of albert-xxlarge over bert-large at 512 tokens",
          albert_xxlarge, timed=albert_time),
    Claim("electra-small-compute", "ELECTRA", _CLARK + ", Table 1",
          "ELECTRA-Small (1M steps) and BERT-Small (1.45M steps) train with the same "
          "compute, 1.4e18 FLOPs",
          "run totals at batch 128 x 128 tokens under ELECTRA's convention and ours",
          electra_small),
    Claim("electra-generator-share", "ELECTRA", _CLARK + ", Table 1 and Sec. 3.2",
          "with a small generator an ELECTRA-Base step costs about 1.3x a BERT-Base step "
          "(766k vs 1M steps for the same 6.4e19 FLOPs)",
          "generator share of each ELECTRA preset's step; step ratio to BERT-Base, 512 tokens",
          electra_generator, timed=electra_time),
    Claim("cost-bert-base", "Cost", _SHARIR, "training BERT-base costs $2.5k-$50k",
          "'comparator scenario' one-run price on its accelerators at the catalogue's MFU "
          "and on-demand prices", cost_claim("BERT-base"),
          timed=cost_time("BERT-base")),
    Claim("cost-bert-large", "Cost", _SHARIR, "training BERT-large costs $10k-$200k",
          "as cost-bert-base", cost_claim("BERT-large"),
          timed=cost_time("BERT-large")),
    Claim("cost-gpt2-1.5b", "Cost", _SHARIR, "training GPT-2 1.5B costs $80k-$1.6M",
          "as cost-bert-base (200k steps: our assumption)", cost_claim("GPT-2 1.5B"),
          timed=cost_time("GPT-2 1.5B")),
    Claim("cost-t5-11b", "Cost", _SHARIR, "one T5-11B run costs over $1.3M",
          "as cost-bert-base", cost_claim("T5-11B"),
          timed=cost_time("T5-11B")),
    Claim("scaling-6nd", "Scaling rules", "Kaplan et al. 2020, Sec. 2.1",
          "training compute is C = 6ND, the context term negligible while 12 d_model >> n_ctx",
          "training FLOPs per token of gpt2-small (matmul) without the embedding and logit "
          "terms (Kaplan's non-embedding compute) over 6N, N = Kaplan's non-embedding "
          "weights, 128-16k tokens; holds within 10%; N = all parameters over the full count "
          "beside it", six_nd),
    Claim("chinchilla-6nd-table", "Scaling rules",
          "Hoffmann et al. 2022, Training Compute-Optimal LLMs, App. F and Table A4",
          "their FLOPs per sequence (App. F) differ little from 6ND: 1.03, 1.10, 1.08, 1.04, "
          "1.03 and 0.99x for six models of 73M-6.8B parameters",
          "the chinchilla convention per 2,048-token sequence (vocabulary 32,000) over "
          "6 N x 2,048, N the table's parameters (layers, their relative-position "
          "projections, one embedding); each ratio beside the published one, within 0.01",
          chinchilla_table),
)
IDS = tuple(c.id for c in CLAIMS)


def evaluate(ids=None, m: dict | None = None, bench=None,
             timing: Timing | None = None) -> list[dict]:
    """A record per claim: id, topic, source, statement, check, verdict, numbers, detail,
    and ``time_verdict`` -- with ``timing``, the time line's verdict of a claim about speed
    or cost (None otherwise)."""
    m = m or models()
    wanted = ids or IDS
    out = []
    for c in CLAIMS:
        if c.id not in wanted:
            continue
        verdict, nums, detail = c.run(m, bench)
        time_verdict = None
        if timing is not None and c.timed is not None:
            try:
                time_verdict, tnums, line = c.timed(m, timing)
            except Exception as err:   # a step XLA:CPU cannot compile, a device without a
                #                          profile: said, and the FLOP verdict stands
                time_verdict, tnums = "not checked", {}
                line = f"failed: {type(err).__name__}: {err}"[:200]
            nums = {**nums, "time_model": tnums}
            detail += f". Time model ({time_verdict}): {line}"
        if c.history:
            detail += f". History: {c.history}"
        out.append({"id": c.id, "topic": c.topic, "source": c.source,
                    "statement": c.statement, "check": c.check, "verdict": verdict,
                    "detail": detail, "numbers": nums, "history": c.history,
                    "time_verdict": time_verdict})
    return out


def load_bench(path: str) -> list:
    """The records of a ``comparator bench --kernel attention --format json`` file."""
    from comparator.cost import files
    allowed = "a JSON file written by 'comparator bench --kernel attention --format json'"
    data = files.load(path, "--bench", allowed, "json", RequestError)
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise RequestError("--bench", path, allowed + " (a list of records)")
    return data


def records(req: ClaimsRequest) -> list[dict]:
    """The records of ``evaluate`` for a ``ClaimsRequest``: its claims (default all), its
    kernel benchmark's records, the time model's verdicts unless ``time_model="mfu"``."""
    for i in req.ids:
        if i not in IDS:
            raise RequestError("--id", i, suggest(i, IDS))
    timing = None
    if req.time_model == "roofline":
        from comparator.run.store import Store
        timing = Timing(Store(req.db))
    return evaluate(list(req.ids) or None, bench=None if req.bench is None else list(req.bench),
                    timing=timing)


__all__ = ["CLAIMS", "Claim", "IDS", "Timing", "bert_small", "evaluate", "load_bench",
           "models", "nlogn_local", "records"]
