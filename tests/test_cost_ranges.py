"""Every device priced or visibly not, each in its own training precision, every figure
with its p5-p95 range (comparator/cost/ranges.py), checked against the distributions'
own quantiles and against Sharir et al.'s published BERT-base range."""
import json
import math

import numpy as np
import pytest

from comparator.cli import app as cli
from comparator.cost import catalogue as accelerators
from comparator.cost import ranges as rg
from comparator.cost import scenario as sc
from comparator.cost.pricing import auto_dtype, train_cost

CAT = accelerators.load()
# Sharir, Peleg & Shoham 2020, section 1: BERT-base (110M) costs $2.5k (one run) to $50k
# (2 configurations x 10 runs), 2019-2020 cloud list prices
SHARIR_BERT_BASE = (2_500, 50_000)
BERT = ["cost", "--arch", "transformer", "--preset", "bert-base", "--seq", "512", "--steps",
        "1000000", "--batch", "256", "--accelerator", "all", "--time-model", "mfu"]


def _run(capsys, *args):
    assert cli.main(list(args)) == 0
    return capsys.readouterr().out


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cli.main([*BERT, "--format", "json"]) == 0
    return json.loads(buf.getvalue())


def test_no_device_disappears_and_each_trains_in_its_own_precision(bert):
    assert [r["accelerator"] for r in bert] == list(CAT)            # all 19, in order
    dtypes = {r["accelerator"]: r["assumptions"]["dtype"] for r in bert}
    assert dtypes["v100-16gb"] == dtypes["v100-32gb"] == dtypes["t4"] == "fp16"
    assert {dtypes[n] for n in CAT if n not in ("v100-16gb", "v100-32gb", "t4")} == {"bf16"}
    for r in bert:
        assert r["assumptions"]["dtype_rule"] == auto_dtype(CAT[r["accelerator"]])[1]
        assert r["step_time_s"] > 0 and r["energy_kwh"] is not None or \
            "power" in r["missing"]["energy_kwh"]
        assert (r["dollars"] is None) == (CAT[r["accelerator"]].price_per_hour is None)


@pytest.mark.parametrize("field", ["step_time_s", "wall_clock_s", "device_hours", "dollars",
                                   "energy_kwh", "co2_kg", "dollars_all_runs"])
def test_every_figure_has_a_low_and_high_around_its_point(bert, field):
    for r in bert:
        if r.get(field) is None:
            assert field + "_low" not in r
            continue
        lo, hi = r[field + "_low"], r[field + "_high"]
        assert lo < r[field] < hi, (r["accelerator"], field, lo, r[field], hi)


def _tri_quantile(a, c, b, p):
    """Inverse CDF of triangular(a, c, b)."""
    f = (c - a) / (b - a)
    return a + math.sqrt(p * (b - a) * (c - a)) if p < f else \
        b - math.sqrt((1 - p) * (b - a) * (b - c))


def test_the_time_range_is_the_utilisation_distributions_quantiles():
    # time = u0 / u with u ~ triangular(0.655 u0, u0, 1.42 u0): p5 of time = u0 / q95(u)
    low, high = accelerators.load_ranges()["utilisation"][:2]
    u0 = 0.5
    fac = rg.factors((low, high), u0, (1.1, 1.1, 1.1), (0.4, 0.4, 0.4), (1.0,), 1.0)
    q95 = _tri_quantile(low * u0, u0, min(high * u0, 1.0), 0.95)
    q05 = _tri_quantile(low * u0, u0, min(high * u0, 1.0), 0.05)
    assert fac["device_hours"][0] == pytest.approx(u0 / q95, rel=0.01)
    assert fac["device_hours"][1] == pytest.approx(u0 / q05, rel=0.01)
    # fixed PUE, grid and price: energy, CO2 and dollars vary with time alone
    assert fac["energy_kwh"] == fac["co2_kg"] == fac["dollars"] == fac["device_hours"]


def test_price_draws_are_uniform_over_the_offers():
    prices = (1.0, 2.0, 4.0)          # one third each; time fixed (utilisation bounds at 1)
    fac = rg.factors((1.0, 1.0), 0.4, (1.1, 1.1, 1.1), (0.4, 0.4, 0.4), prices, 4.0)
    assert fac["dollars"] == (pytest.approx(0.25), pytest.approx(1.0))
    pue = rg.factors((1.0, 1.0), 0.4, (1.1, 1.1, 1.58), (0.4, 0.4, 0.4), prices, 4.0)
    # triangular(1.1, 1.1, 1.58) / 1.1: p95 = (1.58 - sqrt(0.05 x 0.48 x 0.48)) / 1.1
    assert pue["energy_kwh"][1] == pytest.approx((1.58 - math.sqrt(0.05 * 0.48 ** 2)) / 1.1,
                                                 rel=0.01)


