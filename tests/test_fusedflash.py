"""Flash attention priced as the one fused kernel an accelerator runs
(comparator/cost/fusedflash.py): FlashAttention's IO model as arithmetic, the fused regions
of a step, the CPU profile pricing what XLA:CPU compiled, and flash at most dense at long
lengths on an H100 without beating its FLOPs at peak."""
import dataclasses

import pytest

import architectures
from architectures import terms as TM
from architectures import zoo
from comparator.cost import catalogue, datasheet, fusedflash, steptime, timemodel

T = architectures.get("transformer")
# NVIDIA Hopper tuning guide: shared memory up to 228 KB (KiB) per SM; Ampere tuning
# guide: the A100's up to 164 KB (the catalogue's sram_kib, sources.sram)
H100_SRAM, A100_SRAM = 228 * 1024, 164 * 1024
SMALL = dataclasses.replace(T.resize(T.preset("bert-base"), d_model=128, n_layers=2,
                                     n_heads=2, d_ff=256), attention="flash")
# one head of 512 tokens, d = 64, bf16 (2 bytes) on 228 KiB: M = 233,472 / 2 = 116,736
# elements, B_c = ceil(116,736 / (4 x 64)) = 456 key rows, B_r = min(456, 64) = 64,
# T_c = ceil(512 / 456) = 2 passes over all 512 query rows: R = 1,024
FWD = ((512 * 64 * 2 + 2 * 512 * 4)          # O, l, m initialised (l, m in fp32)
       + 2 * 512 * 64 * 2                    # K, V read once
       + 1024 * (2 * 64 * 2 + 2 * 4)         # Q_i, O_i, l_i, m_i read per pass
       + 1024 * (64 * 2 + 2 * 4))            # O_i, l_i, m_i written per pass
BWD = (512 * 64 * 2                          # dQ initialised
       + 2 * 512 * 64 * 2 + 2 * 512 * 64 * 2   # K, V read; dK, dV written once
       + 1024 * (4 * 64 * 2 + 2 * 4)         # Q_i, O_i, dO_i, dQ_i, l_i, m_i read
       + 1024 * 64 * 2)                      # dQ_i written


def _h100():
    return datasheet.profile(catalogue.get("h100-sxm"))


def test_the_catalogue_gives_each_accelerator_its_on_chip_memory():
    assert _h100().sram_bytes == H100_SRAM
    assert datasheet.profile(catalogue.get("a100-40gb")).sram_bytes == A100_SRAM
    assert all(a.sram_kib and a.sources.get("sram") for a in catalogue.load().values()
               if a.kind in ("gpu", "tpu"))


def test_traffic_is_flashattentions_io_model():
    io = fusedflash.traffic(512, 64, H100_SRAM, 2)
    assert (io["M"], io["B_c"], io["B_r"], io["rows_passed"]) == (116_736, 456, 64, 1_024)
    assert (io["forward"], io["backward"]) == (FWD, BWD)
    # causal: key block j meets the query blocks from floor(456 j / 64) on
    assert fusedflash.traffic(512, 64, H100_SRAM, 2, causal=True)["rows_passed"] == \
        512 + (512 - 7 * 64)
    # Theorem 2, Theta(N^2 d^2 / M): twice the tokens, four times the traffic (long N)
    a, b = (fusedflash.traffic(n, 64, H100_SRAM, 2)["forward"] for n in (1 << 16, 1 << 17))
    assert 3.9 < b / a < 4.1
    # ... and less on-chip memory, more passes: the A100 moves more than the H100
    assert fusedflash.traffic(1 << 16, 64, A100_SRAM, 2)["forward"] > a


@pytest.fixture(scope="module")
def compiled():
    return steptime.regions_at(T, SMALL, 512, 1, "bf16")


