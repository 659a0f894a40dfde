"""Device profiles (comparator/cost/profile.py, datasheet.py): strict validation, matmul
interpolation on a hand-written grid, JSON and store round trips, datasheet arithmetic."""
import copy
import json
import math

import pytest

from comparator.cost import catalogue as accelerators
from comparator.cost import datasheet as ds
from comparator.cost.devices import for_device
from comparator.cost.profile import (DeviceProfile, MatmulPoint, ProfileError, cpu_name,
                                     from_dict, load, save, to_dict)
from comparator.run.store import Store


def flops(m, k, n):
    return 2 * m * k * n


def hand_profile(**change) -> DeviceProfile:
    """Squares of 64, 256, 1024 at 10, 40, 80 GFLOP/s; a skinny 64 x 1024 x 1024 at
    20 GFLOP/s (same smallest dimension as 64^3); one batched chunk shape."""
    fields = dict(
        device="test-device", kind="gpu", calibrated=True, source="written by hand",
        date="2026-12-07", software={"jax": "0"},
        matmul=(MatmulPoint(64, 64, 64, 1, "fp32", 10e9),
                MatmulPoint(256, 256, 256, 1, "fp32", 40e9),
                MatmulPoint(1024, 1024, 1024, 1, "fp32", 80e9),
                MatmulPoint(64, 1024, 1024, 1, "fp32", 20e9),
                MatmulPoint(64, 64, 128, 512, "fp32", 30e9)),
        bandwidth=7e9, vector_flops=5e10, transcendentals=3e8, sort=3e7, gather=2e10,
        scatter=1e10, overhead_s=1e-6)
    fields.update(change)
    return DeviceProfile(**fields)


# ---------------------------------------------------------------- interpolation


def test_measured_shapes_give_their_measured_rates():
    p = hand_profile()
    for pt in p.matmul:
        assert p.matmul_rate(pt.m, pt.k, pt.n, pt.batch, "fp32") == pt.flops_per_s


def test_between_two_groups_log_rate_is_linear_in_log_smallest_dimension():
    p = hand_profile()
    # 128 lies halfway (in log) between the groups of smallest dimension 64 and 256;
    # the 64 group interpolates in log FLOPs between 64^3 and 64 x 1024 x 1024, the
    # 256 group has nothing below 256^3, so its rate there holds
    u = math.log(flops(128, 128, 128))
    lo = math.log(flops(64, 64, 64)), math.log(flops(64, 1024, 1024))
    w = (u - lo[0]) / (lo[1] - lo[0])
    at64 = math.exp(math.log(10e9) + w * (math.log(20e9) - math.log(10e9)))
    at256 = 40e9                      # below 256^3: the group's end rate holds
    expected = math.sqrt(at64 * at256)   # halfway in log(dim): the geometric mean
    assert p.matmul_rate(128, 128, 128) == pytest.approx(expected, rel=1e-12)


def test_within_a_group_log_rate_is_linear_in_log_flops():
    p = hand_profile()
    # 64 x 256 x 256 has 16x the FLOPs of 64^3 and 1/16 of 64 x 1024 x 1024: halfway
    assert p.matmul_rate(64, 256, 256) == pytest.approx(math.sqrt(10e9 * 20e9), rel=1e-12)


def test_monotone_between_grid_points_and_capped_at_the_largest_rate():
    p = hand_profile(matmul=hand_profile().matmul[:3])   # squares only: 10, 40, 80
    sizes = range(64, 1025, 16)
    rates = [p.matmul_rate(s, s, s) for s in sizes]
    assert all(a <= b * (1 + 1e-12) for a, b in zip(rates, rates[1:]))
    assert rates[0] == 10e9 and rates[-1] == 80e9
    assert p.matmul_rate(8192, 8192, 8192) == 80e9          # above the grid: capped
    assert max(p.matmul_rate(m, k, n) for m in (64, 300, 5000) for k in (64, 700, 9000)
               for n in (64, 1000, 20000)) <= 80e9


def test_below_the_grid_the_smallest_products_time_holds():
    p = hand_profile()
    # 32^3 has 1/8 of the FLOPs of 64^3 and takes as long: 10 GFLOP/s / 8
    assert p.matmul_rate(32, 32, 32) == pytest.approx(10e9 / 8, rel=1e-12)


def test_batched_queries_use_the_batched_points():
    p = hand_profile()
    assert p.matmul_rate(64, 64, 128, batch=256) == 30e9    # the one batched point
    assert p.matmul_rate(64, 64, 128, batch=1) != 30e9      # a single product: squares