def test_ranges_are_reproducible_and_the_records_say_how(bert):
    a100 = CAT["a100-80gb"]
    one, two = (train_cost(7.7e13, 1000, a100) for _ in range(2))
    assert one["dollars_low"] == two["dollars_low"] and one["co2_kg_high"] == two["co2_kg_high"]
    d = one["assumptions"]["ranges"]
    assert f"seed {rg.SEED}" in d["method"] and "PaLM" in d["utilisation"]
    assert "Uptime" in d["pue"] and "Ember" in d["grid_intensity"]
    assert d["price"].startswith("uniform over the 5 offers")      # AWS, RunPod x2, Lambda, GCP
    assert np.isclose(one["dollars_all_runs_low"], one["dollars_low"])   # 1 run


def test_ours_against_sharirs_bert_base_range(bert):
    """Our one-run ranges on today's prices, beside $2.5k-$50k: which devices overlap and
    how far below the others lie (the README quotes these)."""
    plo, phi = SHARIR_BERT_BASE
    priced = [r for r in bert if r["dollars"] is not None]
    overlapping = {r["accelerator"] for r in priced
                   if r["dollars_low"] <= phi and r["dollars_high"] >= plo}
    assert overlapping == {"v100-16gb", "v100-32gb", "tpu-v2"}
    below = [plo / r["dollars_high"] for r in priced if r["accelerator"] not in overlapping]
    assert all(g > 1 for g in below) and max(g for g in below) < 25
    # the scenario's wording of the same comparison
    rec = {"dollars_low": 100.0, "dollars_all_runs_high": 1000.0, "published_low": plo,
           "published_high": phi}
    assert sc.overlap(rec) == "ours $100-$1,000: 2.5x below the published low end"


def test_tables_show_value_low_high_and_point_shows_single_numbers(capsys):
    text = _run(capsys, *BERT[:-4], "--accelerator", "a100-80gb,mi250x", "--time-model", "mfu")
    row = next(line for line in text.splitlines() if line.startswith("a100-80gb"))
    assert "(" in row and "-" in row                        # 'value (low-high)'
    mi = next(line for line in text.splitlines() if line.startswith("mi250x"))
    assert "no public price" in mi and "no public on-demand list price for MI250X" in mi
    point = _run(capsys, *BERT[:-4], "--accelerator", "a100-80gb", "--time-model", "mfu",
                 "--point")
    row = next(line for line in point.splitlines() if line.startswith("a100-80gb"))
    assert "(" not in row.split("bf16", 1)[1].split("no (")[0]


def test_a_device_that_cannot_be_priced_is_a_visible_row(capsys, tmp_path):
    f = tmp_path / "chip.toml"
    f.write_text('[accelerators.chip]\nbf16 = 1e14\nmemory_gb = 16\n'
                 'memory_bandwidth_gbs = 500\n')                      # no MFU, power, price
    text = _run(capsys, *BERT[:-4], "--accelerator", "all", "--accelerators", str(f),
                "--time-model", "mfu")
    rows = [line.split()[0] for line in text.splitlines()[2:] if line and line[0] != " "]
    assert set(CAT) | {"chip"} <= set(rows)
    chip = next(line for line in text.splitlines() if line.startswith("chip"))
    assert "not priced" in chip and "default_mfu" in chip
    text = _run(capsys, *BERT[:-4], "--accelerator", "v100-16gb,a100-80gb", "--dtype", "bf16",
                "--time-model", "mfu")
    v100 = next(line for line in text.splitlines() if line.startswith("v100-16gb"))
    assert "not priced" in v100 and "no published bf16 peak" in v100


def test_a_sweep_row_for_a_device_it_cannot_price_keeps_the_counts(capsys):
    args = ["sweep", "--arch", "reformer", "--seq", "4096", "--accelerator",
            "v100-16gb,a100-80gb", "--dtype", "bf16", "--time-model", "mfu"]
    text = _run(capsys, *args)
    gaps = [line for line in text.splitlines() if "  v100-16gb  " in line]   # table rows
    assert len(gaps) == 2 and all("not priced" in line for line in gaps)  # model + baseline
    recs = json.loads(_run(capsys, *args, "--format", "json"))
    gaps = [r for r in recs if r.get("not_priced")]
    priced = [r for r in recs if not r.get("not_priced")]
    assert [r["accelerator"] for r in gaps] == ["v100-16gb"] * 2
    assert all("no published bf16 peak" in r["not_priced"] for r in gaps)
    for gap, r in zip(gaps, priced):            # the same model's counts, every field
        for k in ("arch", "preset", "params", "fwd_flops", "train_flops", "breakdown",
                  "unsupported", "train_flops_per_token", "attention_share"):
            assert gap[k] == r[k], k
        assert "dollars" not in gap and "step_time_s" in gap["missing"]
