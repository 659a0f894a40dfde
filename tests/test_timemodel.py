"""The step-time model's arithmetic on hand-written regions and a hand-written profile."""
import pytest

from comparator.cost.profile import DeviceProfile, MatmulPoint
from comparator.cost.regions import Region
from comparator.cost.timemodel import predict, predict_mfu, region_time

PROFILE = DeviceProfile(
    device="cpu: test device, 2 cores", kind="cpu", calibrated=True, source="written in the test",
    date="2025-01-01", software={}, matmul=(MatmulPoint(1024, 1024, 1024, 1, "fp32", 100e9),),
    bandwidth=10e9, vector_flops=20e9, transcendentals=1e9, sort=50e6, gather=30e9,
    scatter=3e9, overhead_s=5e-6)


def region(kind, flops=0, nbytes=0, shape=None, term="ffn/in", count=1, trans=0, keys=0):
    return Region(name=kind, kind=kind, term=term, flops=flops, transcendentals=trans,
                  bytes=nbytes, shape=shape, dtype="fp32", count=count, keys=keys)


def test_compute_bound_matmul():
    m = k = n = 512
    r = region("matmul", flops=2 * m * k * n * 4, nbytes=4 * 3 * m * n * 4,
               shape=(m, k, n, 4), count=3)
    t, bound = region_time(r, PROFILE)
    rate = PROFILE.matmul_rate(m, k, n, 4, "fp32")
    # 2 m k n batch / rate > bytes / bandwidth (12.6 MB / 10 GB/s = 1.26 ms < 10.7 ms)
    assert 2 * m * k * n * 4 / rate > 4 * 3 * m * n * 4 / 10e9
    assert bound == "compute"
    assert t == pytest.approx(3 * (2 * m * k * n * 4 / rate + 5e-6))


def test_memory_bound_elementwise():
    # 1e6 FLOPs / 20 GFLOP/s = 50 us; 1e9 bytes / 10 GB/s = 0.1 s
    t, bound = region_time(region("elementwise", flops=10**6, nbytes=10**9), PROFILE)
    assert bound == "memory"
    assert t == pytest.approx(10**9 / 10e9 + 5e-6)


def test_overhead_bound_tiny_region():
    # 100 FLOPs / 20 GFLOP/s = 5 ns; 800 bytes / 10 GB/s = 80 ns; both below 5 us
    t, bound = region_time(region("reduce", flops=100, nbytes=800, count=2), PROFILE)
    assert bound == "overhead"
    assert t == pytest.approx(2 * (800 / 10e9 + 5e-6))


def test_transcendentals_and_data_movement_use_their_own_throughputs():
    t, _ = region_time(region("elementwise", flops=4 * 10**6, trans=10**6, nbytes=8), PROFILE)
    assert t == pytest.approx(3 * 10**6 / 20e9 + 10**6 / 1e9 + 5e-6)
    for kind, rate in (("gather", 30e9), ("scatter", 3e9)):
        t, bound = region_time(region(kind, nbytes=10**8), PROFILE)
        assert (t, bound) == (pytest.approx(10**8 / rate + 5e-6), "memory")
    t, _ = region_time(region("sort", keys=10**6, nbytes=8 * 10**6), PROFILE)
    assert t == pytest.approx(10**6 / 50e6 + 5e-6)    # keys / sort rate


def test_predict_sums_regions_per_term_and_bound():
    mm = region("matmul", flops=2 * 512 ** 3, nbytes=3 * 512 * 512 * 4, shape=(512,) * 3 + (1,),
                term="attn/qkv")
    ew = region("elementwise", flops=10**6, nbytes=10**9, term="attn/softmax")
    tiny = region("copy", nbytes=64, term="attn/softmax", count=10)
    st = predict([mm, ew, tiny], PROFILE)
    t_mm, t_ew, t_tiny = (region_time(r, PROFILE)[0] for r in (mm, ew, tiny))
    assert st.total_s == pytest.approx(t_mm + t_ew + t_tiny)
    assert st.term_s == {"attn/qkv": pytest.approx(t_mm), "attn/softmax": pytest.approx(t_ew + t_tiny)}
    assert st.term_memory_share["attn/softmax"] == pytest.approx(t_ew / (t_ew + t_tiny))
    assert st.term_memory_share["attn/qkv"] == 0
    assert st.bound_share == {"compute": pytest.approx(t_mm / st.total_s),
                              "memory": pytest.approx(t_ew / st.total_s),
                              "overhead": pytest.approx(t_tiny / st.total_s)}
    # achieved utilisation: contraction FLOPs / (time x the best measured matmul rate)
    assert st.utilisation == pytest.approx(2 * 512 ** 3 / (st.total_s * 100e9))
    assert (st.device, st.calibrated, st.time_model) == (PROFILE.device, True, "roofline")


