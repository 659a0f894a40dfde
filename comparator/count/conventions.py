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

The Transformer's modern decoder blocks (``architectures/modern.py``) are not the papers'
dense layer of ``n_heads`` keys and values and a two-matrix MLP (``modern_fields``):

* ``kaplan`` and ``palm`` count 2N per token with N the non-embedding weights, and N is
  generalised as their authors define it -- the weights as the model has them: the k and v
  projections of ``n_kv_heads`` heads, a GLU's gate matrix (PaLM's own layers are
  multi-query and SwiGLU, counted so in its App. B).  A mixture of experts counts the
  weights a token uses: the router and ``top_k`` of the ``n_experts`` experts (active
  parameters, as common practice counts MoE compute, e.g. Mixtral's 13B active of 47B;
  capacity slots and dropped tokens are not in a 6N rule).  Kaplan's paper had none of
  the three, PaLM no experts: the records name them in ``not_defined`` with how they are
  counted.
* ``electra``, ``megatron`` and ``chinchilla`` write each matrix of the dense layer out:
  a config with ``n_kv_heads`` < ``n_heads``, ``ffn="glu"`` or ``n_experts`` is not
  defined by them (``undefined``: FLOP fields null with the reason naming the fields; a
  one-model command refuses it, ``check_defined``), never counted as a dense layer.

