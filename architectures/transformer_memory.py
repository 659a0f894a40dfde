"""Activation memory of the Transformer (``architectures.transformer``): the residuals one
training step keeps for its backward, by term (``architectures/memory_terms.py``'s
helpers; the modern blocks' from ``modern_terms``), equal to the traced step's."""
from __future__ import annotations

from typing import TYPE_CHECKING

from . import memory_terms as M
from . import modern
from . import modern_terms as MT
from . import zoo
from .config import mask_count, target_len

if TYPE_CHECKING:
    from .transformer import Config


def _pre_norm_layers(cfg: Config, b, n, fb, *, causal, layers, cross_len=None) -> dict:
    """``layers`` pre-norm layers; an RMS norm's input (the residual stream) is kept by
    the add (or lookup) producing it, a LayerNorm keeps x - mean instead."""
    t, d, h, dh = b * n, cfg.d_model, cfg.n_heads, cfg.d_head
    stream = t * d * fb if cfg.rms else 0
    # (parallel: the attention's residual add is no norm's input, the FFN's is)
    one = {"norm/attn": M.layer_norm(t, d, fb, out=True, rms=cfg.rms),
           "attn/out": 0 if cfg.parallel else stream}
    core = zoo.core_memory(cfg.attn, b, n, h, dh, fb, causal=causal)
    M.merge(one, core if core is not None else M.attention(b, n, n, h, dh, fb, causal=causal))
    if cfg.rope:   # k is kept as rotated (as repeated when k/v heads are shared)
        k = b * h * n * dh * fb if cfg.kv_heads == h else 0
        M.merge(one, {"attn/qkv": -k, "attn/rope": k + MT.rope_memory(n, cfg.rope, fb)})
    if cross_len is not None:
        M.merge(one, {"norm/cross": M.layer_norm(t, d, fb, out=True, rms=cfg.rms),
                      "attn/out": stream})
        M.merge(one, M.attention(b, n, cross_len, h, dh, fb, kv_term="attn/kv"))
    M.merge(one, {"norm/ffn": M.layer_norm(t, d, fb, out=True, rms=cfg.rms), "ffn/out": stream})
    if cfg.moe is not None:
        M.merge(one, MT.moe_memory(t, d, cfg.d_ff, cfg.act, cfg.ffn == "glu", cfg.moe,
                                   modern.capacity(cfg.moe, t), fb))
    else:
        M.merge(one, MT.feed_forward_memory(t, cfg.d_ff, cfg.act, fb, cfg.ffn == "glu"))
    return {k: layers * v for k, v in one.items()}


def activation_terms(cfg: Config, seq, batch=1, bytes_per=4) -> dict:
    """Bytes of the residuals one training step keeps for its backward, by term."""
    d, V, fb, b = cfg.d_model, cfg.vocab, bytes_per, batch
    zoo.check_seq(cfg.attn, seq)
    t = b * seq
    if cfg.kind == "encoder":
        core = zoo.core_memory(cfg.attn, b, seq, cfg.n_heads, cfg.d_head, fb)
        out = M.embeddings(b, seq, d, d, fb, tables=1 + bool(cfg.type_vocab))
        M.merge(out, M.post_ln_layers(b, seq, d, cfg.n_heads, cfg.d_head, cfg.d_ff, cfg.act,
                                      cfg.n_layers, fb, last_out=False, core=core))
        M.merge(out, M.mlm_head(b * mask_count(seq, cfg.mask_prob), d, d, V, cfg.act, fb))
        if cfg.nsp:
            M.merge(out, M.sentence_head(b, d, fb, "nsp"))
        return M.nonzero(out)
    if cfg.kind == "decoder":   # an RMS norm's input: the looked-up rows
        out = {"embed/lookup": t * M.INT + (t * d * fb if cfg.rms else 0)}
        M.merge(out, _pre_norm_layers(cfg, b, seq, fb, causal=True, layers=cfg.n_layers))
        M.merge(out, {"norm/final": M.layer_norm(t, d, fb, out=True, rms=cfg.rms),
                      "loss/lm": M.cross_entropy(t, V, fb)})
        return M.nonzero(out)
    n, m = target_len(seq), seq  # decoder length, encoder length
    enc = {"embed/lookup": t * M.INT + t * d * fb, "attn/relbias": m * m * M.INT,
           "norm/final": M.layer_norm(t, d, fb, out=True, rms=True)}  # read by every cross kv
    M.merge(enc, _pre_norm_layers(cfg, b, m, fb, causal=False, layers=cfg.n_layers))
    dec = {"embed/lookup": b * n * (M.INT + d * fb), "attn/relbias": n * n * M.INT,
           "norm/final": M.layer_norm(b * n, d, fb, out=False, rms=True),
           "head/logits": b * n * d * fb, "loss/lm": M.cross_entropy(b * n, V, fb)}
    M.merge(dec, _pre_norm_layers(cfg, b, n, fb, causal=True, layers=cfg.n_dec_layers,
                                  cross_len=m))
    return M.nonzero(M.merge(M.merge({}, enc, "enc"), dec, "dec"))


def activation_bytes(cfg: Config, seq, batch=1, bytes_per=4):
    """Activation memory of one training step (``activation_terms`` summed)."""
    return sum(activation_terms(cfg, seq, batch, bytes_per).values())
