"""Other papers' FLOP accountings, computed from the same configs as ours (no jax).

Published FLOP figures disagree mostly by convention.  Each convention here returns named
``architectures.terms.Term``s over the dense shape of a config (``shape``), so the record
machinery, scopes and tables are ours; only what is counted differs:

* ``standard`` -- ours (DESIGN.md): the architecture's own terms, the real backward per term.
* ``electra``  -- Clark et al. 2020, ELECTRA's FLOP script (google-research/electra
  ``flops_computation.py``): backward = forward; the word, position and token-type lookups
  are dense one-hot products (2 E x rows per token); the MLM head runs on 15.625% of the
  positions (20 of 128); per element dropout 4, layer norm 5, GELU 8, softmax 5 FLOPs,
  attention scale 1.  We count the shapes as the config has them: the context product and
  the attention's output projection with the attention width (the script uses the hidden
  size for both: ours are 9.0% / 11.8% higher for T5-3B / T5-11B, whose d_attn > d; equal
  elsewhere), a cross-attention's keys and values projected from the encoder's tokens, and
  both layer norms per element (the script charges one of them once per token: under 0.1%).
* ``kaplan``   -- Kaplan et al. 2020, Sec. 2.1 / Table 1: forward 2N + 2 n_layer n_ctx
  d_attn per token, N the non-embedding weights (n_layer (4 d d_attn + 2 d d_ff));
  training 3 x forward.  Embeddings, de-embedding and element-wise work are left out.
* ``megatron`` -- Narayanan et al. 2021, Sec. 5.1: per iteration 96 B s l h^2 (1 + s/(6h)
  + V/(16 l h)): every layer runs forward, again (activation recomputation), and backward
  (2x), the logit layer forward and backward on every position.  Generalised to the
  config's d_attn and d_ff (equal to the paper's for d_attn = h, d_ff = 4h).
* ``palm``     -- Chowdhery et al. 2022, App. B: 6N + 12 L H Q T per token, N the
  non-embedding weights (our reading), the attention term unhalved for causal models.
* ``chinchilla`` -- Hoffmann et al. 2022, App. F: per sequence, embeddings 2 n V d (a dense
  one-hot product), per layer the key/query/value projections 6 n d (k H), key@query
  logits 2 n^2 (k H), softmax 3 H n^2, softmax@value reductions 2 n^2 (k H), final linear
  2 n (k H) d, dense block 4 n d d_ff, final logits 2 n d V; backward = 2 x forward.

The paper conventions describe dense-attention Transformers: a stack of L layers over n
tokens.  Encoder-decoders count each stack over its own tokens (T5's decoder over its
targets, its cross-attention over the inputs); ELECTRA counts generator and discriminator;
ALBERT counts every application of the shared layer (its sentence-order head is left out,
as the ELECTRA script leaves it; so is BERT's next-sentence head with its pooler, of
``head="pretraining"``).  Heads are the config's (the script's default, d / 64,
for every paper preset).  The Reformer has no such shape (LSH
attention, reversible layers): no paper convention defines it, and its records say so
(``undefined``: FLOP fields null, a ``reason``).  Where a convention defines the model but
not one of its parts, the record lists that part under ``not_defined`` with how it is
counted: T5's relative position bias is left out by every paper; their
decoder-only formulas do not define a cross-attention (counted as a second attention: the
queries over the decoder's tokens, keys and values projected from the encoder's); ELECTRA's
script runs a decoder over the encoder's length (its T5-11B line: 512 positions; T5
pre-trains on 114 targets per 512 inputs), we count it over its own targets.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import architectures
from architectures import terms as T
from architectures.config import target_len

from comparator.errors import FieldError

NAMES = ("standard", "electra", "kaplan", "megatron", "palm", "chinchilla")
STANDARD = "standard"

LABELS = {
    "standard": "standard (ours, DESIGN.md)",
    "electra": "electra (Clark et al. 2020, flops_computation.py)",
    "kaplan": "kaplan (Kaplan et al. 2020, Sec. 2.1)",
    "megatron": "megatron (Narayanan et al. 2021, Sec. 5.1)",
    "palm": "palm (Chowdhery et al. 2022, App. B)",
    "chinchilla": "chinchilla (Hoffmann et al. 2022, App. F)",
}
FORMULAS = {
    "standard": "sum of named terms; backward per term (a contraction 2x its forward where "
                "its input needs a gradient); MLM heads on the masked positions; causal "
                "attention as computed",
    "electra": "2 x forward; forward/token = L (6 d d_attn + 4 n d_attn + 2 d_attn d + 4 d "
               "d_ff + per element: softmax 5, dropout 4, LN 5, GELU 8) + one-hot "
               "2 E (V + n + types) + 0.15625 (2 d E + 2 E V + 7 V + ...)",
    "kaplan": "3 x (2N + 2 n_layer n_ctx d_attn) per token; N = n_layer (4 d d_attn + 2 d d_ff)",
    "megatron": "96 B s l h^2 (1 + s/(6h) + V/(16 l h)) per iteration (activation "
                "recomputation: layers 4 passes, logits 3)",
    "palm": "6N + 12 L H Q T per token; N = non-embedding weights",
    "chinchilla": "3 x (2 n V d + L (6 n d kH + 4 n^2 kH + 3 H n^2 + 2 n kH d + 4 n d d_ff) "
                  "+ 2 n d V) per sequence of n tokens (kH = key size x heads)",
}
# record fields that are null for a model a convention does not define
FLOP_FIELDS = ("fwd_flops", "train_flops", "fwd_flops_per_token", "train_flops_per_token",
               "attention_flops", "attention_share")
# the ELECTRA script's per-element constants and MLM output fraction
DROPOUT, LAYER_NORM, GELU, SOFTMAX, SCALE = 4, 5, 8, 5, 1
OUTPUT_FRAC = Fraction(5, 32)   # 0.15625 = 20 of 128 positions


class ConventionError(FieldError):
    """A convention that cannot count a model: names the field, the value, what is allowed."""



@dataclass(frozen=True)
class Stack:
    """L identical layers over n tokens per sequence, as the paper formulas see them."""
    group: str          # term prefix: "" or gen / disc / enc / dec
    layers: int
    n: int              # tokens per sequence (= self-attention keys)
    d: int
    heads: int
    d_attn: int
    d_ff: int
    emb: int            # input embedding width E
    pos_rows: int       # learned position rows looked up (0: none)
    type_rows: int      # token-type rows (0: none)
    cross: int = 0      # keys of a cross-attention per layer (0: none)
    head: str = ""      # mlm | lm | rtd | "" (none)


def check(name: str) -> str:
    if name not in NAMES:
        raise ConventionError("--convention", name, "choose from " + ", ".join(NAMES))
    return name


def undefined(convention: str, arch: str) -> str | None:
    """Why ``convention`` does not define ``arch`` at all (None: it does)."""
    if convention != STANDARD and arch == "reformer":
        return (f"not defined by {convention}: its formulas assume dense attention and plain "
                "residual layers (the Reformer has LSH attention and reversible layers)")
    return None


def not_defined(convention: str, arch: str, cfg) -> dict:
    """{what: how it is counted} for the parts of a model ``convention`` defines no rule
    for (empty: it defines them all, or cannot count the model: ``undefined``)."""
    if convention == STANDARD or undefined(convention, arch):
        return {}
    out = {}
    if getattr(cfg, "rel_buckets", 0):
        out["attn/relbias"] = "T5's relative position bias has no term: left out"
    if getattr(cfg, "kind", "") == "encdec":
        out.update({"decoder length": "the script runs one length per model (its T5-11B "
                    "decoder over all 512 positions): counted over the decoder's targets"}
                   if convention == "electra" else
                   {"cross-attention": "a decoder-only formula: counted as a second attention,"
                    " queries over the targets, keys and values projected from the inputs"})
    if getattr(cfg, "attention", "dense") != "dense":
        out["attention"] = (f"the formulas count dense attention: the {cfg.attention} kernel's "
                            "own cost has no rule (counted as dense attention)")
    if arch == "electra" and convention != "electra":
        out["generator"] = "one network per formula: the generator counted as a second stack"
    if convention in ("megatron", "chinchilla"):
        heads = {st.head for st in shape(arch, cfg, 1)[1]}
        if "mlm" in heads:
            out["head/transform"] = ("the MLM head's dense layer and norm: left out; its "
                                     "logits counted on every position, as the paper's are")
        if "rtd" in heads:
            out["head/rtd"] = "the discriminator's d -> 1 head: left out"
        if convention == "chinchilla" and any(st.emb != st.d for st in shape(arch, cfg, 1)[1]):
            out["embed/proj"] = "factorised embeddings (E -> d): left out"
    return out


def check_defined(convention: str, arch: str) -> None:
    """ConventionError when ``convention`` does not define ``arch``."""
    if undefined(convention, arch):
        raise ConventionError("--convention", convention, "standard for the reformer: the "
                              "papers' formulas assume dense attention and plain residual "
                              "layers, which the Reformer does not have")


def counted(convention: str, arch: str, cfg, seq: int, batch: int = 1,
            scope: str = "matmul") -> tuple[T.FlopCount, dict]:
    """(count, record fields) under a paper's convention: ``not_defined`` where it leaves
    parts of the model undefined; for a model it does not define, an empty count, the
    record's FLOP fields null and the ``reason``."""
    why = undefined(convention, arch)
    if why:
        return T.FlopCount(0, 0, {}, {}), {**dict.fromkeys(FLOP_FIELDS), "reason": why}
    notes = not_defined(convention, arch, cfg)
    return flops(convention, arch, cfg, seq, batch, scope), ({"not_defined": notes} if notes
                                                             else {})


