"""FLOP and parameter terms of the modern decoder blocks (``modern.py``; no jax).

Per-element constants follow ``comparator/count/rules.py`` applied to the operations the
kernels run (``kernels/rope.py``, ``kernels/ffn.py``, ``kernels/moe.py``), as in
``terms.py``:

  block                         forward                         backward
  GQA: k, v of g heads          q, k, v: d -> (h + 2g) dh       the repeat's gradient: each
  repeated to h                                                 group summed, 2 (h - g) t dh
  RoPE tables (once a step)     n r/2 x (angle, cos, sin) = 3   none (constants)
  RoPE of one row of r          4 mul + 2 add a pair: 3 r       4 mul + neg + 2 add a pair:
  features                                                      7 r / 2
  GLU per element of d_ff       act + the product: act + 1      act + 2
  router of T tokens, E         x R, softmax, top_k (a sort of  x R twice, softmax, the
  experts                       E: E ceil(log2 E) a row), the   top_k's scatter (T k), the
                                renormalising sum and division  division's (2T + 4Tk + T(k-1)
                                (T (k-1) + T k)                 + T)
  dropless dispatch, A = T k    stable argsort (A ceil(log2 A)), the gather's scatter-add
                                row index (A), index check (3A),  (A d)
                                group sizes (clip, check, add:
                                5A)
  capacity dispatch             one-hot (A E), rank by cumsum   the k copies' sum
                                (A E), pick (A E + A (E - 1)),  ((k - 1) T d)
                                slot (6A), check (3A)
  combine                       check (3A), weight (A d), sum   weight and its gradient
                                over k ((k - 1) T d)            (2 A d, A (d - 1)); capacity:
                                                                + the gather's scatter (A d)
  x read by router and dispatch                                 T d (gradients added)
"""
from __future__ import annotations

from . import memory_terms as M
from . import terms as T
from .modern import Moe
from .num import ceil_log2
from .terms import Term

def qkv(t, d, h, g, dh, bias=True) -> Term:
    """q, k, v projections of ``t`` tokens with ``g`` key/value heads of ``h`` query heads;
    the repeat of each k, v head for its group sums the group's gradients."""
    return T.dense(t, d, (h + 2 * g) * dh, bias) + Term(ew_bwd=2 * (h - g) * t * dh)