Rotary positions have no table (no position lookup in ELECTRA's one-hot product) and no
matrix (only the ELECTRA script counts element-wise work: left out, noted).
"""
from __future__ import annotations

import dataclasses

import architectures
from architectures import terms as T

from comparator.count import paperterms as P
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
    "kaplan": "3 x (2N + 2 n_layer n_ctx d_attn) per token; N = n_layer (4 d d_attn + 2 d d_ff) "
              "(non-embedding weights; a mixture: those a token uses)",
    "megatron": "96 B s l h^2 (1 + s/(6h) + V/(16 l h)) per iteration (activation "
                "recomputation: layers 4 passes, logits 3)",
    "palm": "6N + 12 L H Q T per token; N = non-embedding weights (a mixture: those a token "
            "uses)",
    "chinchilla": "3 x (2 n V d + L (6 n d kH + 4 n^2 kH + 3 H n^2 + 2 n kH d + 4 n d d_ff) "
                  "+ 2 n d V) per sequence of n tokens (kH = key size x heads)",
}
# record fields that are null for a model a convention does not define
FLOP_FIELDS = ("fwd_flops", "train_flops", "fwd_flops_per_token", "train_flops_per_token",
               "attention_flops", "attention_share")


class ConventionError(FieldError):
    """A convention that cannot count a model: names the field, the value, what is allowed."""


# conventions counting 2N per token, N the non-embedding weights: generalised to the modern
# blocks with N the weights a token uses (the module docstring)
WEIGHT_RULES = ("kaplan", "palm")
# how each modern block differs from the papers' dense layer
_MODERN = {"n_kv_heads": "grouped-query attention", "ffn": "a gated FFN",
           "n_experts": "a mixture of experts"}


def modern_fields(cfg) -> dict:
    """{field: value} of ``cfg``'s blocks that are not the papers' dense layer (k, v of
    every head, a two-matrix MLP, no experts); empty for every other config."""
    out = {}
    kv, heads = getattr(cfg, "n_kv_heads", None), getattr(cfg, "n_heads", None)
    if kv is not None and kv != heads:
        out["n_kv_heads"] = kv
    if getattr(cfg, "ffn", "mlp") != "mlp":
        out["ffn"] = cfg.ffn
    if getattr(cfg, "n_experts", 0):
        out["n_experts"] = cfg.n_experts
    return out


def _unlike(fields: dict) -> str:
    return ", ".join(f"{_MODERN[k]} ({k}={v!r})" for k, v in fields.items())



def check(name: str) -> str:
    if name not in NAMES:
        raise ConventionError("--convention", name, "choose from " + ", ".join(NAMES))
    return name


def undefined(convention: str, arch: str, cfg=None) -> str | None:
    """Why ``convention`` does not define ``arch`` (or its config ``cfg``) at all (None: it
    does)."""
    if convention != STANDARD and arch == "reformer":
        return (f"not defined by {convention}: its formulas assume dense attention and plain "
                "residual layers (the Reformer has LSH attention and reversible layers)")
    fields = modern_fields(cfg) if convention not in (STANDARD, *WEIGHT_RULES) else {}
    if fields:
        return (f"not defined by {convention}: its formula writes out a dense layer, not "
                f"{_unlike(fields)} (kaplan, palm: 2N, N the weights a token uses)")
    return None


def not_defined(convention: str, arch: str, cfg) -> dict:
    """{what: how it is counted} for the parts of a model ``convention`` defines no rule
    for (empty: it defines them all, or cannot count the model: ``undefined``)."""
    if convention == STANDARD or undefined(convention, arch, cfg):
        return {}
    out = {}
    fields = modern_fields(cfg)
    if convention == "kaplan" and "n_kv_heads" in fields:
        out["n_kv_heads"] = (f"grouped-query attention: N counts the k and v projections of "
                             f"its {cfg.n_kv_heads} heads (the weights as the model has them)")
    if convention == "kaplan" and "ffn" in fields:
        out["ffn"] = "a gated FFN: N counts its three matrices (gate, up, down)"
    if "n_experts" in fields:
        out["n_experts"] = (f"a mixture of experts: N counts the weights a token uses, the "
                            f"router and top_k={cfg.top_k} of {cfg.n_experts} experts (active "
                            "parameters, as common practice counts MoE compute)")
    if getattr(cfg, "positions", "learned") == "rope" and convention == "electra":
        out["attn/rope"] = ("rotary positions: no rule in the script (element-wise, no "
                            "table): left out, and no position table looked up")
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


def check_defined(convention: str, arch: str, cfg=None) -> None:
    """ConventionError when ``convention`` does not define ``arch`` (or its ``cfg``)."""
    if not undefined(convention, arch, cfg):
        return
    if arch == "reformer":
        raise ConventionError("--convention", convention, "standard for the reformer: the "
                              "papers' formulas assume dense attention and plain residual "
                              "layers, which the Reformer does not have")
    raise ConventionError("--convention", convention, "standard, kaplan or palm for a model "
                          f"with {_unlike(modern_fields(cfg))}: {convention}'s formula writes "
                          "out a dense layer (k and v of every head, a two-matrix MLP); "
                          "kaplan and palm count 2N with N the weights a token uses")


def counted(convention: str, arch: str, cfg, seq: int, batch: int = 1,
            scope: str = "matmul") -> tuple[T.FlopCount, dict]:
    """(count, record fields) under a paper's convention: ``not_defined`` where it leaves
    parts of the model undefined; for a model it does not define, an empty count, the
    record's FLOP fields null and the ``reason``."""
    why = undefined(convention, arch, cfg)
    if why:
        return T.FlopCount(0, 0, {}, {}), {**dict.fromkeys(FLOP_FIELDS), "reason": why}
    notes = not_defined(convention, arch, cfg)
    return flops(convention, arch, cfg, seq, batch, scope), ({"not_defined": notes} if notes
                                                             else {})


def shape(arch: str, cfg, seq: int, convention: str = "a paper's") -> tuple[int, list]:
    """(vocab, stacks) of a config at ``seq`` tokens (``paperterms.stacks``), refused for
    a model ``convention`` does not define (any paper's: the Reformer)."""
    check_defined(convention, arch, cfg if convention != "a paper's" else None)
    return P.stacks(arch, cfg, seq)


def terms(convention: str, arch: str, cfg, seq: int, batch: int = 1) -> dict:
    """Named terms of one training step under ``convention`` (``standard``: the
    architecture's own)."""
    check(convention)
    if convention == STANDARD:
        return architectures.get(arch).terms(cfg, batch, seq)
    V, stacks = shape(arch, cfg, seq, convention)
    out: dict = {}
    for st in stacks:
        part = P.RULES[convention](V, st, batch)
        T.merge(out, T.prefixed(st.group, part) if st.group else part)
    return out


def flops(convention: str, arch: str, cfg, seq: int, batch: int = 1,
          scope: str = "matmul") -> T.FlopCount:
    """The training-step count under ``convention`` (Fractions from the ELECTRA head's
    15.625% are truncated to integers by the records)."""
    return T.count(terms(convention, arch, cfg, seq, batch), scope)


def non_embedding_params(arch: str, cfg, seq: int, active: bool = True) -> int:
    """N of Kaplan and PaLM: the layers' weight matrices, each application of a shared
    layer counted (every stack; biases, norms, embeddings and heads left out).  A mixture
    of experts: the weights a token uses (``active``), else every expert's."""
    _, stacks = shape(arch, cfg, seq)
    if not active:
        stacks = [dataclasses.replace(st, top_k=st.experts) if st.experts else st
                  for st in stacks]
    return sum(st.layers * sum(P.layer_weights(st).values()) for st in stacks)


__all__ = ["ConventionError", "FLOP_FIELDS", "FORMULAS", "LABELS", "NAMES", "STANDARD",
           "WEIGHT_RULES", "check", "check_defined", "counted", "flops", "modern_fields",
           "non_embedding_params", "not_defined", "shape", "terms", "undefined"]
