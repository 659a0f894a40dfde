"""The cost model: counts -> time, dollars, energy, memory, with the arithmetic written out.

Device numbers are read from the real catalogue's Accelerator, never restated here."""
import dataclasses

import pytest

from architectures import reformer, transformer
from comparator.cost import catalogue as accelerators
from comparator.cost.pricing import (
                                     CostError,
                                     fits,
                                     memory_estimate,
                                     min_devices,
                                     tokens_to_steps,
                                     train_cost,
                                     usable_bytes,
                                     )

CAT = accelerators.load()
A100 = CAT["a100-80gb"]
FLOPS = 6 * 110e6 * 512 * 256      # a bert-base-sized step: 6 N x tokens (any number will do)


def test_time_is_flops_over_achieved_rate():
    r = train_cost(FLOPS, 1000, A100, mfu=0.5)
    step = FLOPS / (A100.peak("bf16") * 0.5 * 1)          # flops / (peak x mfu x devices)
    assert r["step_time_s"] == pytest.approx(step)
    assert r["wall_clock_s"] == pytest.approx(1000 * step)
    assert r["total_train_flops"] == FLOPS * 1000
    assert r["assumptions"]["mfu_source"] == "given"


def test_cost_is_time_times_price_and_energy_time_power_pue():
    r = train_cost(FLOPS, 1000, A100, devices=8, pue=1.2, grid_intensity=0.5)
    hours = 8 * r["wall_clock_s"] / 3600                   # device-hours = devices x hours
    assert r["device_hours"] == pytest.approx(hours)
    assert r["dollars"] == pytest.approx(hours * A100.price_per_hour)
    assert r["energy_kwh"] == pytest.approx(hours * A100.tdp_w / 1000 * 1.2)   # x PUE
    assert r["co2_kg"] == pytest.approx(r["energy_kwh"] * 0.5)
    # default MFU from the catalogue, and its source in the assumptions
    assert r["assumptions"]["mfu"] == A100.default_mfu
    assert A100.mfu_source in r["assumptions"]["mfu_source"]
    assert r["assumptions"]["price_date"] == A100.price_date
    assert r["missing"] == {}


def test_given_power_replaces_tdp():
    r = train_cost(FLOPS, 10, A100, power_w=250)
    assert r["energy_kwh"] == pytest.approx(r["device_hours"] * 0.250 * 1.1)
    assert r["assumptions"]["power_source"] == "given"


def test_runs_multiply_totals():
    one = train_cost(FLOPS, 500, A100)
    five = train_cost(FLOPS, 500, A100, runs=5)
    for k in ("wall_clock_s", "device_hours", "dollars", "energy_kwh", "co2_kg"):
        assert five[k] == pytest.approx(one[k])                       # per run unchanged
        assert five[f"{k}_all_runs"] == pytest.approx(5 * one[k])     # x runs
    assert five["total_train_flops_all_runs"] == 5 * 500 * FLOPS


def test_doubling_devices_halves_wall_clock_keeps_device_hours():
    one = train_cost(FLOPS, 100, A100, devices=4)
    two = train_cost(FLOPS, 100, A100, devices=8)
    assert two["wall_clock_s"] == pytest.approx(one["wall_clock_s"] / 2)
    assert two["device_hours"] == pytest.approx(one["device_hours"])
    assert two["dollars"] == pytest.approx(one["dollars"])


def test_missing_price_and_power_are_none_with_reason():
    mi = CAT["mi250x"]                                     # no public price in the catalogue
    r = train_cost(FLOPS, 10, mi)
    assert r["dollars"] is None and r["dollars_all_runs"] is None
    assert "no public price" in r["missing"]["dollars"] and "dollars_low" not in r
    v5e = CAT["tpu-v5e"]                                   # Google publishes no power
    r = train_cost(FLOPS, 10, v5e)
    assert r["energy_kwh"] is None and r["co2_kg"] is None and "--power" in r["missing"]["energy_kwh"]
    assert r["dollars"] == pytest.approx(r["device_hours"] * v5e.price_per_hour)
    assert train_cost(FLOPS, 10, v5e, power_w=200)["energy_kwh"] is not None