def test_a_dtype_without_points_is_refused():
    with pytest.raises(ProfileError) as e:
        hand_profile().matmul_rate(64, 64, 64, dtype="bf16")
    assert e.value.field == "dtype" and "fp32" in e.value.allowed


# ---------------------------------------------------------------- validation


def good() -> dict:
    return to_dict(hand_profile())


@pytest.mark.parametrize("change,field", [
    (lambda d: d.pop("sort"), "sort"),
    (lambda d: d["matmul"][2].pop("n"), "matmul[2].n"),
    (lambda d: d.update(bandwidth=0), "bandwidth"),
    (lambda d: d.update(overhead_s=-1e-6), "overhead_s"),
    (lambda d: d.update(gather=float("inf")), "gather"),
    (lambda d: d.update(scatter=float("nan")), "scatter"),
    (lambda d: d["matmul"][1].update(flops_per_s=-1.0), "matmul[1].flops_per_s"),
    (lambda d: d.update(vector_flops="fast"), "vector_flops"),
    (lambda d: d.update(transcendentals=True), "transcendentals"),
    (lambda d: d["matmul"][0].update(m=64.0), "matmul[0].m"),
    (lambda d: d["matmul"][0].update(batch=0), "matmul[0].batch"),
    (lambda d: d["matmul"][0].update(dtype="int8"), "matmul[0].dtype"),
    (lambda d: d["matmul"].append(dict(d["matmul"][0])), "matmul[5]"),
    (lambda d: d.update(matmul=[]), "matmul"),
    (lambda d: d.update(calibrated="yes"), "calibrated"),
    (lambda d: d.update(kind="fpga"), "kind"),
    (lambda d: d.update(date="2026-13-01"), "date"),
    (lambda d: d.update(device=""), "device"),
    (lambda d: d.update(software={"jax": 10}), "software"),
    (lambda d: d.update(schema_version=2), "schema_version"),
    (lambda d: d.update(speed=1.0), "speed"),
    (lambda d: d.update(first_touch_min_bytes=0), "first_touch_min_bytes"),
    (lambda d: d.update(first_touch_min_bytes=3.5e7), "first_touch_min_bytes"),
    (lambda d: d.update(reduce=-1.0), "reduce"),
    (lambda d: d.update(transpose=[[1, 2e9], [16]]), "transpose[1]"),
    (lambda d: d.update(transpose=[[0, 2e9]]), "transpose[0][0]"),
    (lambda d: d.update(transpose=[[1, 2e9], [1, 3e9]]), "transpose"),
])
def test_bad_profiles_are_refused_naming_the_field(change, field):
    d = good()
    change(d)
    with pytest.raises(ProfileError) as e:
        from_dict(d)
    assert e.value.field == field


def test_a_profile_written_before_the_optional_fields_reads_them_as_unmeasured():
    import dataclasses
    d = good()
    for key in ("first_touch_min_bytes", "reduce", "transpose", "reduce_max"):
        d.pop(key)
    p = from_dict(d)
    assert p == hand_profile()
    assert (p.first_touch_min_bytes, p.reduce, p.transpose, p.reduce_max) == (None, None, (),
                                                                              None)
    assert p.transpose_rate(64) is None
    p = dataclasses.replace(hand_profile(), first_touch=3e9, first_touch_min_bytes=32 << 20,
                            reduce=7e9, transpose=((1, 2e9), (64, 32e9)), reduce_max=4e9)
    assert from_dict(json.loads(json.dumps(to_dict(p)))) == p


def test_transpose_rate_is_log_linear_in_the_run_between_measured_runs():
    import dataclasses
    p = dataclasses.replace(hand_profile(), transpose=((64, 32e9), (1, 2e9)))
    assert p.transpose_rate(1) == 2e9 and p.transpose_rate(64) == 32e9
    # run 8 is half way in log between 1 and 64: the geometric mean of the two rates
    assert p.transpose_rate(8) == pytest.approx((2e9 * 32e9) ** 0.5)
    assert p.transpose_rate(0) == 2e9 and p.transpose_rate(4096) == 32e9   # the nearest end


def test_a_non_object_is_refused():
    with pytest.raises(ProfileError) as e:
        from_dict([1, 2])
    assert e.value.field == "profile"


# ---------------------------------------------------------------- round trips


def test_json_round_trip(tmp_path):
    p = hand_profile()
    assert from_dict(json.loads(json.dumps(to_dict(p)))) == p
    save(p, tmp_path / "p.json")
    assert load(tmp_path / "p.json") == p


