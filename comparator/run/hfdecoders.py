"""Hugging Face ``config.json`` of the Llama-era decoders -> the Transformer's decoder with
the modern blocks (``architectures/modern.py``); ``comparator.run.hfconfig`` dispatches
here by ``model_type``:

* llama: RMSNorm, rotary positions, SwiGLU (``hidden_act``), ``num_key_value_heads``
  (null: ``num_attention_heads``), ``head_dim`` (null: hidden / heads),
  ``attention_bias`` (q, k, v, o) and ``mlp_bias``, which must agree (our ``bias`` is the
  output projection's and the FFN's);
* mistral: llama's blocks, ``sliding_window`` -> ``attention="sliding"`` with that window
  (null: dense);
* mixtral: mistral's, the FFN ``num_local_experts`` experts, ``num_experts_per_tok`` a
  token, dropless, renormalised top-k weights; ``output_router_logits: true`` (the
  load-balancing loss) and a ``router_jitter_noise`` are refused;
* qwen2: llama's with q, k, v biases (no output or FFN bias); ``use_sliding_window`` or a
  ``layer_types`` with sliding layers (per-layer windows) is refused;
* gpt_neox: LayerNorm with biases, biases everywhere (``attention_bias: false`` is
  refused: the FFN keeps its biases), ``use_parallel_residual``, rotary on
  ``int(head_dim * rotary_pct)`` features (``rotary_pct`` at the top level, or
  ``rope_parameters.partial_rotary_factor`` in transformers 5), untied ``embed_out``.

Rotary frequencies (``rope_theta``, ``rope_scaling``, ``rope_parameters``' type) change
values, not counts: ignored.  Every model keeps HF's ``tie_word_embeddings``.
"""
from __future__ import annotations

from architectures.config import ConfigError

# HF's defaults of the keys read here (transformers' LlamaConfig, MistralConfig,
# MixtralConfig, Qwen2Config, GPTNeoXConfig keyword defaults; None where HF derives the
# value from others: num_key_value_heads = num_attention_heads, head_dim = hidden / heads)
_LLAMA_KEYS = dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008,
                   num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=None,
                   head_dim=None, hidden_act="silu", max_position_embeddings=2048,
                   rms_norm_eps=1e-6, tie_word_embeddings=False)
DECODER_DEFAULTS = {
    "llama": dict(_LLAMA_KEYS, attention_bias=False, mlp_bias=False),
    "mistral": dict(_LLAMA_KEYS, intermediate_size=14336, num_key_value_heads=8,
                    max_position_embeddings=131072, sliding_window=4096),
    "mixtral": dict(_LLAMA_KEYS, intermediate_size=14336, num_key_value_heads=8,
                    max_position_embeddings=131072, rms_norm_eps=1e-5, sliding_window=None,
                    num_local_experts=8, num_experts_per_tok=2, output_router_logits=False,
                    router_jitter_noise=0.0),
    "qwen2": dict(_LLAMA_KEYS, vocab_size=151936, intermediate_size=22016,
                  max_position_embeddings=32768, use_sliding_window=False),
    "gpt_neox": dict(vocab_size=50432, hidden_size=6144, num_hidden_layers=44,
                     num_attention_heads=64, intermediate_size=24576, hidden_act="gelu",
                     max_position_embeddings=2048, layer_norm_eps=1e-5,
                     use_parallel_residual=True, rotary_pct=0.25, attention_bias=True,
                     tie_word_embeddings=False),
}
CLASS_PREFIXES = {"Llama": "llama", "Mistral": "mistral", "Mixtral": "mixtral",
                  "Qwen2": "qwen2", "GPTNeoX": "gpt_neox"}


def _llama_sizes(k) -> dict:
    """The keys the Llama family shares, as our decoder's fields (each read ``to=`` its
    field, so that our Config's refusal names the file's key)."""
    sizes = k.fields(dict(vocab="vocab_size", d_model="hidden_size", n_layers="num_hidden_layers",
                          n_heads="num_attention_heads", ff_dim="intermediate_size",
                          max_len="max_position_embeddings"))
    heads, d = sizes["n_heads"], sizes["d_model"]
    kv = k("num_key_value_heads", "int?", to="n_kv_heads")
    dh = k("head_dim", "int?", to="head_dim")
    if dh is not None and heads > 0 and dh * heads == d:
        dh = None                                   # the default split, as our presets say
    return dict(sizes, kind="decoder", head_dim=dh, n_kv_heads=None if kv == heads else kv,
                type_vocab=0, act=k.act("hidden_act"), eps=k("rms_norm_eps", "num", to="eps"),
                positions="rope", ffn="glu", norm="rmsnorm", bias=False,
                tie_embeddings=k("tie_word_embeddings", "bool", to="tie_embeddings"))


