"""ELECTRA (Clark et al. 2020, "ELECTRA: Pre-training Text Encoders as Discriminators
Rather Than Generators", ICLR 2020).

One pre-training step, as in the reference implementation
(google-research/electra ``run_pretraining.py``):

1. the generator -- a small BERT -- reads the masked input; its MLM head
   (dense H_g->E, GELU, LayerNorm(E), decoder tied to the word table + bias)
   scores the masked positions (``gen/head/*``, ``gen/loss/mlm``);
2. a replacement token is sampled at each masked position from the
   generator's softmax, ``jax.random.categorical`` on the stop-gradient logits
   (Gumbel-max: random bits, uniform, two logs, argmax), and scattered into
   the input (``gen/head/sample``);
3. the discriminator reads the corrupted sequence; its replaced-token head
   (dense H->H, GELU, dense H->1) feeds a sigmoid cross-entropy over every
   position (``disc/head/rtd_*``, ``disc/loss/rtd``);
4. loss = MLM loss + 50 x RTD loss (lambda = 50, the paper's Sec. 3 and the
   reference ``disc_weight``).

Generator size (reference ``get_generator_config``): hidden = round(H x
``gen_fraction``), heads = max(1, hidden // 64), FFN = 4 x hidden, same depth;
for the paper's presets this equals scaling hidden, heads and FFN by the
fraction (Table 6: "multiplier for hidden-size, FFN-size, and
num-attention-heads").  Word, position and token-type tables and the
embedding LayerNorm are shared (the reference's ``untied_generator_embeddings
= False`` builds them once under ``electra/embeddings``); each network has its
own E->H projection when E differs from its hidden size.

Parameters: ``params`` counts the whole pre-training model, the shared
embeddings once.  ``discriminator_params`` equals HuggingFace
``ElectraForPreTraining`` (13,549,057 for google/electra-small-discriminator's
config) and ``generator_params`` equals ``ElectraForMaskedLM`` minus the
embeddings it shares (tables + LayerNorm): for the paper's ELECTRA-Small
generator (hidden 64, 1 head, FFN 256, E=128) 4,620,026 - 3,972,864 = 647,162.
The released HF google/electra-small-generator checkpoint is larger (hidden
256, 4 heads, FFN 1024 -- the "ELECTRA-Small++" release); the base and large
generators (hidden 256, 4 heads, FFN 1024) are the paper's 1/3 and 1/4.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import memory_terms as M
from . import terms as T
from . import zoo
from .config import Widths, ConfigError, check_config, mask_count, resized
from .num import maximum

NAME = "electra"


@dataclass(frozen=True)
class Config(Widths):
    vocab: int = 30522
    d_model: int = 768             # discriminator hidden H
    n_layers: int = 12             # both networks
    n_heads: int = 12
    emb_dim: int = 768             # E, shared by both networks
    ff_dim: int | None = None      # default 4 * d_model
    max_len: int = 512
    type_vocab: int = 2
    act: str = "gelu"              # the reference's gelu is the erf form
    eps: float = 1e-12
    mask_prob: float = 0.15
    gen_fraction: float = 1 / 3    # generator hidden / discriminator hidden
    disc_weight: float = 50.0      # lambda
    attention: str = "dense"       # dense | flash | local | linformer | performer (zoo.py),
    #                                both networks
    window: int = 256              # local: tokens a block (its own, the one before and after)
    proj_len: int = 256            # linformer: k, the length keys and values project to
    features: int = 256            # performer: m random features
    block: int = 128               # flash: query and key block

    def __post_init__(self):
        check_config(self)
        zoo.check(self)
        for name in ("max_len", "type_vocab"):
            if getattr(self, name) < 1:
                raise ConfigError(name, getattr(self, name), "a positive integer")
        f = self.gen_fraction
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f <= 1:
            raise ConfigError("gen_fraction", f, "a fraction in (0, 1]")
        if self.gen_hidden < 1:
            raise ConfigError("gen_fraction", f, f"at least 1/{self.d_model} (a non-empty generator)")
        if self.gen_hidden % self.gen_heads:
            raise ConfigError("gen_fraction", f, f"one giving a generator hidden size "
                              f"({self.gen_hidden}) divisible by its {self.gen_heads} heads")
        w = self.disc_weight
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not w > 0:
            raise ConfigError("disc_weight", w, "a positive number")

    @property
    def attn(self) -> zoo.Attn:
        return zoo.of(self)

    @property
    def gen_hidden(self) -> int:
        return int(round(self.d_model * self.gen_fraction))

    @property
    def gen_heads(self) -> int:
        return max(1, self.gen_hidden // 64)

    @property
    def gen_ff(self) -> int:
        return 4 * self.gen_hidden


_SMALL = Config(d_model=256, n_heads=4, emb_dim=128, gen_fraction=1 / 4)
_SRC = "Clark et al. 2020, Table 6 (pre-training hyper-parameters)"
PRESETS: dict[str, tuple[Config, str]] = {
    "electra-small": (_SMALL, _SRC + ": L=12, H=256, E=128, A=4, FFN 1024, generator 1/4, "
                              "mask 15%"),
    "electra-base": (Config(), _SRC + ": L=12, H=768, E=768, A=12, FFN 3072, generator 1/3, "
                               "mask 15%"),
    "electra-large": (Config(d_model=1024, n_layers=24, n_heads=16, emb_dim=1024,
                             gen_fraction=1 / 4, mask_prob=0.25),
                      _SRC + ": L=24, H=1024, E=1024, A=16, FFN 4096, generator 1/4, mask 25%"),
}
DEFAULT_PRESET = "electra-base"


def resize(cfg: Config, d_model=None, n_layers=None, n_heads=None, d_ff=None) -> Config:
    """Another width/depth by BERT's rules; E follows H unless it was narrower (small);
    the generator keeps its fraction, rounded to a whole number of 64-wide heads."""
    if d_model is None:
        return resized(cfg, d_model, n_layers, n_heads, d_ff)
    emb = cfg.emb_dim if cfg.emb_dim < cfg.d_model else d_model
    gen = max(64, 64 * round(d_model * cfg.gen_fraction / 64))
    return resized(cfg, d_model, n_layers, n_heads, d_ff, emb_dim=emb,
                   gen_fraction=gen / d_model)


def transformer_baseline(cfg: Config):
    """BERT of the discriminator's widths (the paper compares with BERT of equal size)."""
    from . import transformer as tr
    return tr.Config(vocab=cfg.vocab, d_model=cfg.d_model, n_layers=cfg.n_layers,
                     n_heads=cfg.n_heads, ff_dim=cfg.d_ff, max_len=cfg.max_len,
                     type_vocab=cfg.type_vocab, act=cfg.act, eps=cfg.eps,
                     mask_prob=cfg.mask_prob)


