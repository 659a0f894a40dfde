"""The adapter to JAX's internals (``comparator.count.jaxcompat``) and its plain fallback.

With the private path off (``COMPARATOR_PLAIN_TRACES=1``, a missing name, a failed
self-check) every length is traced concretely and dead code is removed by ``plainjax``:
the counts must equal the symbolic path's, term by term, and the user is told once.
"""
import os
import re
import subprocess
import sys
import types
import warnings

import jax
import jax.numpy as jnp
import pytest

from architectures import albert as al
from architectures import transformer as tr
from comparator.count import fasttrace as ft
from comparator.count import jaxcompat as jc
from comparator.count.plainjax import scopes_from_text
from comparator.count.trace import TERM_ROOTS, count_jaxpr, trace

S = jax.ShapeDtypeStruct
f32 = jnp.float32
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# the tiny sizes of tests/test_transformer.py and tests/test_albert.py; lengths below and
# past the position table (64 and 32 rows), two or more per region so that a symbolic
# trace is made (MIN_SYMBOLIC lowered to 2, as tests/test_fasttrace.py does)
CASES = [(tr, tr.Config(vocab=101, d_model=32, n_layers=2, n_heads=4, max_len=64),
          (16, 32, 48, 96, 128)),
         (al, al.Config(vocab=97, d_model=16, n_layers=3, n_heads=2, emb_dim=8, ff_dim=24,
                        max_len=32), (8, 16, 24))]


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.setattr(ft, "MIN_SYMBOLIC", 2)
    monkeypatch.delenv(jc.ENV, raising=False)
    ft.clear_cache()
    jc.reset()
    yield
    ft.clear_cache()
    jc.reset()


def _plain(monkeypatch):
    monkeypatch.setenv(jc.ENV, "1")
    jc.reset()
    ft.clear_cache()


def _counts(mod, cfg, seqs):
    return ft.traced_counts(mod, cfg, list(seqs), batch=2, memory=True)


def assert_same(a, b, what):
    assert a.total == b.total, (what, a.total, b.total)
    assert a.by_term == b.by_term, what
    assert a.unsupported == b.unsupported, what
    assert a.flagged == b.flagged, what


# JAX gained the static-indexing internals the symbolic path patches in 0.9.1 (0.9.0 lacks
# NDIndexer.to_static_slice): below it the plain path is the only one (BENCHMARKS.md)
PRIVATE_SINCE = (0, 9, 1)
HAS_PRIVATE = tuple(int(x) for x in re.findall(r"\d+", jax.__version__)[:3]) >= PRIVATE_SINCE
needs_private = pytest.mark.skipif(not HAS_PRIVATE, reason="JAX < 0.9.1: no symbolic path")


def test_this_jax_takes_the_private_path_from_0_9_1_on():
    """The tested JAX has every private name and the self-check passes; an older one
    lacks the indexing internals and takes the plain path, saying which name is missing."""
    if HAS_PRIVATE:
        assert jc.missing_names() == []
        assert jc.available(), jc.plain_reason()
    else:
        assert "jax._src.numpy.indexing.NDIndexer.to_static_slice" in jc.missing_names()
        assert not jc.available() and "to_static_slice" in jc.plain_reason()


@needs_private
def test_plain_traces_equal_the_symbolic_path_and_warn_once(monkeypatch):
    symbolic = {id(mod): _counts(mod, cfg, seqs) for mod, cfg, seqs in CASES}
    methods = " ".join(fc.method for out in symbolic.values() for fc in out.values())
    assert "symbolic" in methods, methods   # else the comparison below proves nothing
    _plain(monkeypatch)
    assert not jc.available() and jc.ENV in jc.plain_reason()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for mod, cfg, seqs in CASES:
            plain = _counts(mod, cfg, seqs)
            for s in seqs:
                want, got = symbolic[id(mod)][s], plain[s]
                assert "symbolic" not in got.method, got.method
                assert_same(got.fwd, want.fwd, (mod.NAME, s, "fwd"))
                assert_same(got.train, want.train, (mod.NAME, s, "train"))
                assert (got.params, got.activation_bytes) == (want.params, want.activation_bytes)
    said = [w for w in caught if issubclass(w.category, jc.PlainTracesWarning)]
    assert len(said) == 1, [str(w.message) for w in caught]
    assert jc.ENV in str(said[0].message) and "exact but slower" in str(said[0].message)


def test_a_missing_private_name_turns_the_private_path_off(monkeypatch):
    lnp = types.SimpleNamespace(**{k: v for k, v in vars(jc.lax_numpy).items() if k != "_arange"})
    monkeypatch.setattr(jc, "lax_numpy", lnp)
    assert "jax._src.numpy.lax_numpy._arange" in jc.missing_names()
    assert not jc.available()
    assert "jax._src.numpy.lax_numpy._arange" in jc.plain_reason()