def test_unknown_regions_are_charged_their_bytes_and_listed():
    r = Region("x", "other", "other", 0, 0, 10**8, None, "fp32", 2, op="rng-bit-generator")
    st = predict([r], PROFILE)
    assert st.total_s == pytest.approx(2 * (10**8 / 10e9 + 5e-6))
    assert st.unknown == {"rng-bit-generator": 2}


def test_flat_mfu_model():
    # 1e15 FLOPs at 40% of 1e12 FLOP/s
    assert predict_mfu(1e15, 0.4, 1e12) == pytest.approx(1e15 / (0.4 * 1e12))


def test_fresh_buffers_pay_first_touch_from_the_least_size_the_runtime_maps_anew():
    import dataclasses
    p = dataclasses.replace(PROFILE, first_touch=2e9, first_touch_min_bytes=32 << 20)
    big, small = region("alloc", nbytes=64 << 20), region("alloc", nbytes=16 << 20)
    assert region_time(big, p) == (pytest.approx((64 << 20) / 2e9), "memory")   # no overhead
    assert region_time(small, p)[0] == 0                  # reused by the allocator
    assert region_time(big, PROFILE)[0] == 0              # first_touch not measured: None
    st = predict([big, small, region("copy", nbytes=80)], p)
    assert st.total_s == pytest.approx((64 << 20) / 2e9 + 80 / 10e9 + 5e-6)


def test_reductions_and_reorderings_move_at_their_own_rates():
    import dataclasses
    p = dataclasses.replace(PROFILE, reduce=5e9, transpose=((1, 2e9), (64, 20e9)))
    # a softmax-like fusion: 1e6 FLOPs, 4 MB reduced, 8 MB moved
    r = region("reduce", flops=10**6, nbytes=8 * 10**6)
    r = dataclasses.replace(r, reduced=4 * 10**6)
    assert region_time(r, p)[0] == pytest.approx(max(10**6 / 20e9 + 4e6 / 5e9, 8e6 / 10e9)
                                                 + 5e-6)
    assert region_time(r, PROFILE)[0] == pytest.approx(8e6 / 10e9 + 5e-6)   # not measured
    # a max reduction at its own rate (the adding one's when the profile lacks it)
    m = dataclasses.replace(r, reduced=0, reduced_max=4 * 10**6)
    assert region_time(m, p)[0] == pytest.approx(max(10**6 / 20e9 + 4e6 / 5e9, 8e6 / 10e9)
                                                 + 5e-6)
    q = dataclasses.replace(p, reduce_max=2e9)
    assert region_time(m, q)[0] == pytest.approx(10**6 / 20e9 + 4e6 / 2e9 + 5e-6)
    # a transposing copy of 4 MB (8 MB read + written), 1 element at a time
    c = dataclasses.replace(region("copy", nbytes=8 * 10**6), transposed=8 * 10**6, run=1)
    assert region_time(c, p) == (pytest.approx(8e6 / 2e9 + 5e-6), "memory")
    # part of a fusion's bytes reordered by runs of 64: the rest streams at the bandwidth
    f = dataclasses.replace(region("elementwise", nbytes=12 * 10**6), transposed=8 * 10**6,
                            run=64)
    assert region_time(f, p)[0] == pytest.approx(4e6 / 10e9 + 8e6 / 20e9 + 5e-6)
