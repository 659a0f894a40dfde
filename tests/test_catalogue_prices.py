"""Dated price snapshots, the point price, `--prices DATE`, the [ranges] tables and the
errors a bad catalogue file gets (comparator/cost/prices.py, catalogue.py)."""
import datetime
import math
import textwrap

import pytest

from architectures import transformer as tr
from comparator.cost import catalogue as acc
from comparator.cost import prices as pr
from comparator.cost.catalogue import CatalogueError

CAT = acc.load()


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return str(p)


@pytest.mark.parametrize("name", list(CAT))
def test_every_device_has_a_sourced_price_or_says_why(name):
    a = CAT[name]
    if a.price_per_hour is None:
        assert not a.prices
        assert any(m.startswith("price_per_hour:") for m in a.missing), name
        return
    assert a.price_per_hour == pr.latest(a.prices).usd_per_hour
    for s in a.prices:
        assert s.kind in pr.PRICE_KINDS and s.usd_per_hour > 0 and s.provider
        assert "http" in s.source and any(c.isdigit() for c in s.source), (name, s)
        pr.date_span(s.date)                          # a date it can read


@pytest.mark.parametrize("name", list(CAT))
def test_every_device_has_a_sourced_utilisation_bandwidth_and_no_silent_gap(name):
    a = CAT[name]
    assert a.default_mfu and a.mfu_source, name
    assert a.memory_bandwidth_gbs, name             # every device, TPU v2 included now
    assert a.tdp_w is not None or any(m.startswith("tdp_w:") for m in a.missing), name


def test_the_point_price_is_the_latest_reference_snapshot():
    v100 = CAT["v100-16gb"]
    ref = [s for s in v100.prices if s.reference]
    assert len(ref) == 1 and v100.price_per_hour == ref[0].usd_per_hour == 0.79
    # AWS lists p3.16xlarge at $24.48 for 8 GPUs (the 2026 snapshot): $3.06 per GPU
    assert any(s.usd_per_hour == pytest.approx(24.48 / 8) for s in v100.prices)
    # no reference snapshot: the latest on-demand one (v100-32gb: AWS p3dn, $31.212 / 8)
    assert CAT["v100-32gb"].price_per_hour == pytest.approx(31.212 / 8)


def test_prices_on_a_date_take_the_latest_snapshot_listed_by_then():
    end2020 = pr.as_of("2020")
    assert end2020 == datetime.date(2020, 12, 31)
    assert pr.as_of("2019-02") == datetime.date(2019, 2, 28)
    assert pr.as_of("2020-06-15") == datetime.date(2020, 6, 15)
    # TPU v3 in 2020: the 2019 price of a 4-chip v3-8 device, $8/h (Synced, 2019)
    snap, why = pr.price_at(CAT["tpu-v3"], end2020)
    assert snap.usd_per_hour == 8.0 / 4 and snap.date == "2019" and why is None
    # TPU v2: $6.50 per 4-chip Cloud TPU in February 2018, $4.80 per v2-8 in 2025
    assert pr.price_at(CAT["tpu-v2"], end2020)[0].usd_per_hour == 6.50 / 4
    assert CAT["tpu-v2"].price_per_hour == 4.80 / 4
    assert pr.price_at(CAT["tpu-v2"], end2020, "preemptible")[0].usd_per_hour == \
        pytest.approx(0.3 * 6.50 / 4)                 # 70% off the standard price
    # the V100 in 2020: AWS p3.8xlarge, 4 GPUs for $12.24/h (RiseML, April 2018)
    assert pr.price_at(CAT["v100-16gb"], end2020)[0].usd_per_hour == pytest.approx(12.24 / 4)
    # a device first listed later has no price then, and says why
    snap, why = pr.price_at(CAT["h100-sxm"], end2020)
    assert snap is None and "on or before 2020-12-31" in why
    assert pr.price_at(CAT["mi250x"])[1].startswith("no public price")


def test_offers_are_one_per_provider_offer_and_kind():
    offers = pr.offers_at(CAT["tpu-v2"])
    assert sorted((s.kind, s.usd_per_hour) for s in offers) == [
        ("on-demand", 4.80 / 4), ("preemptible", pytest.approx(0.3 * 6.5 / 4))]
    assert len(pr.offers_at(CAT["tpu-v2"], pr.as_of("2018-03"))) == 1   # before preemptible
    h100 = pr.offers_at(CAT["h100-sxm"], kind="spot")
    assert [s.provider for s in h100] == ["Google Cloud"]


def test_a_date_no_device_is_priced_on_is_refused():
    pr.check_as_of([CAT["h100-sxm"], CAT["tpu-v3"]], pr.as_of("2020"))   # tpu-v3 has one
    with pytest.raises(CatalogueError) as err:
        pr.check_as_of([CAT["h100-sxm"]], pr.as_of("2020"))
    assert err.value.field == "--prices" and err.value.value == "2020-12-31"
    with pytest.raises(CatalogueError) as err:              # the date as the user wrote it
        pr.check_as_of([CAT["h100-sxm"]], pr.as_of("2020"), given="2020")
    assert err.value.value == "2020"
    # the earliest H100 SXM snapshot: RunPod/Lambda/Nebius, checked 2026-09-25
    assert "earliest on-demand price snapshot of h100-sxm (2026-09-25)" in err.value.allowed
    with pytest.raises(CatalogueError, match="a year YYYY"):
        pr.as_of("20x0")
    with pytest.raises(CatalogueError, match="one of on-demand"):
        pr.check_kind("cheap")


