"""The attention zoo: which kernel a Transformer-family layer mixes its sequence with.

A config field ``attention`` chooses, with the parameters of that choice (also fields of
the config, validated by ``check``):

=============  ===========================================================  ============
choice         kernel (kernels/)                                            parameters
=============  ===========================================================  ============
``dense``      softmax(q k^T) v over the whole sequence (attention.py)      --
``flash``      the same, fused: blocks, online softmax, recomputing         ``block``
               backward; causal skips the masked blocks (flash.py)
``local``      blocks of ``window`` tokens attend to their own block and    ``window``
               the one before (and after, bidirectional) (lsh.py)
``linformer``  keys/values projected along the sequence to ``proj_len``     ``proj_len``
               rows by learned E, F (linformer.py)
``performer``  FAVOR+: ``features`` positive random features (performer.py)  ``features``
``sliding``    causal: each query sees its ``window`` latest keys, itself   ``window``
               included (Mistral).  Up to ``window`` tokens: dense causal
               attention; longer: ``local``'s blocks of ``window`` (own and
               previous) with the keys ``window`` or more back masked (lsh.py)
=============  ===========================================================  ============

(``lsh`` is the Reformer's, an architecture of its own.)  This module holds what the
architectures need of a choice without jax: ``Attn`` (the choice as the Flax blocks take
it), ``core_terms`` (its FLOP terms, replacing dense attention's ``attn/scores``,
``attn/softmax``, ``attn/context``), ``draw_terms`` and ``params`` (what a choice adds per
layer), ``core_memory`` (the activations its backward keeps), ``check_seq`` and ``Stack``
(the layers of one choice in a model, as ``attention_stacks`` of each architecture with an
attention choice lists them).
"""
from __future__ import annotations

from dataclasses import dataclass

from . import memory_terms as M
from . import terms as T
from .config import ConfigError
from .num import any_nonzero, maximum, minimum, positive
from .terms import Term

ATTENTIONS = ("dense", "flash", "local", "linformer", "performer", "sliding")
CAUSAL = ("dense", "flash", "local", "sliding")   # the choices a causal (decoder) layer can use
CAUSAL_ONLY = ("sliding",)
PARAMETERS = {"flash": "block", "local": "window", "linformer": "proj_len",
              "performer": "features", "sliding": "window"}


@dataclass(frozen=True)
class Attn:
    """A layer's attention choice and its parameters (the config fields of the same
    names); ``max_len``: the columns of Linformer's E and F (the position table's rows)."""
    kind: str = "dense"
    window: int = 256
    proj_len: int = 256
    features: int = 256
    block: int = 128
    max_len: int = 0

    def block_at(self, n):
        """Flash's block at length ``n``: ``block``, or the whole sequence when shorter."""
        return minimum(self.block, n)

    def window_at(self, n):
        """Local attention's block at length ``n``: ``window``, or ``n`` when shorter."""
        return minimum(self.window, n)


@dataclass(frozen=True)
class Stack:
    """``layers`` layers of one attention choice ``attn`` in a model: ``heads`` heads in
    all (sequences x heads per layer) of ``n`` tokens, each ``d_head`` wide, ``causal``
    or not; ``group``: the prefix of its terms ("" or ``gen``, ``disc``, ``enc``, ``dec``).
    What a cost model needs of the attention beside its FLOPs (``attention_stacks``)."""
    group: str
    attn: Attn
    heads: int
    n: int
    d_head: int
    causal: bool
    layers: int

    def term(self, name: str) -> str:
        """The term ``name`` (``attn/scores``) as this stack's model names it."""
        return f"{self.group}/{name}" if self.group else name


def of(cfg) -> Attn:
    """The ``Attn`` of a Transformer-family config."""
    return Attn(cfg.attention, cfg.window, cfg.proj_len, cfg.features, cfg.block, cfg.max_len)


