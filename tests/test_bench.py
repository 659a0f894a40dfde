"""`comparator bench`: real jit-compiled training steps, timed (no time is asserted)."""
import pytest

import architectures
from comparator import bench, cli

TINY = dict(d_model=64, n_layers=2, n_heads=2, d_ff=None)


@pytest.mark.parametrize("arch", architectures.NAMES)
def test_bench_step_runs_every_architecture(arch):
    mod = architectures.get(arch)
    cfg = mod.resize(mod.preset(mod.DEFAULT_PRESET), **TINY)
    seq = 64 if arch == "reformer" else 32
    r = bench.bench_step(mod, cfg, seq, 2, steps=2, peak=1e12)
    assert r["skipped"] is None and r["steps"] == 2
    assert 0 < r["step_s_min"] <= r["step_s"] <= r["step_s_max"]
    assert r["tokens_per_s"] == 2 * seq / r["step_s"]
    # the FLOPs are the traced count of the same step, equal to the analytic one
    assert r["train_flops"] == mod.flops(cfg, seq, 2, "matmul").train
    assert r["achieved_flops"] == r["train_flops"] / r["step_s"]
    assert r["utilisation"] == r["achieved_flops"] / 1e12
    assert r["params"] == mod.params(cfg, seq)
    assert r["xla_temp_bytes"] > 0 and r["xla_argument_bytes"] > 4 * r["params"]


def test_a_point_over_the_memory_limit_is_skipped_not_run():
    mod = architectures.get("transformer")
    cfg = mod.preset("bert-large")
    need = bench.estimate_bytes(mod, cfg, 16384, 8)
    # fp32 parameters and gradients, plus the saved activations
    assert need == 2 * 4 * mod.params(cfg, 16384) + mod.activation_bytes(cfg, 16384, 8)
    r = bench.bench_step(mod, cfg, 16384, 8, memory_limit=10**9)
    assert r["skipped"] and "limit" in r["skipped"] and "step_s" not in r


def test_bench_command(capsys):
    assert cli.main(["bench", "--arch", "transformer", "--preset", "bert-large", "--seq",
                     "16384", "--memory-limit", "1e9"]) == 0
    out = capsys.readouterr().out
    assert "skipped" in out and "limit" in out
    for args, field in ((["--dtype", "bf16"], "--dtype"), (["--steps", "0"], "--steps"),
                        (["--memory-limit", "x"], "--memory-limit")):
        assert cli.main(["bench", "--arch", "reformer", "--seq", "64", *args]) == 2
        err = capsys.readouterr().err
        assert field in err and "Traceback" not in err


def test_measured_peak_is_a_rate():
    assert bench.matmul_peak(n=128, repeat=2) > 1e6   # FLOP/s, on any machine
