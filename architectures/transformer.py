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
import math
from dataclasses import dataclass

from . import modern
from . import modern_terms as MT
from . import terms as T
from . import zoo
from .config import ConfigError, Widths, check_config, mask_count, resized, target_len
from .transformer_memory import activation_bytes, activation_terms  # noqa: F401 (the interface)

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
    # modern decoder blocks (architectures/modern.py)
    n_kv_heads: int | None = None  # grouped-query attention: k/v heads (None: n_heads)
    positions: str = "learned"     # learned (max_len rows) | rope
    rope_dim: int | None = None    # rope: rotated features of a head (None: d_head)
    ffn: str = "mlp"               # mlp | glu (gated: SwiGLU with act "silu")
    norm: str | None = None        # layernorm | rmsnorm (None: RMSNorm for encdec only)
    bias: bool | None = None       # projection biases (None: all but encdec)
    qkv_bias: bool | None = None   # q, k, v biases (None: as bias)
    tie_embeddings: bool = True    # the LM head is the word table
    parallel: bool = False         # x + attn(ln1 x) + ffn(ln2 x) (GPT-J, GPT-NeoX)
    n_experts: int = 0             # mixture of experts (0: a dense FFN)
    top_k: int = 2                 # experts a token goes to
    capacity_factor: float | None = None   # slots per expert ceil(cf T k / E); None: dropless
    router: str = "renormalized"   # renormalized (Mixtral) | softmax (Switch)

    def __post_init__(self):
        check_config(self, kinds=("encoder", "decoder", "encdec"))
        zoo.check(self, causal=self.kind == "decoder", encdec=self.kind == "encdec")
        modern.check(self)
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
        return self.kind != "encdec" if self.bias is None else self.bias

    @property
    def use_qkv_bias(self) -> bool:
        return self.use_bias if self.qkv_bias is None else self.qkv_bias

    @property
    def rms(self) -> bool:
        return self.kind == "encdec" if self.norm is None else self.norm == "rmsnorm"

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def rope(self) -> int:
        """Rotated features of a head (0: no rotary embedding)."""
        return (self.rope_dim or self.d_head) if self.positions == "rope" else 0

    @property
    def moe(self) -> modern.Moe | None:
        return modern.of(self)


_BERT = Config()
_GPT2 = Config(kind="decoder", vocab=50257, max_len=1024, type_vocab=0, act="gelu_tanh",
               eps=1e-5)
_T5 = Config(kind="encdec", vocab=32128, n_dec_layers=12, max_len=0, type_vocab=0, act="relu", eps=1e-6,
             rel_buckets=32)
# Llama-era decoders: RMSNorm, rotary positions, SwiGLU, no biases, an untied head; the
# sizes of their Hugging Face config.json (max_len: max_position_embeddings, unused by rope)
_LLAMA = Config(kind="decoder", vocab=32000, d_model=4096, n_layers=32, n_heads=32,
                ff_dim=11008, max_len=4096, type_vocab=0, act="silu", eps=1e-5,
                positions="rope", ffn="glu", norm="rmsnorm", bias=False, tie_embeddings=False)