def test_tpu_v2_utilisation_is_what_berts_own_run_implies():
    # the catalogue's TPU v2 MFU is derived from BERT-base's published run (16 chips,
    # 4 days): recompute it from the schedule (90% of 1M steps at 128, 10% at 512, 256)
    cfg = tr.preset("bert-base-pretraining")
    flops = 900_000 * tr.flops(cfg, 128, 256).train + 100_000 * tr.flops(cfg, 512, 256).train
    implied = flops / (16 * 96 * 3600 * CAT["tpu-v2"].bf16)
    assert CAT["tpu-v2"].default_mfu == pytest.approx(implied, abs=0.0005)


def test_ranges_are_sourced_and_ordered():
    r = acc.load_ranges()
    assert set(r) == {"utilisation", "pue", "grid_intensity"}
    lo, hi, src = r["utilisation"]
    # PaLM Table 3: GPT-3 21.3%, Gopher 32.5%, PaLM 46.2%, as factors of the middle one
    assert lo == pytest.approx(21.3 / 32.5, abs=1e-3) and hi == pytest.approx(46.2 / 32.5,
                                                                              abs=1e-3)
    assert r["pue"][:2] == (1.10, 1.58) and r["grid_intensity"][:2] == (0.030, 0.713)
    assert all("http" in v[2] for v in r.values())


def test_overrides_replace_prices_and_ranges(tmp_path):
    f = _write(tmp_path, "mine.toml", """
        [ranges.pue]
        high = 2.0
        [[accelerators.h100-sxm.prices]]
        date = "2026-12"
        kind = "reserved"
        usd_per_hour = 2.0
        provider = "my cluster"
        source = "my contract, 2026-12"
        [[accelerators.h100-sxm.prices]]
        date = "2026-12"
        kind = "on-demand"
        usd_per_hour = 3.0
        provider = "my cluster"
        source = "my contract, 2026-12"
    """)
    h = acc.load(overrides=f)["h100-sxm"]
    assert h.price_per_hour == 3.0 and len(h.prices) == 2          # the list is replaced
    assert pr.price_at(h, kind="reserved")[0].usd_per_hour == 2.0
    assert acc.load_ranges(overrides=f)["pue"][:2] == (1.10, 2.0)   # low kept, high changed


@pytest.mark.parametrize("body, field, allowed", [
    ('[[accelerators.t4.prices]]\ndate = "2020"\nkind = "on-demand"\nusd_per_hour = -1.0\n'
     'provider = "x"\nsource = "y"', "t4.prices[0].usd_per_hour", "> 0"),
    ('[[accelerators.t4.prices]]\ndate = "2020"\nkind = "cheap"\nusd_per_hour = 1.0\n'
     'provider = "x"\nsource = "y"', "t4.prices[0].kind", "on-demand, reserved, spot"),
    ('[[accelerators.t4.prices]]\ndate = "soon"\nkind = "spot"\nusd_per_hour = 1.0\n'
     'provider = "x"\nsource = "y"', "t4.prices[0].date", "YYYY"),
    ('[[accelerators.t4.prices]]\ndate = "2020"\nkind = "spot"\nusd_per_hour = 1.0\n'
     'source = "y"', "t4.prices[0].provider", "required"),
    ("[ranges.pue]\nlow = 1.6\nhigh = 1.2", "ranges.pue.low", "<= ranges.pue.high (1.2)"),
    ("[ranges.grid_intensity]\nlow = -0.1", "ranges.grid_intensity.low", ">= 0"),
    ("[ranges.utilisation]\nlow = 1.2", "ranges.utilisation.low", "factor <= 1"),
    ("[ranges.speed]\nlow = 1", "ranges.speed", "ranges are"),
])
def test_bad_prices_and_ranges_are_named(tmp_path, body, field, allowed):
    f = _write(tmp_path, "bad.toml", body)
    with pytest.raises(CatalogueError) as err:
        acc.load(overrides=f)
    assert err.value.field == field and allowed in err.value.allowed


def test_a_single_price_override_becomes_one_snapshot(tmp_path):
    f = _write(tmp_path, "one.toml", '[accelerators.mi250x]\nprice_per_hour = 2.5\n'
                                     'price_date = "2026-11"\n')
    m = acc.load(overrides=f)["mi250x"]
    assert m.price_per_hour == 2.5 and m.price_date == "2026-11"
    assert [(s.kind, s.usd_per_hour) for s in m.prices] == [("on-demand", 2.5)]
    assert not any(x.startswith("price_per_hour") for x in m.missing)
    assert math.isclose(pr.price_at(m, pr.as_of("2026-12"))[0].usd_per_hour, 2.5)
