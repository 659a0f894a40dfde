"""Roofline time per traced equation: max(FLOPs / peak, bytes / bandwidth), summed."""
import dataclasses
import math

import jax
import jax.numpy as jnp
import pytest

import architectures
from comparator.cost import catalogue as accelerators
from comparator.cli import app as cli
from comparator.cost import roofline as rl

S = jax.ShapeDtypeStruct
f32 = jnp.float32
RATES = rl.Rates(peak=1e12, vector=1e11, bandwidth=1e9, width=4)


def test_equation_times_by_hand():
    m, k, n = 8, 16, 32

    def f(x, w):
        return jnp.sum(jnp.exp((x @ w).reshape(m * n)))

    r = rl.roofline_jaxpr(jax.make_jaxpr(f)(S((m, k), f32), S((k, n), f32)), RATES)
    dot = max(2 * m * k * n / 1e12, (m * k + k * n + m * n) * 4 / 1e9)   # compute-bound? no:
    exp = max(m * n / 1e11, 2 * m * n * 4 / 1e9)                          # memory-bound
    red = max((m * n - 1) / 1e11, (m * n + 1) * 4 / 1e9)
    # the reshape is a view: no bytes, no time
    assert math.isclose(r.total.time_s, dot + exp + red, rel_tol=1e-12)
    assert r.total.flops == 2 * m * k * n + m * n + (m * n - 1)
    assert r.total.bytes == ((m * k + k * n + m * n) + 2 * m * n + (m * n + 1)) * 4
    assert r.total.time_s >= max(r.total.compute_s, r.total.memory_s)
    assert r.total.time_s <= r.total.compute_s + r.total.memory_s


def test_training_dtype_halves_float_bytes_not_integer_ones():
    def f(x, i):
        return x.sum() + i.sum()   # reduce f32, reduce i32, convert (a view), add f32

    closed = jax.make_jaxpr(f)(S((64, 8), f32), S((16,), jnp.int32))
    floats, ints = (64 * 8 + 1) + 3, 16 + 1          # elements read and written
    assert rl.roofline_jaxpr(closed, RATES).total.bytes == floats * 4 + ints * 4
    bf16 = dataclasses.replace(RATES, width=2)
    assert rl.roofline_jaxpr(closed, bf16).total.bytes == floats * 2 + ints * 4


def test_rates_from_the_catalogue():
    a100 = accelerators.get("a100-80gb")
    r = rl.Rates.of(a100, "bf16")
    assert (r.peak, r.vector, r.bandwidth, r.width) == (a100.bf16, a100.fp32,
                                                        a100.memory_bandwidth_gbs * 1e9, 2)
    tpu = accelerators.get("tpu-v3")   # no separate vector rate published: the bf16 peak
    assert rl.Rates.of(tpu, "bf16").vector == tpu.bf16


def _shallow(arch, preset, layers):
    mod = architectures.get(arch)
    return mod, dataclasses.replace(mod.preset(preset), n_layers=layers)


def test_depth_extrapolation_equals_the_full_walk():
    mod, cfg = _shallow("transformer", "bert-base", 4)   # walked at depths 1 and 2
    from comparator.count.fasttrace import abstract_inputs
    prog, params, data, rng = abstract_inputs(mod, cfg, 1, 256)
    full = rl.roofline_jaxpr(jax.make_jaxpr(prog.train_step)(params, data, rng), RATES)
    fast = rl.model_roofline(mod, cfg, 256, 1, accelerators.get("a100-80gb"), "fp32")
    ref = rl.roofline_jaxpr(jax.make_jaxpr(prog.train_step)(params, data, rng), fast.rates)
    assert fast.total.flops == ref.total.flops == full.total.flops
    assert math.isclose(fast.total.time_s, ref.total.time_s, rel_tol=1e-9)
    assert set(fast.by_term) == set(ref.by_term)


def test_softmax_at_long_sequence_and_lsh_are_memory_bound():
    a100 = accelerators.get("a100-80gb")
    mod, cfg = _shallow("transformer", "bert-base", 2)
    tr = rl.model_roofline(mod, cfg, 4096, 1, a100)
    assert tr.by_term["attn/softmax"].bound == "memory"
    assert tr.by_term["attn/softmax"].memory_bound_s == tr.by_term["attn/softmax"].time_s
    assert tr.by_term["ffn/in"].bound == "compute"      # a large matmul
    mod, cfg = _shallow("reformer", "reformer-base", 2)
    rf = rl.model_roofline(mod, cfg, 16384, 1, a100)
    lsh = {k: v for k, v in rf.by_term.items() if k.startswith("lsh/")}
    assert {"lsh/hash", "lsh/scores", "lsh/softmax"} <= set(lsh)
    assert all(v.bound == "memory" for v in lsh.values()), {k: v.bound for k, v in lsh.items()}
    assert 0 < rf.mfu_bound < 1 and 0 < tr.mfu_bound < 1


def test_roofline_command(capsys):
    assert cli.main(["roofline", "--arch", "reformer", "--seq", "2048", "--accelerator",
                     "h100-sxm", "--top", "3", "--time-model", "unfused"]) == 0
    out = capsys.readouterr().out
    assert "utilisation bound" in out and "total" in out and "memory" in out


@pytest.mark.parametrize("args,field", [
    (["--accelerator", "v100-16gb", "--dtype", "fp8"], "--dtype"),
    (["--accelerator", "x100"], "--accelerator"),
    (["--accelerator", "a100-80gb", "--top", "0"], "--top"),
    (["--accelerator", "a100-80gb", "--seq", "512,1024"], "--seq"),
])
def test_roofline_bad_values_exit_2(args, field, capsys):
    base = ["roofline", "--arch", "transformer"] + ([] if "--seq" in args else ["--seq", "128"])
    assert cli.main(base + args) == 2
    err = capsys.readouterr().err
    assert field in err and "Traceback" not in err