_MISTRAL = dataclasses.replace(_LLAMA, ff_dim=14336, n_kv_heads=8, max_len=32768,
                               attention="sliding", window=4096)

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
PRESETS.update({
    # Touvron et al. 2023 (Llama 2), Table 1 and Sec. 2.2; huggingface.co/meta-llama/
    # Llama-2-7b-hf config.json
    "llama-2-7b": (_LLAMA, "Touvron et al. 2023 (Llama 2), Table 1; model card meta-llama/"
                           "Llama-2-7b-hf: d=4096, 32 layers, 32 heads, SwiGLU 11008, vocab "
                           "32000, RMSNorm, RoPE, untied head"),
    # Jiang et al. 2023 (Mistral 7B), Table 1; huggingface.co/mistralai/Mistral-7B-v0.1
    "mistral-7b": (_MISTRAL, "Jiang et al. 2023 (Mistral 7B), Table 1; model card mistralai/"
                             "Mistral-7B-v0.1: 32 heads, 8 kv heads (GQA), SwiGLU 14336, "
                             "sliding window 4096"),
    # Jiang et al. 2024 (Mixtral of Experts), Table 1; huggingface.co/mistralai/
    # Mixtral-8x7B-v0.1 config.json (sliding_window null: full attention)
    "mixtral-8x7b": (dataclasses.replace(_LLAMA, ff_dim=14336, n_kv_heads=8, max_len=32768,
                                         n_experts=8, top_k=2),
                     "Jiang et al. 2024 (Mixtral of Experts), Table 1; model card mistralai/"
                     "Mixtral-8x7B-v0.1: Mistral 7B's attention, 8 SwiGLU experts of 14336, "
                     "top-2, dropless"),
    # Yang et al. 2024 (Qwen2), Table 1; huggingface.co/Qwen/Qwen2-0.5B config.json
    "qwen2-0.5b": (dataclasses.replace(_LLAMA, vocab=151936, d_model=896, n_layers=24,
                                       n_heads=14, n_kv_heads=2, ff_dim=4864, max_len=131072,
                                       eps=1e-6, qkv_bias=True, tie_embeddings=True),
                   "Yang et al. 2024 (Qwen2), Table 1; model card Qwen/Qwen2-0.5B: d=896, 24 "
                   "layers, 14 heads, 2 kv heads, q/k/v biases, tied embeddings"),
    # Biderman et al. 2023 (Pythia), Table 1; huggingface.co/EleutherAI/pythia-160m
    "pythia-160m": (Config(kind="decoder", vocab=50304, d_model=768, n_layers=12, n_heads=12,
                           ff_dim=3072, max_len=2048, type_vocab=0, act="gelu", eps=1e-5,
                           positions="rope", rope_dim=16, parallel=True,
                           tie_embeddings=False),
                    "Biderman et al. 2023 (Pythia), Table 1; model card EleutherAI/pythia-160m"
                    " (GPT-NeoX): rotary on 25% of a head, parallel residual, untied head"),
})
DEFAULT_PRESET = "bert-base"


def preset(name: str) -> Config:
    return PRESETS[name][0]


