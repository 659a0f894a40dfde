"""`comparator bench`: real jit-compiled training steps, timed (no time is asserted)."""
import pytest

from helpers import FAST_COMPILE

import architectures
from comparator.cost import compiled as cs
from comparator.measure import bench
from comparator.cli import app as cli

TINY = dict(d_model=64, n_layers=2, n_heads=2, d_ff=None)


@pytest.mark.parametrize("arch", architectures.NAMES)
def test_bench_step_runs_every_architecture(arch):
    mod = architectures.get(arch)
    cfg = mod.resize(mod.preset(mod.DEFAULT_PRESET), **TINY)
    seq = 64 if arch == "reformer" else 32
    r = bench.bench_step(mod, cfg, seq, 2, steps=2, peak=1e12, compile_options=FAST_COMPILE)
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
    for args, field in ((["--dtype", "fp8"], "--dtype"), (["--steps", "0"], "--steps"),
                        (["--memory-limit", "x"], "--memory-limit")):
        assert cli.main(["bench", "--arch", "reformer", "--seq", "64", *args]) == 2
        err = capsys.readouterr().err
        assert field in err and "Traceback" not in err


def test_measured_peak_is_a_rate():
    for dtype in ("fp32", "bf16"):
        assert bench.matmul_peak(n=128, repeat=2, dtype=dtype) > 1e6   # FLOP/s, any machine


@pytest.mark.parametrize("arch", architectures.NAMES)
def test_bf16_step_computes_in_bf16_with_fp32_master_weights_and_loss(arch):
    import jax
    import jax.numpy as jnp
    mod = architectures.get(arch)
    cfg = mod.resize(mod.preset(mod.DEFAULT_PRESET), **TINY)
    seq = 128 if arch == "reformer" else 32     # the Reformer hashes beyond one chunk (64)
    compiled, (params, data, key), _ = bench.prepare_step(mod, cfg, seq, 2, dtype="bf16",
                                                          compile_options=FAST_COMPILE)
    loss, grads = compiled(params, data, key)
    assert loss.dtype == jnp.float32 and bool(jnp.isfinite(loss))
    assert {g.dtype for g in jax.tree.leaves(grads)} == {jnp.dtype(jnp.float32)}
    hlo = jax.jit(cs.step_function(mod.model(cfg), "bf16")).lower(params, data, key)
    dots = [ln for ln in hlo.as_text().splitlines() if "dot_general" in ln]
    low = [ln for ln in dots if "bf16>" in ln.rsplit("->", 1)[-1]]
    # every contraction is bf16 but the Reformer's hashing (its rotations are drawn fp32):
    # once per LSH layer (the recomputation reuses the forward's buckets)
    hashing = cfg.n_layers if arch == "reformer" else 0
    assert len(dots) - len(low) == hashing and low


def test_bf16_bench_record():
    mod = architectures.get("transformer")
    cfg = mod.resize(mod.preset(mod.DEFAULT_PRESET), **TINY)
    r = bench.bench_step(mod, cfg, 32, 2, steps=2, peak=1e12, compile_options=FAST_COMPILE,
                         dtype="bfloat16")
    assert r["skipped"] is None and r["dtype"] == "bf16" and r["steps"] == 2
    assert r["train_flops"] == mod.flops(cfg, 32, 2, "matmul").train   # same FLOPs as fp32


def test_fp16_reformer_is_skipped_with_the_reason():
    mod = architectures.get("reformer")
    cfg = mod.resize(mod.preset(mod.DEFAULT_PRESET), **TINY)
    r = bench.bench_step(mod, cfg, 64, 1, dtype="fp16")
    assert "fp16" in r["skipped"] and "mask" in r["skipped"]