def check(cfg, causal: bool = False, encdec: bool = False) -> None:
    """Raise ConfigError for an attention choice the config cannot use (its integer
    parameters are checked with the other sizes, ``config.check_config``)."""
    a = cfg.attention
    if a not in ATTENTIONS:
        raise ConfigError("attention", a, "one of " + ", ".join(ATTENTIONS) + " (lsh is the "
                          "Reformer's: --arch reformer, or --attention lsh in a sweep)")
    if encdec and a != "dense":
        raise ConfigError("attention", a, "dense for an encoder-decoder (T5's relative "
                          "position bias is added to the whole score matrix)")
    if causal and a not in CAUSAL:
        raise ConfigError("attention", a, "one of " + ", ".join(CAUSAL) + " for a causal "
                          "model (Linformer's projections and these Performer features mix "
                          "later tokens into earlier ones)")
    if not causal and a in CAUSAL_ONLY:
        raise ConfigError("attention", a, "one of " + ", ".join(x for x in ATTENTIONS if x not
                                                                in CAUSAL_ONLY)
                          + " for a bidirectional model (sliding: a causal window, Mistral's; "
                            "local attends to the blocks on both sides)")
    if a == "linformer" and cfg.max_len <= 0:
        raise ConfigError("max_len", cfg.max_len, "a positive integer with linformer (the "
                          "columns of its projections E and F)")


def check_seq(attn: Attn, seq) -> None:
    """A length the kernel can cut into blocks: a multiple of flash's ``block`` or of the
    local ``window`` (or shorter than it: one block)."""
    size = {"flash": ("block", attn.block), "local": ("window", attn.window),
            "sliding": ("window", attn.window)}.get(attn.kind)
    if size is not None and any_nonzero(seq % minimum(size[1], seq)):
        raise ConfigError("seq", seq, f"a multiple of {size[0]}={size[1]} (or at most it) for "
                                      f"{attn.kind} attention")


# -- FLOPs ----------------------------------------------------------------------------

def core_terms(attn: Attn, b, n, h, dh, causal=False) -> dict | None:
    """The sequence-mixing terms of ``attn`` over ``b`` sequences x ``h`` heads of ``n``
    tokens (self-attention, dv = dh), or None for dense (``terms.attention_core``)."""
    if attn.kind == "dense":
        return None
    if attn.kind == "flash":
        return flash_terms(b, h, n, dh, attn.block_at(n), causal)
    if attn.kind == "local":
        return local_terms(b, h, n, dh, attn.window_at(n), 1, 0 if causal else 1, causal)
    if attn.kind == "linformer":
        return linformer_terms(b, h, n, dh, attn.proj_len)
    if attn.kind == "sliding":
        return sliding_terms(b, h, n, dh, attn.window)
    return performer_terms(b, h, n, dh, attn.features)


def flash_terms(b, h, n, dh, B, causal) -> dict:
    """``kernels.flash`` over H = b h heads: P (query block, key block) pairs of B x B
    scores, ``S = P B^2`` score elements a head (n^2, or n (n + B) / 2 causal), ``R = P B``
    rows of pairs.  Forward per pair: scores, the online softmax (row max, shifted exp,
    correction exp, running sum: 4 S + 3 R), acc * corr + p v (2 R dv); the causal mask
    selects S a head, its compare runs S once (no head in it).  The backward recomputes
    the scores and exp(s - lse) (``mm_rc``/``ew_rc``), adds dq, dk, dv into place (R d
    each), forms ds = p (dp - D) (2 S) with D = rowsum(do * o), and the lse it saved."""
    H, nq = b * h, n // B
    P = nq * (nq + 1) // 2 if causal else nq * nq
    S, R = P * B * B, P * B
    mm = 2 * H * S * dh
    mask = H * S + S if causal else 0
    return {
        "attn/scores": Term(mm=mm, mm_rc=mm, mm_bwd=2 * mm, ew=H * n * dh + mask, ew_rc=mask,
                            ew_bwd=2 * H * R * dh + H * n * dh),
        "attn/softmax": Term(ew=H * (4 * S + 3 * R), ew_rc=2 * H * S,
                             ew_bwd=H * (2 * n + n * dh + n * (dh - 1) + 2 * S)),
        "attn/context": Term(mm=mm, mm_bwd=2 * mm, ew=H * (2 * R * dh + n * dh),
                             ew_bwd=H * R * dh),
    }