def resize(cfg: Config, d_model=None, n_layers=None, n_heads=None, d_ff=None) -> Config:
    """The same model at another width/depth: heads of 64 and FFN 4 x d unless given; a
    grouped-query model keeps its query heads per k/v head where they divide the new head
    count (else the largest common divisor), a partial rotary its fraction of a head."""
    new = resized(cfg, d_model, n_layers, n_heads, d_ff, n_kv_heads=None, rope_dim=None)
    if cfg.n_kv_heads is not None:
        group = cfg.n_heads // cfg.n_kv_heads
        new = dataclasses.replace(new, n_kv_heads=math.gcd(new.n_heads,
                                                           max(1, new.n_heads // group)))
    if cfg.rope_dim is not None:
        r = max(2, cfg.rope_dim * new.d_head // cfg.d_head // 2 * 2)
        new = dataclasses.replace(new, rope_dim=r)
    return new


def transformer_baseline(cfg: Config) -> Config:
    """The vanilla Transformer of the same widths: the model itself."""
    return cfg


# -- analytic counts ------------------------------------------------------------

def _stack(cfg: Config, b, n, m=None, causal=False, cross=False, layers=1):
    """Terms of ``layers`` identical layers over ``b`` sequences of ``n`` tokens."""
    out: dict = {}
    t, h, g, dh = b * n, cfg.n_heads, cfg.kv_heads, cfg.d_head
    core = zoo.core_terms(cfg.attn, b, n, h, dh, causal)
    moe = cfg.moe
    ffn = (MT.moe_ffn(t, cfg.d_model, cfg.d_ff, cfg.act, cfg.ffn == "glu", moe,
                      modern.capacity(moe, t)) if moe is not None
           else MT.feed_forward(t, cfg.d_model, cfg.d_ff, cfg.act, cfg.use_bias,
                                cfg.ffn == "glu"))
    T.merge(out, T.layer(b, n, cfg.d_model, h, dh, cfg.d_ff, cfg.act,
                         bias=cfg.use_bias, rms=cfg.rms, causal=causal,
                         cross_len=m if cross else None,
                         rel_bias=cfg.rel_buckets > 0, pre_norm=cfg.pre_norm, core=core,
                         qkv=MT.qkv(t, cfg.d_model, h, g, dh, cfg.use_qkv_bias), ffn=ffn),
            k=layers)
    if cfg.rope:
        T.merge(out, MT.rope(t, h, g, cfg.rope), k=layers)
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
        T.merge(out, T.embeddings(batch, seq, d, d, pos=not cfg.rope, types=False,
                                  norm_=False))
        if cfg.tie_embeddings:
            T.merge(out, {"embed/lookup": T.tied_grad(V, d)})
        if cfg.rope:
            T.merge(out, MT.rope_tables(seq, cfg.rope))
        T.merge(out, _stack(cfg, batch, seq, causal=True, layers=cfg.n_layers))
        T.merge(out, {"norm/final": T.norm(batch * seq, d, cfg.rms)})
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


def params(cfg: Config, seq: int = 0, active: bool = False) -> int:
    """Parameters; a learned position table grows to ``seq`` rows when seq > max_len.
    ``active``: those one token uses (a mixture of experts' ``top_k`` experts)."""
    d, V = cfg.d_model, cfg.vocab
    if cfg.max_len and seq > cfg.max_len:
        cfg = dataclasses.replace(cfg, max_len=seq)
    if cfg.kind == "decoder":
        return _decoder_params(cfg, seq, active)
    layer = (T.layer_params(d, cfg.inner, cfg.d_ff, bias=cfg.use_bias, rms=cfg.rms)
             + zoo.params(cfg.attn, seq))
    if cfg.kind == "encoder":
        return (T.embedding_params(V, d, d, cfg.max_len, cfg.type_vocab)
                + cfg.n_layers * layer + T.mlm_head_params(d, d, V)
                + (T.sentence_head_params(d) if cfg.nsp else 0))
    cross = T.attention_params(d, cfg.inner, bias=False) + T.norm_params(d, rms=True)
    rel = 2 * cfg.rel_buckets * cfg.n_heads  # one bias table per stack
    return (V * d + cfg.n_layers * layer + cfg.n_dec_layers * (layer + cross)
            + 2 * T.norm_params(d, rms=True) + rel)


def _decoder_params(cfg: Config, seq, active: bool) -> int:
    d, V, gated = cfg.d_model, cfg.vocab, cfg.ffn == "glu"
    ffn = (MT.moe_params(d, cfg.d_ff, gated, cfg.moe, active) if cfg.moe is not None
           else MT.ffn_params(d, cfg.d_ff, gated, cfg.use_bias))
    layer = (MT.attention_params(d, cfg.n_heads, cfg.kv_heads, cfg.d_head, cfg.use_bias,
                                 cfg.use_qkv_bias)
             + ffn + 2 * T.norm_params(d, cfg.rms) + zoo.params(cfg.attn, seq))
    embed = T.embedding_params(V, d, d, 0 if cfg.rope else cfg.max_len, 0, norm_=False)
    head = 0 if cfg.tie_embeddings else V * d
    return embed + cfg.n_layers * layer + T.norm_params(d, cfg.rms) + head


def active_params(cfg: Config, seq: int = 0) -> int:
    """Parameters one token uses: all of them but the experts it is not routed to."""
    return params(cfg, seq, active=True)


# activation-memory policies the model is built with (``model(cfg, policy)``)
POLICIES = ("store_all", "checkpoint")
DEFAULT_POLICY = "store_all"


def model(cfg: Config, policy: str | None = None):
    """The runnable pre-training step (a ``Program``); ``policy``: one of ``POLICIES``."""
    from .config import check_policy
    from .transformer_model import build
    return build(cfg, check_policy(policy, POLICIES, DEFAULT_POLICY))
