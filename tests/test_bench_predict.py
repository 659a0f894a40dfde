"""`comparator bench --predict`: measured steps beside the time model and the flat MFU."""
import json

import pytest

from comparator.cli import app as cli
from comparator.cost.profile import DeviceProfile, MatmulPoint, cpu_name, to_dict
from comparator.measure import validate

PROFILE = DeviceProfile(
    device=cpu_name(), kind="cpu", calibrated=True, source="written in the test",
    date="2025-01-01", software={}, matmul=(MatmulPoint(256, 256, 256, 1, "fp32", 50e9),
                                            MatmulPoint(64, 64, 128, 64, "fp32", 20e9)),
    bandwidth=20e9, vector_flops=10e9, transcendentals=1e9, sort=50e6, gather=5e9,
    scatter=2e9, overhead_s=2e-6)


@pytest.fixture
def profile_file(tmp_path):
    p = tmp_path / "profile.json"
    p.write_text(json.dumps(to_dict(PROFILE)))
    return str(p)


def test_bench_predict_json(profile_file, capsys):
    assert cli.main(["bench", "--arch", "transformer,reformer", "--seq", "64",
                     "--d-model", "64", "--layers", "2", "--steps", "1", "--predict",
                     "--profile", profile_file, "--format", "json", "--no-cache"]) == 0
    out = json.loads(capsys.readouterr().out)
    recs, summ = out[:-1], out[-1]["summary"]
    assert len(recs) == 2 and all("@d64L2" in r["preset"] for r in recs)   # the size grid
    fit = [r for r in recs if r["mfu_fit_point"] == validate.point_label(r)]
    # the flat MFU is fitted on the Transformer nearest 1,024 tokens: its only one here
    assert [(r["arch"], r["seq_len"]) for r in fit] == [("transformer", 64)]
    assert fit[0]["predicted_step_s_mfu"] == pytest.approx(fit[0]["measured_step_s"])
    for r in recs:
        assert r["measured_step_s"] == r["step_s"] and r["time_model"] == "roofline"
        assert r["predicted_step_s"] > 0 and r["unknown_ops"] == {}
        assert (r["profile_device"], r["profile_calibrated"]) == (PROFILE.device, True)
        assert r["error_pct"] == pytest.approx(
            100 * (r["predicted_step_s"] - r["step_s"]) / r["step_s"])
        # flat MFU: the fit point's time scaled by the training-FLOP ratio
        assert r["predicted_step_s_mfu"] == pytest.approx(
            fit[0]["step_s"] * r["train_flops"] / fit[0]["train_flops"])
        assert sum(r["term_s"].values()) == pytest.approx(r["predicted_step_s"])
    errs = sorted(abs(r["error_pct"]) for r in recs)
    assert summ["time_model"]["worst_abs_pct"] == pytest.approx(errs[-1])
    assert summ["time_model"]["median_abs_pct"] == pytest.approx((errs[0] + errs[1]) / 2)
    (ratio,) = summ["ratios"]
    tr, rf = sorted(recs, key=lambda r: r["arch"] != "transformer")
    assert (ratio["arch"], ratio["seq_len"]) == ("reformer", 64)
    assert ratio["measured"] == pytest.approx(rf["step_s"] / tr["step_s"])
    assert ratio["predicted"] == pytest.approx(rf["predicted_step_s"] / tr["predicted_step_s"])


def test_bench_predict_unreadable_profile_is_refused_before_measuring(capsys):
    # (the other bad --predict inputs are tests/test_bad_inputs.py cases)
    assert cli.main(["bench", "--arch", "transformer", "--seq", "64", "--no-cache",
                     "--predict", "--profile", "/nonexistent.json"]) == 2
    err = capsys.readouterr().err
    assert "--profile" in err and "/nonexistent.json" in err and "Traceback" not in err