def local_terms(b, h, n, dh, c, before, after, causal) -> dict:
    """Chunked local attention (``kernels.lsh.local_attention``) over b x h heads, chunks
    of ``c``, each attending to ``before`` chunks before it and ``after`` after.

    Window positions and their range masks are computed once (not per head);
    the backward of gathering w neighbouring chunks adds 2(w-1) copies (w-1 when the
    sequence is one chunk: every neighbour is the chunk itself, no split to undo).
    """
    w = 1 + before + after
    K, H = w * c, b * h
    att = H * 2 * n * K * dh
    adj = (1 + positive(n // c - 1)) * (w - 1) * H * n * dh
    mask = 2 * n * K if causal else 0
    return {"attn/scores": Term(mm=att, mm_bwd=2 * att,
                                ew=H * n * dh + 4 * w * n + H * n * K + mask,
                                ew_bwd=H * n * K + adj + H * n * dh),
            "attn/softmax": T.softmax(H * n, K),
            "attn/context": Term(mm=att, mm_bwd=2 * att, ew_bwd=adj)}


def _by_length(long, short: dict, longer: dict) -> dict:
    """``longer``'s values where ``long`` is 1, ``short``'s where 0: Terms or byte counts,
    over ints, arrays and grid formulas alike."""
    scaled = lambda v, w: v.times(w) if isinstance(v, Term) else v * w
    out: dict = {}
    for d, w in ((short, 1 - long), (longer, long)):
        for k, v in d.items():
            out[k] = out[k] + scaled(v, w) if k in out else scaled(v, w)
    return out


def sliding_terms(b, h, n, dh, W) -> dict:
    """Mistral's sliding window of ``W`` keys: dense causal attention up to ``W`` tokens;
    beyond, ``local_terms`` (blocks of W, each with the block before) and the distance
    mask (a subtraction, a compare and an or per (query, window key), once for the heads)."""
    long = positive(n - W)
    local = local_terms(b, h, n, dh, W, 1, 0, True)
    local["attn/scores"] = local["attn/scores"] + Term(ew=3 * n * 2 * W)
    return _by_length(long, T.attention_core(b, n, n, h, dh, causal=True), local)


def linformer_terms(b, h, n, dh, k) -> dict:
    """E K and F V (k x n by n x dh a head; their backward: the gradients of K, V and of
    E, F, summed over heads and batch inside the contraction), then dense attention of n
    queries over k keys."""
    proj = 2 * b * h * k * n * dh
    out = {"attn/proj_k": Term(mm=proj, mm_bwd=2 * proj),
           "attn/proj_v": Term(mm=proj, mm_bwd=2 * proj)}
    return T.merge(out, T.attention_core(b, n, k, h, dh))


def performer_terms(b, h, n, dh, m) -> dict:
    """FAVOR+ over H = b h heads with m features: the feature maps of q and k (their
    projections 2 n m dh each; only q, k need gradients, not the drawn features), the
    context phi(q) (phi(k)^T v) and the normaliser phi(q) (phi(k)^T 1).

    A feature map per row: scale (n dh), |x'|^2 / 2 (n dh + n (dh - 1) + n), the shift
    (a max over each query's m exponents, n (m - 1), or over all n m of the keys), its
    add, the subtraction and exp (2 n m); backward: exp' and the negated sum back to the
    norm (2 n m + n (m - 1)), the half (n), the square's two products and their sum, the
    two gradients of x' summed, the scale (5 n dh).  phi(q) and phi(k) are each read
    twice, by the context and the normaliser: their gradients added (2 n m, charged to
    the context).  The normaliser: the keys' sum ((n - 1) m), the division (n dv), and
    back: ct / den, den^-2 (2 n), two products (2 n dv), their row sum, a negation."""
    H = b * h
    feat = 2 * n * m * dh
    one_ew = 2 * n * dh + n * (dh - 1) + 2 * n + 2 * n * m
    one_bwd = 2 * n * m + n * (m - 1) + n + 5 * n * dh
    ctx = 2 * n * m * dh
    return {
        "attn/features": Term(mm=2 * H * feat, mm_bwd=2 * H * feat,
                              ew=H * (2 * one_ew + n * (m - 1) + n * m - 1),
                              ew_bwd=2 * H * one_bwd),
        "attn/context": Term(mm=2 * H * ctx, mm_bwd=4 * H * ctx, ew_bwd=2 * H * n * m),
        "attn/normalizer": Term(mm=2 * H * n * m, mm_bwd=4 * H * n * m,
                                ew=H * ((n - 1) * m + n * dh),
                                ew_bwd=H * (3 * n * dh + n * (dh - 1) + 3 * n)),
    }


def draw_terms(attn: Attn, dh, layers) -> dict:
    """Work a choice adds per step outside its kernel: Performer's features, ``features x
    dh`` normal samples a layer from the step's key folded with the layer's index."""
    if attn.kind != "performer":
        return {}
    return {"attn/features": T.normal_draw(attn.features * dh).times(layers)}


def params(attn: Attn, seq=0) -> int:
    """Parameters a choice adds to one layer: Linformer's E and F, ``proj_len`` x the
    position table's rows (grown to ``seq`` past ``max_len``, as the table is)."""
    if attn.kind != "linformer":
        return 0
    return 2 * attn.proj_len * maximum(attn.max_len, seq)


def shared_grads(attn: Attn, uses, seq=0) -> dict:
    """Gradient additions of a choice's parameters read by ``uses`` layers (ALBERT)."""
    if attn.kind != "linformer":
        return {}
    size = attn.proj_len * maximum(attn.max_len, seq)
    return {"attn/proj_k": T.shared_grad(size, uses), "attn/proj_v": T.shared_grad(size, uses)}


# -- activation memory --------------------------------------------------------------

def core_memory(attn: Attn, b, n, h, dh, fb, causal=False) -> dict | None:
    """Bytes the self-attention kernel's backward keeps (what ``memory_terms.attention``
    says for dense; None for dense), over b sequences x h heads of n tokens, dv = dh:

    * flash: q scaled, k, v, the output and its row log-sum-exp (the custom VJP's
      residuals), and the merged output read by the output projection -- linear in n;
    * local (chunks of c, w = 2 or 3 chunks a window of K = w c keys): q scaled, the w
      gathered copies of k and of v, the range (and causal) mask, per head, exp and
      probabilities (2 n K) with their row sums (2 n), the merged output;
    * linformer: k and v (E and F need them), E k and F v, q scaled, exp and probabilities
      over proj_len keys with their row sums, the merged output;
    * performer: the drawn features (transposed, once a layer), the scaled q and k and
      their features, v, phi(k)^T v, the numerator, the keys' feature sum, the normaliser
      and its -2 power, the merged output.
    """
    if attn.kind == "dense":
        return None
    if attn.kind == "sliding":
        local = core_memory(Attn("local", window=attn.window), b, n, h, dh, fb, causal=True)
        return _by_length(positive(n - attn.window),
                          M.attention(b, n, n, h, dh, fb, causal=True), local)
    H = b * h
    rows = H * n * dh * fb                      # one [b, h, n, dh] float array
    if attn.kind == "flash":
        return {"attn/qkv": 2 * rows, "attn/scores": rows, "attn/softmax": H * n * fb,
                "attn/context": 2 * rows}
    if attn.kind == "local":
        w = 2 if causal else 3
        K = w * attn.window_at(n)
        return {"attn/scores": (w + 1) * rows + H * n * K * M.BOOL,
                "attn/softmax": (2 * H * n * K + 2 * H * n) * fb,
                "attn/context": (w + 1) * rows}
    if attn.kind == "linformer":
        k = attn.proj_len
        return {"attn/qkv": 2 * rows, "attn/proj_k": H * k * dh * fb,
                "attn/proj_v": H * k * dh * fb, "attn/scores": rows,
                "attn/softmax": (2 * H * n * k + 2 * H * n) * fb, "attn/context": rows}
    m = attn.features
    return {"attn/features": m * dh * fb + 2 * rows + 2 * H * n * m * fb, "attn/qkv": rows,
            "attn/context": H * m * dh * fb + rows,
            "attn/normalizer": (H * m + 2 * H * n) * fb + rows}
