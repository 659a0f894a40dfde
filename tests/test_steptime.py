"""The time model in the cost commands (comparator/cost/steptime.py, cli_time.py): depth
extrapolation arithmetic, retargeting to an accelerator's dtype, the regions kept in the
store, and the commands end to end at tiny sizes (no wall-clock time is asserted)."""
import dataclasses
import json

import pytest

from comparator.cli import app as cli
from comparator.cost import steptime
from comparator.cost.regions import Region
from comparator.cost.timemodel import StepTime


def _st(total, terms, mem, bound, flops, util):
    return StepTime(total_s=total, term_s=terms, term_memory_share=mem, bound_share=bound,
                    matmul_flops=flops, utilisation=util, device="h100-sxm", calibrated=False)


def test_depth_extrapolation_is_term_by_term_arithmetic():
    # t(L) = t(a) + (q - 1) (t(a + p) - t(a)): coefficients (1 - m, m) with m = q - 1 = 5
    a = _st(3.0, {"attn/qkv": 1.0, "ffn/in": 2.0}, {"attn/qkv": 0.5, "ffn/in": 0.0},
            {"compute": 2 / 3, "memory": 1 / 3, "overhead": 0.0}, 100, 0.5)
    b = _st(5.0, {"attn/qkv": 2.0, "ffn/in": 3.0}, {"attn/qkv": 0.5, "ffn/in": 0.0},
            {"compute": 0.6, "memory": 0.4, "overhead": 0.0}, 180, 0.45)
    c = steptime.combine([(1 - 5, a), (5, b)])
    assert c.term_s == {"attn/qkv": pytest.approx(1 + 5 * (2 - 1)),
                        "ffn/in": pytest.approx(2 + 5 * (3 - 2))}
    assert c.total_s == pytest.approx(3 + 5 * (5 - 3))
    assert c.matmul_flops == 100 + 5 * (180 - 100)
    # memory-bound seconds add like the terms: 0.5 x 1 + 5 (0.5 x 2 - 0.5 x 1) = 3 of 6
    assert c.term_memory_share["attn/qkv"] == pytest.approx(3 / 6)
    assert c.bound_share["memory"] == pytest.approx((1 + 5 * (2 - 1)) / 13)
    # the best matmul rate is the parts' (flops / (util x total)): 100 / (0.5 x 3)
    assert c.utilisation == pytest.approx(500 / (13 * (100 / 1.5)))


def test_retarget_runs_upcast_contractions_in_the_training_dtype():
    mm = Region("dot.1", "matmul", "ffn/in", 2 * 64 * 64 * 64, 0, 3 * 64 * 64 * 4,
                (64, 64, 64, 1), "fp32")
    ew = Region("fusion.2", "elementwise", "norm/attn", 10, 0, 800, None, "fp32")
    gpu = dataclasses.replace(_profile(), kind="gpu")
    out = steptime.retarget([mm, ew], "bf16", gpu)
    assert out[0].dtype == "bf16" and out[0].bytes == 3 * 64 * 64 * 2 and out[1] == ew
    assert steptime.retarget([mm, ew], "bf16", _profile()) == [mm, ew]   # a CPU profile
    assert steptime.retarget([mm, ew], "fp32", gpu) == [mm, ew]


def _profile():
    from comparator.cost.profile import DeviceProfile, MatmulPoint
    return DeviceProfile(device="cpu: test", kind="cpu", calibrated=True, source="test",
                         date="2026-12-07", software={},
                         matmul=(MatmulPoint(64, 64, 64, 1, "fp32", 1e10),
                                 MatmulPoint(1024, 1024, 1024, 1, "fp32", 1e11)),
                         bandwidth=1e10, vector_flops=1e10, transcendentals=1e9,
                         sort=1e8, gather=1e9, scatter=1e9, overhead_s=1e-6)


def test_regions_round_trip_through_the_store(tmp_path):
    from comparator.run.store import Store
    regs = [Region("dot.1", "matmul", "ffn/in", 8, 0, 48, (2, 2, 2, 1), "fp32", count=3),
            Region("sort.2", "sort", "lsh/sort", 0, 0, 64, None, "int32", keys=16, op="sort")]
    s = Store(str(tmp_path / "r.db"))
    what = ("reformer", "cfg", 256, 1, "bf16")
    assert s.get_regions(what) is None
    s.put_regions(what, regs)
    assert Store(str(tmp_path / "r.db")).get_regions(what) == regs


TINY = ["--d-model", "64", "--layers", "2", "--heads", "2"]


