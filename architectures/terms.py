"""Closed-form counts as named terms: one helper per block, shared by every architecture.

A ``Term`` holds a block's forward and backward FLOPs, split into contractions
(``mm``, the ``matmul`` scope) and everything else (``ew``: elementwise,
reductions, softmax, norms, activations, hashing, sorting, index arithmetic),
plus ``mm_rc``/``ew_rc``: the forward work the backward runs again (reversible
layers recompute their sublayers).  Training = forward + recompute + backward.

Conventions (DESIGN.md): 1 multiply-add = 2 FLOPs; a contraction's backward
is 2x its forward when its input needs a gradient (one product for the
weight, one for the input), 1x when only one operand does, 0x when neither
does (LSH hashing feeds an argmax).  Per-element constants follow the rules of
``comparator/count/rules.py`` applied to the operations the kernels run:

  op                      forward                       backward
  bias add  (t x o)       t o                           (t-1) o  (bias grad)
  residual  (t x d)       t d
  fan-out   (t x d)                                     t d      (two gradients added)
  softmax   (r rows of k) 3rk + 2r(k-1) + r             5rk + r(k-1) + 3r
  layer norm (r x d)      5rd + 2r(d-1) + 4r            9rd + 2(r-1)d + 2r(d-1) + 5r
  RMS norm   (r x d)      3rd + r(d-1) + 3r             6rd + (r-1)d + 2r(d-1) + 5r
  GELU (erf) / tanh / ReLU per element: 5 / 9 / 1 forward, 11 / 14 / 2 backward
  SiLU (x sigmoid x) per element: 2 forward (logistic, mul), 6 backward (1 - s and
                          s (1 - s) formed in the forward, then 3 mul and an add)
  cross-entropy (r x V)   3rV + 2r(V-1) + (r-1) + 5r + 2     3rV + r(V-1) + 2r + 2
  index check of a gather 3 per index (lt, add, select); the same for a scatter
  tanh (pooler) per elt.  1                             4  (add, mul, sub, mul)
  sigmoid BCE (n logits)  8n + (n-1) + 1 = 9n           19n + 1
  a parameter read u times                              (u-1) x its size (gradients summed:
                          ALBERT's shared layers, tied and shared embedding tables)
  categorical sample (r x V) (THREEFRY_OPS + 11) rV + 1 + r(V-1)   none (stop-gradient)
                          (random bits, uniform 6, -log(-log u) 4, add 1, argmax)

Every helper works on Python ints (exact) and on NumPy float64 arrays (sweeps).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

Num = Any  # int, or numpy float64 array for vectorised sweeps


@dataclass(frozen=True)
class Term:
    mm: Num = 0
    ew: Num = 0
    mm_bwd: Num = 0
    ew_bwd: Num = 0
    mm_rc: Num = 0   # recomputed in the backward (reversible layers)
    ew_rc: Num = 0

    def __add__(self, o: "Term") -> "Term":
        return Term(*(getattr(self, f.name) + getattr(o, f.name) for f in fields(self)))

    def times(self, k) -> "Term":
        return Term(*(getattr(self, f.name) * k for f in fields(self)))

    def recomputed(self) -> "Term":
        """The same term with its forward run once more inside the backward."""
        return Term(self.mm, self.ew, self.mm_bwd, self.ew_bwd, self.mm_rc + self.mm,
                    self.ew_rc + self.ew)

    def fwd(self, scope: str):
        return self.mm + (self.ew if scope == "all" else 0)

    def rc(self, scope: str):
        return self.mm_rc + (self.ew_rc if scope == "all" else 0)

    def bwd(self, scope: str):
        return self.mm_bwd + (self.ew_bwd if scope == "all" else 0)

    def train(self, scope: str):
        return self.fwd(scope) + self.rc(scope) + self.bwd(scope)


@dataclass(frozen=True)
class FlopCount:
    fwd: Num
    train: Num
    breakdown: dict          # term -> forward FLOPs
    train_breakdown: dict    # term -> training FLOPs


def merge(into: dict, more: dict, k=1) -> dict:
    """Add ``k`` x the terms of ``more`` into ``into`` (same names accumulate)."""
    for name, t in more.items():
        t = t.times(k) if k != 1 else t
        into[name] = into[name] + t if name in into else t
    return into


def prefixed(group: str, terms: dict) -> dict:
    return {f"{group}/{k}": v for k, v in terms.items()}


def count(terms: dict, scope: str) -> FlopCount:
    if scope not in ("matmul", "all"):
        raise ValueError(f"scope must be 'matmul' or 'all', got {scope!r}")
    fwd = {k: t.fwd(scope) for k, t in sorted(terms.items())}
    train = {k: t.train(scope) for k, t in sorted(terms.items())}
    return FlopCount(sum(fwd.values()), sum(train.values()), fwd, train)


# -- block helpers ------------------------------------------------------------------

def dense(t, din, dout, bias=True, grad_input=True) -> Term:
    """``t`` tokens through a din x dout projection (+ bias)."""
    mm = 2 * t * din * dout
    return Term(mm=mm, ew=t * dout if bias else 0, mm_bwd=mm * (2 if grad_input else 1),
                ew_bwd=(t - 1) * dout if bias else 0)


def residual(t, d) -> Term:
    """The residual add (charged to the sublayer's output projection)."""
    return Term(ew=t * d)


def fanout(t, d) -> Term:
    """A value read by two branches: its two gradients are added once in the backward."""
    return Term(ew_bwd=t * d)


def softmax(r, k) -> Term:
    return Term(ew=3 * r * k + 2 * r * (k - 1) + r, ew_bwd=5 * r * k + r * (k - 1) + 3 * r)


def norm(r, d, rms=False) -> Term:
    if rms:
        return Term(ew=3 * r * d + r * (d - 1) + 3 * r,
                    ew_bwd=6 * r * d + (r - 1) * d + 2 * r * (d - 1) + 5 * r)
    return Term(ew=5 * r * d + 2 * r * (d - 1) + 4 * r,
                ew_bwd=9 * r * d + 2 * (r - 1) * d + 2 * r * (d - 1) + 5 * r)


# threefry2x32 random bits per 32-bit word (= comparator.count.rules.THREEFRY_OPS; a test keeps
# them equal -- architectures never import comparator).
THREEFRY_OPS = 55
# uniform bits -> normal: shift, or, (bitcast), sub, mul, add, max, erf_inv, mul
NORMAL_OPS = 8


def normal_draw(size) -> Term:
    """``size`` standard-normal samples from a key folded with one integer (the Reformer's
    LSH rotations, the Performer's random features): the fold-in (two 32-bit words), a
    word of random bits and NORMAL_OPS per sample, and one more op for the range."""
    return Term(ew=2 * THREEFRY_OPS + (THREEFRY_OPS + NORMAL_OPS) * size + 1)

ACT_COST = {"gelu": (5, 11), "gelu_tanh": (9, 14), "relu": (1, 2), "tanh": (1, 4),
            "silu": (2, 6)}


def act(n, name) -> Term:
    f, b = ACT_COST[name]
    return Term(ew=f * n, ew_bwd=b * n)


def cross_entropy(r, V) -> Term:
    return Term(ew=3 * r * V + 2 * r * (V - 1) + (r - 1) + 5 * r + 2,
                ew_bwd=3 * r * V + r * (V - 1) + 2 * r + 2)


def gather_index(n) -> Term:
    return Term(ew=3 * n)


# -- composite blocks ---------------------------------------------------------------

def attention_core(b, n, m, h, dh, *, causal=False, rel_bias=False) -> dict:
    """Dense attention's sequence mixing over ``b`` sequences x ``h`` heads, n queries and m
    keys: the query scaling and q.k contraction (+ bias, + causal mask), softmax, p.v."""
    t, inner, rows = b * n, h * dh, b * h * n
    scores = 2 * b * h * n * m * dh
    ew = t * inner  # q * 1/sqrt(dh)
    ew_bwd = t * inner
    if rel_bias:
        ew += rows * m
        ew_bwd += (b - 1) * h * n * m
    if causal:
        ew += n + n * m + rows * m  # offset add, compare, select
        ew_bwd += rows * m
    return {"attn/scores": Term(mm=scores, ew=ew, mm_bwd=2 * scores, ew_bwd=ew_bwd),
            "attn/softmax": softmax(rows, m),
            "attn/context": Term(mm=scores, mm_bwd=2 * scores)}


def attention(b, n, d, h, dh, *, m=None, causal=False, bias=True, rel_bias=False,
              cross=False, core=None, qkv=None) -> dict:
    """Multi-head attention over ``b`` sequences: n queries, m keys (m = n for self).
    ``core``: the terms of another attention kernel in place of dense attention's
    (``attention_core``); the projections around it stay; ``qkv``: the self-attention
    projection's term in place of ``dense(t, d, 3 h dh)`` (grouped-query attention)."""
    m = n if m is None else m
    t, inner = b * n, h * dh
    out = {}
    if cross:
        out["attn/q"] = dense(t, d, inner, bias)
        out["attn/kv"] = dense(b * m, d, 2 * inner, bias)
    else:
        out["attn/qkv"] = dense(t, d, 3 * inner, bias) if qkv is None else qkv
    merge(out, core if core is not None else
          attention_core(b, n, m, h, dh, causal=causal, rel_bias=rel_bias))
    merge(out, {"attn/out": dense(t, inner, d, bias) + residual(t, d)})
    return out


def feed_forward(t, d, d_ff, act_name, bias=True) -> dict:
    return {"ffn/in": dense(t, d, d_ff, bias), "ffn/act": act(t * d_ff, act_name),
            "ffn/out": dense(t, d_ff, d, bias) + residual(t, d)}


def layer(b, n, d, h, dh, d_ff, act_name, *, bias=True, rms=False, causal=False,
          cross_len=None, rel_bias=False, pre_norm=False, core=None, qkv=None,
          ffn=None) -> dict:
    """One Transformer layer (self-attention, optional cross-attention, FFN, norms);
    ``core``, ``qkv``: the self-attention kernel's and projection's terms when they are
    not dense attention's (``attention``); ``ffn``: the FFN's terms in place of
    ``feed_forward`` (gated, experts: ``modern_terms``)."""
    t = b * n
    # The sublayer input is read twice (sublayer and residual): post-LN charges
    # the gradient add to the sublayer's first projection, pre-LN to its norm.
    first = {"attn": "norm/attn", "cross": "norm/cross", "ffn": "norm/ffn"} if pre_norm else \
        {"attn": "attn/qkv", "cross": "attn/q", "ffn": "ffn/in"}
    out = attention(b, n, d, h, dh, causal=causal, bias=bias, rel_bias=rel_bias, core=core,
                    qkv=qkv)
    out["norm/attn"] = norm(t, d, rms)
    merge(out, {first["attn"]: fanout(t, d)})
    if cross_len is not None:
        merge(out, attention(b, n, d, h, dh, m=cross_len, bias=bias, cross=True))
        out["norm/cross"] = norm(t, d, rms)
        merge(out, {first["cross"]: fanout(t, d)})
    merge(out, feed_forward(t, d, d_ff, act_name, bias) if ffn is None else ffn)
    out["norm/ffn"] = norm(t, d, rms)
    merge(out, {first["ffn"]: fanout(t, d)})
    return out


def embeddings(b, n, emb, hidden, *, pos=True, types=True, norm_=True, tied=True) -> dict:
    """Lookups (gathers are free; their index checks and sums are not), norm, E->H."""
    t = b * n
    tables = 1 + (1 if types else 0)
    look = Term(ew=3 * t * tables + t * emb * ((1 if pos else 0) + (1 if types else 0)),
                ew_bwd=t * emb * tables + ((b - 1) * n * emb if pos else 0))
    out = {"embed/lookup": look}
    if norm_:
        out["norm/embed"] = norm(t, emb)
    if emb != hidden:
        out["embed/proj"] = dense(t, emb, hidden)
    return out


def relative_bias(n, m, h, layers) -> dict:
    """T5's position bias: one [h, n, m] gather from a static bucket map, read by every layer."""
    return {"attn/relbias": Term(ew=3 * n * m, ew_bwd=h * n * m),
            "attn/scores": Term(ew_bwd=(layers - 1) * h * n * m)}


def tied_grad(vocab, emb) -> Term:
    """The two gradients of a tied embedding table are added once (V x E)."""
    return shared_grad(vocab * emb, 2)


def shared_grad(n_params, uses) -> Term:
    """A parameter set read ``uses`` times: its gradients are summed, (uses-1) x n adds."""
    return Term(ew_bwd=(uses - 1) * n_params)


def mlm_head(rows, hidden, emb, vocab, act_name) -> dict:
    """MLM head on ``rows`` gathered positions: dense, act, norm, tied logits, loss."""
    return {
        "head/gather": Term(ew=3 * rows, ew_bwd=rows * hidden),
        "head/transform": dense(rows, hidden, emb),
        "head/act": act(rows * emb, act_name),
        "head/norm": norm(rows, emb),
        "head/logits": dense(rows, emb, vocab),
        "loss/mlm": cross_entropy(rows, vocab),
    }


SENTENCE_TASKS = ("sop", "nsp")


def sentence_head(b, n, d, task: str) -> dict:
    """A sentence-pair head on the first token: pooler (dense + tanh), classifier H->2,
    2-way cross-entropy.  ``task`` names the classifier and its loss: ``sop`` (ALBERT's
    sentence order) or ``nsp`` (BERT's next sentence).

    The encoder output is read by the MLM gather and by the pooler's slice:
    their gradients are added once (b x n x d), charged to ``head/gather``,
    the earlier reader, as the backward pass does.  The MLM loss is added to the
    sentence loss in ``loss/<task>`` (1 FLOP).
    """
    if task not in SENTENCE_TASKS:
        raise ValueError(f"task must be one of {SENTENCE_TASKS}, got {task!r}")
    return {
        "head/gather": fanout(b * n, d),
        "head/pooler": dense(b, d, d) + act(b * d, "tanh"),
        f"head/{task}": dense(b, d, 2),
        f"loss/{task}": cross_entropy(b, 2) + Term(ew=1),
    }


def sample_replacements(rows, vocab) -> dict:
    """ELECTRA's sampling of one token per masked position and its scatter into the input.

    ``jax.random.categorical`` is Gumbel-max: one 32-bit random word per logit
    (THREEFRY_OPS), uniform from bits (shift, or, sub, and the scale/shift/
    clamp: mul, add, max -- 6, plus 1 for the range once), -log(-log u) (4),
    add to the logits (1), argmax over V; the scatter checks each index (3).
    Nothing is differentiated (the logits are stop-gradient).
    """
    per_logit = THREEFRY_OPS + 6 + 4 + 1
    return {"head/sample": Term(ew=rows * vocab * per_logit + 1 + rows * (vocab - 1)
                                + 3 * rows)}


def sigmoid_bce(n) -> Term:
    """Mean sigmoid cross-entropy with logits over ``n`` elements (kernels.nn.sigmoid_bce)."""
    return Term(ew=9 * n, ew_bwd=19 * n + 1)


def rtd_head(t, d, act_name, rows) -> dict:
    """ELECTRA's replaced-token-detection head and loss over ``t`` positions.

    The targets are the ``rows`` masked positions whose sample differs from
    the label (a compare and a scatter: 1 + 3 per index); the step's loss is
    MLM + lambda x RTD (a multiply and an add, and the multiply's backward).
    """
    return {
        "head/rtd_dense": dense(t, d, d),
        "head/rtd_act": act(t * d, act_name),
        "head/rtd_logits": dense(t, d, 1),
        "loss/rtd": sigmoid_bce(t) + Term(ew=4 * rows + 2, ew_bwd=1),
    }


def lm_head(rows, d, vocab, *, scale=False) -> dict:
    """Tied LM head on every position (no bias) + next-token loss; T5 scales by d**-0.5."""
    head = dense(rows, d, vocab, bias=False)
    if scale:
        head = head + Term(ew=rows * d, ew_bwd=rows * d)
    return {"head/logits": head, "loss/lm": cross_entropy(rows, vocab)}


# -- parameters -----------------------------------------------------------------------

def dense_params(din, dout, bias=True):
    return din * dout + (dout if bias else 0)


def norm_params(d, rms=False):
    return d if rms else 2 * d


def attention_params(d, inner, bias=True):
    return dense_params(d, 3 * inner, bias) + dense_params(inner, d, bias)


def layer_params(d, inner, d_ff, bias=True, rms=False):
    return (attention_params(d, inner, bias) + dense_params(d, d_ff, bias)
            + dense_params(d_ff, d, bias) + 2 * norm_params(d, rms))


def embedding_params(vocab, emb, hidden, max_len, type_vocab, norm_=True):
    p = (vocab + max_len + type_vocab) * emb + (norm_params(emb) if norm_ else 0)
    return p + (dense_params(emb, hidden) if emb != hidden else 0)


def mlm_head_params(hidden, emb, vocab):
    return dense_params(hidden, emb) + norm_params(emb) + vocab


def sentence_head_params(d):
    """Pooler (d x d + bias) and the 2-way classifier (d x 2 + bias)."""
    return dense_params(d, d) + dense_params(d, 2)


def rtd_head_params(d):
    return dense_params(d, d) + dense_params(d, 1)
