"""The memory estimate against XLA's compiled memory analysis, every architecture and policy.

The step is the real one (``cost.stepmemory``): loss, gradients and an Adam update, the
parameters and both moments donated.  XLA's total is arguments + temporaries + outputs -
aliases of ``compile().memory_analysis()``; ours is the peak of the traced step's live
buffers (``count.liveness``, XLA:CPU's fusion rules and schedule).  Sizes are small
(width 128, 2 layers, 512 tokens, batch 4: the temporaries are two thirds of the total)
so each compile takes seconds.  BENCHMARKS.md records the same ratio over the validation
grid (widths 256/512, 2/4 layers, 512-4,096 tokens, batch 1/4) and the points outside
``TOLERANCE``.
"""
import dataclasses

import jax
import jax.numpy as jnp
import pytest

import architectures
from comparator.cost import stepmemory as sm
from comparator.count import heap, liveness
from comparator.measure import memory as mm

TOLERANCE = (0.9, 1.1)   # ours / XLA's total (issue 18: within 10%)
POINTS = [pytest.param(arch, pol)
          for arch in architectures.NAMES for pol in architectures.get(arch).POLICIES]


def small(arch, d_model=128, **fields):
    mod = architectures.get(arch)
    cfg = mod.resize(mod.preset(mod.DEFAULT_PRESET), d_model=d_model, n_layers=2, n_heads=2)
    return mod, dataclasses.replace(cfg, **fields)


@pytest.mark.parametrize("arch,policy", POINTS, ids=[f"{p.values[0]}-{p.values[1]}" for p in POINTS])
def test_estimate_within_tolerance_of_xla(arch, policy):
    mod, cfg = small(arch)
    rec = mm.check(mod, cfg, 512, 4, policy)
    if rec["xla_bytes"] is None:
        pytest.skip("this backend gives no memory analysis")
    n = mod.params(cfg, 512)
    # the donated parameters and both Adam moments are exactly what XLA aliases
    assert rec["xla_alias_bytes"] == 3 * 4 * n == rec["estimate"]["parameters"] * 3
    assert rec["estimate"]["optimizer"] == 8 * n
    assert TOLERANCE[0] <= rec["ratio"] <= TOLERANCE[1], (rec["ratio"], rec["estimate"])


def test_policies_change_what_is_kept():
    """Reformer at 8 layers: plain autodiff keeps every layer's activations; the reversible
    stack keeps its outputs, the checkpointed one every layer's input -- so store_all needs
    most, on either schedule: a checkpointed layer's recomputation waits at JAX's barrier
    for the backward's cotangent (one barrier over all its inputs), so even XLA:CPU's
    breadth-first schedule cannot run it early."""
    mod, cfg = small("reformer", 64, n_layers=8, vocab=512)
    est = {(p, s): sm.estimate(mod, cfg, 1024, 2, p, "fp32", s)
           for p in mod.POLICIES for s in liveness.SCHEDULES}
    saved = {k: v["saved"] + v["working"] for k, v in est.items()}
    for s in liveness.SCHEDULES:
        assert saved["store_all", s] > 3 * saved["reversible", s]
        assert saved["store_all", s] > 3 * saved["checkpoint", s]
    for p in mod.POLICIES:            # parameters and moments do not depend on the policy
        assert est[p, "cpu"]["parameters"] == est["reversible", "cpu"]["parameters"]


def _bytes(*shape):
    return 4 * int(jnp.prod(jnp.array(shape)))


def test_liveness_by_hand():
    """Two products in a row: x (8x16) @ a (16x32) -> y, y @ b (32x4) -> z.  XLA keeps y
    until the second product reads it; the output z is reported apart."""
    f = lambda x, a, b: (x @ a) @ b
    args = [jax.ShapeDtypeStruct(s, jnp.float32) for s in ((8, 16), (16, 32), (32, 4))]
    pk = liveness.peak(jax.make_jaxpr(f)(*args))
    assert pk.arguments == _bytes(8, 16) + _bytes(16, 32) + _bytes(32, 4)
    assert pk.temporaries == _bytes(8, 32)                      # y
    assert pk.outputs == _bytes(8, 4)                           # z