def test_attention_kernel_bench_tiny():
    from comparator.measure import kernelbench as kb
    recs, cross = kb.run([64], heads=1, d_head=16, chunk=32, hashes=(1,), steps=1,
                         only=("dense", "chunked", "lsh-1"))
    by = {(r["variant"], r["seq_len"]): r for r in recs}
    assert set(by) == {(v, 64) for v in ("dense", "chunked", "lsh-1")}
    for n in (64,):
        d = by[("dense", n)]
        assert d["fwd_flops"] == 2 * n * n * 16 * 2          # scores + context, 2 FLOPs a MAC
        assert by[("chunked", n)]["fwd_flops"] == d["fwd_flops"]   # same product, by chunks
        assert d["train_flops"] > d["fwd_flops"] and d["fwd_s"] > 0 and d["train_s"] > 0
        assert not d["train_unsupported"] and not by[("lsh-1", n)]["train_unsupported"]
    assert set(cross) == {"chunked", "lsh-1"} and cross["chunked"]["flops_train"] is None


def test_crossover_is_the_first_length_from_which_lsh_stays_ahead():
    from comparator.measure.kernelbench import crossover
    t = {("dense", 1): 1, ("lsh", 1): 2, ("dense", 2): 2, ("lsh", 2): 1,
         ("dense", 4): 4, ("lsh", 4): 5, ("dense", 8): 8, ("lsh", 8): 3, ("dense", 16): 16,
         ("lsh", 16): 4}
    recs = [{"variant": v, "seq_len": n, "train_s": x, "skipped": None}
            for (v, n), x in t.items()]
    assert crossover(recs, "lsh", "train_s") == 8      # ahead at 2, behind at 4, ahead from 8
    assert crossover(recs[:6], "lsh", "train_s") is None