@pytest.mark.parametrize("kwargs, field", [
    ({"mfu": 1.5}, "--mfu"), ({"mfu": 0.0}, "--mfu"), ({"devices": 0}, "--devices"),
    ({"runs": 0}, "--runs"), ({"pue": 0.9}, "--pue"), ({"grid_intensity": -0.1}, "--grid-intensity"),
    ({"steps": 0}, "--steps"), ({"power_w": -5}, "--power"),
])
def test_bad_input_names_the_field(kwargs, field):
    args = {"steps": 10, **kwargs}
    steps = args.pop("steps")
    with pytest.raises(CostError) as err:
        train_cost(FLOPS, steps, A100, **args)
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}: ")


def test_dtype_the_device_lacks():
    with pytest.raises(CostError) as err:
        train_cost(FLOPS, 10, CAT["v100-16gb"], dtype="fp8")
    assert err.value.field == "--dtype" and "fp16" in err.value.allowed   # says what it has


def test_no_default_mfu_asks_for_one():
    chip = dataclasses.replace(CAT["mi300x"], default_mfu=None,
                               missing=("default_mfu: no published run (a test device)",))
    with pytest.raises(CostError) as err:
        train_cost(FLOPS, 10, chip)
    assert err.value.field == "--mfu" and "no published run" in err.value.allowed
    assert train_cost(FLOPS, 10, chip, mfu=0.4)["step_time_s"] > 0


def test_auto_dtype_is_each_devices_training_precision():
    # fp16 mixed precision where there is no bf16 (V100, T4): its tensor-core peak
    r = train_cost(FLOPS, 10, CAT["v100-16gb"], dtype="auto")
    assert r["assumptions"]["dtype"] == "fp16" and r["assumptions"]["peak_flops"] == 125e12
    assert "loss scaling" in r["assumptions"]["dtype_rule"]
    assert train_cost(FLOPS, 10, A100, dtype="auto")["assumptions"]["peak_flops"] == 312e12
    assert train_cost(FLOPS, 10, A100)["assumptions"]["dtype_rule"] == "given"   # bf16


def test_tokens_to_steps_rounds_up():
    assert tokens_to_steps(1_000_000, 8, 512) == 245      # 1e6 / 4096 = 244.14 -> 245
    assert tokens_to_steps(4096, 8, 512) == 1
    with pytest.raises(CostError):
        tokens_to_steps(100, 0, 512)


# ---------------------------------------------------------------- memory

def test_bf16_adam_is_16_bytes_per_parameter():
    p = 110_000_000
    m = memory_estimate(p, 0, 1)
    assert m["parameters"] == 2 * p and m["gradients"] == 2 * p      # bf16
    assert m["optimizer"] == 8 * p                                  # 2 fp32 moments
    assert m["master_weights"] == 4 * p                             # fp32 master copy
    assert m["total_bytes"] == (2 + 2 + 8 + 4) * p
    fp32 = memory_estimate(p, 0, 1, dtype="fp32")
    assert fp32["total_bytes"] == (4 + 4 + 8 + 0) * p               # no master copy
    assert memory_estimate(p, 0, 1, optimizer="sgd-momentum")["optimizer"] == 4 * p
    assert memory_estimate(p, 0, 1, optimizer="sgd")["optimizer"] == 0


def test_activations_scale_by_batch_and_dtype():
    m = memory_estimate(1000, 4e6, 8)
    assert m["activations"] == 4e6 * 8 * 2 / 4                      # fp32 -> bf16 halves
    assert memory_estimate(1000, 4e6, 8, dtype="fp32")["activations"] == 4e6 * 8


def test_zero1_divides_only_the_optimizer_part():
    one = memory_estimate(10**8, 1e6, 4, zero=True, devices=1)
    eight = memory_estimate(10**8, 1e6, 4, zero=True, devices=8)
    assert eight["optimizer"] == one["optimizer"] / 8
    assert eight["master_weights"] == one["master_weights"] / 8
    for part in ("parameters", "gradients", "activations"):
        assert eight[part] == one[part]
    assert memory_estimate(10**8, 1e6, 4, devices=8)["optimizer"] == one["optimizer"]  # no zero


def test_checkpoint_beats_store_all_for_deep_models():
    cfg = transformer.preset("gpt2-xl")                             # 48 layers
    seq, L = 1024, cfg.n_layers
    act = transformer.activation_bytes(cfg, seq)                   # fp32, one sequence
    boundary = seq * cfg.d_model * 4                               # one layer's fp32 input
    p = transformer.params(cfg)
    full = memory_estimate(p, act, 4)
    ck = memory_estimate(p, act, 4, policy="checkpoint", layers=L,
                         layer_boundary_bytes_per_seq=boundary)
    # L inputs + one layer's share, both at bf16 width
    assert ck["activations"] == pytest.approx((boundary * 4 * L + act * 4 / L) * 2 / 4)
    assert ck["activations"] < full["activations"] / 5
    with pytest.raises(CostError) as err:
        memory_estimate(p, act, 4, policy="checkpoint")
    assert err.value.field == "--policy"