def preset(name: str) -> Config:
    return PRESETS[name][0]


# -- analytic counts ------------------------------------------------------------

def _network(b, n, E, hidden, heads, d_ff, layers, act, attn) -> dict:
    """Embeddings (+ E->H projection when E != hidden) and ``layers`` post-LN layers."""
    dh = hidden // heads
    out = T.embeddings(b, n, E, hidden)
    T.merge(out, T.layer(b, n, hidden, heads, dh, d_ff, act,
                         core=zoo.core_terms(attn, b, n, heads, dh)), k=layers)
    return T.merge(out, zoo.draw_terms(attn, dh, layers))


def terms(cfg: Config, batch, seq) -> dict[str, T.Term]:
    """Named forward/backward terms of one pre-training step on ``batch`` x ``seq`` tokens."""
    E, V, b, n = cfg.emb_dim, cfg.vocab, batch, seq
    zoo.check_seq(cfg.attn, seq)
    rows = b * mask_count(seq, cfg.mask_prob)
    gen = _network(b, n, E, cfg.gen_hidden, cfg.gen_heads, cfg.gen_ff, cfg.n_layers, cfg.act,
                   cfg.attn)
    T.merge(gen, T.mlm_head(rows, cfg.gen_hidden, E, V, cfg.act))
    T.merge(gen, T.sample_replacements(rows, V))
    # The shared tables are read by the generator's lookup and (word table) decoder and by
    # the discriminator's lookup; the generator's reads come first, so the backward adds
    # the later gradients there.
    pos_rows = maximum(cfg.max_len, seq)  # the position table grows past max_len
    T.merge(gen, {"embed/lookup": T.shared_grad((V + pos_rows + cfg.type_vocab) * E, 2),
                  "head/logits": T.tied_grad(V, E),
                  "norm/embed": T.shared_grad(T.norm_params(E), 2)})
    disc = _network(b, n, E, cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.n_layers, cfg.act,
                    cfg.attn)
    T.merge(disc, T.rtd_head(b * n, cfg.d_model, cfg.act, rows))
    return T.merge(T.prefixed("gen", gen), T.prefixed("disc", disc))