def test_elementwise_work_fuses_and_donated_updates_alias():
    """exp(x) * 2 + 1 is one fused loop: nothing stored but the result; an update of a
    donated buffer writes into it (no output counted)."""
    x = jax.ShapeDtypeStruct((64, 64), jnp.float32)
    pk = liveness.peak(jax.make_jaxpr(lambda v: jnp.exp(v) * 2 + 1)(x))
    assert (pk.temporaries, pk.outputs) == (0, _bytes(64, 64))
    pk = liveness.peak(jax.make_jaxpr(lambda v: jnp.exp(v) * 2 + 1)(x), donated=(0,))
    assert (pk.arguments, pk.temporaries, pk.outputs) == (_bytes(64, 64), 0, 0)


def test_heap_fragments_where_lifetimes_interleave():
    """XLA's heap simulator (largest, then longest-lived first, each at the best-fitting
    gap): a, b, c, d of 64 bytes alive over steps 0-4, 3-6, 6-8, 7-10 are never more than
    two at once, but d takes a's freed slot before c is placed, so c overlaps both slots
    in use and goes on top: three slots."""
    bufs = [(6, 8, 64), (0, 4, 64), (3, 6, 64), (7, 10, 64)]     # c, a, b, d
    assert max(sum(s for lo, hi, s in bufs if lo <= t <= hi) for t in range(11)) == 2 * 64
    assert heap.pack(bufs) == heap.pack(bufs, temporal=True) == 3 * 64
    assert heap.heap_bytes(bufs) == 3 * 64
    assert heap.heap_bytes([(0, 4, 64), (5, 9, 64)]) == 64          # one slot, reused
    assert heap.heap_bytes([(0, 0, 1)]) == heap.ALIGN               # sizes rounded up


@pytest.mark.parametrize("batch", [1, 2])
def test_in_place_needs_the_shape_xla_allocates(batch):
    """2 exp(q k^T), then its row sums: the product takes over the scores' buffer in place,
    except at a batch of one: XLA drops a dot's size-1 dimensions, so the scores are
    (h, n, n) and the product (1, h, n, n), and XLA gives it a buffer of its own."""
    h, n, d = 2, 16, 8
    q = jax.ShapeDtypeStruct((batch, h, n, d), jnp.float32)
    f = lambda a, b: jnp.sum(2 * jnp.exp(jnp.einsum("bhqd,bhkd->bhqk", a, b)), axis=-1)
    pk = liveness.peak(jax.make_jaxpr(f)(q, q))
    scores = _bytes(batch, h, n, n)
    assert pk.temporaries == (2 * scores if batch == 1 else scores)


def test_softmax_keeps_what_xla_stores():
    """softmax of s (n x n) and its gradient: the scores (read by the max and by the shift
    before exp), exp(s - max) and the probabilities are stored, n^2 floats each."""
    n = 128
    s = jax.ShapeDtypeStruct((n, n), jnp.float32)
    f = lambda v: jax.grad(lambda w: jnp.sum(jax.nn.softmax(w) ** 2))(v)
    pk = liveness.peak(jax.make_jaxpr(f)(s))
    assert pk.temporaries >= 2 * _bytes(n, n)
    assert pk.temporaries <= 4 * _bytes(n, n)


def test_memory_command_json(capsys):
    from comparator.cli.app import main
    assert main(["memory", "--arch", "transformer", "--seq", "128", "--d-model", "64",
                 "--layers", "1", "--heads", "1", "--policy", "store_all", "--format",
                 "json"]) == 0
    import json
    recs = json.loads(capsys.readouterr().out)
    assert len(recs) == 1 and recs[0]["policy"] == "store_all"
    r = recs[0]
    assert r["estimated_bytes"] == sum(r["estimate"].values())
    assert r["xla_bytes"] == (r["xla_argument_bytes"] + r["xla_temp_bytes"]
                              + r["xla_output_bytes"] - r["xla_alias_bytes"])
    assert r["measured_peak_bytes"] is None and 0.8 < r["ratio"] < 1.25


