"""The vanilla Transformer in its three pre-training setups.

* ``encoder``  -- BERT: post-LN encoder, masked-LM head on the masked positions
                 (Devlin et al. 2019, Table/Section 3; sizes from the BERT repo).
                 ``head="mlm"``: the MLM head alone (Hugging Face ``BertForMaskedLM``);
                 ``head="pretraining"``: BERT as it was pre-trained, MLM + next-sentence
                 prediction (Devlin et al. 2019, Sec. 3.1 and A.1): a pooler (dense
                 H->H + tanh) on the first token, a classifier H->2 and a 2-way
                 cross-entropy added to the MLM loss (HF ``BertForPreTraining``; terms
                 ``head/pooler``, ``head/nsp``, ``loss/nsp``).
* ``decoder``  -- GPT-2: pre-LN causal decoder, tied LM head, next-token loss
                 (Radford et al. 2019, Table 2).
* ``encdec``   -- T5 v1.0: pre-RMSNorm encoder-decoder, ReLU FFN, no biases,
                 shared relative position bias, tied LM head, span-corruption
                 targets (Raffel et al. 2020, Section 3.1 and Table 14).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from . import memory_terms as M
from . import terms as T
from . import zoo
from .config import ConfigError, Widths, check_config, mask_count, resized, target_len

NAME = "transformer"
HEADS = ("mlm", "pretraining")   # an encoder's heads (see the module docstring)


@dataclass(frozen=True)
class Config(Widths):
    kind: str = "encoder"          # encoder | decoder | encdec
    vocab: int = 30522
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    head_dim: int | None = None    # default d_model // n_heads
    ff_dim: int | None = None      # default 4 * d_model
    n_dec_layers: int = 0          # encdec only
    max_len: int = 512             # learned position table rows (0: relative bias)
    type_vocab: int = 2            # token-type table rows (0: none)
    act: str = "gelu"
    eps: float = 1e-12
    mask_prob: float = 0.15        # encoder: MLM masking rate
    rel_buckets: int = 0           # encdec: relative-position buckets (T5: 32)
    rel_max_distance: int = 128
    head: str = "mlm"              # encoder: mlm | pretraining (+ pooler and NSP)
    attention: str = "dense"       # dense | flash | local | linformer | performer (zoo.py)
    window: int = 256              # local: tokens a block (its own and the block before
    #                                [and after, bidirectional] attended to)
    proj_len: int = 256            # linformer: k, the length keys and values project to
    features: int = 256            # performer: m random features
    block: int = 128               # flash: query and key block

    def __post_init__(self):
        check_config(self, kinds=("encoder", "decoder", "encdec"))
        zoo.check(self, causal=self.kind == "decoder", encdec=self.kind == "encdec")
        if self.head not in HEADS:
            raise ConfigError("head", self.head, "one of " + ", ".join(HEADS))
        if self.head != "mlm" and self.kind != "encoder":
            raise ConfigError("head", self.head, "mlm (the default) for a decoder or an "
                              "encoder-decoder: they keep their LM head; the pre-training "
                              "head (pooler + NSP) is BERT's, an encoder's")

    @property
    def attn(self) -> zoo.Attn:
        return zoo.of(self)

    @property
    def nsp(self) -> bool:
        """Whether the step has BERT's next-sentence head (pooler + classifier + loss)."""
        return self.head == "pretraining"

    @property
    def pre_norm(self) -> bool:
        return self.kind != "encoder"

    @property
    def use_bias(self) -> bool:
        return self.kind != "encdec"

    @property
    def rms(self) -> bool:
        return self.kind == "encdec"


_BERT = Config()
_GPT2 = Config(kind="decoder", vocab=50257, max_len=1024, type_vocab=0, act="gelu_tanh",
               eps=1e-5)
_T5 = Config(kind="encdec", vocab=32128, n_dec_layers=12, max_len=0, type_vocab=0, act="relu", eps=1e-6,
             rel_buckets=32)

