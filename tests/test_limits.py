"""Bounds before work (comparator.run.limits): a point's needs estimated before tracing or
benchmarking -- layers one trace unrolls, host arrays, a step's memory -- and refused
above the limits with the estimate and the option that raises them."""
import contextlib
import io
import time

import pytest

import architectures
from architectures.config import target_len
from comparator.cli import app as cli
from comparator.measure.bench import estimate_bytes
from comparator.run import limits, runner, sweep
from comparator.run.limits import LimitError, Limits


def _pt(arch, seq=128, **size):
    mod = architectures.get(arch)
    cfg = mod.resize(mod.PRESETS[mod.DEFAULT_PRESET][0], **size) if size else \
        mod.PRESETS[mod.DEFAULT_PRESET][0]
    return sweep.Point(arch, "p", seq, 1, cfg)


def test_model_layers_count_every_network():
    t5 = architectures.get("transformer").PRESETS["t5-small"][0]
    assert limits.model_layers("transformer", t5) == 6 + 6          # encoder + decoder
    electra = architectures.get("electra").PRESETS["electra-small"][0]
    assert limits.model_layers("electra", electra) == 2 * 12        # generator + discriminator


def test_t5_relative_buckets_are_length_squared():
    t5 = architectures.get("transformer").PRESETS["t5-small"][0]
    t = target_len(4096)
    assert limits.host_bytes("transformer", t5, 4096) == 32 * (4096 * 4096 + t * t)
    bert = architectures.get("transformer").PRESETS["bert-base"][0]
    assert limits.host_bytes("transformer", bert, 4096) == 0       # no host arrays


def test_fast_traces_of_reducible_models_unroll_a_few_layers():
    n = limits.needs(_pt("albert", d_model=64, n_layers=5000), "trace", "fast")
    assert n.layers <= 3 and "shallow" in n.how
    n = limits.needs(_pt("albert", d_model=64, n_layers=5000), "trace", "full")
    assert n.layers == 5000
    n = limits.needs(_pt("albert", d_model=64, n_layers=5000), "trace", "checked")
    assert n.layers == 5000


def test_a_benchmark_needs_its_step_memory():
    pt = _pt("transformer", seq=256, d_model=64, n_layers=2)
    n = limits.needs(pt, "bench")
    assert n.step_bytes == estimate_bytes(architectures.get("transformer"), pt.cfg, 256, 1)
    assert n.layers == 2
    with pytest.raises(LimitError) as e:
        limits.check(pt, "bench", limits=Limits(memory=n.step_bytes - 1))
    assert "--memory-limit" in e.value.allowed


def test_a_trace_of_too_many_layers_is_refused_before_any_work():
    pt = _pt("transformer", d_model=64, n_layers=limits.MAX_LAYERS + 1)   # jitted layers
    t = time.monotonic()
    with pytest.raises(LimitError) as e:
        limits.check(pt, "trace", "fast")
    assert time.monotonic() - t < 10
    assert e.value.field == f"transformer:p seq 128 batch 1 (fast trace)"
    assert e.value.value == f"{limits.MAX_LAYERS + 1:,} unrolled layers"
    assert e.value.allowed.startswith(f"at most {limits.MAX_LAYERS:,} layers unrolled")
    assert e.value.allowed.endswith(f"--max-unrolled-layers {limits.MAX_LAYERS + 1} raises "
                                    "the limit")
    assert limits.check(pt, "trace", "fast", Limits(layers=limits.MAX_LAYERS + 1)).layers \
        == limits.MAX_LAYERS + 1


def test_host_memory_is_checked_against_the_limit():
    pt = sweep.Point("transformer", "t5-small", 1 << 20, 1,
                     architectures.get("transformer").PRESETS["t5-small"][0])
    need = limits.host_bytes("transformer", pt.cfg, 1 << 20)
    with pytest.raises(LimitError) as e:
        limits.check(pt, limits=Limits(memory=need - 1))
    assert f"--memory-limit {need} raises the limit" in e.value.allowed
    assert limits.check(pt, limits=Limits(memory=need)).host_bytes == need


def test_the_command_line_refuses_a_deep_trace_with_exit_2():
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main(["sweep", "--arch", "transformer", "--d-model", "64", "--layers",
                       "100000", "--seq", "64", "--method", "traced", "--no-cache"])
    assert rc == 2 and len(err.getvalue().strip().splitlines()) == 1
    assert "'100,000 unrolled layers' is not allowed; at most 2,048" in err.getvalue()


def test_a_limit_met_on_a_worker_is_transient():
    pt = sweep.Point("transformer", "t5-small", 512, 1,
                     architectures.get("transformer").PRESETS["t5-small"][0])
    out = runner.trace_group([pt], "matmul", "fast", Limits(memory=1))
    assert out["transient"] and "memory" in out["error"]


def test_limits_are_checked():
    for bad in (dict(layers=0), dict(layers=True), dict(memory=-1), dict(memory=1.5)):
        with pytest.raises(LimitError):
            Limits(**bad)


def _cli(*args):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main(list(args))
    return rc, err.getvalue()


def test_the_limits_are_options_of_traced_sweeps():
    deep = ["sweep", "--arch", "transformer", "--d-model", "64", "--layers", "1500", "--seq",
            "64", "--method", "traced", "--no-cache", "--no-baseline"]
    rc, err = _cli(*deep, "--max-unrolled-layers", "1000")
    assert rc == 2 and "at most 1,000 layers unrolled in one trace" in err
    t5 = ["sweep", "--arch", "transformer", "--preset", "t5-small", "--seq", "8192",
          "--method", "traced", "--no-cache", "--no-baseline"]
    rc, err = _cli(*t5, "--memory-limit", "1e9")
    need = limits.host_bytes("transformer", architectures.get("transformer").PRESETS[
        "t5-small"][0], 8192)
    assert rc == 2 and f"at most the 1 GB limit" in err and f"--memory-limit {need}" in err
    rc, err = _cli("sweep", "--arch", "transformer", "--seq", "64", "--max-unrolled-layers",
                   "10")
    assert rc == 2 and "only with --method traced or both" in err
