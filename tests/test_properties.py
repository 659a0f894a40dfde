"""Properties over random valid configurations (hypothesis), where the fixed cases of the
architecture tests check one preset each: analytic == traced (matmul scope, a few tiny
traced examples); training >= forward; monotone in length and width; parameters
independent of the length except a learned position table, which grows by exactly its
rows; the Reformer linear in length at fixed chunk length and bucket count; dense
attention quadratic.  Analytic properties are instant; traced ones are few and tiny."""
import dataclasses

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import architectures
from architectures.config import ConfigError
from helpers import assert_counts_agree

FAST = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
BASES = {"transformer": ("bert-base", "gpt2-small", "t5-small"), "albert": ("albert-base",),
         "electra": ("electra-small", "electra-base"), "reformer": ("reformer-base",
                                                                    "reformer-enwik8")}
CHUNK = 8    # the Reformer's chunk lengths here: lengths are multiples of it


@st.composite
def models(draw, archs=tuple(BASES), max_dh=32):
    """(module, Config): a preset of ``archs`` at a random small width, depth and vocab."""
    arch = draw(st.sampled_from(archs))
    mod = architectures.get(arch)
    base = mod.PRESETS[draw(st.sampled_from(BASES[arch]))][0]
    heads, dh = draw(st.sampled_from((1, 2, 4))), draw(st.sampled_from((8, 16, max_dh)))
    try:
        cfg = mod.resize(base, d_model=heads * dh, n_layers=draw(st.integers(1, 2)),
                         n_heads=heads, d_ff=draw(st.sampled_from((2, 4))) * heads * dh
                         if hasattr(base, "ff_dim") else None)
        small = {"vocab": draw(st.integers(5, 120))}
        if arch == "reformer":
            small.update(lsh_chunk=CHUNK, local_chunk=CHUNK, n_buckets=None,
                         axial_shape=(4, 8))
        elif getattr(base, "max_len", 0):
            small["max_len"] = draw(st.sampled_from((16, 32, 64)))
        cfg = dataclasses.replace(cfg, **small)
    except ConfigError:
        assume(False)
    return mod, cfg


lengths = st.integers(1, 24).map(lambda k: CHUNK * k)


@settings(max_examples=6, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(m=models(max_dh=16), seq=st.sampled_from((8, 16)), batch=st.integers(1, 2))
def test_analytic_equals_traced_in_the_matmul_scope(m, seq, batch):
    mod, cfg = m
    assert_counts_agree(mod, cfg, batch, seq, all_rtol=1.0)   # matmul: exact, term by term


@FAST
@given(m=models(), seq=lengths, scope=st.sampled_from(("matmul", "all")))
def test_training_costs_at_least_the_forward_term_by_term(m, seq, scope):
    mod, cfg = m
    f = mod.flops(cfg, seq, 1, scope)
    assert f.train >= f.fwd > 0
    assert all(f.train_breakdown.get(k, 0) >= v for k, v in f.breakdown.items())


@FAST
@given(m=models(), s1=lengths, more=lengths, scope=st.sampled_from(("matmul", "all")))
def test_monotone_in_length(m, s1, more, scope):
    mod, cfg = m
    s2 = s1 + more
    a, b = mod.flops(cfg, s1, 1, scope), mod.flops(cfg, s2, 1, scope)
    assert b.fwd > a.fwd and b.train > a.train


@FAST
@given(m=models(), seq=lengths, wider=st.sampled_from((2, 3)))
def test_monotone_in_width(m, seq, wider):
    mod, cfg = m
    try:
        big = mod.resize(cfg, d_model=wider * cfg.d_model, n_heads=cfg.n_heads)
        big = dataclasses.replace(big, **({"lsh_chunk": CHUNK, "local_chunk": CHUNK}
                                          if hasattr(big, "lsh_chunk") else {}))
    except ConfigError:
        assume(False)
    assert mod.flops(big, seq).train > mod.flops(cfg, seq).train
    assert mod.params(big, seq) > mod.params(cfg, seq)


def _table(cfg):
    """(positions the table holds, parameters per extra position): learned tables grow a
    row (of the embedding width) per position; the Reformer's axial table a row of
    axial_dims[0] per axial_shape[1] positions; T5's relative bias does not grow."""
    if hasattr(cfg, "axial_shape"):
        n1, n2 = cfg.axial_shape
        return n1 * n2, None
    if getattr(cfg, "kind", "") == "encdec" or not getattr(cfg, "max_len", 0):
        return None, 0
    return cfg.max_len, getattr(cfg, "emb_dim", None) or cfg.d_model


@FAST
@given(m=models(), s1=lengths, s2=lengths)
def test_parameters_depend_on_length_only_through_the_position_table(m, s1, s2):
    mod, cfg = m
    holds, per_row = _table(cfg)
    p1, p2 = mod.params(cfg, s1), mod.params(cfg, s2)
    if holds is None or max(s1, s2) <= holds:
        assert p1 == p2
    elif hasattr(cfg, "axial_shape"):
        rows = lambda s: cfg.axial_rows(s) * cfg.axial_dims[0]
        assert p2 - p1 == rows(s2) - rows(s1)
    else:
        assert p2 - p1 == (max(s2, holds) - max(s1, holds)) * per_row


@FAST
@given(m=models(archs=("reformer",)), k=st.integers(1, 8), buckets=st.sampled_from((2, 4, 8)))
def test_reformer_is_linear_in_length_at_fixed_chunk_and_buckets(m, k, buckets):
    """Matmul scope, beyond one chunk (up to one the reference runs plain n x n attention):
    the ``all`` scope adds the bucket sort, n log n by design."""
    _, cfg = m
    rf = architectures.get("reformer")
    cfg = dataclasses.replace(cfg, n_buckets=buckets, causal=True, chunks_after=0)
    s = CHUNK * k     # causal: the LM loss covers every position, no masked-count rounding
    assume(s >= buckets and s > cfg.lsh_chunk)
    f1, f2, f4 = (rf.flops(cfg, n * s, 1, "matmul").train for n in (1, 2, 4))
    assert f2 == 2 * f1 and f4 == 4 * f1


@FAST
@given(m=models(archs=("transformer",)), seq=lengths)
def test_dense_attention_is_quadratic_in_length(m, seq):
    _, cfg = m
    assume(cfg.kind != "encdec")    # the decoder's length is not proportional to the input's
    tr = architectures.get("transformer")
    att = lambda s: sum(v for k, v in tr.flops(cfg, s).train_breakdown.items()
                        if k.startswith(("attn/scores", "attn/context")))
    assert att(2 * seq) == 4 * att(seq) and att(seq) > 0