def test_kernel_bench_skips_what_does_not_fit_or_divide(capsys):
    from comparator.measure import kernelbench as kb
    recs, cross = kb.run([64], heads=1, d_head=8, chunk=32, hashes=(1,), steps=1,
                         memory_limit=kb.dense_bytes(64, 1, 1) - 1, only=("dense", "lsh-1"))
    skipped = {r["variant"]: r["skipped"] for r in recs}
    assert "GB limit" in skipped["dense"] and skipped["lsh-1"] is None
    assert cross["lsh-1"]["measured_train"] is None          # no dense point to beat
    # 300 tokens fill no chunk of 64, no flash block of 128, no local window of 256; the
    # dense kernels do not fit 1 byte: Linformer and Performer alone run
    assert cli.main(["bench", "--kernel", "attention", "--seq", "300", "--steps", "1",
                     "--memory-limit", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("not a multiple of the chunk 64") == 5    # chunked, 4 LSH
    assert out.count("not a multiple of the block 128") == 2   # flash, causal or not
    assert out.count("not a multiple of the window 256") == 1
    assert out.count("GB limit") == 2                          # dense, causal or not
    for args, field in ((["--kernel", "conv"], "--kernel"),
                        (["--kernel", "attention", "--arch", "reformer"], "--arch"),
                        (["--kernel", "attention", "--hashes", "0"], "--hashes")):
        assert cli.main(["bench", "--seq", "128", *args]) == 2
        err = capsys.readouterr().err
        assert field in err and "Traceback" not in err


def _calibration_file(tmp_path, recs):
    import json
    p = tmp_path / "bench.json"
    p.write_text(json.dumps(recs))
    return str(p)


def test_cost_with_a_calibration_uses_the_measured_utilisation(tmp_path, capsys):
    import json

    from comparator.cost import catalogue as accelerators
    a100 = accelerators.get("a100-80gb")
    measured = [{"arch": "transformer", "accelerator": "a100-80gb", "dtype": "fp32",
                 "utilisation": u, "skipped": None} for u in (0.2, 0.4, 0.3)]
    other = {"arch": "reformer", "accelerator": "a100-80gb", "dtype": "fp32",
             "utilisation": 0.9, "skipped": None}
    path = _calibration_file(tmp_path, measured + [other])
    args = ["cost", "--arch", "transformer", "--seq", "512", "--steps", "1000",
            "--accelerator", "a100-80gb", "--dtype", "fp32", "--calibration", path]
    assert cli.main([*args, "--format", "json"]) == 0
    [r] = json.loads(capsys.readouterr().out)
    assert r["assumptions"]["mfu"] == 0.3                 # the median of transformer's points
    assert r["assumptions"]["mfu_source"].startswith("calibration: median of 3")
    assert r["step_time_s"] == r["train_flops"] / (a100.fp32 * 0.3)
    # a dtype the file has no points for (it says what it has), --mfu beside it, no file
    base = args[:-4]   # without --dtype and --calibration
    err = cli_error([*base, "--dtype", "bf16", "--calibration", path], capsys)
    assert "--calibration" in err and "a100-80gb at fp32" in err and "Traceback" not in err
    assert "--mfu" in cli_error([*args, "--mfu", "0.5"], capsys)
    assert "--calibration" in cli_error([*args[:-1], str(tmp_path / "none.json")], capsys)


def cli_error(argv, capsys):
    assert cli.main(argv) == 2
    return capsys.readouterr().err


def test_bench_labels_records_with_the_catalogue_device(capsys):
    import json
    assert cli.main(["bench", "--arch", "reformer", "--seq", "64", "--accelerator",
                     "a100-80gb", "--memory-limit", "1", "--format", "json"]) == 0
    [r] = json.loads(capsys.readouterr().out)
    assert r["accelerator"] == "a100-80gb" and r["skipped"] and r["dtype"] == "fp32"
    assert cli.main(["bench", "--arch", "reformer", "--seq", "64", "--accelerator", "h200",
                     "--dtype", "bf16", "--memory-limit", "1", "--format", "json"]) == 0
    [r] = json.loads(capsys.readouterr().out)
    assert r["dtype"] == "bf16" and r["peak_source"].startswith("catalogue: h200 bf16")
    err = cli_error(["bench", "--arch", "reformer", "--seq", "64", "--accelerator", "tpu-v3"],
                    capsys)
    assert "--accelerator" in err and "fp32" in err


def test_attention_kernel_bench_runs_the_zoo():
    """Flash, local, Linformer, Performer and causal flash beside dense: traced FLOPs as the
    formulas say, the causal ones compared with causal dense."""
    from comparator.measure import kernelbench as kb
    n, B, dh = 64, 16, 8
    recs, cross = kb.run([n], heads=1, d_head=dh, chunk=32, hashes=(), steps=1,
                         sizes=dict(block=B, window=16, proj_len=8, features=4))
    by = {r["variant"]: r for r in recs}
    assert set(by) == {"dense", "chunked", *kb.ZOO, *kb.CAUSAL}
    assert not any(r["skipped"] or r["train_unsupported"] for r in recs)
    S = 2 * n * n * dh                                       # one n x n contraction
    assert by["flash"]["fwd_flops"] == by["dense"]["fwd_flops"] == 2 * S
    # "train" is the gradient alone: dense's drops the unused p v; flash's needs its output
    # (D = rowsum(do * o)) and recomputes the scores: 7 contractions against 5
    assert by["dense"]["train_flops"] == 5 * S and by["flash"]["train_flops"] == 7 * S
    nq = n // B
    assert by["flash-causal"]["fwd_flops"] == 2 * S * (nq + 1) // (2 * nq)   # blocks skipped
    assert by["local"]["fwd_flops"] == 2 * 2 * n * 3 * 16 * dh               # 3 windows
    assert by["linformer"]["fwd_flops"] == 4 * 2 * 8 * n * dh                # E k, F v, 2 x attn
    assert by["performer"]["fwd_flops"] == 4 * 2 * n * 4 * dh + 2 * n * 4    # + normaliser
    assert (by["flash"]["block"], by["local"]["window"], by["linformer"]["proj_len"],
            by["performer"]["features"]) == (B, 16, 8, 4)
    assert cross["flash-causal"]["baseline"] == "dense-causal"
    assert cross["flash-causal"]["flops_train"] == n               # 7/6 x 5/8 < 1 already
    assert cross["flash"]["flops_train"] is None                   # never fewer than dense
    assert set(cross) == {"chunked", *kb.ZOO, "flash-causal"}
