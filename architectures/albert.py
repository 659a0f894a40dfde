"""ALBERT (Lan et al. 2020, "ALBERT: A Lite BERT for Self-supervised Learning of
Language Representations", ICLR 2020).

What differs from BERT, and how it is counted:

* factorised embedding: vocab x E token/position/type tables, LayerNorm on E,
  then an E->H projection (term ``embed/proj``);
* cross-layer parameter sharing (``share``): ``"all"`` (the paper's default:
  one layer's attention + FFN reused by every layer), ``"attention"``,
  ``"ffn"`` or ``"none"`` (the ablations of the paper's Table 4).  A shared
  sublayer's norm is shared with it.  Parameters count the shared set once;
  FLOPs still run ``n_layers`` layers, and the backward adds each shared
  parameter's ``n_layers`` gradients (``(n_layers - 1) x params`` additions,
  charged to the term of that parameter);
* post-LN encoder layers as BERT's; GELU is the tanh approximation, as in the
  reference TF code (google-research/albert modeling.py ``gelu``) and the HF v2
  configs (``hidden_act: gelu_new``);
* MLM head on the masked positions: dense H->E, GELU, LayerNorm(E), decoder
  tied to the E-wide word table + bias (``head/*``, ``loss/mlm``);
* sentence-order prediction: pooler dense H->H + tanh on the first token
  (``head/pooler``), classifier H->2 (``head/sop``), 2-way softmax
  cross-entropy (``loss/sop``), as in the reference ``get_sentence_order_output``.

Parameters match HuggingFace ``AlbertForPreTraining`` (embeddings, E->H
mapping, one shared layer group, pooler, MLM head with tied decoder + one bias,
SOP classifier): 11,813,810 for albert-base-v2's config, counted over unique
tensors with transformers 5 (``m.parameters()`` deduplicates the tied decoder
weight and the double-registered decoder bias).  HF always has the E->H mapping;
here it exists only when ``emb_dim != d_model`` (every preset has E=128).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from . import memory_terms as M
from . import terms as T
from . import zoo
from .config import Widths, ConfigError, check_config, mask_count, resized
from .num import maximum

NAME = "albert"
SHARES = ("all", "attention", "ffn", "none")


@dataclass(frozen=True)
class Config(Widths):
    vocab: int = 30000
    d_model: int = 768             # H
    n_layers: int = 12
    n_heads: int = 12
    emb_dim: int = 128             # E
    head_dim: int | None = None    # default d_model // n_heads
    ff_dim: int | None = None      # default 4 * d_model
    max_len: int = 512
    type_vocab: int = 2
    act: str = "gelu_tanh"
    eps: float = 1e-12
    mask_prob: float = 0.15
    share: str = "all"             # all | attention | ffn | none
    attention: str = "dense"       # dense | flash | local | linformer | performer (zoo.py)
    window: int = 256              # local: tokens a block (its own, the one before and after)
    proj_len: int = 256            # linformer: k, the length keys and values project to
    features: int = 256            # performer: m random features
    block: int = 128               # flash: query and key block

    def __post_init__(self):
        check_config(self)
        zoo.check(self)
        if self.share not in SHARES:
            raise ConfigError("share", self.share, "one of " + ", ".join(SHARES))
        for name in ("max_len", "type_vocab"):
            if getattr(self, name) < 1:
                raise ConfigError(name, getattr(self, name),
                                  "a positive integer (ALBERT learns positions and segments)")

    @property
    def attn(self) -> zoo.Attn:
        return zoo.of(self)

    @property
    def shares_attention(self) -> bool:
        return self.share in ("all", "attention")

    @property
    def shares_ffn(self) -> bool:
        return self.share in ("all", "ffn")


_BASE = Config()
_SRC = ("Lan et al. 2020, Table 1 (L, H, E); heads and FFN width from the released "
        "configs (google-research/albert config/, huggingface.co/albert/albert-{}-v2 config.json)")
PRESETS: dict[str, tuple[Config, str]] = {
    "albert-base": (_BASE, _SRC.format("base") + ": L=12, H=768, E=128, A=12, FFN 3072"),
    "albert-large": (dataclasses.replace(_BASE, d_model=1024, n_layers=24, n_heads=16),
                     _SRC.format("large") + ": L=24, H=1024, E=128, A=16, FFN 4096"),
    "albert-xlarge": (dataclasses.replace(_BASE, d_model=2048, n_layers=24, n_heads=16),
                      _SRC.format("xlarge") + ": L=24, H=2048, E=128, A=16 (heads of 128), "
                      "FFN 8192"),
    "albert-xxlarge": (dataclasses.replace(_BASE, d_model=4096, n_layers=12, n_heads=64),
                       _SRC.format("xxlarge") + ": L=12, H=4096, E=128, A=64, FFN 16384"),
}
DEFAULT_PRESET = "albert-base"


def resize(cfg: Config, d_model=None, n_layers=None, n_heads=None, d_ff=None) -> Config:
    """Another width/depth by BERT's rules (heads of 64, FFN 4 x H); E stays."""
    return resized(cfg, d_model, n_layers, n_heads, d_ff)


def transformer_baseline(cfg: Config):
    """BERT of the same widths: E = H, no sharing (the paper's comparison, Table 2)."""
    from . import transformer as tr
    return tr.Config(vocab=cfg.vocab, d_model=cfg.d_model, n_layers=cfg.n_layers,
                     n_heads=cfg.n_heads, head_dim=cfg.head_dim, ff_dim=cfg.d_ff,
                     max_len=cfg.max_len, type_vocab=cfg.type_vocab, act=cfg.act, eps=cfg.eps,
                     mask_prob=cfg.mask_prob)


