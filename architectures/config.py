"""Validation and shared sizing rules for the architectures' configs (no jax here)."""
from __future__ import annotations

import dataclasses
from fractions import Fraction

from .num import ceil_div, maximum

# Fields every config may have, with what they must be.
NON_NEGATIVE_INT = ("n_dec_layers", "max_len", "type_vocab", "rel_buckets", "rel_max_distance",
                    "chunks_before", "chunks_after", "ffn_chunk", "n_experts")
ACTIVATIONS = ("gelu", "gelu_tanh", "relu", "silu")
# The largest size a config may hold: an array dimension XLA indexes with int32, and far
# beyond any model (larger values would overflow the traced shapes and the numba grids).
MAX_DIM = 2**31 - 1
# Bounds of the sizes a config may have: orders of magnitude beyond the largest published
# models, so that no real model is refused while a typo or 2**31 - 1 layers is, at once,
# instead of a count whose numbers mean nothing or a trace that never ends.  Field:
# (largest value, why).  The models they are measured against:
#   depth   DeepNet (Wang et al. 2022, "Scaling Transformers to 1,000 Layers"): 1,000 layers
#   width   MT-NLG 530B (Smith et al. 2022): hidden 20,480, 128 heads
#   FFN     PaLM 540B (Chowdhery et al. 2022, Table 1): 4 x 18,432 = 73,728
#   vocab   PaLM (Chowdhery et al. 2022): 256k SentencePiece tokens
#   length  Gemini 1.5 (Reid et al. 2024): contexts of up to 10M tokens
#   experts Switch-C (Fedus et al. 2022, Table 9): 2,048 experts a layer
_DEPTH = (100_000, "100x the 1,000 layers of DeepNet (Wang et al. 2022), the deepest "
                   "published Transformer")
_WIDTH = (2**21, "about 100x the hidden size 20,480 of MT-NLG 530B (Smith et al. 2022), the "
                 "widest published")
_HEADS = (2**16, "512x the 128 heads of MT-NLG 530B (Smith et al. 2022)")
_EXPERTS = (2**18, "128x the 2,048 experts of Switch-C (Fedus et al. 2022), the most published")
_LENGTH = (2**30, "about 100x the 10M-token contexts of Gemini 1.5 (Reid et al. 2024), the "
                  "longest published")
BOUNDS = {
    "n_layers": _DEPTH, "n_dec_layers": _DEPTH,
    "d_model": _WIDTH, "emb_dim": _WIDTH, "head_dim": _WIDTH,
    "n_heads": _HEADS,
    "ff_dim": (2**23, "about 100x the FFN width 73,728 of PaLM 540B (Chowdhery et al. 2022)"),
    "vocab": (2**27, "about 500x the 256k-token vocabulary of PaLM (Chowdhery et al. 2022)"),
    "type_vocab": (2**27, "as the vocabulary: about 500x PaLM's 256k tokens"),
    "max_len": _LENGTH, "chunk_len": _LENGTH, "lsh_chunk": _LENGTH, "local_chunk": _LENGTH,
    "ffn_chunk": _LENGTH, "rel_buckets": _LENGTH, "rel_max_distance": _LENGTH,
    "chunks_before": _LENGTH, "chunks_after": _LENGTH,
    "n_hashes": (1024, "each hash round repeats the attention; released Reformers use 1 to 4"),
    # the attention zoo's sizes (zoo.py): a local window, flash block and Linformer
    # projection are lengths; Performer's random features a width (Choromanski et al. 2021
    # use 256, about d_head log d_head)
    "window": _LENGTH, "block": _LENGTH, "proj_len": _LENGTH,
    "features": (2**21, "about 8,000x the 256 random features of the Performer (Choromanski "
                        "et al. 2021)"),
    # the modern decoder blocks (modern.py): k/v heads are heads, rotated features a width;
    # experts a layer, and those a token goes to, bounded by the most any model has had
    "n_kv_heads": _HEADS, "rope_dim": _WIDTH, "n_experts": _EXPERTS, "top_k": _EXPERTS,
}
# the weights the unrolled layers touch (every layer counted, shared or not): about 100x
# the largest published models (mixtures of experts of some 10^13 parameters)
MAX_LAYER_WEIGHTS = 10**15


class ConfigError(ValueError):
    """A config value outside what the architecture allows: names field, value, allowed."""

    def __init__(self, field: str, value, allowed: str):
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"{field}={value!r}: {allowed}")


