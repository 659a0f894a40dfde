"""`comparator scenario`: published pre-training runs priced on accelerators."""
import dataclasses
import json
import math
from importlib.resources import files

import pytest

from architectures import transformer as tr
from comparator.cost import catalogue as accelerators
from comparator.cli import app as cli
from comparator.cost import scenario as sc


def _by(recs, run, acc):
    return next(r for r in recs if r["run"] == run and r["accelerator"] == acc)


def test_bert_base_on_tpu_v3_by_hand():
    cat = accelerators.load()
    tpu = cat["tpu-v3"]
    recs, meta = sc.records([tpu], catalogue=cat)
    r = _by(recs, "BERT-base", "tpu-v3")
    cfg = tr.preset("bert-base-pretraining")   # BERT as pre-trained: MLM + NSP + pooler
    # BERT's schedule: 900k steps of 256 x 128 tokens, then 100k steps of 256 x 512
    flops = 900_000 * tr.flops(cfg, 128, 256).train + 100_000 * tr.flops(cfg, 512, 256).train
    assert r["total_train_flops"] == flops
    assert r["tokens"] == 256 * (900_000 * 128 + 100_000 * 512)
    hours = flops / (tpu.bf16 * tpu.default_mfu) / 3600
    assert math.isclose(r["device_hours"], hours, rel_tol=1e-12)
    assert math.isclose(r["dollars"], hours * tpu.price_per_hour, rel_tol=1e-12)
    assert meta["tuning_runs"] == r["runs"] == 20
    assert math.isclose(r["dollars_all_runs"], 20 * r["dollars"], rel_tol=1e-12)
    assert math.isclose(r["energy_kwh"], hours * tpu.tdp_w / 1000 * 1.1, rel_tol=1e-12)
    # the utilisation at which our count costs the published $2.5k, and what BERT's own
    # run reached: 16 TPU v2 chips for 4 days (the paper)
    assert math.isclose(r["mfu_to_match_low"], tpu.default_mfu * r["dollars"] / 2500)
    v2 = cat["tpu-v2"]
    assert math.isclose(r["reported_mfu"], flops / (16 * 96 * 3600 * v2.bf16))
    assert 0.05 < r["reported_mfu"] < 0.15
    # Hugging Face BertForPreTraining's count (tests/test_transformer.py says where from)
    assert r["params"] == tr.params(cfg) == 110_106_428


def test_bert_runs_count_the_pretraining_head():
    runs = {r["name"]: r for r in sc.load()["runs"]}
    for name, size in (("BERT-base", "base"), ("BERT-large", "large")):
        cfg = tr.preset(runs[name]["preset"])
        assert cfg.head == "pretraining"
        assert cfg == dataclasses.replace(tr.preset(f"bert-{size}"), head="pretraining")
    # what the head adds to a 128-token phase step of 256 sequences (matmul):
    # pooler 2 * b * d * d and classifier 2 * b * d * 2, forward, x 3 with the backward
    b, d = 256, 768
    mlm = tr.flops(tr.preset("bert-base"), 128, b).train
    assert tr.flops(tr.preset("bert-base-pretraining"), 128, b).train - mlm == 3 * (
        2 * b * d * d + 2 * b * d * 2)
    assert "BertForPreTraining" in sc.NOTES and "next-sentence" in sc.NOTES


def test_every_run_and_default_accelerator_is_priced():
    cat = accelerators.load()
    meta = sc.load()["meta"]
    accs = [cat[n] for n in meta["accelerators"]]
    recs, _ = sc.records(accs, catalogue=cat)
    assert {r["run"] for r in recs} == {"BERT-base", "BERT-large", "GPT-2 1.5B", "T5-11B"}
    assert all(r["dollars"] is not None and r["dollars"] > 0 for r in recs)
    assert _by(recs, "BERT-base", "v100-16gb")["dtype"] == "fp16"   # no bf16 on a V100
    # more parameters, more dollars on every device
    for acc in meta["accelerators"]:
        cost = [_by(recs, run, acc)["dollars"]
                for run in ("BERT-base", "BERT-large", "GPT-2 1.5B", "T5-11B")]
        assert cost == sorted(cost)