def test_memory_command_attention(capsys):
    """--attention: each model once per kernel (labelled PRESET@CHOICE), each policy built
    with it (flash's custom VJP and Performer's features inside a checkpointed layer)."""
    from comparator.cli.app import main
    assert main(["memory", "--arch", "transformer", "--seq", "128", "--d-model", "64",
                 "--layers", "1", "--heads", "1", "--attention", "flash,performer",
                 "--policy", "checkpoint", "--format", "json"]) == 0
    import json
    recs = json.loads(capsys.readouterr().out)
    assert [r["preset"].rsplit("@", 1)[1] for r in recs] == ["flash", "performer"]
    for r in recs:
        assert r["policy"] == "checkpoint" and 0.8 < r["ratio"] < 1.25


@pytest.mark.parametrize("argv,field", [
    (["--arch", "reformer", "--attention", "flash"], "--attention"),
    (["--arch", "transformer", "--attention", "sparse"], "--attention"),
    (["--arch", "transformer", "--policy", "reversible"], "--policy"),
    (["--arch", "reformer", "--policy", "stored"], "--policy"),
    (["--arch", "transformer", "--batch", "0"], "--batch"),
    (["--arch", "reformer", "--seq", "100"], "--seq"),
])
def test_memory_command_refuses(capsys, argv, field):
    from comparator.cli.app import main
    argv = ["memory"] + ([] if "--seq" in argv else ["--seq", "128"]) + argv
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"error: {field}:" in err and "Traceback" not in err


def test_a_remat_barrier_holds_the_recomputation_until_the_cotangent():
    """jax.checkpoint of f, differentiated: JAX lowers the backward's recomputation behind
    one optimization barrier over the residual *and* the cotangent, so f's big
    intermediate (n x n, here exp(x x^T)) is recomputed only once the cotangent of
    everything after f exists -- never alive beside g's own: g's backward needs three n x n
    buffers (tanh(y y^T), its cotangent, the cotangent of y y^T), and so does f's.  With a
    barrier per input the recomputation ran as soon as x existed, and its exp(x x^T) lived
    through g's backward: 4.25 n x n on the breadth-first schedule."""
    n = 256
    f = jax.checkpoint(lambda x: jnp.exp(x @ x.T) @ x)
    g = lambda y: jnp.sum(jnp.tanh(y @ y.T) @ y)
    x = jax.ShapeDtypeStruct((n, 64), jnp.float32)
    closed = jax.make_jaxpr(jax.grad(lambda v: g(f(v))))(x)
    big = _bytes(n, n)
    for s in liveness.SCHEDULES:
        pk = liveness.peak(closed, schedule=s)
        assert pk.temporaries == 3 * big, (s, pk.temporaries / big)


def test_checkpointed_steps_are_compared_with_barriers_kept():
    """A checkpointed step keeps JAX's remat barriers through XLA:CPU's scheduling (as
    XLA:GPU does); its total as XLA:CPU compiles it by default is recorded beside it and
    is larger here (the recomputation partly merged with the forward, partly run early).
    A step without barriers has no second total."""
    mod, cfg = small("transformer", n_layers=4)
    ck = mm.xla_memory(mod, cfg, 1024, 4, "checkpoint")
    sa = mm.xla_memory(mod, cfg, 1024, 4, "store_all")
    if ck is None:
        pytest.skip("this backend gives no memory analysis")
    if jax.default_backend() == "cpu":
        assert ck["xla_cpu_default_bytes"] > ck["xla_bytes"]
    assert sa["xla_cpu_default_bytes"] is None
    assert ck["xla_bytes"] < sa["xla_bytes"]