def shape(arch: str, cfg, seq: int, convention: str = "a paper's") -> tuple[int, list[Stack]]:
    """(vocab, stacks) of a config at ``seq`` tokens."""
    check_defined(convention, arch)
    if arch == "electra":
        common = dict(layers=cfg.n_layers, n=seq, emb=cfg.emb_dim, pos_rows=seq,
                      type_rows=cfg.type_vocab)
        gen = Stack("gen", d=cfg.gen_hidden, heads=cfg.gen_heads, d_attn=cfg.gen_hidden,
                    d_ff=cfg.gen_ff, head="mlm", **common)
        disc = Stack("disc", d=cfg.d_model, heads=cfg.n_heads, d_attn=cfg.d_model,
                     d_ff=cfg.d_ff, head="rtd", **common)
        return cfg.vocab, [gen, disc]
    w = dict(d=cfg.d_model, heads=cfg.n_heads, d_attn=cfg.inner, d_ff=cfg.d_ff)
    if arch == "albert":
        return cfg.vocab, [Stack("", cfg.n_layers, seq, emb=cfg.emb_dim, pos_rows=seq,
                                 type_rows=cfg.type_vocab, head="mlm", **w)]
    if cfg.kind == "encoder":
        return cfg.vocab, [Stack("", cfg.n_layers, seq, emb=cfg.d_model,
                                 pos_rows=seq if cfg.max_len else 0,
                                 type_rows=cfg.type_vocab, head="mlm", **w)]
    if cfg.kind == "decoder":
        return cfg.vocab, [Stack("", cfg.n_layers, seq, emb=cfg.d_model, pos_rows=seq,
                                 type_rows=cfg.type_vocab, head="lm", **w)]
    t = target_len(seq)
    return cfg.vocab, [Stack("enc", cfg.n_layers, seq, emb=cfg.d_model, pos_rows=0,
                             type_rows=0, **w),
                       Stack("dec", cfg.n_dec_layers, t, emb=cfg.d_model, pos_rows=0,
                             type_rows=0, cross=seq, head="lm", **w)]