def preset(name: str) -> Config:
    return PRESETS[name][0]


# -- analytic counts ------------------------------------------------------------

def _shared_grads(cfg: Config, seq) -> dict:
    """Gradient additions of parameters read by several layers, per term."""
    d, L = cfg.d_model, cfg.n_layers
    ua = L if cfg.shares_attention else 1
    uf = L if cfg.shares_ffn else 1
    return {**zoo.shared_grads(cfg.attn, ua, seq),
        "attn/qkv": T.shared_grad(T.dense_params(d, 3 * cfg.inner), ua),
        "attn/out": T.shared_grad(T.dense_params(cfg.inner, d), ua),
        "norm/attn": T.shared_grad(T.norm_params(d), ua),
        "ffn/in": T.shared_grad(T.dense_params(d, cfg.d_ff), uf),
        "ffn/out": T.shared_grad(T.dense_params(cfg.d_ff, d), uf),
        "norm/ffn": T.shared_grad(T.norm_params(d), uf),
    }


def terms(cfg: Config, batch, seq) -> dict[str, T.Term]:
    """Named forward/backward terms of one pre-training step on ``batch`` x ``seq`` tokens."""
    d, E, V = cfg.d_model, cfg.emb_dim, cfg.vocab
    zoo.check_seq(cfg.attn, seq)
    out: dict = {}
    T.merge(out, T.embeddings(batch, seq, E, d))
    T.merge(out, {"embed/lookup": T.tied_grad(V, E)})
    core = zoo.core_terms(cfg.attn, batch, seq, cfg.n_heads, cfg.d_head)
    T.merge(out, T.layer(batch, seq, d, cfg.n_heads, cfg.d_head, cfg.d_ff, cfg.act, core=core),
            k=cfg.n_layers)
    T.merge(out, zoo.draw_terms(cfg.attn, cfg.d_head, cfg.n_layers))
    T.merge(out, _shared_grads(cfg, seq))
    T.merge(out, T.mlm_head(batch * mask_count(seq, cfg.mask_prob), d, E, V, cfg.act))
    T.merge(out, T.sentence_head(batch, seq, d, "sop"))
    return out


def attention_stacks(cfg: Config, batch, seq) -> tuple:
    """The attention of the (shared) layers, run ``n_layers`` times (``zoo.Stack``)."""
    return (zoo.Stack("", cfg.attn, batch * cfg.n_heads, seq, cfg.d_head, False,
                      cfg.n_layers),)


def flops(cfg: Config, seq, batch=1, scope: str = "matmul") -> T.FlopCount:
    return T.count(terms(cfg, batch, seq), scope)


def params(cfg: Config, seq: int = 0) -> int:
    """Parameters; the learned position table grows to ``seq`` rows when seq > max_len."""
    d, E, L = cfg.d_model, cfg.emb_dim, cfg.n_layers
    max_len = maximum(cfg.max_len, seq)
    attn = T.attention_params(d, cfg.inner) + T.norm_params(d) + zoo.params(cfg.attn, seq)
    ffn = T.dense_params(d, cfg.d_ff) + T.dense_params(cfg.d_ff, d) + T.norm_params(d)
    return (T.embedding_params(cfg.vocab, E, d, max_len, cfg.type_vocab)
            + (1 if cfg.shares_attention else L) * attn
            + (1 if cfg.shares_ffn else L) * ffn
            + T.mlm_head_params(d, E, cfg.vocab) + T.sentence_head_params(d))


# activation-memory policies the model is built with (``model(cfg, policy)``)
POLICIES = ("store_all", "checkpoint")
DEFAULT_POLICY = "store_all"


def model(cfg: Config, policy: str | None = None):
    """The runnable pre-training step (a ``Program``); ``policy``: one of ``POLICIES``."""
    from .config import check_policy
    from .albert_model import build
    return build(cfg, check_policy(policy, POLICIES, DEFAULT_POLICY))


# -- activation memory (residuals kept for the backward; architectures/memory_terms.py) --

def activation_terms(cfg: Config, seq, batch=1, bytes_per=4) -> dict:
    """Bytes of the residuals one training step keeps for its backward, by term.

    Sharing changes nothing here: every application of the shared layer keeps its
    own activations, exactly as BERT's layers do."""
    d, E, fb, b = cfg.d_model, cfg.emb_dim, bytes_per, batch
    zoo.check_seq(cfg.attn, seq)
    core = zoo.core_memory(cfg.attn, b, seq, cfg.n_heads, cfg.d_head, fb)
    out = M.embeddings(b, seq, E, d, fb, tables=2)
    M.merge(out, M.post_ln_layers(b, seq, d, cfg.n_heads, cfg.d_head, cfg.d_ff, cfg.act,
                                  cfg.n_layers, fb, last_out=False, core=core))
    M.merge(out, M.mlm_head(b * mask_count(seq, cfg.mask_prob), d, E, cfg.vocab, cfg.act, fb))
    M.merge(out, M.sentence_head(b, d, fb, "sop"))
    return M.nonzero(out)


def activation_bytes(cfg: Config, seq, batch=1, bytes_per=4):
    """Activation memory of one training step (``activation_terms`` summed)."""
    return sum(activation_terms(cfg, seq, batch, bytes_per).values())
