"""Closed-form activation memory: the residuals autodiff keeps, block by block (no jax).

What the backward of one training step needs from its forward, as JAX's
reverse-mode autodiff of our kernels keeps it (``comparator/count/memory.py`` reads
the same set off the traced pullback; tests hold the two equal).  Parameters,
data arrays and the PRNG key are excluded (they exist anyway), as are
parameter views (a norm scale reshaped) and broadcast scalars (the zeros a
``where``/ReLU derivative selects from): no memory is needed for them.

Element sizes: floats ``fb`` bytes (``bytes_per``, 4 for the fp32 models),
int32 indices 4, boolean masks 1.  Per block, with ``r`` rows:

  block                      kept for the backward (elements)
  layer norm (r x d)         x - mean, 2 more r x d products, 1/sigma and its derivative (2r)
  RMS norm   (r x d)         2 r x d products + 2r (its input is kept by whoever produced it)
  norm output                r x d more when a projection reads it
  dense attention (h heads)  q scaled and k, v (3 x b h n dh, k/v over m keys), exp(s) and
                             probabilities (2 b h n m), row sums and their -2 power (2 b h n),
                             the merged context (b n h dh, read by the output projection)
  causal mask                b h n m booleans (broadcast per head inside the vmapped where)
  relative-bias index map    n m int32, once per stack (the gather's indices)
  GELU (erf)                 3 per element (+1 output read by a projection)
  GELU (tanh)                its input + 4 per element (+1 output)
  SiLU                       its input, sigmoid and sigmoid (1 - sigmoid) (+1 output)
  ReLU                       1 boolean per element (+1 output); the zeros it selects are free
  gather / lookup            its int32 indices (+ the gathered rows when a projection reads them)
  cross-entropy (r x V)      log-probabilities r V, one float per row, r int32 labels
  pooler (b x d, tanh)       its input, tanh and 1 - tanh^2: 3 b d (first token only)
  sigmoid BCE (n)            4n floats + n booleans

The softmax line is ``jax.nn.softmax`` under JAX's default
``jax_softmax_custom_jvp=False`` (plain autodiff of exp / sum / divide); with
that flag on, only the probabilities are kept (b h n m, no row sums), and the
tests comparing with the trace would say so.
"""
from __future__ import annotations

INT, BOOL = 4, 1
ACT_KEPT = {"gelu": (0, 3), "gelu_tanh": (1, 4),   # (input, internal) per element, floats
            "silu": (1, 2)}                      # x; sigmoid and its derivative


def layer_norm(r, d, fb, out: bool, rms: bool = False):
    """Bytes one norm over r rows of d keeps (+ its output when ``out``)."""
    kept = (2 if rms else 3) * r * d + 2 * r
    return (kept + (r * d if out else 0)) * fb


def act(t, f, name, fb, out: bool = True):
    """(bytes kept as the activation's input, bytes kept by the activation itself)."""
    o = t * f * fb if out else 0
    if name == "relu":
        return 0, t * f * BOOL + o
    i, k = ACT_KEPT[name]
    return i * t * f * fb, k * t * f * fb + o


def attention(b, n, m, h, dh, fb, causal=False, kv_term="attn/qkv") -> dict:
    """Dense multi-head attention over b sequences, n queries, m keys."""
    return {kv_term: 2 * b * h * m * dh * fb,
            "attn/scores": b * h * n * dh * fb + (b * h * n * m * BOOL if causal else 0),
            "attn/softmax": (2 * b * h * n * m + 2 * b * h * n) * fb,
            "attn/context": b * n * h * dh * fb}


def feed_forward(t, f, name, fb, in_term="ffn/in", act_term="ffn/act") -> dict:
    i, k = act(t, f, name, fb, out=True)
    return {in_term: i, act_term: k}


def cross_entropy(r, V, fb):
    return r * V * fb + r * fb + r * INT


def gather(rows, width, fb):
    """take_along_axis of ``rows`` positions read by a projection: indices + rows."""
    return rows * INT + rows * width * fb


def mlm_head(rows, hidden, E, V, act_name, fb) -> dict:
    """Gather, dense H->E, activation, norm (read by the tied decoder), loss."""
    i, k = act(rows, E, act_name, fb, out=False)
    return {"head/gather": gather(rows, hidden, fb), "head/transform": i, "head/act": k,
            "head/norm": layer_norm(rows, E, fb, out=True),
            "loss/mlm": cross_entropy(rows, V, fb)}


def sentence_head(b, d, fb, task) -> dict:
    """Pooler on the first token: its input, tanh and 1 - tanh^2 (b x d each); the 2-way
    loss ``loss/<task>`` (ALBERT's sop, BERT's nsp)."""
    return {"head/pooler": 3 * b * d * fb, f"loss/{task}": cross_entropy(b, 2, fb)}


def post_ln_layers(b, n, d, h, dh, f, act_name, layers, fb, last_out: bool,
                   core=None) -> dict:
    """``layers`` BERT-style post-LN layers; the last one's output is kept only when a
    projection reads it (``last_out``); ``core``: the self-attention kernel's bytes when
    it is not dense (``attention``)."""
    t = b * n
    one = dict(core) if core is not None else attention(b, n, n, h, dh, fb)
    one["norm/attn"] = layer_norm(t, d, fb, out=True)
    one.update(feed_forward(t, f, act_name, fb))
    out = {k: layers * v for k, v in one.items()}
    out["norm/ffn"] = layers * layer_norm(t, d, fb, out=False) + (layers - 1 + last_out) * t * d * fb
    return out


def embeddings(b, n, E, hidden, fb, tables: int) -> dict:
    """Lookups (int32 indices per table), LayerNorm read by a projection, E->H output."""
    t = b * n
    out = {"embed/lookup": tables * t * INT, "norm/embed": layer_norm(t, E, fb, out=True)}
    if E != hidden:
        out["embed/proj"] = t * hidden * fb
    return out


def merge(into: dict, more: dict, prefix: str = "") -> dict:
    for k, v in more.items():
        k = f"{prefix}/{k}" if prefix else k
        into[k] = into[k] + v if k in into else v
    return into


def nonzero(d: dict) -> dict:
    return {k: v for k, v in d.items() if not (isinstance(v, int) and v == 0)}