def _attentions(b: int, st: Stack) -> list:
    """(keys, query rows, key/value rows) of each attention of a layer: self-attention over
    the stack's tokens; a cross-attention's keys and values are projected from the
    encoder's ``b x cross`` tokens, its queries from the stack's."""
    t = b * st.n
    return [(st.n, t, t)] + ([(st.cross, t, b * st.cross)] if st.cross else [])


def _same(mm=0, ew=0) -> T.Term:
    """ELECTRA's rule: backward = forward, term by term."""
    return T.Term(mm=mm, ew=ew, mm_bwd=mm, ew_bwd=ew)


def _epilogue(t, d) -> int:
    """Bias, dropout, residual add and layer norm after a projection to d (per element)."""
    return t * d * (1 + DROPOUT + 1 + LAYER_NORM)


def electra_terms(V: int, st: Stack, b: int) -> dict:
    t, d, da, E = b * st.n, st.d, st.d_attn, st.emb
    adds = (st.pos_rows > 0) + (st.type_rows > 0)
    out = {"embed/lookup": _same(mm=2 * t * E * (V + st.pos_rows + st.type_rows),
                                 ew=t * E * (adds + LAYER_NORM + DROPOUT))}
    if E != d:
        out["embed/proj"] = _same(mm=2 * t * E * d, ew=t * d)
    layer: dict = {}
    for keys, q, kv in _attentions(b, st):
        T.merge(layer, {
            "attn/qkv": _same(mm=2 * q * d * da + 4 * kv * d * da, ew=q * da + 2 * kv * da),
            "attn/scores": _same(mm=2 * q * keys * da),
            "attn/softmax": _same(ew=q * st.heads * keys * (SOFTMAX + DROPOUT + SCALE)),
            "attn/context": _same(mm=2 * q * keys * da),
            "attn/out": _same(mm=2 * q * da * d, ew=_epilogue(q, d))})
    T.merge(layer, {"ffn/in": _same(mm=2 * t * d * st.d_ff, ew=t * st.d_ff * (1 + GELU)),
                    "ffn/out": _same(mm=2 * t * st.d_ff * d, ew=_epilogue(t, d))})
    T.merge(out, layer, k=st.layers)
    if st.head == "mlm":
        r = t * OUTPUT_FRAC
        out["head/transform"] = _same(mm=2 * r * d * E, ew=r * E * (1 + GELU + LAYER_NORM))
        out["head/logits"] = _same(mm=2 * r * E * V, ew=r * V * (SOFTMAX + 2))
    elif st.head == "lm":
        out["head/logits"] = _same(mm=2 * t * d * V, ew=t * V * (SOFTMAX + 2))
    elif st.head == "rtd":
        out["head/rtd_dense"] = _same(mm=2 * t * d * d, ew=t * d * (1 + GELU))
        out["head/rtd_logits"] = _same(mm=2 * t * d)
    return out