def attention_stacks(cfg: Config, batch, seq) -> tuple:
    """The generator's and the discriminator's attention layers (``zoo.Stack``)."""
    gen = cfg.gen_hidden // cfg.gen_heads
    return (zoo.Stack("gen", cfg.attn, batch * cfg.gen_heads, seq, gen, False, cfg.n_layers),
            zoo.Stack("disc", cfg.attn, batch * cfg.n_heads, seq, cfg.d_head, False,
                      cfg.n_layers))


def flops(cfg: Config, seq, batch=1, scope: str = "matmul") -> T.FlopCount:
    return T.count(terms(cfg, batch, seq), scope)


def _embedding_tables(cfg: Config, seq: int = 0) -> int:
    return T.embedding_params(cfg.vocab, cfg.emb_dim, cfg.emb_dim, maximum(cfg.max_len, seq),
                              cfg.type_vocab)


def _tower(cfg: Config, hidden, d_ff, seq=0) -> int:
    proj = T.dense_params(cfg.emb_dim, hidden) if cfg.emb_dim != hidden else 0
    return proj + cfg.n_layers * (T.layer_params(hidden, hidden, d_ff)
                                  + zoo.params(cfg.attn, seq))


def generator_params(cfg: Config, seq: int = 0) -> int:
    """The generator without the embeddings it shares: HF ElectraForMaskedLM minus them."""
    return (_tower(cfg, cfg.gen_hidden, cfg.gen_ff, seq)
            + T.mlm_head_params(cfg.gen_hidden, cfg.emb_dim, cfg.vocab))


def discriminator_params(cfg: Config, seq: int = 0) -> int:
    """The discriminator with the embeddings: HF ElectraForPreTraining."""
    return (_embedding_tables(cfg, seq) + _tower(cfg, cfg.d_model, cfg.d_ff, seq)
            + T.rtd_head_params(cfg.d_model))


def params(cfg: Config, seq: int = 0) -> int:
    """The whole pre-training model: generator + discriminator, shared embeddings once.

    The learned position table grows to ``seq`` rows when seq > max_len.
    """
    return discriminator_params(cfg, seq) + generator_params(cfg, seq)


# activation-memory policies the model is built with (``model(cfg, policy)``)
POLICIES = ("store_all", "checkpoint")
DEFAULT_POLICY = "store_all"


def model(cfg: Config, policy: str | None = None):
    """The runnable pre-training step (a ``Program``); ``policy``: one of ``POLICIES``."""
    from .config import check_policy
    from .electra_model import build
    return build(cfg, check_policy(policy, POLICIES, DEFAULT_POLICY))


# -- activation memory (residuals kept for the backward; architectures/memory_terms.py) --

def activation_terms(cfg: Config, seq, batch=1, bytes_per=4) -> dict:
    """Bytes of the residuals one training step keeps for its backward, by term.

    Both networks keep their activations (the sampling in between keeps none: its
    logits are stop-gradient); the generator's last layer feeds a gather (nothing
    kept), the discriminator's the RTD projection (kept)."""
    E, V, fb, b = cfg.emb_dim, cfg.vocab, bytes_per, batch
    zoo.check_seq(cfg.attn, seq)
    t, rows = b * seq, b * mask_count(seq, cfg.mask_prob)
    gdh = cfg.gen_hidden // cfg.gen_heads
    gen = M.embeddings(b, seq, E, cfg.gen_hidden, fb, tables=2)
    M.merge(gen, M.post_ln_layers(b, seq, cfg.gen_hidden, cfg.gen_heads, gdh, cfg.gen_ff,
                                  cfg.act, cfg.n_layers, fb, last_out=False,
                                  core=zoo.core_memory(cfg.attn, b, seq, cfg.gen_heads, gdh, fb)))
    M.merge(gen, M.mlm_head(rows, cfg.gen_hidden, E, V, cfg.act, fb))
    disc = M.embeddings(b, seq, E, cfg.d_model, fb, tables=2)
    M.merge(disc, M.post_ln_layers(b, seq, cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_ff,
                                   cfg.act, cfg.n_layers, fb, last_out=True,
                                   core=zoo.core_memory(cfg.attn, b, seq, cfg.n_heads,
                                                        cfg.d_head, fb)))
    M.merge(disc, M.feed_forward(t, cfg.d_model, cfg.act, fb, "head/rtd_dense", "head/rtd_act"))
    M.merge(disc, {"loss/rtd": 4 * t * fb + t * M.BOOL})  # sigmoid BCE: 4 floats, 1 mask
    return M.nonzero(M.merge(M.merge({}, gen, "gen"), disc, "disc"))


def activation_bytes(cfg: Config, seq, batch=1, bytes_per=4):
    """Activation memory of one training step (``activation_terms`` summed)."""
    return sum(activation_terms(cfg, seq, batch, bytes_per).values())
