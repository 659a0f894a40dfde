"""The accelerator catalogue: sourced numbers, dense (not sparse) peaks, sane units,
override merging and the errors users see."""
import json
import subprocess
import sys
import textwrap

import pytest

from comparator.cost import catalogue as acc
from comparator.cost.catalogue import CatalogueError

CAT = acc.load()

NAMES = ["v100-16gb", "v100-32gb", "t4", "a10g", "l4", "a100-40gb", "a100-80gb", "h100-sxm",
         "h100-pcie", "h200", "b200", "mi250x", "mi300x", "tpu-v2", "tpu-v3", "tpu-v4",
         "tpu-v5e", "tpu-v5p", "tpu-v6e"]

# The DENSE 16-bit peak of each datasheet, written here from the vendor documents so a
# sparse ("with sparsity", 2x) figure slipping into the data file fails the test.
DENSE_16BIT = {
    # (dtype, dense FLOP/s, how the figure reads in the source)
    "v100-16gb": ("fp16", 125e12),    # V100 SXM2 tensor 125 TFLOPS (Volta: no sparsity)
    "v100-32gb": ("fp16", 125e12),
    "t4": ("fp16", 65e12),            # mixed FP16/FP32 65 TFLOPS (Turing: no sparsity)
    "a10g": ("bf16", 70e12),          # A10G datasheet 70 dense / 140 sparse
    "l4": ("bf16", 121e12),           # L4 242 "with sparsity" / 2
    "a100-40gb": ("bf16", 312e12),    # A100 312 dense / 624 sparse
    "a100-80gb": ("bf16", 312e12),
    "h100-sxm": ("bf16", 989.4e12),   # H100 SXM 1,979 is sparse; dense 989.4
    "h100-pcie": ("bf16", 756e12),    # H100 PCIe 1,513 is sparse; dense ~756
    "h200": ("bf16", 989.4e12),       # same compute as H100 SXM
    "b200": ("bf16", 2.25e15),        # HGX B200 4.5 PFLOPS is sparse; dense 2.25
    "mi250x": ("bf16", 383e12),       # MI250X 383 TF (no sparsity rates)
    "mi300x": ("bf16", 1307.4e12),    # MI300X 2,614.9 is sparse; dense 1,307.4
    "tpu-v2": ("bf16", 45e12),        # 180 TF per 4-chip Cloud TPU / 4
    "tpu-v3": ("bf16", 123e12),
    "tpu-v4": ("bf16", 275e12),
    "tpu-v5e": ("bf16", 197e12),
    "tpu-v5p": ("bf16", 459e12),
    "tpu-v6e": ("bf16", 918e12),
}


def test_catalogue_has_every_requested_device():
    assert list(CAT) == NAMES
    assert {a.kind for a in CAT.values()} == {"gpu", "tpu"}
    assert {a.vendor for a in CAT.values()} == {"NVIDIA", "AMD", "Google"}


@pytest.mark.parametrize("name", NAMES)
def test_every_number_has_a_source(name):
    a = CAT[name]
    assert acc.fields_without_source(a) == []
    for group, cite in a.sources.items():
        assert "http" in cite, (name, group)     # a URL to check it against
        assert any(ch.isdigit() for ch in cite)  # a date
    if a.price_per_hour is not None:
        assert a.price_provider and a.price_date, name
    for s in a.prices:                               # every dated price snapshot too
        assert "http" in s.source and any(ch.isdigit() for ch in s.source), (name, s.date)


@pytest.mark.parametrize("name", NAMES)
def test_missing_lists_only_absent_fields(name):
    a = CAT[name]
    for item in a.missing:
        field, reason = item.split(":", 1)
        assert getattr(a, field) is None, item
        assert reason.strip()


@pytest.mark.parametrize("name", sorted(DENSE_16BIT))
def test_peaks_are_dense_not_sparse(name):
    dtype, dense = DENSE_16BIT[name]
    got = CAT[name].peak(dtype)
    assert got <= dense
    assert got == pytest.approx(dense, rel=0.01)


@pytest.mark.parametrize("name", NAMES)
def test_no_peak_above_the_dense_16bit_rate_by_more_than_the_8bit_factor(name):
    # On every device here fp8/int8 run at most 2x the 16-bit rate and tf32/fp32 never
    # exceed it; a sparse figure copied for one dtype but not another breaks this.
    a = CAT[name]
    base = a.bf16 or a.fp16
    for d in ("fp32", "tf32"):
        if getattr(a, d) is not None:
            assert getattr(a, d) <= base, (name, d)
    for d in ("fp8", "int8"):
        if getattr(a, d) is not None:
            assert getattr(a, d) <= 2 * base * 1.01, (name, d)  # vendors round