def test_scenario_command_and_errors(capsys, tmp_path):
    # every default device by the flat MFU (the time model compiles each run's step per
    # dtype: 24 compilations), then one device by the time model, the default
    assert cli.main(["scenario", "--format", "markdown", "--runs", "10",
                     "--time-model", "mfu"]) == 0
    out = capsys.readouterr().out
    assert "| BERT-base" in out and "T5-11B" in out and "$ 10 runs" in out
    assert "ASSUMPTION" in out and "Sharir" in out
    assert cli.main(["scenario", "--accelerator", "a100-80gb", "--format", "json",
                     "--time-model", "mfu"]) == 0
    recs = json.loads(capsys.readouterr().out)
    assert {r["accelerator"] for r in recs} == {"a100-80gb"} and len(recs) == 4
    # the default time model on BERT-base alone (the scenario file cut after its run)
    text = (files("comparator") / "data" / "scenarios.toml").read_text(encoding="utf-8")
    one = tmp_path / "bert.toml"
    one.write_text(text[:text.index("[[runs]]", text.index("[[runs]]") + 1)])
    assert cli.main(["scenario", "--accelerator", "a100-80gb", "--format", "json",
                     "--scenarios", str(one)]) == 0
    (rec,) = json.loads(capsys.readouterr().out)
    assert rec["run"] == "BERT-base" and rec["time_model"] == "roofline"
    bad = tmp_path / "s.toml"
    bad.write_text("[meta]\nx = 1\n")
    for args, field in ((["--accelerator", "x100"], "--accelerator"),
                        (["--runs", "0"], "--runs"),
                        (["--scenarios", str(tmp_path / "none.toml")], "--scenarios"),
                        (["--scenarios", str(bad)], "meta")):
        assert cli.main(["scenario", *args]) == 2, args
        err = capsys.readouterr().err
        assert field in err and "Traceback" not in err


@pytest.mark.parametrize("field", ["published", "schedule_source"])
def test_every_run_names_its_sources(field):
    for run in sc.load()["runs"]:
        assert run[field], (run["name"], field)


def test_sharirs_runs_in_2020_prices_beside_todays():
    cat = accelerators.load()
    accs = [cat[n] for n in ("tpu-v2", "tpu-v3", "v100-16gb", "h100-sxm")]
    from comparator.cost import prices as pr
    recs, _ = sc.records(accs, catalogue=cat, prices=pr.as_of("2020"))
    v2 = _by(recs, "BERT-base", "tpu-v2")
    # the period price: $6.50 per 4-chip Cloud TPU v2 (February 2018), today $4.80 per v2-8
    assert v2["period_price_per_hour"] == 6.5 / 4 and v2["period_price_date"] == "2018-02"
    assert v2["price_per_hour"] == 4.8 / 4 and "tomshardware" in v2["period_price_source"]
    assert math.isclose(v2["dollars_period"], v2["device_hours"] * 6.5 / 4, rel_tol=1e-12)
    assert math.isclose(v2["dollars"], v2["device_hours"] * 4.8 / 4, rel_tol=1e-12)
    assert v2["dollars_period_low"] < v2["dollars_period"] < v2["dollars_period_high"]
    v100 = _by(recs, "BERT-base", "v100-16gb")
    assert v100["period_price_per_hour"] == pytest.approx(12.24 / 4)   # p3.8xlarge, 2018
    h100 = _by(recs, "T5-11B", "h100-sxm")                    # not listed in 2020
    assert h100["dollars_period"] is None and "2020-12-31" in h100["period_missing"]
    assert "on or before 2020-12-31" in h100["vs_published_period"]
    # ranges against the published range: our one-run low to 20 runs' high
    assert v2["range_vs_published"] == sc.overlap(v2)
    assert v2["dollars_low"] <= 50_000 and v2["dollars_all_runs_high"] >= 2_500
    assert "overlaps" in v2["range_vs_published"]


def test_scenario_table_cites_both_prices(capsys):
    assert cli.main(["scenario", "--prices", "2020", "--accelerator", "tpu-v3,v100-16gb",
                     "--time-model", "mfu", "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "$ 1 run (2020 prices)" in out and "range vs published" in out
    assert "tpu-v3 (prices of 2020-12-31): $2/h listed 2019" in out
    assert "v100-16gb (today): $0.79/h listed 2026-09-20" in out
    assert cli.main(["scenario", "--prices", "1999", "--accelerator", "tpu-v3"]) == 2
    assert "--prices" in capsys.readouterr().err


def test_overlap_with_a_published_lower_bound_only():
    rec = {"dollars_low": 1e5, "dollars_all_runs_high": 2e6, "published_low": 1_300_000,
           "published_high": None}       # T5-11B: "over $1.3M for one run"
    assert sc.overlap(rec) == "ours $100,000-$2,000,000 reaches the published lower bound " \
                              "$1,300,000"
    rec["dollars_all_runs_high"] = 6.5e5
    assert sc.overlap(rec).endswith("2x below the published low end")