def _window(k) -> dict:
    w = k("sliding_window", "int?", to="window")
    return {} if w is None else dict(attention="sliding", window=w)


def llama(k):
    bias, mlp = k("attention_bias", "bool"), k("mlp_bias", "bool")
    if bias != mlp:
        raise ConfigError("mlp_bias", mlp, f"equal to attention_bias={bias!r} (one bias "
                          "setting covers the attention output and the FFN)")
    return dict(_llama_sizes(k), bias=bias), ""


def mistral(k):
    return dict(_llama_sizes(k), **_window(k)), ""


def mixtral(k):
    if k("output_router_logits", "bool"):
        raise ConfigError("output_router_logits", True, "false (the router's load-balancing "
                          "loss is not modelled)")
    noise = k("router_jitter_noise", "num")
    if noise:
        raise ConfigError("router_jitter_noise", noise, "0 (the router's training noise is "
                          "not modelled)")
    experts = k("num_local_experts", to="n_experts")
    if experts < 2:
        raise ConfigError("num_local_experts", experts, "an integer from 2 (experts)")
    return dict(_llama_sizes(k), **_window(k), n_experts=experts,
                top_k=k("num_experts_per_tok", to="top_k"), capacity_factor=None,
                router="renormalized"), "dropless"


def qwen2(k):
    if k("use_sliding_window", "bool"):
        raise ConfigError("use_sliding_window", True, "false (Qwen2's per-layer sliding "
                          "windows are not modelled)")
    types = k.data.get("layer_types")
    if isinstance(types, list) and any(t != "full_attention" for t in types):
        raise ConfigError("layer_types", types, "full_attention layers only (per-layer "
                          "sliding windows are not modelled)")
    return dict(_llama_sizes(k), qkv_bias=True), ""


def gpt_neox(k):
    if not k("attention_bias", "bool"):
        raise ConfigError("attention_bias", False, "true (GPT-NeoX's FFN keeps its biases; "
                          "one bias setting covers the attention output and the FFN)")
    sizes = k.fields(dict(vocab="vocab_size", d_model="hidden_size",
                          n_layers="num_hidden_layers", n_heads="num_attention_heads",
                          ff_dim="intermediate_size", max_len="max_position_embeddings"))
    heads, d = sizes["n_heads"], sizes["d_model"]
    params = k.data.get("rope_parameters")
    if "rotary_pct" not in k.data and isinstance(params, dict) \
            and "partial_rotary_factor" in params:
        pct, key = params["partial_rotary_factor"], "rope_parameters.partial_rotary_factor"
    else:
        pct, key = k("rotary_pct", "num"), "rotary_pct"
    if isinstance(pct, bool) or not isinstance(pct, (int, float)) or not 0 < pct <= 1:
        raise ConfigError(key, pct, "a fraction of a head in (0, 1]")
    if heads <= 0 or d % heads:
        raise ConfigError("num_attention_heads", heads, f"a divisor of hidden_size={d!r}")
    dh = d // heads
    rope = int(dh * pct)
    if rope <= 0 or rope % 2:
        raise ConfigError(key, pct, f"a fraction of the head's {dh} features that rotates an "
                                    f"even number of them (int({dh} x {pct}) = {rope})")
    return dict(sizes, kind="decoder", type_vocab=0, act=k.act("hidden_act"),
                eps=k("layer_norm_eps", "num", to="eps"), positions="rope",
                rope_dim=None if rope == dh else rope,
                parallel=k("use_parallel_residual", "bool", to="parallel"),
                tie_embeddings=k("tie_word_embeddings", "bool", to="tie_embeddings")), ""


MAPPERS = {"llama": llama, "mistral": mistral, "mixtral": mixtral, "qwen2": qwen2,
           "gpt_neox": gpt_neox}
