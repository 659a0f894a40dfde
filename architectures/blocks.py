"""Flax building blocks shared by the Transformer, ALBERT and ELECTRA models (their
embeddings and heads: ``heads.py``).

Each block tags its work with the term names of ``terms.py`` (through the
kernels' and its own ``jax.named_scope``), so the traced count of a model
diffs term by term against its closed-form count.  Sizes come in as plain
ints/flags from the architecture's config; blocks know nothing of presets.
"""
from __future__ import annotations

import dataclasses
import functools
from contextlib import contextmanager

import jax
import jax.numpy as jnp
import flax.linen as nn

from kernels.attention import dense_attention
from kernels.ffn import ffn, glu_ffn
from kernels.flash import flash_attention
from kernels.linformer import linformer_attention
from kernels.lsh import local_attention
from kernels.moe import moe_ffn
from kernels.nn import layer_norm, linear
from kernels.performer import performer_attention
from kernels.rope import rope as rope_kernel
from .modern import Moe, capacity
from .zoo import Attn

_SHAPES_ONLY = [False]


@contextmanager
def shapes_only():
    """Parameters created inside are zeros of their shapes, with no random draws to trace:
    for ``Program.abstract_params``, which keeps only shapes and dtypes, and for applying
    a model (``Program.loss``), where Flax only checks the initialisers' shapes.  JAX
    caches a trace by the function traced: a function traced both inside and outside
    would keep its first trace (the jitted layers key theirs on the mode)."""
    _SHAPES_ONLY.append(True)
    try:
        yield
    finally:
        _SHAPES_ONLY.pop()


def _initializer(real):
    def init(key, shape, dtype=jnp.float32):
        return jnp.zeros(shape, dtype) if _SHAPES_ONLY[-1] else real(key, shape, dtype)
    return init


INIT = _initializer(nn.initializers.normal(0.02))
ZEROS = _initializer(nn.initializers.zeros)
ONES = _initializer(nn.initializers.ones)


class Norm(nn.Module):
    """LayerNorm (with bias) or, with ``rms=True``, T5's RMSNorm (scale only)."""
    dim: int
    eps: float
    rms: bool = False

    @nn.compact
    def __call__(self, x):
        scale = self.param("scale", ONES, (self.dim,))
        bias = None if self.rms else self.param("bias", ZEROS, (self.dim,))
        return layer_norm(x, scale, bias, self.eps)


class Dense(nn.Module):
    din: int
    dout: int
    use_bias: bool = True

    @nn.compact
    def __call__(self, x):
        w = self.param("kernel", INIT, (self.din, self.dout))
        b = self.param("bias", ZEROS, (self.dout,)) if self.use_bias else None
        return linear(x, w, b)