PRESETS: dict[str, tuple[Config, str]] = {
    "bert-base": (_BERT, "Devlin et al. 2019, Sec. 3: L=12, H=768, A=12"),
    "bert-large": (dataclasses.replace(_BERT, d_model=1024, n_layers=24, n_heads=16),
                   "Devlin et al. 2019, Sec. 3: L=24, H=1024, A=16"),
    "bert-base-pretraining": (
        dataclasses.replace(_BERT, head="pretraining"),
        "Devlin et al. 2019, Sec. 3 and A.1: bert-base with MLM + NSP heads and pooler, as "
        "pre-trained (Hugging Face BertForPreTraining)"),
    "bert-large-pretraining": (
        dataclasses.replace(_BERT, d_model=1024, n_layers=24, n_heads=16, head="pretraining"),
        "Devlin et al. 2019, Sec. 3 and A.1: bert-large with MLM + NSP heads and pooler, as "
        "pre-trained (Hugging Face BertForPreTraining)"),
    "gpt2-small": (_GPT2, "Radford et al. 2019, Table 2: 117M (124M), 12 layers, d=768"),
    "gpt2-medium": (dataclasses.replace(_GPT2, d_model=1024, n_layers=24, n_heads=16),
                    "Radford et al. 2019, Table 2: 345M, 24 layers, d=1024"),
    "gpt2-large": (dataclasses.replace(_GPT2, d_model=1280, n_layers=36, n_heads=20),
                   "Radford et al. 2019, Table 2: 762M, 36 layers, d=1280"),
    "gpt2-xl": (dataclasses.replace(_GPT2, d_model=1600, n_layers=48, n_heads=25),
                "Radford et al. 2019, Table 2: 1542M, 48 layers, d=1600"),
    "t5-small": (dataclasses.replace(_T5, d_model=512, n_layers=6, n_dec_layers=6, n_heads=8,
                                     ff_dim=2048), "Raffel et al. 2020, Sec. 3.7 / Table 14"),
    "t5-base": (dataclasses.replace(_T5, n_layers=12, n_dec_layers=12, ff_dim=3072),
                "Raffel et al. 2020, Sec. 3.1.1 (BERT-base sized)"),
    "t5-large": (dataclasses.replace(_T5, d_model=1024, n_layers=24, n_dec_layers=24,
                                     n_heads=16, ff_dim=4096), "Raffel et al. 2020, Sec. 3.7"),
    "t5-3b": (dataclasses.replace(_T5, d_model=1024, n_layers=24, n_dec_layers=24, n_heads=32,
                                  head_dim=128, ff_dim=16384), "Raffel et al. 2020, Sec. 3.7"),
    "t5-11b": (dataclasses.replace(_T5, d_model=1024, n_layers=24, n_dec_layers=24,
                                   n_heads=128, head_dim=128, ff_dim=65536),
               "Raffel et al. 2020, Sec. 3.7: d_ff=65536, 128 heads of 128"),
}
DEFAULT_PRESET = "bert-base"


def preset(name: str) -> Config:
    return PRESETS[name][0]


def resize(cfg: Config, d_model=None, n_layers=None, n_heads=None, d_ff=None) -> Config:
    """The same model at another width/depth: heads of 64 and FFN 4 x d unless given."""
    return resized(cfg, d_model, n_layers, n_heads, d_ff)


def transformer_baseline(cfg: Config) -> Config:
    """The vanilla Transformer of the same widths: the model itself."""
    return cfg


# -- analytic counts ------------------------------------------------------------

def _stack(cfg: Config, b, n, m=None, causal=False, cross=False, layers=1):
    """Terms of ``layers`` identical layers over ``b`` sequences of ``n`` tokens."""
    out: dict = {}
    core = zoo.core_terms(cfg.attn, b, n, cfg.n_heads, cfg.d_head, causal)
    T.merge(out, T.layer(b, n, cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_ff, cfg.act,
                         bias=cfg.use_bias, rms=cfg.rms, causal=causal,
                         cross_len=m if cross else None,
                         rel_bias=cfg.rel_buckets > 0, pre_norm=cfg.pre_norm, core=core),
            k=layers)
    return T.merge(out, zoo.draw_terms(cfg.attn, cfg.d_head, layers))


def terms(cfg: Config, batch, seq) -> dict[str, T.Term]:
    """Named forward/backward terms of one training step on ``batch`` x ``seq`` tokens."""
    d, V = cfg.d_model, cfg.vocab
    zoo.check_seq(cfg.attn, seq)
    out: dict = {}
    if cfg.kind == "encoder":
        T.merge(out, T.embeddings(batch, seq, d, d, pos=bool(cfg.max_len),
                                  types=bool(cfg.type_vocab)))
        T.merge(out, {"embed/lookup": T.tied_grad(V, d)})
        T.merge(out, _stack(cfg, batch, seq, layers=cfg.n_layers))
        T.merge(out, T.mlm_head(batch * mask_count(seq, cfg.mask_prob), d, d, V, cfg.act))
        if cfg.nsp:
            T.merge(out, T.sentence_head(batch, seq, d, "nsp"))
        return out
    if cfg.kind == "decoder":
        T.merge(out, T.embeddings(batch, seq, d, d, pos=True, types=False, norm_=False))
        T.merge(out, {"embed/lookup": T.tied_grad(V, d)})
        T.merge(out, _stack(cfg, batch, seq, causal=True, layers=cfg.n_layers))
        T.merge(out, {"norm/final": T.norm(batch * seq, d)})
        T.merge(out, T.lm_head(batch * seq, d, V))
        return out
    t = target_len(seq)
    h, L, Ld = cfg.n_heads, cfg.n_layers, cfg.n_dec_layers
    enc = T.embeddings(batch, seq, d, d, pos=False, types=False, norm_=False)
    T.merge(enc, {"embed/lookup": T.tied_grad(V, d)})  # enc, dec and head share one table
    T.merge(enc, _stack(cfg, batch, seq, layers=L))
    T.merge(enc, T.relative_bias(seq, seq, h, L))
    T.merge(enc, {"norm/final": T.norm(batch * seq, d, rms=True)})
    dec = T.embeddings(batch, t, d, d, pos=False, types=False, norm_=False)
    T.merge(dec, {"embed/lookup": T.tied_grad(V, d)})
    T.merge(dec, _stack(cfg, batch, t, m=seq, causal=True, cross=True, layers=Ld))
    T.merge(dec, T.relative_bias(t, t, h, Ld))
    T.merge(dec, {"attn/kv": T.fanout(batch * seq, d).times(Ld - 1)})  # memory read Ld times
    T.merge(dec, {"norm/final": T.norm(batch * t, d, rms=True)})
    T.merge(dec, T.lm_head(batch * t, d, V, scale=True))
    return T.merge(T.prefixed("enc", enc), T.prefixed("dec", dec))