def test_the_cpu_threefry_loop_keeps_four_counter_arrays():
    """JAX lowers threefry for the CPU as a rolled loop over two uint32 counter arrays of
    the bits' shape, and XLA keeps their initial values beside the loop's own copies: a
    million uniform draws need four million-element arrays at once (XLA's own analysis
    says 4.0002 of them), not the one array of bits."""
    n = 1 << 20
    f = lambda k, x: jnp.sum(jax.random.uniform(k, (n,)) * x)
    x = jax.ShapeDtypeStruct((n,), jnp.float32)
    for key in (jax.eval_shape(lambda: jax.random.key(0)),          # typed: random_bits
                jax.ShapeDtypeStruct((2,), jnp.uint32)):             # raw: threefry2x32
        pk = liveness.peak(jax.make_jaxpr(f)(key, x), schedule="cpu")
        assert pk.temporaries == pytest.approx(4 * _bytes(n), rel=1e-3)
        ma = jax.jit(f).lower(key, x).compile().memory_analysis()
        if ma is not None and jax.default_backend() == "cpu":
            assert pk.temporaries == pytest.approx(ma.temp_size_in_bytes, rel=1e-3)


def test_a_checkpointed_stack_against_xla_with_barriers_kept():
    """A dot, a cheap value of it (stored for the layers' products), three checkpointed
    layers and the backward: ours within 5% of XLA's temporaries (6.125 against 6.25
    arrays of n x d).  With a barrier per input (the recomputations free to run while
    the forward runs) the model said 8.5."""
    from comparator.cost.compiled import BARRIERS_KEPT, compile_options_for
    n, d = 2048, 256
    w, a = jax.ShapeDtypeStruct((d, d), jnp.float32), jax.ShapeDtypeStruct((n, d), jnp.float32)
    layer = jax.checkpoint(lambda x, v: jnp.tanh(x @ v) @ v.T)

    def loss(a, w):
        y = (a @ w) * 2.0 + 1.0
        for _ in range(3):
            y = layer(y, w)
        return jnp.sum(y * y)
    f = jax.grad(loss, argnums=1)
    pk = liveness.peak(jax.make_jaxpr(f)(a, w), schedule="cpu")
    ma = jax.jit(f).lower(a, w).compile(
        {**compile_options_for(), **BARRIERS_KEPT}).memory_analysis()
    if ma is None or jax.default_backend() != "cpu":
        pytest.skip("XLA:CPU's analysis is the reference here")
    assert 0.95 <= pk.temporaries / ma.temp_size_in_bytes <= 1.05


def test_four_checkpointed_albert_layers_read_their_inputs_stored():
    """ALBERT, 4 checkpointed layers, 1,024 tokens x 4: a layer's input (a layer norm's
    output, cheap) reaches the recomputation through the barrier, so the recomputation
    reads it stored -- recomputing it from what it was made of kept those alive into the
    backward (1.035 of XLA's total here, 1.12 at width 256)."""
    mod, cfg = small("albert", n_layers=4)
    rec = mm.check(mod, cfg, 1024, 4, "checkpoint")
    if rec["xla_bytes"] is None:
        pytest.skip("this backend gives no memory analysis")
    assert 0.95 <= rec["ratio"] <= 1.05, rec["ratio"]


@pytest.mark.parametrize("policy", ["store_all", "checkpoint"])
def test_a_mixture_of_experts_step_within_tolerance(policy):
    """Mixtral's experts at width 128, 2 layers, 512 x 4: JAX lowers a ragged product for
    the CPU densely, each ragged operand broadcast to all 8 experts and masked, and the
    breadth-first schedule makes the forward activation's copy for the experts' weight
    gradient early -- it lives into the backward.  Without those copies the model said
    0.856 of XLA's total (store_all)."""
    mod = architectures.get("transformer")
    cfg = mod.resize(mod.preset("mixtral-8x7b"), d_model=128, n_layers=2, n_heads=2)
    rec = mm.check(mod, cfg, 512, 4, policy)
    if rec["xla_bytes"] is None:
        pytest.skip("this backend gives no memory analysis")
    assert TOLERANCE[0] <= rec["ratio"] <= TOLERANCE[1], rec["ratio"]
