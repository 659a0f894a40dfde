"""Modern decoder blocks: the Transformer config's fields for Llama-era models (no jax).

=====================  ===================================  ================================
field                  values (default)                     what it changes
=====================  ===================================  ================================
``n_kv_heads``         None (= n_heads), a divisor of it    grouped-query attention: k, v
                                                            have fewer heads, each shared by
                                                            n_heads / n_kv_heads queries
                                                            (1: multi-query)
``positions``          ``learned`` | ``rope``               a learned table of ``max_len``
                                                            rows, or rotary embeddings of q
                                                            and k (no parameters)
``rope_dim``           None (= d_head), even, <= d_head     features of a head rotated
                                                            (GPT-NeoX's ``rotary_pct``)
``ffn``                ``mlp`` | ``glu``                    act(x W1) W2, or gated:
                                                            (act(x Wg) * x Wu) Wd -- SwiGLU
                                                            with act ``silu``, GeGLU with
                                                            ``gelu``/``gelu_tanh``
``norm``               None (the kind's), ``layernorm`` |   the layers' and the final norm
                       ``rmsnorm``
``bias``               None (the kind's), true | false      biases of the attention output
                                                            and the FFN projections
``qkv_bias``           None (= bias), true | false          biases of q, k, v (Qwen2: true
                                                            with bias false)
``tie_embeddings``     true | false                         the LM head is the word table,
                                                            or a V x d matrix of its own
``parallel``           false | true                         GPT-J/NeoX: x + attn(ln1 x) +
                                                            ffn(ln2 x)
``n_experts``          0 (a dense FFN), >= 2                mixture of experts: the FFN is
                                                            n_experts FFNs and a router
``top_k``              2 (1..n_experts)                     experts a token is sent to
``capacity_factor``    None (dropless) | > 0                slots per expert:
                                                            ceil(cf T k / E), T tokens a step
``router``             ``renormalized`` | ``softmax``       the k weights: divided by their
                                                            sum (Mixtral), or the softmax's
                                                            (Switch)
=====================  ===================================  ================================

They apply to a decoder (``kind="decoder"``); the encoder and the encoder-decoder keep
BERT's and T5's blocks.  ``check`` validates them, ``Moe`` is the expert choice as the
Flax blocks take it, ``capacity`` its slots per expert; the FLOP, parameter and memory
terms are in ``modern_terms``.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from .config import MAX_DIM, ConfigError
from .num import ceil_div

POSITIONS = ("learned", "rope")
FFNS = ("mlp", "glu")
NORMS = ("layernorm", "rmsnorm")
ROUTERS = ("renormalized", "softmax")
# field: the value that leaves BERT's / T5's blocks unchanged (an encoder must keep it);
# norm and the biases may also name the kind's own choice (T5: RMSNorm, no biases)
DECODER_ONLY = {"n_kv_heads": None, "positions": "learned", "rope_dim": None, "ffn": "mlp",
                "norm": None, "bias": None, "qkv_bias": None, "tie_embeddings": True,
                "parallel": False, "n_experts": 0}


@dataclass(frozen=True)
class Moe:
    """A mixture-of-experts FFN: ``n_experts`` experts, ``top_k`` a token, ``capacity_factor``
    (a Fraction; None: dropless), ``renormalize`` the k router weights."""
    n_experts: int
    top_k: int
    capacity_factor: Fraction | None = None
    renormalize: bool = True


def of(cfg) -> Moe | None:
    """The ``Moe`` of a config, or None for a dense FFN."""
    if not cfg.n_experts:
        return None
    cf = cfg.capacity_factor
    return Moe(cfg.n_experts, cfg.top_k, None if cf is None else Fraction(str(cf)),
               cfg.router == "renormalized")


def capacity(moe: Moe, tokens):
    """Slots per expert for ``tokens`` tokens a step: ceil(cf * tokens * top_k / n_experts)
    (GShard, Switch), exact in rationals; None when dropless."""
    cf = moe.capacity_factor
    if cf is None:
        return None
    return ceil_div(cf.numerator * tokens * moe.top_k, cf.denominator * moe.n_experts)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _one_of(name, v, choices):
    if v not in choices:
        raise ConfigError(name, v, "one of " + ", ".join(map(str, choices)))


def check(cfg) -> None:
    """Raise ConfigError for the first invalid block field of a Transformer config."""
    _one_of("positions", cfg.positions, POSITIONS)
    _one_of("ffn", cfg.ffn, FFNS)
    _one_of("router", cfg.router, ROUTERS)
    if cfg.norm is not None:
        _one_of("norm", cfg.norm, NORMS)
    for name in ("bias", "qkv_bias"):
        v = getattr(cfg, name)
        if v is not None and not isinstance(v, bool):
            raise ConfigError(name, v, "true, false or None (the kind's default)")
    if cfg.kind != "decoder":
        encdec = cfg.kind == "encdec"           # T5: RMSNorm, no biases; BERT: LayerNorm, biases
        kept = {"norm": cfg.rms == encdec, "bias": cfg.use_bias != encdec,
                "qkv_bias": cfg.use_qkv_bias != encdec}
        for name, default in DECODER_ONLY.items():
            v = getattr(cfg, name)
            if not kept.get(name, v == default):
                raise ConfigError(name, v, f"{default!r} for kind={cfg.kind!r}: the modern "
                                           "blocks are a decoder's (kind='decoder')")
    for name in ("tie_embeddings", "parallel"):
        if not isinstance(getattr(cfg, name), bool):
            raise ConfigError(name, getattr(cfg, name), "true or false")
    h = cfg.n_heads
    kv = cfg.n_kv_heads
    if kv is not None and (not _is_int(kv) or kv <= 0 or h % kv):
        raise ConfigError("n_kv_heads", kv, f"a positive divisor of n_heads={h} (or None: "
                                            "n_heads)")
    r = cfg.rope_dim
    if r is not None:
        if cfg.positions != "rope":
            raise ConfigError("rope_dim", r, "None unless positions='rope'")
        if not _is_int(r) or r <= 0 or r % 2 or r > cfg.d_head:
            raise ConfigError("rope_dim", r, f"an even positive integer at most d_head="
                                             f"{cfg.d_head}")
    if cfg.parallel and cfg.kind == "decoder" and cfg.n_experts:
        raise ConfigError("parallel", True, "false with n_experts (a parallel MoE block is "
                                            "not modelled)")
    _check_moe(cfg)


def _check_moe(cfg) -> None:
    E, k, cf = cfg.n_experts, cfg.top_k, cfg.capacity_factor
    if not _is_int(E) or E < 0 or E == 1 or E > MAX_DIM:
        raise ConfigError("n_experts", E, "0 (a dense FFN) or an integer from 2 (experts)")
    if not _is_int(k) or k <= 0 or (E and k > E):
        raise ConfigError("top_k", k, "a positive integer" + (f" at most n_experts={E}"
                                                              if E else ""))
    if cf is not None and (isinstance(cf, bool) or not isinstance(cf, (int, float))
                           or not 0 < cf < float("inf")):
        raise ConfigError("capacity_factor", cf, "a positive number, or None (dropless)")
    if E and cfg.use_bias:
        raise ConfigError("bias", cfg.bias, "false with n_experts (experts without biases, "
                                            "as Mixtral's)")