@pytest.mark.parametrize("name", NAMES)
def test_units_are_sane(name):
    a = CAT[name]
    for d in a.dtypes:
        assert 1e12 <= a.peak(d) <= 1e16, (name, d)  # FLOP/s, not TFLOP/s
    assert 8 <= a.memory_gb <= 300                     # GB, not bytes or GiB*1024
    if a.memory_bandwidth_gbs is not None:
        assert 100 <= a.memory_bandwidth_gbs <= 10000  # GB/s, not TB/s
    if a.tdp_w is not None:
        assert 50 <= a.tdp_w <= 1500
    if a.interconnect_gbs is not None:
        assert 10 <= a.interconnect_gbs <= 5000
        assert a.interconnect_note
    if a.price_per_hour is not None:
        assert 0.1 <= a.price_per_hour <= 50           # USD per device-hour
    if a.default_mfu is not None:
        assert 0 < a.default_mfu <= 1 and a.mfu_source


def test_a_few_headline_numbers():
    assert CAT["h100-sxm"].memory_bandwidth_gbs == 3350
    assert CAT["a100-80gb"].memory_bandwidth_gbs == 2039
    assert CAT["tpu-v4"].default_mfu == 0.462       # PaLM
    assert CAT["tpu-v5p"].memory_gb == pytest.approx(95 * 2**30 / 1e9, rel=1e-3)  # 95 GiB
    assert CAT["h100-sxm"].price_per_hour == pytest.approx(55.04 / 8)


def test_peak_accepts_aliases_and_refuses_missing_dtypes():
    assert CAT["a100-80gb"].peak("bfloat16") == CAT["a100-80gb"].peak("BF16") == 312e12
    assert CAT["h100-sxm"].peak("float8_e4m3fn") == CAT["h100-sxm"].fp8
    with pytest.raises(CatalogueError) as err:
        CAT["v100-16gb"].peak("fp8")
    assert err.value.field == "v100-16gb.fp8"
    assert "fp32, fp16" in str(err.value)          # what the V100 does have
    with pytest.raises(CatalogueError, match="dtypes are"):
        CAT["a100-80gb"].peak("fp64")
    with pytest.raises(CatalogueError):
        CAT["t4"].peak("bf16")                      # Turing: no bf16


def test_unknown_name_gets_a_suggestion():
    assert acc.lookup(CAT, "H100_SXM") is CAT["h100-sxm"]
    with pytest.raises(CatalogueError) as err:
        acc.get("h100sxm")
    assert err.value.field == "accelerator"
    assert "did you mean h100-sxm" in str(err.value)


def test_rows_for_the_listing_table():
    rows = acc.rows(CAT)
    assert [r["name"] for r in rows] == NAMES
    h100 = rows[NAMES.index("h100-sxm")]
    assert h100["bf16"] == 989.4e12 and h100["fp8"] == 1978.9e12
    assert h100["price_provider"].startswith("AWS") and h100["source"].startswith("NVIDIA")
    assert set(h100) == {"name", "vendor", "kind", "bf16", "fp32", "fp8", "memory_gb",
                         "memory_bandwidth_gbs", "tdp_w", "price_per_hour",
                         "price_provider", "price_date", "default_mfu", "source"}


# ---------------------------------------------------------------- overrides


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return str(p)


def test_override_changes_single_fields_and_keeps_the_rest(tmp_path):
    f = _write(tmp_path, "mine.toml", """
        [accelerators.h100-sxm]
        price_per_hour = 2.5
        price_provider = "my cluster"
        price_date = 2026-11-01
        default_mfu = 0.45
    """)
    cat = acc.load(overrides=f)
    h = cat["h100-sxm"]
    assert (h.price_per_hour, h.price_provider, h.price_date) == (2.5, "my cluster", "2026-11-01")
    assert h.default_mfu == 0.45 and h.mfu_source == f"user override: {f}"
    # one price replaces the snapshot list: one on-demand snapshot, cited to the file
    assert [(s.kind, s.usd_per_hour, s.date) for s in h.prices] == [
        ("on-demand", 2.5, "2026-11-01")]
    assert h.sources["price"] == f"price_per_hour: user override {f}"
    assert h.bf16 == CAT["h100-sxm"].bf16 and h.sources["peaks"] == CAT["h100-sxm"].sources["peaks"]
    assert cat["a100-80gb"] == CAT["a100-80gb"]             # others untouched
    assert acc.load()["h100-sxm"].price_per_hour == 6.88    # packaged data unchanged