def test_a_step_prices_one_fused_kernel_per_layer_and_direction(compiled):
    prof = _h100()
    before = steptime.retarget(compiled, "bf16", prof)
    out, notes = steptime.fused(before, T, SMALL, 512, 1, "bf16", prof)
    names = set(fusedflash.TERMS)
    removed = [r for r in before if r.term in names]
    fused = [r for r in out if r.kind == "fused"]
    assert removed and [r for r in out if r.kind != "fused"] == \
        [r for r in before if r.term not in names]        # the rest as compiled
    assert [(r.count, r.term) for r in fused] == [(2, "attn/scores")] * 2   # 2 layers
    heads = 1 * 2                                                            # batch x heads
    assert [r.bytes for r in fused] == [heads * FWD, heads * BWD]
    # the FLOPs as compiled (the recomputed scores included), cut between the directions
    # as the flash terms' forward and backward + recomputed FLOPs are
    assert sum(r.flops * r.count for r in fused) == pytest.approx(
        sum(r.flops * r.count for r in removed), rel=1e-6)
    t = TM.count(zoo.flash_terms(1, 1, 512, 64, 128, False), "all")
    assert fused[0].share == pytest.approx(t.fwd / t.train)
    assert fused[0].share + fused[1].share == pytest.approx(1)
    # one region's overhead a run: max(compute, bytes / bandwidth) + overhead, per layer
    compute = fused[1].share * sum(r.count * timemodel._compute_s(r, prof) for r in removed
                                   if r.kind in timemodel.ARITHMETIC) / 2
    assert timemodel.region_time(fused[1], prof)[0] == pytest.approx(
        2 * (max(compute, heads * BWD / prof.bandwidth) + prof.overhead_s))
    assert "228 KiB" in notes[0] and "tiles of 64 query x 456 key rows" in notes[0]
    st = steptime.predict(T, SMALL, 512, 1, "bf16", prof)
    assert st.notes == notes
    assert steptime.fields(st)["time_assumptions"]["fused_attention"] == list(notes)
    dense = dataclasses.replace(SMALL, attention="dense")
    assert steptime.fused(before, T, dense, 512, 1, "bf16", prof) == (before, ())


def test_the_cpu_profile_prices_flash_as_compiled(compiled):
    cpu = dataclasses.replace(_h100(), kind="cpu", device="cpu: test")   # kind decides
    assert steptime.fused(compiled, T, SMALL, 512, 1, "bf16", cpu) == (compiled, ())
    st = steptime.predict(T, SMALL, 512, 1, "bf16", cpu)
    assert st == timemodel.predict(compiled, cpu) and st.notes == ()
    assert "fused_attention" not in steptime.fields(st)["time_assumptions"]
    # an accelerator without an on-chip memory size: as compiled, and said
    bare = dataclasses.replace(_h100(), sram_bytes=None)
    regs = steptime.retarget(compiled, "bf16", bare)
    out, notes = steptime.fused(regs, T, SMALL, 512, 1, "bf16", bare)
    assert out == regs and "no on-chip memory size" in notes[0]


def test_flash_is_at_most_dense_at_16k_tokens_on_an_h100_and_not_above_its_peak():
    from comparator.measure.kernelbench import train_regions
    prof, n = _h100(), 16384
    st = {}
    for variant in ("dense", "flash"):
        regs = steptime.retarget(train_regions(variant, n, batch=1, heads=1, d_head=64),
                                 "bf16", prof)
        stack = (zoo.Stack("", zoo.Attn("flash"), 1, n, 64, False, 1),)
        regs, notes = fusedflash.fuse(regs, stack if variant == "flash" else (), "bf16",
                                      prof)
        st[variant] = timemodel.predict(regs, prof, notes)
    assert st["flash"].notes and st["flash"].total_s <= st["dense"].total_s
    # the roofline's floor: its contractions (the recomputed scores included) at peak
    mm = TM.count(zoo.flash_terms(1, 1, n, 64, 128, False), "matmul").train
    assert st["flash"].total_s >= mm / catalogue.get("h100-sxm").peak("bf16")
