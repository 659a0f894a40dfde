"""Reformer (Kitaev, Kaiser, Levskaya 2020): LSH attention, reversible layers, chunked FFN.

Each layer is reversible (y1 = x1 + F(x2), y2 = x2 + G(y1)); F is a
pre-LN attention sublayer -- LSH self-attention with shared QK, or chunked
local attention, following ``attn_layers`` -- and G a pre-LN, chunked
feed-forward.  The stack runs on two copies of the embedding (token +
axial position embedding) and ends with LayerNorm over [y1, y2] (2d) and an
untied output layer 2d -> vocab (as Hugging Face ``ReformerModelWithLMHead``).
Causal models train as language models on every position; bidirectional ones
as masked LMs on the masked positions.

Costs that matter: LSH hashing is n x dh x n_hashes x n_buckets per head
(linear in n for a fixed bucket count; with the paper's rule n_buckets =
2n/chunk it grows as n^2/chunk, with a small constant); attention is
n_hashes x n x (1 + chunks_before + chunks_after) x chunk x dh, linear in n;
sorting n_hashes x n slots costs k log2 k comparisons (``all`` scope); the
backward of every layer recomputes its forward once.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from . import memory_terms as M
from . import terms as T
from . import zoo
from .terms import Term
from .config import BOUNDS, Widths, ConfigError, _is_int, check_config, mask_count, resized
from .num import any_nonzero, ceil_div, ceil_log2, floor_log2, maximum, positive, pow2

NAME = "reformer"
ATTN_KINDS = ("lsh", "local")


def bucket_limit(chunk: int, max_len: int) -> int:
    """Bucket counts above 2 * max(isqrt(max_len // chunk), chunk) are factorised."""
    return 2 * max(math.isqrt(max_len // chunk), chunk)


def bucket_rule(seq: int, chunk: int, max_len: int = 4096) -> tuple:
    """Buckets when ``num_buckets`` is not given, as the reference implementations choose
    them (Hugging Face ``LSHSelfAttention._set_num_buckets``, ported from trax):
    2 * (seq // chunk) rounded *down* to a power of two 2^p, factorised into the two
    rotations (2^(p // 2), 2^(p - p // 2)) -- whose sizes add in the hashing product --
    when 2^p exceeds ``bucket_limit(chunk, max_len)`` (max_len: the config's
    max_position_embeddings).  Returns the factors: ``(2^p,)`` or ``(a, b)``."""
    p = floor_log2(max(1, 2 * (seq // chunk)))
    if 2 ** p > bucket_limit(chunk, max_len):
        return (2 ** (p // 2), 2 ** (p - p // 2))
    return (2 ** p,)


@dataclass(frozen=True)
class Config(Widths):
    vocab: int = 30522
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    head_dim: int | None = None
    ff_dim: int | None = None
    attn_layers: tuple = ("lsh",)      # cycled over the layers
    n_hashes: int = 4
    n_buckets: int | tuple | None = None  # an even int, two even factors (a, b) hashed with
    #                                    a/2 + b/2 rotations, or None: the length-derived rule
    #                                    of the reference implementation (``bucket_factors``)
    max_len: int = 4096                # HF max_position_embeddings: enters only that rule
    rehash_in_backward: bool = False   # False (reference): the recomputation in the backward
    #                                    reuses the forward's buckets; True: hashes again
    lsh_chunk: int = 64
    local_chunk: int = 64
    chunks_before: int = 1
    chunks_after: int = 0
    ffn_chunk: int = 0                 # positions per FFN chunk (0: whole sequence)
    axial_shape: tuple = (16, 32)      # position grid n1 x n2 (n1 grows past n1*n2)
    axial_dims: tuple = (256, 512)     # d1 + d2 = d_model
    causal: bool = False
    act: str = "relu"
    eps: float = 1e-12
    mask_prob: float = 0.15            # bidirectional models: MLM masking rate

    def __post_init__(self):
        check_config(self)
        kinds = tuple(self.attn_layers)
        if not kinds or any(k not in ATTN_KINDS for k in kinds):
            raise ConfigError("attn_layers", self.attn_layers, "a non-empty list of lsh, local")
        most = BOUNDS["max_len"][0]
        if len(self.axial_shape) != 2 or not all(_is_int(x) and 0 < x <= most
                                                 for x in self.axial_shape):
            raise ConfigError("axial_shape", self.axial_shape,
                              f"two positive integers, each at most {most:,}")
        if len(self.axial_dims) != 2 or sum(self.axial_dims) != self.d_model:
            raise ConfigError("axial_dims", self.axial_dims,
                              f"two sizes adding up to d_model={self.d_model}")
        nb = self.n_buckets
        if isinstance(nb, list):
            object.__setattr__(self, "n_buckets", nb := tuple(nb))
        if isinstance(nb, tuple):
            if (len(nb) != 2 or not all(isinstance(f, int) and not isinstance(f, bool)
                                        and 2 <= f <= most and f % 2 == 0 for f in nb)):
                raise ConfigError("n_buckets", list(nb), "two even integers >= 2 (a factorised "
                                  "hash [a, b]), an even integer >= 2, or null (at most "
                                  f"{most:,} each)")
        elif nb is not None and (not isinstance(nb, int) or isinstance(nb, bool) or nb < 2
                                 or nb % 2 or nb > most):
            raise ConfigError("n_buckets", nb, "an even integer >= 2, two even factors [a, b], "
                              f"or null (the length-derived rule); at most {most:,} each")
        for name in ("lsh_chunk", "local_chunk", "n_hashes", "max_len"):
            if getattr(self, name) <= 0:
                raise ConfigError(name, getattr(self, name), "a positive integer")
        if self.chunks_before < 0 or self.chunks_after < 0:
            raise ConfigError("chunks_before", (self.chunks_before, self.chunks_after),
                              "non-negative chunk counts")
        if self.causal and self.chunks_after:
            raise ConfigError("chunks_after", self.chunks_after, "0 for a causal model")

    def kind(self, layer: int) -> str:
        return self.attn_layers[layer % len(self.attn_layers)]

    def single_chunk(self, seq) -> bool:
        """At most one LSH chunk: the reference runs plain n x n attention (one round, no
        hashing, no sort).  Scalar lengths only (formulas use ``multi_chunk``)."""
        return seq <= self.lsh_chunk

    def multi_chunk(self, seq):
        """1 where LSH layers hash and sort (seq > lsh_chunk), else 0 (ints and arrays)."""
        return positive(seq - self.lsh_chunk)

    def bucket_factors(self, seq: int) -> tuple:
        """The hash's bucket factors at ``seq`` (scalar): ``(nb,)`` or a factorised ``(a, b)``:
        ``n_buckets`` as given, or when None the reference rule (``bucket_rule``)."""
        if self.n_buckets is not None:
            return self.n_buckets if isinstance(self.n_buckets, tuple) else (self.n_buckets,)
        return bucket_rule(seq, self.lsh_chunk, self.max_len)

    def bucket_limit(self) -> int:
        """Above this many buckets the length-derived rule factorises the hash."""
        return bucket_limit(self.lsh_chunk, self.max_len)

    def buckets(self, seq):
        """Total buckets per round (the product of the factors); ints and arrays."""
        if self.n_buckets is not None:
            return math.prod(self.bucket_factors(seq))
        return pow2(floor_log2(maximum(1, 2 * (seq // self.lsh_chunk))))

    def rotation_size(self, seq):
        """Columns of [R, -R] per round: the sum of the factors (ints and arrays)."""
        if self.n_buckets is not None:
            return sum(self.bucket_factors(seq))
        p = floor_log2(maximum(1, 2 * (seq // self.lsh_chunk)))
        split = positive(p - floor_log2(self.bucket_limit()))   # 2^p > limit <=> p > log2 limit
        return pow2(p) * (1 - split) + (pow2(p // 2) + pow2(p - p // 2)) * split

    def factorised(self, seq):
        """1 where the hash is factorised into two rotations, else 0 (ints and arrays)."""
        if self.n_buckets is not None:
            return int(isinstance(self.n_buckets, tuple))
        p = floor_log2(maximum(1, 2 * (seq // self.lsh_chunk)))
        return positive(p - floor_log2(self.bucket_limit()))

    def axial_rows(self, seq: int) -> int:
        """n1 of the axial grid for ``seq`` positions (grown when seq > n1 * n2)."""
        n1, n2 = self.axial_shape
        return maximum(n1, ceil_div(seq, n2))

    def check_seq(self, seq: int) -> None:
        chunks = {"lsh_chunk": self.lsh_chunk, "local_chunk": self.local_chunk}
        if self.ffn_chunk:
            chunks["ffn_chunk"] = self.ffn_chunk
        used = {k for k in self.attn_layers}
        for name, c in chunks.items():
            # one LSH chunk or less runs plain attention: any length up to the chunk
            if name == "lsh_chunk" and isinstance(seq, int) and seq <= c:
                continue
            if name.split("_")[0] in used | {"ffn"} and any_nonzero(seq % c):
                raise ConfigError("seq", seq, f"a multiple of {name}={c}")
        if (self.n_buckets is not None and "lsh" in used and isinstance(seq, int)
                and seq > self.lsh_chunk and seq < self.buckets(seq)):
            raise ConfigError("seq", seq, f"at least n_buckets={self.buckets(seq)} (more hash "
                                          "buckets than positions)")


PRESETS: dict[str, tuple[Config, str]] = {
    "reformer-enwik8": (Config(
        vocab=258, d_model=1024, n_layers=12, n_heads=8, head_dim=128, ff_dim=4096,
        attn_layers=("local", "local", "lsh", "local", "local", "local", "lsh", "local",
                     "local", "local", "lsh", "local"),
        n_hashes=4, n_buckets=512, max_len=65536, lsh_chunk=256, local_chunk=128,
        axial_shape=(128, 512), axial_dims=(256, 768), causal=True),
        "Kitaev et al. 2020, Sec. 5 (enwik8-64K, 12 layers, d 1024); sizes of the released "
        "google/reformer-enwik8 config"),
    "reformer-base": (Config(),
                      "BERT-base widths (Devlin et al. 2019) with LSH attention in every layer, "
                      "4 hashes, chunks of 64, reversible layers (Kitaev et al. 2020)"),
}
DEFAULT_PRESET = "reformer-base"


def preset(name: str) -> Config:
    return PRESETS[name][0]


def resize(cfg: Config, d_model=None, n_layers=None, n_heads=None, d_ff=None) -> Config:
    """Another width/depth by BERT's rules; the axial split keeps its proportion."""
    extra = {}
    if d_model is not None:
        d1 = max(1, min(d_model - 1, round(d_model * cfg.axial_dims[0] / cfg.d_model)))
        extra["axial_dims"] = (d1, d_model - d1)
    return resized(cfg, d_model, n_layers, n_heads, d_ff, **extra)


def like(cfg) -> Config:
    """The Reformer of a Transformer-family model's widths, depth, vocabulary, activation
    and objective (causal for a decoder, masked LM for an encoder), LSH attention in every
    layer and the Reformer's defaults otherwise (``reformer-base``): what ``attention=lsh``
    makes of a Transformer in a sweep."""
    kind = getattr(cfg, "kind", "encoder")
    if kind not in ("encoder", "decoder"):
        raise ConfigError("attention", "lsh", "an encoder or a decoder (the Reformer has no "
                          "encoder-decoder)")
    base = dataclasses.replace(PRESETS["reformer-base"][0], vocab=cfg.vocab, act=cfg.act,
                               eps=cfg.eps, mask_prob=cfg.mask_prob, causal=kind == "decoder")
    return resize(base, d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads,
                  d_ff=cfg.d_ff)


def describe(cfg: Config, seq: int) -> str:
    """The length-dependent choices of the LSH layers at ``seq``, in words (explain)."""
    if "lsh" not in cfg.attn_layers:
        return ""
    if cfg.single_chunk(seq):
        return (f"LSH layers: {seq} tokens fit one chunk of {cfg.lsh_chunk}: plain "
                f"{seq} x {seq} attention, no hashing (as the reference)")
    f = cfg.bucket_factors(seq)
    how = ("given" if cfg.n_buckets is not None else
           f"2n/chunk to a power of two, factorised above {cfg.bucket_limit()} "
           f"(max_len {cfg.max_len})")
    buckets = (f"{f[0]} buckets" if len(f) == 1 else
               f"{f[0] * f[1]} buckets = {f[0]} x {f[1]} (factorised: {f[0] // 2} + "
               f"{f[1] // 2} rotations a round, not {f[0] * f[1] // 2})")
    back = ("hashes again" if cfg.rehash_in_backward else
            "reuses the forward's buckets (one hash a layer a step)")
    return (f"LSH layers: {cfg.n_hashes} hashes into {buckets} ({how}); chunks of "
            f"{cfg.lsh_chunk}; the backward's recomputation {back}")


def transformer_baseline(cfg: Config):
    """A vanilla Transformer of the same widths: dense attention, plain residuals,
    the same objective (causal LM or masked LM), learned positions."""
    from . import transformer as tr
    kind = "decoder" if cfg.causal else "encoder"
    return tr.Config(kind=kind, vocab=cfg.vocab, d_model=cfg.d_model, n_layers=cfg.n_layers,
                     n_heads=cfg.n_heads, head_dim=cfg.head_dim, ff_dim=cfg.d_ff, max_len=512,
                     type_vocab=0 if cfg.causal else 2, act=cfg.act, eps=cfg.eps,
                     mask_prob=cfg.mask_prob)


# -- analytic counts ----------------------------------------------------------

def _sort(k):
    """Comparisons charged for sorting k >= 2 keys: k * ceil(log2 k) (rules.sort_comparisons)."""
    return k * ceil_log2(k)


def lsh_terms(cfg: Config, b, n) -> dict:
    """LSH attention core over b sequences x h heads, as kernels/lsh.py computes it: the
    chunked, hashed path beyond one chunk, plain attention up to one (``single_chunk``)."""
    if isinstance(n, int):
        return single_chunk_terms(cfg, b, n) if cfg.single_chunk(n) else hashed_terms(cfg, b, n)
    multi = cfg.multi_chunk(n)     # arrays and recorded formulas: both paths, weighted 1 / 0
    out = {k: t.times(multi) for k, t in hashed_terms(cfg, b, n).items()}
    return T.merge(out, {k: t.times(1 - multi) for k, t in single_chunk_terms(cfg, b, n).items()})


def hashed_terms(cfg: Config, b, n) -> dict:
    """LSH attention over b x h heads beyond one chunk (``kernels.lsh.lsh_attention``).

    H = b*h heads, S = n_hashes*n slots, K = (1+before+after)*chunk keys per
    query, rot = the rotation size (``Config.rotation_size``: the bucket count, or a + b
    for a factorised hash).  Constants that do not depend on the input (bucket offsets,
    slot positions) are computed once, not per head, as vmap leaves them.
    """
    h, dh, r, c = cfg.n_heads, cfg.d_head, cfg.n_hashes, cfg.lsh_chunk
    rot, split = cfg.rotation_size(n), cfg.factorised(n)
    w = 1 + cfg.chunks_before + cfg.chunks_after
    K, H, S = w * c, b * h, r * n
    masks = 2 if cfg.causal else 1
    att = H * 2 * S * K * dh
    adj = 2 * (w - 1) * H * S * dh  # backward of gathering w neighbouring chunks
    lse = H * S if r > 1 else 0
    return {
        # q.R (no gradient: it feeds an argmax), [R, -R] and argmax per factor, the
        # factors combined as digits (mul, add), round offsets
        "lsh/hash": Term(mm=H * n * dh * r * rot,
                         ew=H * (S * rot // 2 + S * (rot - 1) + S + S * split) + r),
        # sort key (mul, add), one sort of it, the slot decoded from each sorted key (rem,
        # div, mul, add), the inverse permutation by a scatter (its index normalisation:
        # lt, add, select); gathers of q and v (their grads scatter-add)
        "lsh/sort": Term(ew=H * (9 * S + _sort(S)) + S, ew_bwd=2 * H * S * dh),
        # unit keys (|q|^2, rsqrt, scale), q.k, self mask (+ causal mask)
        "lsh/scores": Term(mm=att, mm_bwd=2 * att,
                           ew=H * (2 * S * dh + S * (dh - 1) + 3 * S + 2 * masks * S * K),
                           ew_bwd=H * (masks * S * K + 7 * S * dh + S * (dh - 1) + 4 * S) + adj),
        # max-shifted log-sum-exp per row, probabilities, logsumexp kept for the rounds
        "lsh/softmax": Term(ew=H * (4 * S * K + 2 * S * (K - 1) + S) + lse,
                            ew_bwd=H * (4 * S * K + S * (K - 1) + S) + lse),
        "lsh/context": Term(mm=att, mm_bwd=2 * att, ew_bwd=adj),
        "lsh/unsort": Term(ew_bwd=H * S * dh + lse),  # gathers back: grads scatter-add
        # softmax over the rounds' logsumexps, weighted sum of the rounds' outputs
        "lsh/combine": Term(
            ew=(H * (2 * n * (r - 1) + 4 * S + n + S * dh + n * (r - 1) * dh)) if r > 1 else 0,
            ew_bwd=(H * (2 * S * dh + S * (dh - 1) + 4 * S + n * (r - 1) + n)) if r > 1 else 0),
    }


def single_chunk_terms(cfg: Config, b, n) -> dict:
    """Up to one chunk (``kernels.lsh.standard_attention``): n x n shared-QK attention, one
    round, no hashing or sorting; the position masks are computed once, not per head."""
    h, dh = cfg.n_heads, cfg.d_head
    H, masks = b * h, 2 if cfg.causal else 1
    att = H * 2 * n * n * dh
    return {"lsh/scores": Term(mm=att, mm_bwd=2 * att,
                               ew=H * (2 * n * dh + n * (dh - 1) + 3 * n + masks * n * n)
                               + masks * n * n,
                               ew_bwd=H * (masks * n * n + 7 * n * dh + n * (dh - 1) + 4 * n)),
            "lsh/softmax": Term(ew=H * (4 * n * n + 2 * n * (n - 1) + n),
                                ew_bwd=H * (4 * n * n + n * (n - 1) + n)),
            "lsh/context": Term(mm=att, mm_bwd=2 * att)}


def rotations_term(cfg: Config, n) -> Term:
    """One step's random rotations for one LSH layer (none within one chunk): a key
    fold-in, normal samples of h x dh x n_hashes x rot/2."""
    R = cfg.n_heads * cfg.d_head * cfg.n_hashes * (cfg.rotation_size(n) // 2)
    return T.normal_draw(R).times(cfg.multi_chunk(n))


def local_terms(cfg: Config, b, n) -> dict:
    """Chunked local attention (kernels/lsh.local_attention) over b x h heads: the
    Transformer's ``local`` choice with the Reformer's chunk and window (zoo.local_terms)."""
    return zoo.local_terms(b, cfg.n_heads, n, cfg.d_head, cfg.local_chunk, cfg.chunks_before,
                           cfg.chunks_after, cfg.causal)


def embedding_terms(cfg: Config, b, n) -> dict:
    """Token gather (+ index check) plus the axial position grid, broadcast and added."""
    d, t = cfg.d_model, b * n
    (d1, d2), n2 = cfg.axial_dims, cfg.axial_shape[1]
    need = ceil_div(n, n2)
    return {"embed/lookup": Term(ew=3 * t + t * d, ew_bwd=t * d + (b - 1) * n * d),
            "embed/axial": Term(ew_bwd=need * (n2 - 1) * d1 + (need - 1) * n2 * d2)}


def reversible_terms(t, d, layers) -> dict:
    """The stack's adds: y1 = x1 + F, y2 = x2 + G; the backward rebuilds the inputs
    (two subtractions a layer, one for the first), adds two cotangents a layer,
    and adds the gradients of the two copies of the embedding."""
    return {"rev/residual": Term(ew=2 * layers * t * d, ew_bwd=4 * layers * t * d)}


def layer_terms(cfg: Config, b, n, kind: str, first: bool = False) -> dict:
    d, t, inner = cfg.d_model, b * n, cfg.inner
    out = {"norm/attn": T.norm(t, d), "norm/ffn": T.norm(t, d)}
    if kind == "lsh":
        out["attn/qkv"] = T.dense(t, d, 2 * inner, bias=False)
        T.merge(out, lsh_terms(cfg, b, n))
    else:
        out["attn/qkv"] = T.dense(t, d, 3 * inner, bias=False)
        T.merge(out, local_terms(cfg, b, n))
    out["attn/out"] = T.dense(t, inner, d, bias=False)
    T.merge(out, T.feed_forward(t, d, cfg.d_ff, cfg.act))
    out["ffn/out"] = T.dense(t, cfg.d_ff, d)  # no residual here: the reversible add is rev/
    if cfg.ffn_chunk:
        # chunked FFN (lax.map): each chunk's weight and bias gradients are added into
        # running sums, n_chunks x (din x dout) + dout more adds per projection
        k = n // cfg.ffn_chunk
        T.merge(out, {"ffn/in": Term(ew_bwd=k * d * cfg.d_ff + cfg.d_ff),
                      "ffn/out": Term(ew_bwd=k * cfg.d_ff * d + d)})
    # every term of F and G is recomputed once by the backward, but hashing: the reference
    # hands the forward's buckets to the recomputation (unless rehash_in_backward) ...
    out = {k: v if k == "lsh/hash" and not cfg.rehash_in_backward else v.recomputed()
           for k, v in out.items()}
    if first:  # ... except the first layer's output projection: its value is never used
        out["attn/out"] = T.dense(t, inner, d, bias=False)
    return out


def terms(cfg: Config, batch, seq) -> dict[str, T.Term]:
    cfg.check_seq(seq)
    d, V, t = cfg.d_model, cfg.vocab, batch * seq
    out = embedding_terms(cfg, batch, seq)
    for i in range(cfg.n_layers):
        T.merge(out, layer_terms(cfg, batch, seq, cfg.kind(i), first=i == 0))
        if cfg.kind(i) == "lsh":
            T.merge(out, {"lsh/rotations": rotations_term(cfg, seq)})
    T.merge(out, reversible_terms(t, d, cfg.n_layers))
    T.merge(out, {"norm/final": T.norm(t, 2 * d)})
    if cfg.causal:
        T.merge(out, {"head/logits": T.dense(t, 2 * d, V), "loss/lm": T.cross_entropy(t, V)})
    else:
        p = batch * mask_count(seq, cfg.mask_prob)
        T.merge(out, {"head/gather": T.Term(ew=3 * p, ew_bwd=p * 2 * d),
                      "head/logits": T.dense(p, 2 * d, V), "loss/mlm": T.cross_entropy(p, V)})
    return out


def flops(cfg: Config, seq, batch=1, scope: str = "matmul") -> T.FlopCount:
    return T.count(terms(cfg, batch, seq), scope)


def params(cfg: Config, seq: int = 0) -> int:
    """Parameters; the axial table's first factor grows when seq > n1 * n2."""
    d, inner = cfg.d_model, cfg.inner
    n1 = cfg.axial_rows(seq) if seq else cfg.axial_shape[0]
    emb = cfg.vocab * d + n1 * cfg.axial_dims[0] + cfg.axial_shape[1] * cfg.axial_dims[1]
    layers = 0
    for i in range(cfg.n_layers):
        qkv = (2 if cfg.kind(i) == "lsh" else 3) * d * inner
        layers += (qkv + inner * d + 2 * T.norm_params(d) + T.dense_params(d, cfg.d_ff)
                   + T.dense_params(cfg.d_ff, d))
    return emb + layers + T.norm_params(2 * d) + T.dense_params(2 * d, cfg.vocab)


# activation-memory policies the model is built with (``model(cfg, policy)``)
POLICIES = ("reversible", "store_all", "checkpoint")
DEFAULT_POLICY = "reversible"


def model(cfg: Config, policy: str | None = None):
    """The runnable pre-training step (a ``Program``); ``policy``: one of ``POLICIES``."""
    from .config import check_policy
    from .reformer_model import build
    return build(cfg, check_policy(policy, POLICIES, DEFAULT_POLICY))


# -- activation memory (residuals kept for the backward; architectures/memory_terms.py) --

def activation_terms(cfg: Config, seq, batch=1, bytes_per=4) -> dict:
    """Bytes of the residuals one training step keeps for its backward, by term.

    The reversible stack is one custom VJP that keeps only its two outputs (and its
    parameters and aux): no per-layer activation, so depth adds only each LSH
    layer's random rotations (h x dh x n_hashes x rot/2, shared by the batch) and,
    unless ``rehash_in_backward``, its buckets (int32, b x h x n_hashes x n: the
    reference hands them to the recomputation; kept by the stack, so under rev/)."""
    cfg.check_seq(seq)
    d, V, fb, b = cfg.d_model, cfg.vocab, bytes_per, batch
    t = b * seq
    n_lsh = sum(1 for i in range(cfg.n_layers) if cfg.kind(i) == "lsh")
    hashing = cfg.multi_chunk(seq)
    rot = cfg.n_heads * cfg.d_head * cfg.n_hashes * (cfg.rotation_size(seq) // 2) * fb
    kept = 0 if cfg.rehash_in_backward else b * cfg.n_heads * cfg.n_hashes * seq * M.INT
    out = {"embed/lookup": t * M.INT, "lsh/rotations": n_lsh * rot * hashing,
           "rev/residual": 2 * t * d * fb + n_lsh * kept * hashing,
           "norm/final": M.layer_norm(t, 2 * d, fb, out=cfg.causal)}
    if cfg.causal:
        out["loss/lm"] = M.cross_entropy(t, V, fb)
    else:
        p = b * mask_count(seq, cfg.mask_prob)
        out.update({"head/gather": M.gather(p, 2 * d, fb), "loss/mlm": M.cross_entropy(p, V, fb)})
    return M.nonzero(out)


def activation_bytes(cfg: Config, seq, batch=1, bytes_per=4):
    """Activation memory of one training step (``activation_terms`` summed)."""
    return sum(activation_terms(cfg, seq, batch, bytes_per).values())