def test_override_fills_a_missing_field(tmp_path):
    f = _write(tmp_path, "mine.toml", """
        [accelerators.mi250x]
        price_per_hour = 2.0
        [accelerators.mi250x.sources]
        price = "my invoice, 2026-11"
    """)
    m = acc.load(overrides=f)["mi250x"]
    assert m.price_per_hour == 2.0 and m.sources["price"] == "my invoice, 2026-11"
    assert not any(x.startswith("price_per_hour") for x in m.missing)
    assert CAT["mi250x"].missing and m.missing == ()
    assert acc.fields_without_source(m) == []


def test_override_adds_a_new_device_from_json(tmp_path):
    f = _write(tmp_path, "new.json", json.dumps({"accelerators": {"Trn2": {
        "vendor": "AWS", "kind": "other", "bf16": 667e12, "memory_gb": 96,
        "memory_bandwidth_gbs": 2900, "sources": {"peaks": "my notes"}}}}))
    cat = acc.load(overrides=f)
    t = cat["trn2"]                                        # names are normalised
    assert list(cat)[-1] == "trn2" and t.peak("bf16") == 667e12
    assert t.sources == {"peaks": "my notes",
                         "memory": f"memory_gb, memory_bandwidth_gbs: user override {f}"}
    assert acc.fields_without_source(t) == []


@pytest.mark.parametrize("body, field", [
    ('bf16 = 100e12\nmemory_gb = 16', "new-chip.memory_bandwidth_gbs"),
    ('memory_gb = 16\nmemory_bandwidth_gbs = 500', "new-chip.peaks"),
])
def test_new_device_needs_a_peak_memory_and_bandwidth(tmp_path, body, field):
    f = _write(tmp_path, "new.toml", "[accelerators.new-chip]\n" + body)
    with pytest.raises(CatalogueError) as err:
        acc.load(overrides=f)
    assert err.value.field == field


@pytest.mark.parametrize("body, field, allowed", [
    ("default_mfu = 1.5", "h100-sxm.default_mfu", "(0, 1]"),
    ("default_mfu = 0", "h100-sxm.default_mfu", "> 0"),
    ("price_per_hour = -1.0", "h100-sxm.price_per_hour", "> 0"),
    ('bf16 = "fast"', "h100-sxm.bf16", "a number"),
    ("bf16 = true", "h100-sxm.bf16", "a number"),
    ("bf16 = nan", "h100-sxm.bf16", "finite"),
    ("bf16_peak = 1e15", "h100-sxm.bf16_peak", "did you mean bf16"),
    ('kind = "fpga"', "h100-sxm.kind", "gpu, tpu, other"),
    ('price_date = "last week"', "h100-sxm.price_date", "YYYY"),
    ('missing = ["bf16"]', "h100-sxm.missing", "field: reason"),
    ('sources = {speed = "x"}', "h100-sxm.sources.speed", "groups are"),
])
def test_bad_override_values_are_named(tmp_path, body, field, allowed):
    f = _write(tmp_path, "bad.toml", "[accelerators.h100-sxm]\n" + body)
    with pytest.raises(CatalogueError) as err:
        acc.load(overrides=f)
    assert isinstance(err.value, ValueError)
    assert err.value.field == field
    assert allowed in err.value.allowed


def test_bad_files_are_named(tmp_path):
    with pytest.raises(CatalogueError, match="readable"):
        acc.load(overrides=str(tmp_path / "absent.toml"))
    with pytest.raises(CatalogueError, match="invalid TOML"):
        acc.load(overrides=_write(tmp_path, "x.toml", "[accelerators\n"))
    with pytest.raises(CatalogueError, match="top-level keys"):
        acc.load(overrides=_write(tmp_path, "y.toml", "[accelerator.h100-sxm]\nbf16 = 1e15"))
    with pytest.raises(CatalogueError, match="accelerator name"):
        acc.load(overrides=_write(tmp_path, "z.json", '{"accelerators": {"H/100": {}}}'))


def test_replacement_catalogue_must_be_complete(tmp_path):
    f = _write(tmp_path, "all.toml", "[accelerators.x]\nbf16 = 1e14\n")
    with pytest.raises(CatalogueError, match="memory_gb"):
        acc.load(path=f)


def test_loading_imports_no_jax():
    code = ("import sys, comparator.cost.catalogue as a; a.load(); "
            "assert 'jax' not in sys.modules and 'numpy' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