def _weights(b, st: Stack, k: int = 1, recompute: bool = False) -> dict:
    """2 x weights x the tokens through them per layer (the 2N of Kaplan and PaLM),
    backward 2x."""
    d, da, f, t = st.d, st.d_attn, st.d_ff, b * st.n
    att = _attentions(b, st)
    parts = {"attn/qkv": sum(2 * q * d * da + 4 * kv * d * da for _, q, kv in att),
             "attn/out": sum(2 * q * da * d for _, q, _ in att),
             "ffn/in": 2 * t * d * f, "ffn/out": 2 * t * f * d}
    return {name: _fwd_bwd(k * v, recompute) for name, v in parts.items()}


def _fwd_bwd(x, recompute: bool = False) -> T.Term:
    return T.Term(mm=x, mm_bwd=2 * x, mm_rc=x if recompute else 0)


def kaplan_terms(V: int, st: Stack, b: int, *, context: int = 1) -> dict:
    """``context`` = 1: Kaplan's 2 n_layer n_ctx d_attn; 2: PaLM's scores + context."""
    t, L, da = b * st.n, st.layers, st.d_attn
    out = _weights(b, st, L)
    ctx = 2 * t * L * (st.n + st.cross) * da
    out["attn/scores"] = _fwd_bwd(ctx)
    if context == 2:
        out["attn/context"] = _fwd_bwd(ctx)
    return out