def test_load_names_the_file_and_the_field(tmp_path):
    d = good()
    d["bandwidth"] = -7e9
    (tmp_path / "neg.json").write_text(json.dumps(d))
    with pytest.raises(ProfileError) as e:
        load(tmp_path / "neg.json")
    assert e.value.field == f"{tmp_path / 'neg.json'}: bandwidth" and e.value.value == -7e9
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ProfileError) as e:
        load(tmp_path / "bad.json")
    assert e.value.field == "--profile" and "invalid JSON" in e.value.allowed


def test_store_round_trip_latest_wins(tmp_path):
    store = Store(tmp_path / "r.sqlite")
    first = hand_profile()
    second = hand_profile(bandwidth=8e9, date="2026-12-08")
    store.put_profile(first)
    assert store.get_profile("test-device") == first
    store.put_profile(second)
    again = Store(tmp_path / "r.sqlite")          # a new connection reads it back
    assert again.get_profile("test-device") == second
    assert [r["device"] for r in again.profiles()] == ["test-device", "test-device"]
    assert again.get_profile("another-device") is None


def test_for_device_file_store_then_datasheet(tmp_path):
    store = Store(tmp_path / "r.sqlite")
    measured = hand_profile(device="h100-sxm")
    save(measured, tmp_path / "h.json")
    assert for_device(str(tmp_path / "h.json")) == measured
    sheet = for_device("h100-sxm", store)
    assert not sheet.calibrated and sheet.device == "h100-sxm"
    store.put_profile(measured)
    assert for_device("h100-sxm", store) == measured
    with pytest.raises(ProfileError) as e:          # another device's profile
        for_device(str(tmp_path / "h.json"), expect="tpu-v4")
    assert e.value.field.endswith(": device") and e.value.value == "h100-sxm"
    with pytest.raises(ProfileError) as e:          # no stored CPU profile, no datasheet
        for_device("cpu", store)
    assert e.value.value == cpu_name()
    with pytest.raises(ProfileError) as e:
        for_device("h100", store)
    assert e.value.field == "--accelerator"


# ---------------------------------------------------------------- datasheet


def test_published_fractions_are_the_published_numbers():
    fr = ds.fractions(accelerators.get("h100-sxm"))
    assert fr["gemm_fraction"] == (pytest.approx(794.5 / 989, abs=5e-4), "mamf")   # MAMF
    fr = ds.fractions(accelerators.get("a100-80gb"))
    assert fr["gemm_fraction"][0] == pytest.approx(271.2 / 312, abs=5e-4)          # MAMF
    assert fr["bandwidth_fraction"] == (pytest.approx(1724.8 / 2039, abs=5e-4),    # Triad
                                        "babelstream-a100")
    fr = ds.fractions(accelerators.get("tpu-v5e"))
    assert fr["gemm_fraction"][0] == pytest.approx(181.82e12 / 197e12, abs=5e-4)  # JAX doc


def test_every_source_is_published_or_an_assumption():
    for key, text in ds.table()["sources"].items():
        assert "http" in text or text.startswith("assumption:"), key


def test_datasheet_arithmetic():
    acc = accelerators.get("h100-sxm")
    fr = {k: v for k, (v, _) in ds.fractions(acc).items()}
    p = ds.profile(acc)
    assert not p.calibrated and p.kind == "gpu" and p.dtypes == ("fp32", "tf32", "bf16", "fp16")
    bw = 3350e9 * fr["bandwidth_fraction"]
    assert p.bandwidth == bw
    assert p.vector_flops == 66.9e12 * fr["vector_fraction"]
    assert p.transcendentals == p.vector_flops * fr["transcendental_ratio"]
    assert p.sort == bw / fr["sort_bytes_per_key"]
    assert (p.gather, p.scatter) == (bw * fr["gather_fraction"], bw * fr["scatter_fraction"])
    assert p.overhead_s == fr["overhead_s"]
    big = flops(8192, 8192, 8192)   # shape factor 1: peak x fraction, plus the latency
    assert p.matmul_rate(8192, 8192, 8192, dtype="bf16") == pytest.approx(
        big / (big / (989.4e12 * fr["gemm_fraction"]) + fr["matmul_latency_s"]), rel=1e-12)
    small = flops(64, 64, 64)       # shape factor (64/(64+d)) / (2048/(2048+d))
    d = fr["matmul_half_dim"]
    rate = 989.4e12 * fr["gemm_fraction"] * (64 / (64 + d)) / (2048 / (2048 + d))
    assert p.matmul_rate(64, 64, 64, dtype="bf16") == pytest.approx(
        small / (small / rate + fr["matmul_latency_s"]), rel=1e-12)
    fp32 = 66.9e12 * fr["fp32_gemm_fraction"]
    assert p.matmul_rate(8192, 8192, 8192, dtype="fp32") == pytest.approx(
        big / (big / fp32 + fr["matmul_latency_s"]), rel=1e-12)