def attention_stacks(cfg: Config, batch, seq) -> tuple:
    """The self-attention layers of one step on ``batch`` x ``seq`` tokens
    (``zoo.Stack``): the encoder's or the causal decoder's; T5's encoder and decoder
    (its cross-attention is dense: no choice)."""
    h, dh = batch * cfg.n_heads, cfg.d_head
    if cfg.kind != "encdec":
        return (zoo.Stack("", cfg.attn, h, seq, dh, cfg.kind == "decoder", cfg.n_layers),)
    return (zoo.Stack("enc", cfg.attn, h, seq, dh, False, cfg.n_layers),
            zoo.Stack("dec", cfg.attn, h, target_len(seq), dh, True, cfg.n_dec_layers))


def flops(cfg: Config, seq, batch=1, scope: str = "matmul") -> T.FlopCount:
    return T.count(terms(cfg, batch, seq), scope)


def params(cfg: Config, seq: int = 0) -> int:
    """Parameters; a learned position table grows to ``seq`` rows when seq > max_len."""
    d, V = cfg.d_model, cfg.vocab
    if cfg.max_len and seq > cfg.max_len:
        cfg = dataclasses.replace(cfg, max_len=seq)
    layer = (T.layer_params(d, cfg.inner, cfg.d_ff, bias=cfg.use_bias, rms=cfg.rms)
             + zoo.params(cfg.attn, seq))
    if cfg.kind == "encoder":
        return (T.embedding_params(V, d, d, cfg.max_len, cfg.type_vocab)
                + cfg.n_layers * layer + T.mlm_head_params(d, d, V)
                + (T.sentence_head_params(d) if cfg.nsp else 0))
    if cfg.kind == "decoder":
        return (T.embedding_params(V, d, d, cfg.max_len, 0, norm_=False)
                + cfg.n_layers * layer + T.norm_params(d, rms=False))
    cross = T.attention_params(d, cfg.inner, bias=False) + T.norm_params(d, rms=True)
    rel = 2 * cfg.rel_buckets * cfg.n_heads  # one bias table per stack
    return (V * d + cfg.n_layers * layer + cfg.n_dec_layers * (layer + cross)
            + 2 * T.norm_params(d, rms=True) + rel)


# activation-memory policies the model is built with (``model(cfg, policy)``)
POLICIES = ("store_all", "checkpoint")
DEFAULT_POLICY = "store_all"


def model(cfg: Config, policy: str | None = None):
    """The runnable pre-training step (a ``Program``); ``policy``: one of ``POLICIES``."""
    from .config import check_policy
    from .transformer_model import build
    return build(cfg, check_policy(policy, POLICIES, DEFAULT_POLICY))


# -- activation memory (residuals kept for the backward; architectures/memory_terms.py) --

def _pre_norm_layers(cfg: Config, b, n, fb, *, causal, layers, cross_len=None) -> dict:
    """``layers`` pre-norm layers; an RMS norm's input (the residual stream) is kept by
    the add (or lookup) producing it, a LayerNorm keeps x - mean instead."""
    t, d, h, dh = b * n, cfg.d_model, cfg.n_heads, cfg.d_head
    stream = t * d * fb if cfg.rms else 0
    one = {"norm/attn": M.layer_norm(t, d, fb, out=True, rms=cfg.rms), "attn/out": stream}
    core = zoo.core_memory(cfg.attn, b, n, h, dh, fb, causal=causal)
    M.merge(one, core if core is not None else M.attention(b, n, n, h, dh, fb, causal=causal))
    if cross_len is not None:
        M.merge(one, {"norm/cross": M.layer_norm(t, d, fb, out=True, rms=cfg.rms),
                      "attn/out": stream})
        M.merge(one, M.attention(b, n, cross_len, h, dh, fb, kv_term="attn/kv"))
    M.merge(one, {"norm/ffn": M.layer_norm(t, d, fb, out=True, rms=cfg.rms), "ffn/out": stream})
    M.merge(one, M.feed_forward(t, cfg.d_ff, cfg.act, fb))
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
    if cfg.kind == "decoder":
        out = {"embed/lookup": t * M.INT}
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