def megatron_terms(V: int, st: Stack, b: int) -> dict:
    t, L, da = b * st.n, st.layers, st.d_attn
    out = _weights(b, st, L, recompute=True)
    ctx = 2 * t * L * (st.n + st.cross) * da
    out["attn/scores"] = _fwd_bwd(ctx, True)
    out["attn/context"] = _fwd_bwd(ctx, True)
    if st.head in ("mlm", "lm"):   # the logit layer on every position, not recomputed
        out["head/logits"] = _fwd_bwd(2 * t * (st.emb if st.head == "mlm" else st.d) * V)
    return out


def chinchilla_terms(V: int, st: Stack, b: int) -> dict:
    """Hoffmann et al. 2022, App. F, term by term; the backward 2x each forward term."""
    t, d, da, E = b * st.n, st.d, st.d_attn, st.emb
    out = {"embed/lookup": _fwd_bwd(2 * t * V * E)}
    layer: dict = {}
    for keys, q, kv in _attentions(b, st):
        soft = 3 * st.heads * q * keys
        T.merge(layer, {"attn/qkv": _fwd_bwd(2 * q * d * da + 4 * kv * d * da),
                        "attn/scores": _fwd_bwd(2 * q * keys * da),
                        "attn/softmax": T.Term(ew=soft, ew_bwd=2 * soft),
                        "attn/context": _fwd_bwd(2 * q * keys * da),
                        "attn/out": _fwd_bwd(2 * q * da * d)})
    T.merge(layer, {"ffn/in": _fwd_bwd(2 * t * d * st.d_ff),
                    "ffn/out": _fwd_bwd(2 * t * st.d_ff * d)})
    T.merge(out, layer, k=st.layers)
    if st.head in ("mlm", "lm"):    # final logits on every position
        out["head/logits"] = _fwd_bwd(2 * t * (E if st.head == "mlm" else d) * V)
    return out


RULES = {"electra": electra_terms, "kaplan": kaplan_terms, "megatron": megatron_terms,
         "palm": lambda V, st, b: kaplan_terms(V, st, b, context=2),
         "chinchilla": chinchilla_terms}


def terms(convention: str, arch: str, cfg, seq: int, batch: int = 1) -> dict:
    """Named terms of one training step under ``convention`` (``standard``: the
    architecture's own)."""
    check(convention)
    if convention == STANDARD:
        return architectures.get(arch).terms(cfg, batch, seq)
    V, stacks = shape(arch, cfg, seq, convention)
    out: dict = {}
    for st in stacks:
        part = RULES[convention](V, st, batch)
        T.merge(out, T.prefixed(st.group, part) if st.group else part)
    return out


def flops(convention: str, arch: str, cfg, seq: int, batch: int = 1,
          scope: str = "matmul") -> T.FlopCount:
    """The training-step count under ``convention`` (Fractions from the ELECTRA head's
    15.625% are truncated to integers by the records)."""
    return T.count(terms(convention, arch, cfg, seq, batch), scope)


def non_embedding_params(arch: str, cfg, seq: int) -> int:
    """N of Kaplan and PaLM: the layers' weight matrices, each application of a shared
    layer counted (every stack; biases, norms, embeddings and heads left out)."""
    _, stacks = shape(arch, cfg, seq)
    return sum(st.layers * (4 * st.d * st.d_attn * (2 if st.cross else 1) + 2 * st.d * st.d_ff)
               for st in stacks)


__all__ = ["ConventionError", "FLOP_FIELDS", "FORMULAS", "LABELS", "NAMES", "STANDARD", "Stack",
           "check", "check_defined", "counted", "flops", "non_embedding_params", "not_defined",
           "shape", "terms", "undefined"]