def test_sweep_prices_by_the_time_model_and_compares_time_with_the_baseline(capsys):
    assert cli.main(["sweep", "--arch", "reformer", "--seq", "256", *TINY, "--accelerator",
                     "h100-sxm", "--format", "json"]) == 0
    recs = json.loads(capsys.readouterr().out)
    assert len(recs) == 2                                # the dense baseline and the Reformer
    for r in recs:
        a = r["assumptions"]
        assert a["time_model"] == "roofline" and a["profile"] == "h100-sxm"
        assert a["calibrated"] is False and "XLA:CPU" in a["regions"]
        assert r["step_time_s"] > 0 and 0 <= r["memory_bound_share"] <= 1
        assert sum(r["time_breakdown_s"].values()) == pytest.approx(r["step_time_s"])
        # the MFU it implies: training FLOPs / (step time x peak)
        assert a["mfu"] == pytest.approx(r["train_flops"] / (r["step_time_s"] * a["peak_flops"]))
    ref, base = (next(r for r in recs if r["arch"] == k) for k in ("reformer", "transformer"))
    assert ref["ratio_time"] == pytest.approx(ref["step_time_s"] / base["step_time_s"])
    assert ref["ratio_dollars"] == pytest.approx(ref["dollars"] / base["dollars"])
    # the flat model keeps the FLOP ratio
    assert cli.main(["sweep", "--arch", "reformer", "--seq", "256", *TINY, "--accelerator",
                     "h100-sxm", "--time-model", "mfu", "--format", "json"]) == 0
    flat = {r["arch"]: r for r in json.loads(capsys.readouterr().out)}
    assert flat["reformer"]["ratio_time"] == pytest.approx(flat["reformer"]["ratio_train"])
    assert flat["reformer"]["assumptions"]["time_model"] == "mfu"
    assert cli.main(["sweep", "--arch", "reformer", "--seq", "256", *TINY, "--accelerator",
                     "h100-sxm"]) == 0
    text = capsys.readouterr().out
    assert "h100-sxm (uncalibrated)" in text and "memory-bound" in text


def test_roofline_and_cost_by_the_time_model(capsys):
    args = ["--arch", "transformer", "--seq", "64", *TINY, "--accelerator", "a100-80gb",
            "--format", "json"]
    assert cli.main(["roofline", *args]) == 0
    rows = json.loads(capsys.readouterr().out)
    total = rows[-1]
    assert total["term"] == "total" and total["time_model"] == "roofline"
    assert total["preset"] == "bert-base@d64L2h2"               # the size the options give
    assert sum(r["time s"] for r in rows[:-1]) == pytest.approx(total["time s"])
    assert total["calibrated"] is False and total["profile"] == "a100-80gb"
    # cost of 1,000 steps: the same predicted step, x 1,000
    assert cli.main(["cost", *args, "--steps", "1000"]) == 0
    (rec,) = json.loads(capsys.readouterr().out)
    assert rec["step_time_s"] == pytest.approx(total["time s"])
    assert rec["wall_clock_s"] == pytest.approx(1000 * rec["step_time_s"])
    assert rec["assumptions"]["time_model"] == "roofline"


@pytest.mark.parametrize("args,field", [
    (["--time-model", "roofline", "--mfu", "0.3"], "--time-model"),
    (["--accelerator", "t4", "--dtype", "bf16"], "--dtype"),   # Turing has no bf16
])
def test_time_model_bad_inputs_exit_2(args, field, capsys):
    base = ["cost", "--arch", "transformer", "--seq", "64", *TINY, "--steps", "10"]
    if "--accelerator" not in args:
        base += ["--accelerator", "h100-sxm"]
    assert cli.main(base + args) == 2
    err = capsys.readouterr().err
    assert field in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_roofline_by_the_time_model_refuses_or_takes_what_it_should(capsys):
    base = ["roofline", "--arch", "transformer", "--seq", "64", *TINY]
    # a dtype the device does not have: one line naming the field, no traceback
    assert cli.main(base + ["--accelerator", "t4", "--dtype", "bf16"]) == 2
    err = capsys.readouterr().err
    assert "--dtype" in err and "no published bf16 peak" in err and "Traceback" not in err
    # a paper's convention: the same step time, utilisation by the paper's count
    assert cli.main(base + ["--accelerator", "h100-sxm", "--convention", "palm",
                            "--format", "json"]) == 0
    total = json.loads(capsys.readouterr().out)[-1]
    assert total["utilisation_convention"] == pytest.approx(
        total["convention_train_flops"] / (_peak() * total["time s"]))


def _peak():
    from comparator.cost.catalogue import get
    return get("h100-sxm").peak("bf16")