def rope_tables(n, r) -> dict:
    """The rotary tables of ``n`` positions, ``r`` rotated features: once a step."""
    return {"attn/rope": Term(ew=3 * n * (r // 2))}


def rope(t, h, g, r) -> dict:
    """q (h heads) and k (g heads) of ``t`` tokens rotated on ``r`` features a head."""
    rows = t * (h + g)
    return {"attn/rope": Term(ew=3 * r * rows, ew_bwd=7 * (r // 2) * rows)}


def glu_act(rows, f, act_name) -> Term:
    """act(gate) * up over ``rows`` x ``f``: the activation and the product."""
    return T.act(rows * f, act_name) + Term(ew=rows * f, ew_bwd=2 * rows * f)


def feed_forward(t, d, f, act_name, bias=True, gated=False) -> dict:
    """The dense FFN: ``terms.feed_forward``, or gated (W1 is d x 2f)."""
    if not gated:
        return T.feed_forward(t, d, f, act_name, bias)
    return {"ffn/in": T.dense(t, d, 2 * f, bias), "ffn/act": glu_act(t, f, act_name),
            "ffn/out": T.dense(t, f, d, bias) + T.residual(t, d)}


def router(tokens, d, moe: Moe) -> Term:
    Tn, E, k = tokens, moe.n_experts, moe.top_k
    out = T.dense(Tn, d, E, bias=False) + T.softmax(Tn, E) + Term(
        ew=Tn * E * ceil_log2(E), ew_bwd=Tn * k)
    if moe.renormalize:
        out = out + Term(ew=Tn * (k - 1) + Tn * k,
                         ew_bwd=2 * Tn + 4 * Tn * k + Tn * (k - 1) + Tn)
    return out


def moe_ffn(tokens, d, f, act_name, gated, moe: Moe, cap=None) -> dict:
    """The experts of ``tokens`` tokens (one routing group): dropless (``cap`` None) or
    ``cap`` slots per expert (``modern.capacity``), ``kernels.moe``."""
    Tn, E, k = tokens, moe.n_experts, moe.top_k
    A = Tn * k
    f1 = (2 if gated else 1) * f
    rows = A if cap is None else E * cap
    if cap is None:
        dispatch = Term(ew=A * ceil_log2(A) + 9 * A, ew_bwd=A * d)
        combine_bwd = 2 * A * d + A * (d - 1)
    else:
        dispatch = Term(ew=3 * A * E + A * (E - 1) + 9 * A, ew_bwd=(k - 1) * Tn * d)
        combine_bwd = 3 * A * d + A * (d - 1)
    act = glu_act(rows, f, act_name) if gated else T.act(rows * f, act_name)
    return {"ffn/router": router(Tn, d, moe) + T.fanout(Tn, d),
            "ffn/dispatch": dispatch,
            "ffn/in": T.dense(rows, d, f1, bias=False),
            "ffn/act": act,
            "ffn/out": T.dense(rows, f, d, bias=False) + T.residual(Tn, d),
            "ffn/combine": Term(ew=3 * A + A * d + (k - 1) * Tn * d, ew_bwd=combine_bwd)}


# -- parameters -----------------------------------------------------------------------

def ffn_params(d, f, gated, bias=True):
    f1 = (2 if gated else 1) * f
    return T.dense_params(d, f1, bias) + T.dense_params(f, d, bias)


def attention_params(d, h, g, dh, bias=True, qkv_bias=True):
    return T.dense_params(d, (h + 2 * g) * dh, qkv_bias) + T.dense_params(h * dh, d, bias)


def moe_params(d, f, gated, moe: Moe, active=False):
    """Router and experts (all of them, or the ``top_k`` a token uses when ``active``)."""
    experts = moe.top_k if active else moe.n_experts
    return d * moe.n_experts + experts * ffn_params(d, f, gated, bias=False)


# -- activation memory (bytes the backward keeps; ``memory_terms``) ---------------------

def rope_memory(n, r, fb) -> int:
    """A layer's rotations of q and k keep their cos and sin views: 4 x n r/2 floats."""
    return 4 * n * (r // 2) * fb


def feed_forward_memory(rows, f, act_name, fb, gated=False, in_term="ffn/in") -> dict:
    """The FFN's hidden activations over ``rows``: ``memory_terms.feed_forward``, or gated:
    the gate and up halves (views made in ``ffn/act``), what the activation keeps, its
    output and the product read by the down projection."""
    if not gated:
        return M.feed_forward(rows, f, act_name, fb, in_term=in_term)
    i, k = M.act(rows, f, act_name, fb, out=True)
    return {"ffn/act": i + k + 2 * rows * f * fb}


def moe_memory(tokens, d, f, act_name, gated, moe: Moe, cap, fb) -> dict:
    """What the router and the experts keep (``kernels.moe``): the router's exp, row sum
    and its -2 power, the chosen experts' indices (and, renormalised, the k weights, their
    sum and its -2 power); dropless: the assignments' order (int32), the group sizes and
    the gathered rows (read by the experts' weight gradient); capacity: the slots and the
    filled ``[E, C, d]`` buffer; the experts' hidden activations; the combine's order or
    slots, weights and expert outputs."""
    Tn, E, k = tokens, moe.n_experts, moe.top_k
    A = Tn * k
    router = (Tn * E + 2 * Tn + ((A + 2 * Tn) if moe.renormalize else 0)) * fb + A * M.INT
    out = {"ffn/router": router, "ffn/combine": A * M.INT + (A + A * d) * fb}
    if cap is None:
        out["ffn/dispatch"] = (A + E) * M.INT + A * d * fb
        M.merge(out, feed_forward_memory(A, f, act_name, fb, gated))
    else:
        out["ffn/dispatch"] = A * M.INT
        M.merge(out, {"ffn/in": E * cap * d * fb})
        M.merge(out, feed_forward_memory(E * cap, f, act_name, fb, gated))
    return out