def test_datasheet_source_names_every_fraction_source():
    p = ds.profile(accelerators.get("tpu-v4"), "bf16")
    assert p.dtypes == ("bf16",) and p.kind == "tpu"
    for key in ("assume-gemm-tpu", "assume-bandwidth", "assume-vector-tpu"):
        assert f"[{key}]" in p.source
    assert "Bekman" not in p.source      # only the sources used


def test_every_catalogue_device_with_a_bandwidth_has_a_valid_datasheet_profile():
    for acc in accelerators.load().values():
        if acc.memory_bandwidth_gbs is None:
            with pytest.raises(ProfileError) as e:
                ds.profile(acc)
            assert e.value.field == f"{acc.name}.memory_bandwidth_gbs"
            continue
        p = ds.profile(acc)
        assert from_dict(copy.deepcopy(to_dict(p))) == p


def test_a_single_product_inside_a_measured_cube_is_trilinear_in_log_dims():
    sizes = (64, 1024)
    rate = lambda m, k, n: 1e9 * m ** 0.2 * k ** 0.3 * n ** 0.1   # noqa: E731 (log-linear)
    cube = tuple(MatmulPoint(m, k, n, 1, "fp32", rate(m, k, n))
                 for m in sizes for k in sizes for n in sizes)
    p = hand_profile(matmul=cube)
    # a rate log-linear in each log dimension is reproduced exactly between the corners
    assert p.matmul_rate(256, 128, 512) == pytest.approx(rate(256, 128, 512), rel=1e-12)
    # outside the cube each coordinate is clamped: 4096 -> 1024, 16 -> 64
    assert p.matmul_rate(4096, 16, 300) == pytest.approx(rate(1024, 64, 300), rel=1e-12)
    # a corner missing: the grouped interpolation instead
    partial = hand_profile(matmul=cube[:-1])
    assert partial.matmul_rate(256, 128, 512) != pytest.approx(rate(256, 128, 512))


def test_batched_cubes_interpolate_log_linearly_in_log_batch():
    sizes, batches = (64, 1024), (4, 64)
    rate = lambda m, k, n, b: 1e9 * m ** 0.2 * k ** 0.1 * n ** 0.1 * b ** 0.25  # noqa: E731
    pts = tuple(MatmulPoint(m, k, n, b, "fp32", rate(m, k, n, b))
                for b in batches for m in sizes for k in sizes for n in sizes)
    p = hand_profile(matmul=pts)
    assert p.matmul_rate(128, 256, 512, 16) == pytest.approx(rate(128, 256, 512, 16), rel=1e-12)
    # batches outside the measured ones are clamped: 512 -> 64
    assert p.matmul_rate(128, 64, 64, 512) == pytest.approx(rate(128, 64, 64, 64), rel=1e-12)


def test_many_products_of_equal_flops_average_without_overflow():
    # 40 batched products of one smallest dimension and FLOPs: their geometric mean
    pts = tuple(MatmulPoint(64, 64, 128, b, "fp32", 1e11 * (1 + b / 100)) for b in range(2, 42))
    p = hand_profile(matmul=pts)
    rate = p.matmul_rate(64, 64, 128, batch=1000)
    assert math.isfinite(rate) and 1e11 < rate <= 1e11 * 1.41


def test_a_lone_extra_shape_is_not_a_cube_size():
    sizes = (64, 1024)
    rate = lambda m, k, n: 1e9 * m ** 0.2 * k ** 0.3 * n ** 0.1   # noqa: E731
    cube = tuple(MatmulPoint(m, k, n, 1, "fp32", rate(m, k, n))
                 for m in sizes for k in sizes for n in sizes)
    p = hand_profile(matmul=cube + (MatmulPoint(256, 256, 256, 1, "fp32", 1e9),))
    assert p.matmul_rate(256, 256, 256) == 1e9                       # measured: its rate
    assert p.matmul_rate(256, 256, 512) == pytest.approx(rate(256, 256, 512), rel=1e-12)