class Attention(nn.Module):
    """Multi-head attention sublayer: projections, per-head kernel, output + residual.

    ``x [b, n, d]``, ``kv [b, m, d]`` (None: self-attention); ``bias [h, n, m]``
    (T5's relative position bias) is added to the scores.  ``attn`` chooses the kernel of
    self-attention (``architectures/zoo.py``; cross-attention and a bias are dense);
    ``features [m, d_head]``: Performer's random features of this step (``draw_features``).
    Self-attention only: ``n_kv_heads`` key/value heads (0: n_heads), each repeated for
    its group of query heads (``attn/qkv``); ``rope``: the step's (cos, sin) tables
    (``kernels.rope``), which rotate q and k (``attn/rope``); ``qkv_bias`` (None: as
    ``use_bias``).
    """
    d_model: int
    n_heads: int
    d_head: int
    causal: bool = False
    use_bias: bool = True
    attn: Attn = Attn()
    n_kv_heads: int = 0
    qkv_bias: bool | None = None

    @nn.compact
    def __call__(self, x, kv=None, bias=None, features=None, rope=None):
        h, dh = self.n_heads, self.d_head
        inner = h * dh
        b, n, _ = x.shape
        qkv_bias = self.use_bias if self.qkv_bias is None else self.qkv_bias
        if kv is None:
            g = self.n_kv_heads or h
            with jax.named_scope("attn/qkv"):
                qkv = Dense(self.d_model, (h + 2 * g) * dh, qkv_bias, name="qkv")(x)
            q, k, v = jnp.split(qkv, [inner, inner + g * dh], axis=-1)
        else:
            g = h
            with jax.named_scope("attn/q"):
                q = Dense(self.d_model, inner, qkv_bias, name="q")(x)
            with jax.named_scope("attn/kv"):
                kvp = Dense(self.d_model, 2 * inner, qkv_bias, name="kv")(kv)
            k, v = jnp.split(kvp, 2, axis=-1)
        m = k.shape[1]
        q, k, v = q.reshape(b, n, h, dh), k.reshape(b, m, g, dh), v.reshape(b, m, g, dh)
        if rope is not None:
            with jax.named_scope("attn/rope"):
                q, k = rope_kernel(q, *rope), rope_kernel(k, *rope)
        if g != h:
            with jax.named_scope("attn/qkv"):      # each k/v head serves h / g query heads
                k, v = (jnp.repeat(t, h // g, axis=2) for t in (k, v))
        q, k, v = (t.transpose(0, 2, 1, 3) for t in (q, k, v))
        if bias is not None:
            attend = lambda q1, k1, v1, b1: dense_attention(q1, k1, v1, causal=self.causal,
                                                            bias=b1)
            ctx = jax.vmap(jax.vmap(attend), in_axes=(0, 0, 0, None))(q, k, v, bias)
        else:
            one = self._kernel(n, kv is None, features)
            ctx = jax.vmap(jax.vmap(one))(q, k, v)     # over batch and heads
        ctx = ctx.transpose(0, 2, 1, 3).reshape(b, n, inner)
        with jax.named_scope("attn/out"):
            return Dense(inner, self.d_model, self.use_bias, name="out")(ctx)

    def _kernel(self, n, self_attention, features):
        """``f(q, k, v)`` of one head; parameters and features are shared by the heads."""
        a, causal = self.attn, self.causal
        if a.kind == "dense" or not self_attention:
            return lambda q, k, v: dense_attention(q, k, v, causal=causal)
        if a.kind == "flash":
            return lambda q, k, v: flash_attention(q, k, v, block=a.block_at(n), causal=causal)
        if a.kind == "local":
            return lambda q, k, v: local_attention(q, k, v, chunk_len=a.window_at(n),
                                                   causal=causal, n_chunks_before=1,
                                                   n_chunks_after=0 if causal else 1)
        if a.kind == "sliding":   # causal; the whole sequence fits the window: dense
            if n <= a.window:
                return lambda q, k, v: dense_attention(q, k, v, causal=True)
            return lambda q, k, v: local_attention(q, k, v, chunk_len=a.window, causal=True,
                                                   max_distance=a.window)
        if a.kind == "linformer":
            with jax.named_scope("attn/proj_k"):
                e = self.param("proj_e", INIT, (a.proj_len, a.max_len))[:, :n]
            with jax.named_scope("attn/proj_v"):
                f = self.param("proj_f", INIT, (a.proj_len, a.max_len))[:, :n]
            return lambda q, k, v: linformer_attention(q, k, v, e, f)
        if features is None:
            raise ValueError("performer attention needs this step's random features")
        return lambda q, k, v: performer_attention(q, k, v, features)


def draw_features(attn: Attn, rng, index: int, d_head: int):
    """Performer's random features of one layer for this step, ``[features, d_head]``
    standard normal from the step's key folded with ``index`` (term ``attn/features``;
    the same draw the Reformer makes for its rotations); None for the other choices."""
    if attn.kind != "performer":
        return None
    with jax.named_scope("attn/features"):
        key = jax.random.fold_in(jax.random.PRNGKey(0) if rng is None else rng, index)
        return jax.random.normal(key, (attn.features, d_head))


class FeedForward(nn.Module):
    """act(x W1 + b1) W2 + b2, or gated (``gated``: W1 is [W_gate | W_up], d x 2 d_ff)."""
    d_model: int
    d_ff: int
    act: str
    use_bias: bool = True
    gated: bool = False

    @nn.compact
    def __call__(self, x):
        f1 = (2 if self.gated else 1) * self.d_ff
        w1 = self.param("w_in", INIT, (self.d_model, f1))
        w2 = self.param("w_out", INIT, (self.d_ff, self.d_model))
        b1 = self.param("b_in", ZEROS, (f1,)) if self.use_bias else None
        b2 = self.param("b_out", ZEROS, (self.d_model,)) if self.use_bias else None
        return (glu_ffn if self.gated else ffn)(x, w1, b1, w2, b2, act=self.act)


def residual_sublayer(fn, x, norm, pre_norm: bool, out_term: str, norm_term: str):
    """One residual sublayer around ``fn`` with the norm module ``norm``.

    Post-LN (BERT, ALBERT, ELECTRA): ``norm(x + fn(x))``; pre-LN (GPT-2, T5):
    ``x + fn(norm(x))``.  The residual add is charged to ``out_term`` (the
    sublayer's output projection), the norm to ``norm_term``.  ``Layer`` and
    ALBERT's shared-parameter encoder both compose their layers from this.
    """
    if pre_norm:
        with jax.named_scope(norm_term):
            h = norm(x)
        y = fn(h)
        with jax.named_scope(out_term):
            return x + y
    y = fn(x)
    with jax.named_scope(out_term):
        y = x + y
    with jax.named_scope(norm_term):
        return norm(y)


class Layer(nn.Module):
    """One Transformer layer: self-attention, optional cross-attention, FFN.

    ``pre_norm=False`` is BERT's post-LN (norm after each residual add);
    ``pre_norm=True`` is GPT-2/T5's pre-LN (norm before each sublayer); ``parallel``
    (pre-norm) is GPT-J/NeoX's ``x + attn(norm1(x)) + ffn(norm2(x))``.  ``n_kv_heads``,
    ``qkv_bias``: ``Attention``'s; ``gated``: a GLU FFN; ``moe``: experts in place of
    the FFN (``MoeFeedForward``); ``rope`` (a call argument): the step's rotary tables.
    """
    d_model: int
    n_heads: int
    d_head: int
    d_ff: int
    act: str
    eps: float
    pre_norm: bool = False
    causal: bool = False
    cross: bool = False
    use_bias: bool = True
    rms: bool = False
    attn: Attn = Attn()
    n_kv_heads: int = 0
    qkv_bias: bool | None = None
    gated: bool = False
    parallel: bool = False
    moe: Moe | None = None

    @nn.compact
    def __call__(self, x, memory=None, self_bias=None, cross_bias=None, features=None,
                 rope=None):
        def sub(fn, x, out_term, norm_term, name):
            norm = Norm(self.d_model, self.eps, self.rms, name=name)
            return residual_sublayer(fn, x, norm, self.pre_norm, out_term, norm_term)

        att = Attention(self.d_model, self.n_heads, self.d_head, self.causal, self.use_bias,
                        self.attn, self.n_kv_heads, self.qkv_bias, name="self_attn")
        if self.moe is None:
            ff = FeedForward(self.d_model, self.d_ff, self.act, self.use_bias, self.gated,
                             name="ffn")
        else:
            ff = MoeFeedForward(self.d_model, self.d_ff, self.act, self.gated, self.moe,
                                name="moe")
        attend = lambda h: att(h, bias=self_bias, features=features, rope=rope)
        if self.parallel:
            return parallel_residual(x, attend, ff, Norm(self.d_model, self.eps, self.rms,
                                                         name="norm_attn"),
                                     Norm(self.d_model, self.eps, self.rms, name="norm_ffn"))
        x = sub(attend, x, "attn/out", "norm/attn", "norm_attn")
        if self.cross:
            xatt = Attention(self.d_model, self.n_heads, self.d_head, False, self.use_bias,
                             qkv_bias=self.qkv_bias, name="cross_attn")
            x = sub(lambda h: xatt(h, memory, cross_bias), x, "attn/out", "norm/cross",
                    "norm_cross")
        return sub(ff, x, "ffn/out", "norm/ffn", "norm_ffn")


def parallel_residual(x, attend, ff, norm_attn, norm_ffn):
    """GPT-J / GPT-NeoX: both sublayers read the layer input through their own norms."""
    with jax.named_scope("norm/attn"):
        ha = norm_attn(x)
    a = attend(ha)
    with jax.named_scope("norm/ffn"):
        hf = norm_ffn(x)
    f = ff(hf)
    with jax.named_scope("attn/out"):
        y = x + a
    with jax.named_scope("ffn/out"):
        return y + f


class MoeFeedForward(nn.Module):
    """Experts in place of the FFN (``kernels.moe``): router ``[d, E]``, experts' ``w_in
    [E, d, F]`` and ``w_out [E, d_ff, d]``, no biases; the step's ``b x n`` tokens are one
    routing group (capacity ``modern.capacity`` of them)."""
    d_model: int
    d_ff: int
    act: str
    gated: bool
    moe: Moe

    @nn.compact
    def __call__(self, x):
        E, d = self.moe.n_experts, self.d_model
        f1 = (2 if self.gated else 1) * self.d_ff
        router = self.param("router", INIT, (d, E))
        w1 = self.param("w_in", INIT, (E, d, f1))
        w2 = self.param("w_out", INIT, (E, self.d_ff, d))
        b, n, _ = x.shape
        y = moe_ffn(x.reshape(b * n, d), router, w1, w2, top_k=self.moe.top_k, act=self.act,
                    gated=self.gated, renormalize=self.moe.renormalize,
                    capacity=capacity(self.moe, b * n))
        return y.reshape(b, n, d)


# One layer as a jitted call: JAX traces (and differentiates) it once per set of shapes
# and the jaxpr calls that one body for every layer, so tracing a deep model costs about
# one layer.  Counts, parameters and saved activations are those of the plain Layer
# (tests/test_transformer.py::test_jitted_layers_count_as_plain_layers).  Only for layers
# whose inputs are the residual stream alone: the gradients of an input shared by every
# layer (T5's relative bias, the encoder memory) would accumulate outside the layers'
# named scopes, so the encoder-decoder keeps the plain Layer.
#
# A plain ``jax.jit`` of ``Layer.init`` / ``Layer.apply`` rather than Flax's lifted
# ``nn.jit``: the lift re-derives scopes and fingerprints the module on every call, which
# cost about a third of a bert-large trace (24 layers x init, forward, training step).
class JitLayer(Layer):
    """``Layer`` called through ``jax.jit``: the same parameters (``layer_i/...``), the
    same computation; residual-stream input only (and Performer's features, the rotary
    tables: constants of the step, no gradient).  ``remat``: the layer under
    ``jax.checkpoint`` (per-layer checkpointing: its input kept, its forward recomputed in
    the backward)."""
    remat: bool = False

    @nn.compact
    def __call__(self, x, features=None, rope=None):
        init, apply = _jitted(tuple((f, getattr(self, f)) for f in _LAYER_FIELDS),
                              _SHAPES_ONLY[-1], self.remat)
        if self.is_initializing():   # one trace gives the parameters and the output
            y, params = init(self.make_rng("params"), x, features, rope)
            for name, value in params.items():
                self.put_variable("params", name, value)
            return y
        return apply(self.variables["params"], x, features, rope)


_LAYER_FIELDS = tuple(f.name for f in dataclasses.fields(Layer)
                      if f.name not in ("parent", "name"))


@functools.cache
def _jitted(fields: tuple, shapes_only: bool, remat: bool = False):
    """(init, apply) of one plain Layer of these fields, each a ``jax.jit``: one trace per
    set of shapes, shared by every layer of a model and every model of these sizes (the
    init of ``shapes_only()`` is a jit of its own: its trace draws no random numbers)."""
    layer = Layer(**dict(fields), parent=None)

    def layer_init(rng, x, features, rope):
        y, variables = layer.init_with_output(rng, x, features=features, rope=rope)
        return y, variables["params"]

    def layer_apply(params, x, features, rope):
        return layer.apply({"params": params}, x, features=features, rope=rope)

    return jax.jit(layer_init), jax.jit(jax.checkpoint(layer_apply) if remat else layer_apply)


_JIT = [True]


@contextmanager
def plain_layers():
    """Models built and traced inside use the plain Layer everywhere: the no-reuse
    reference of the tests and benchmarks (the counts are the same)."""
    _JIT.append(False)
    try:
        yield
    finally:
        _JIT.pop()


def jit_layers() -> bool:
    """Whether models built now call JitLayer (false inside ``plain_layers()``)."""
    return _JIT[-1]


RematLayer = nn.remat(Layer)   # the plain Layer under jax.checkpoint (Flax's lifted remat)


def layer_class(shared_inputs: bool = False, remat: bool = False):
    """JitLayer, or Layer for layers with inputs shared by every layer (see above) and
    inside ``plain_layers()``; with ``remat`` each layer is checkpointed (the
    ``checkpoint`` memory policy)."""
    if _JIT[-1] and not shared_inputs:
        return functools.partial(JitLayer, remat=True) if remat else JitLayer
    return RematLayer if remat else Layer

