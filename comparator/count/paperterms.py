"""The papers' FLOP formulas as named terms (``comparator.count.conventions`` says whose
and how they differ; no jax): a config's dense shape as ``Stack``s (``stacks``) and each
paper's rule over one stack (``RULES``: ELECTRA's script, Kaplan, Megatron, PaLM,
Chinchilla), with the weights a token goes through per layer (``layer_weights``, the N of
Kaplan and PaLM).  The modern blocks' fields of a stack (``d_kv``, ``gates``, ``experts``,
``top_k``) are read by the weight rule (``_weights``: Kaplan's and PaLM's 2N);
``conventions`` gives ELECTRA's, Megatron's and Chinchilla's rules dense stacks only.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from architectures import terms as T
from architectures.config import target_len

# the ELECTRA script's per-element constants and MLM output fraction
DROPOUT, LAYER_NORM, GELU, SOFTMAX, SCALE = 4, 5, 8, 5, 1
OUTPUT_FRAC = Fraction(5, 32)   # 0.15625 = 20 of 128 positions


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
    d_kv: int = 0       # width of the k and v projections (0: d_attn; grouped-query: less)
    gates: int = 1      # input matrices of the FFN (2: a GLU's gate and up projections)
    experts: int = 0    # a mixture's experts (0: a dense FFN)
    top_k: int = 1      # experts a token uses


def stacks(arch: str, cfg, seq: int) -> tuple[int, list[Stack]]:
    """(vocab, stacks) of an ALBERT, ELECTRA or Transformer config at ``seq`` tokens."""
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
        moe = cfg.moe
        return cfg.vocab, [Stack("", cfg.n_layers, seq, emb=cfg.d_model,
                                 pos_rows=0 if cfg.rope else seq, type_rows=cfg.type_vocab,
                                 head="lm", d_kv=cfg.kv_heads * cfg.d_head,
                                 gates=2 if cfg.ffn == "glu" else 1,
                                 experts=moe.n_experts if moe else 0,
                                 top_k=moe.top_k if moe else 1, **w)]
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


def layer_weights(st: Stack) -> dict:
    """The weights one token goes through in a layer, by term: q and the output of d_attn,
    k and v of d_kv (self- and cross-attention), the FFN's gates + 1 matrices of every
    expert it uses, and a mixture's router (d x experts)."""
    d, da, dkv, f = st.d, st.d_attn, st.d_kv or st.d_attn, st.d_ff
    attns = 2 if st.cross else 1
    used = st.top_k if st.experts else 1
    out = {"attn/qkv": attns * (d * da + 2 * d * dkv), "attn/out": attns * da * d,
           "ffn/in": used * st.gates * d * f, "ffn/out": used * f * d}
    if st.experts:
        out["ffn/router"] = d * st.experts
    return out


def _weights(b, st: Stack, k: int = 1, recompute: bool = False) -> dict:
    """2 x weights x the tokens through them per layer (the 2N of Kaplan and PaLM; a
    cross-attention's k and v through the encoder's tokens), backward 2x."""
    t, dkv = b * st.n, st.d_kv or st.d_attn
    parts = {name: 2 * t * w for name, w in layer_weights(st).items()}
    if st.cross:   # k, v of the cross-attention projected from b x cross encoder tokens
        parts["attn/qkv"] += 4 * (b * st.cross - t) * st.d * dkv
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


__all__ = ["RULES", "Stack", "chinchilla_terms", "electra_terms", "kaplan_terms",
           "layer_weights", "megatron_terms", "stacks"]