def test_reversible_takes_the_given_bytes():
    cfg = reformer.preset(next(iter(reformer.PRESETS)))
    act = reformer.activation_bytes(cfg, 4096)
    m = memory_estimate(reformer.params(cfg, 4096), act, 2, policy="reversible")
    assert m["activations"] == act * 2 * 2 / 4


def test_fits_uses_headroom_of_device_memory():
    cap = A100.memory_gb * 1e9
    p = int(cap * 0.85 / 16)                                       # 85% of memory at 16 B/param
    m = memory_estimate(p, 0, 1)
    assert fits(m, A100)                                           # 0.85 <= 0.9
    assert not fits(m, A100, headroom=0.8)
    assert usable_bytes(A100) == 0.9 * cap


def test_min_devices_and_its_monotonicity():
    cfg = transformer.preset("bert-large")
    act = transformer.activation_bytes(cfg, 512)
    p = transformer.params(cfg)
    r = min_devices(p, act, 256, A100)
    d = r["devices"]
    assert d is not None and fits(r["estimate"], A100)
    if d > 1:                                                      # one fewer does not fit
        fewer = memory_estimate(p, act, -(-256 // (d - 1)))
        assert not fits(fewer, A100)
    # more sequences never need fewer devices; a bigger device never needs more
    counts = [min_devices(p, act, b, A100)["devices"] for b in (64, 128, 256, 512, 1024)]
    assert counts == sorted(counts)
    assert min_devices(p, act, 1024, CAT["h200"])["devices"] <= counts[-1]
    # ZeRO-1 never needs more devices than plain data parallelism
    assert min_devices(p, act, 1024, A100, zero=True)["devices"] <= counts[-1]


def test_min_devices_says_why_it_cannot_fit():
    big = dataclasses.replace(transformer.preset("gpt2-xl"), n_layers=400)   # ~6B params
    p = transformer.params(big)
    act = transformer.activation_bytes(big, 1024)
    r = min_devices(p, act, 64, CAT["t4"])
    assert r["devices"] is None
    assert "parameters + gradients" in r["reason"] and "t4" in r["reason"]


def test_memory_policy_and_zero_through_with_cost():
    """with_cost's memory is the traced step's peak under the policy (run.fits): its parts
    are stepmemory's at the per-device batch, bf16, memory-minimising schedule; the policy
    is said; checkpointing needs less; ZeRO-1 divides the moments; the largest batch and
    length per device fit and one more sequence does not."""
    from architectures import transformer as tr
    from comparator.cost import catalogue as accelerators
    from comparator.cost import stepmemory as sm
    from comparator.run import costing, sweep
    cfg = dataclasses.replace(tr.preset("bert-base"), n_layers=4)
    pt = sweep.Point("transformer", "bert-base", 512, 8, cfg)
    rec = sweep.analytic(pt, "matmul")
    a100 = accelerators.get("a100-80gb")
    ck = costing.with_cost(rec, a100, 10, policy="checkpoint", cfg=cfg)
    full = costing.with_cost(rec, a100, 10, cfg=cfg, largest=True)
    assert costing.with_cost(rec, a100, 10, cfg=cfg)["max_batch_per_device"] is None
    est = sm.estimate(tr, cfg, 512, 8, "checkpoint", "bf16", "memory")
    assert ck["memory_bytes_per_device"] == est["estimated_bytes"]
    assert {k: ck["memory"][k] for k in sm.PARTS} == {k: est[k] for k in sm.PARTS}
    assert (ck["memory_policy"], full["memory_policy"]) == ("checkpoint", "store_all")
    assert ck["memory_bytes_per_device"] < full["memory_bytes_per_device"]
    assert "traced step peak" in ck["memory_model"]
    z = costing.with_cost(rec, a100, 10, devices=4, zero=True, cfg=cfg)
    two = sm.estimate(tr, cfg, 512, 2, "store_all", "bf16", "memory")
    assert z["memory"]["optimizer"] == two["optimizer"] / 4        # Adam state / devices
    assert z["memory_bytes_per_device"] == two["estimated_bytes"] - two["optimizer"] * 3 / 4
    usable = 0.9 * a100.memory_gb * 1e9
    b = full["max_batch_per_device"]
    assert sm.estimate(tr, cfg, 512, b, "store_all", "bf16", "memory")["estimated_bytes"] \
        <= usable < sm.estimate(tr, cfg, 512, b + 1, "store_all", "bf16",
                                "memory")["estimated_bytes"]
    n = full["max_seq_per_device"]
    assert sm.estimate(tr, cfg, n, 1, "store_all", "bf16", "memory")["estimated_bytes"] \
        <= usable < sm.estimate(tr, cfg, 2 * n, 1, "store_all", "bf16",
                                "memory")["estimated_bytes"]
    with pytest.raises(sweep.RequestError, match="--policy"):
        costing.with_cost(rec, a100, 10, policy="reversible", cfg=cfg)


def test_reformer_policies_give_different_memory():
    """Issue 18: cost --policy store_all|checkpoint|reversible differ for the Reformer."""
    from architectures import reformer as rf
    from comparator.cost import catalogue as accelerators
    from comparator.run import costing, sweep
    cfg = dataclasses.replace(rf.preset("reformer-base"), n_layers=6)
    rec = sweep.analytic(sweep.Point("reformer", "reformer-base", 4096, 4, cfg), "matmul")
    mem = {p: costing.with_cost(rec, accelerators.get("a100-80gb"), 1, policy=p, cfg=cfg)
           for p in rf.POLICIES}
    got = {p: m["memory_bytes_per_device"] for p, m in mem.items()}
    assert got["store_all"] > 2 * got["reversible"] and got["store_all"] > 2 * got["checkpoint"]
    assert len(set(got.values())) == 3
    assert costing.with_cost(rec, accelerators.get("a100-80gb"), 1, cfg=cfg)[
        "memory_policy"] == "reversible"


def test_a_sweep_sizes_its_baseline_under_the_baselines_own_policy(capsys):
    """sweep --arch reformer --policy reversible --accelerator: the Reformer is sized
    reversible, its Transformer baseline (which has no reversible stack) under its own
    default, and each record says which; a model asked for by name must have the policy."""
    import json

    from comparator.cli import app as cli
    args = ["sweep", "--arch", "reformer", "--seq", "1024", "--d-model", "64", "--layers", "2",
            "--accelerator", "a100-80gb", "--time-model", "mfu", "--format", "json"]
    assert cli.main(args + ["--policy", "reversible"]) == 0
    recs = json.loads(capsys.readouterr().out)
    assert {(r["arch"], r["memory_policy"]) for r in recs} == {("reformer", "reversible"),
                                                              ("transformer", "store_all")}
    assert cli.main(args + ["--policy", "checkpoint"]) == 0      # both have it
    assert {r["memory_policy"] for r in json.loads(capsys.readouterr().out)} == {"checkpoint"}
    assert cli.main([*args[:2], "transformer,reformer", *args[3:], "--policy",
                     "reversible"]) == 2
    assert "--policy" in capsys.readouterr().err


def test_checkpointing_is_timed_and_counted_as_recomputed(capsys):
    """cost --policy checkpoint: the time model compiles the checkpointed step (each
    layer's forward runs again in the backward) and the hardware FLOPs count it (PaLM
    App. B: HFU adds rematerialisation); the model FLOPs do not change."""
    import json

    from architectures import transformer as tr
    from comparator.cli import app as cli
    from comparator.count import utilisation as ut
    args = ["cost", "--arch", "transformer", "--d-model", "64", "--layers", "2", "--seq",
            "256", "--steps", "1", "--accelerator", "a100-80gb", "--format", "json"]
    got = {}
    for policy in ("store_all", "checkpoint"):
        assert cli.main(args + ["--policy", policy]) == 0
        (got[policy],) = json.loads(capsys.readouterr().out)
    full, ck = got["store_all"], got["checkpoint"]
    assert ck["step_time_s"] > full["step_time_s"]
    cfg = tr.resize(tr.preset("bert-base"), d_model=64, n_layers=2, n_heads=None, d_ff=None)
    terms = tr.terms(cfg, 1, 256)
    model, again = ut.split(terms, "matmul", "checkpoint")
    assert ck["model_flops_per_device"] == full["model_flops_per_device"] == model
    assert ck["hardware_flops_per_device"] == again
    assert again - model == sum(t.fwd("matmul") for name, t in terms.items()
                                if ut.layer_term(name))
    assert full["hardware_flops_per_device"] == ut.split(terms, "matmul")[1]