class Widths:
    """Derived sizes every config shares: head width, FFN width, attention inner width."""

    @property
    def d_head(self) -> int:
        return getattr(self, "head_dim", None) or self.d_model // self.n_heads

    @property
    def d_ff(self) -> int:
        return getattr(self, "ff_dim", None) or 4 * self.d_model

    @property
    def inner(self) -> int:
        return self.n_heads * self.d_head


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_config(cfg, kinds=None) -> None:
    """Raise ConfigError for the first invalid field of a config dataclass."""
    values = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    for name in ("vocab", "d_model", "n_layers", "n_heads", "emb_dim", "head_dim", "ff_dim",
                 "chunk_len", "n_hashes", "lsh_chunk", "local_chunk", "window", "proj_len",
                 "features", "block", "n_kv_heads", "rope_dim", "top_k"):
        v = values.get(name)
        if name not in values or (v is None and name in ("head_dim", "ff_dim", "emb_dim",
                                                          "n_kv_heads", "rope_dim")):
            continue
        if not _is_int(v) or v <= 0 or v > MAX_DIM:
            raise ConfigError(name, v, f"a positive integer at most {_most(name)}")
        _bounded(name, v)
    for name in NON_NEGATIVE_INT:
        v = values.get(name)
        if name in values and (not _is_int(v) or v < 0 or v > MAX_DIM):
            raise ConfigError(name, v, f"a non-negative integer at most {_most(name)}")
        if name in values:
            _bounded(name, v)
    _bounded_weights(cfg, values)
    if kinds is not None and values.get("kind") not in kinds:
        raise ConfigError("kind", values.get("kind"), "one of " + ", ".join(kinds))
    if "act" in values and values["act"] not in ACTIVATIONS:
        raise ConfigError("act", values["act"], "one of " + ", ".join(ACTIVATIONS))
    if "mask_prob" in values:
        mp = values["mask_prob"]
        if isinstance(mp, bool) or not isinstance(mp, (int, float)) or not 0 < mp < 1:
            raise ConfigError("mask_prob", mp, "a fraction strictly between 0 and 1")
    if "eps" in values:
        eps = values["eps"]
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < float("inf"):
            raise ConfigError("eps", eps, "a positive finite number")
    if values.get("head_dim") is None and "d_model" in values and "n_heads" in values:
        if values["d_model"] % values["n_heads"]:
            raise ConfigError("n_heads", values["n_heads"],
                              f"a divisor of d_model={values['d_model']} (or set head_dim)")
    if values.get("kind") == "encdec" and values.get("n_dec_layers", 0) <= 0:
        raise ConfigError("n_dec_layers", values.get("n_dec_layers"),
                          "a positive integer for an encoder-decoder")


def _most(name: str) -> int:
    return BOUNDS[name][0] if name in BOUNDS else MAX_DIM


def _bounded(name: str, v: int) -> None:
    if name in BOUNDS and v > BOUNDS[name][0]:
        most, why = BOUNDS[name]
        raise ConfigError(name, v, f"at most {most:,}: {why}")


def _bounded_weights(cfg, values: dict) -> None:
    """The weights of the unrolled layers (attention 4 x d x inner, FFN 2 x d x d_ff per
    layer -- 3 with a gated FFN, times the experts of a mixture --, every layer counted) at
    most ``MAX_LAYER_WEIGHTS``: each size may be within its bound while together they
    describe no model anyone could build."""
    if not all(_is_int(values.get(f)) for f in ("d_model", "n_layers", "n_heads")):
        return
    layers = values["n_layers"] + (values.get("n_dec_layers") or 0)
    d = values["d_model"]
    experts = values.get("n_experts") if _is_int(values.get("n_experts")) else 0
    ffns = (3 if values.get("ffn") == "glu" else 2) * max(experts, 1)
    weights = layers * d * (4 * cfg.inner + ffns * cfg.d_ff)
    if weights > MAX_LAYER_WEIGHTS:
        raise ConfigError("n_layers", values["n_layers"],
                          f"a model whose {layers:,} layers of width {d:,} hold at most "
                          f"{MAX_LAYER_WEIGHTS:.0e} weights (these would hold {weights:.2e}): "
                          "about 100x the largest published models")


def check_policy(policy, allowed: tuple, default: str) -> str:
    """The activation-memory policy a model is built with (``default`` for None), or a
    ConfigError naming the ones the architecture supports."""
    policy = default if policy is None else policy
    if policy not in allowed:
        raise ConfigError("policy", policy, "one of " + ", ".join(allowed))
    return policy


def mask_count(seq: int, mask_prob: float) -> int:
    """Masked positions per sequence: ceil(mask_prob * seq), at least 1.

    BERT predicts ``max_predictions_per_seq`` gathered positions (20 of 128 at
    15%); the MLM head runs on those only.  Exact rational arithmetic, so 0.15
    of 100 is 15, not 16.
    """
    frac = Fraction(str(mask_prob))
    return maximum(1, ceil_div(seq * frac.numerator, frac.denominator))


# T5 pre-training: inputs of 512 tokens give span-corruption targets of 114
# (Raffel et al. 2020, Sec. 3.1.4: 15% noise, mean span 3, sentinels + EOS).
T5_TARGETS_PER_INPUT = Fraction(114, 512)


def target_len(seq: int) -> int:
    """Decoder length of an encoder-decoder step for ``seq`` input tokens (>= 1), rounded
    half up."""
    r = T5_TARGETS_PER_INPUT
    return maximum(1, (2 * seq * r.numerator + r.denominator) // (2 * r.denominator))


def resized(cfg, d_model=None, n_layers=None, n_heads=None, d_ff=None, **extra):
    """``cfg`` at another width/depth by the shared sizing rules (BERT's): heads of 64
    (``d_model // 64``) and an FFN of ``4 * d_model`` unless given.  Fields a config
    does not have are skipped; ``extra`` sets architecture-specific fields."""
    names = {f.name for f in dataclasses.fields(cfg)}
    ch: dict = {}
    if d_model is not None:
        ch["d_model"] = d_model
        if n_heads is None:
            n_heads = max(1, d_model // 64)
        if "ff_dim" in names and d_ff is None:
            ch["ff_dim"] = None
    if n_heads is not None:
        ch["n_heads"] = n_heads
        if "head_dim" in names:
            ch["head_dim"] = None
    if d_ff is not None:
        if "ff_dim" not in names:
            raise ConfigError("d_ff", d_ff, "not settable for this architecture")
        ch["ff_dim"] = d_ff
    if n_layers is not None:
        ch["n_layers"] = n_layers
        if getattr(cfg, "n_dec_layers", 0):
            ch["n_dec_layers"] = n_layers
    ch.update({k: v for k, v in extra.items() if k in names})
    return dataclasses.replace(cfg, **ch)