@needs_private
@pytest.mark.parametrize("patch", ["_static_slice_symbolic", "_arange_symbolic"])
def test_the_self_check_catches_a_private_name_that_behaves_otherwise(monkeypatch, patch):
    """Every name there, but a patch without effect (as if JAX's indexing had moved):
    the symbolic check function's count differs from its concrete traces."""
    monkeypatch.setattr(jc, patch, lambda orig: orig)
    assert jc.missing_names() == []
    assert not jc.available()
    assert "differs from the concrete one" in jc.plain_reason()


def _dead_code(a, b):
    """Dead code at the top, in a jitted call, in a scan (a carry never read) and in a cond."""
    _ = b @ b.T                                                  # dead

    @jax.jit
    def call(x):
        return x @ b, jnp.exp(x @ b @ b.T)                       # second output dead
    y = call(a)[0]

    def body(c, _):
        c1, c2 = c
        return (jnp.tanh(c1), c2 @ b @ b.T), None                # c2 never used after
    (z, _), _ = jax.lax.scan(body, (y, a), None, length=3)
    w = jax.lax.cond(z.sum() > 0, lambda t: (t * 2, t @ b.T), lambda t: (t, t @ b.T), y)[0]
    return jax.nn.gelu(w).sum()


@pytest.mark.parametrize("fn", [_dead_code, jax.value_and_grad(_dead_code)])
def test_the_plain_dead_code_removal_counts_as_jaxs(monkeypatch, fn):
    args = S((3, 5), f32), S((5, 7), f32)
    ref = trace(fn, *args)
    _plain(monkeypatch)
    got = trace(fn, *args)
    assert_same(got, ref, fn)
    # the forward: a @ b (2 * 3 * 5 * 7) in the call, nothing else contracts
    if fn is _dead_code:
        assert got.flops("matmul") == 2 * 3 * 5 * 7


def test_plain_path_drops_dead_code_like_test_trace(monkeypatch):
    _plain(monkeypatch)
    r = trace(lambda a, b: (a @ b, b @ b.T)[0], S((3, 5), f32), S((5, 7), f32))
    assert r.flops("matmul") == 2 * 3 * 5 * 7


def test_scopes_read_from_the_name_stack_text():
    assert scopes_from_text("transpose(jvp(enc))/attn/qkv", TERM_ROOTS) == ("enc", "attn/qkv")
    assert scopes_from_text("jvp()", TERM_ROOTS) == ()
    assert scopes_from_text("gen/Block_0/ffn/in/x", TERM_ROOTS) == ("gen", "Block_0", "ffn/in", "x")

    def f(x):
        with jax.named_scope("disc"), jax.named_scope("attn/qkv"):
            return jnp.tanh(x @ x).sum()
    closed = jax.make_jaxpr(jax.grad(f))(S((4, 4), f32))
    eqns = [e for e in closed.jaxpr.eqns if e.primitive.name == "dot_general"]
    assert eqns and all(jc.scope_names(e) == ("disc", "attn/qkv") for e in eqns)
    assert all(scopes_from_text(str(e.source_info.name_stack), TERM_ROOTS) == ("disc", "attn/qkv")
               for e in eqns)
    assert set(count_jaxpr(closed).by_term) >= {"disc/attn/qkv"}


@needs_private
def test_the_environment_variable_reaches_a_fresh_process():
    """``COMPARATOR_PLAIN_TRACES=1`` as a user sets it: one warning on stderr, counts equal."""
    code = ("import warnings, dataclasses; from architectures import transformer as tr;"
            "from comparator.count import fasttrace as ft;"
            "cfg = tr.Config(vocab=101, d_model=32, n_layers=2, n_heads=4, max_len=64);"
            "out = ft.traced_counts(tr, cfg, [16, 32, 48, 64], 1); ft.traced_counts(tr, cfg, [80], 1);"
            "print(sorted((s, fc.train.total.flops, fc.method) for s, fc in out.items()))")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    runs = {}
    for flag in ("0", "1"):
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={**env, jc.ENV: flag}, cwd=ROOT, timeout=300)
        assert p.returncode == 0, p.stderr
        runs[flag] = p
    assert runs["1"].stderr.count("symbolic-length traces are off") == 1, runs["1"].stderr
    assert "symbolic-length traces are off" not in runs["0"].stderr
    plain, fast = (eval(runs[f].stdout) for f in ("1", "0"))
    assert [(s, n) for s, n, _ in plain] == [(s, n) for s, n, _ in fast]
    assert not any("symbolic" in m for _, _, m in plain)
