"""Compiled regions of a step: a hand-written HLO module read region by region, and the
real compiled steps of two architectures checked against their traced FLOPs."""
from collections import Counter

import pytest

import architectures
from comparator.cost import regions as R
from comparator.count.fasttrace import traced_counts

HLO = """HloModule test, entry_computation_layout={()->()}

%fused_computation (param_0: f32[1000,64], param_1: s32[10,1]) -> f32[10,64] {
  %param_0 = f32[1000,64]{1,0} parameter(0)
  %param_1 = s32[10,1]{1,0} parameter(1)
  %gather = f32[10,64]{1,0} gather(%param_0, %param_1), offset_dims={1}, collapsed_slice_dims={0}, start_index_map={0}, index_vector_dim=1, slice_sizes={1,64}, metadata={op_name="jit(f)/embed/lookup/gather"}
  ROOT %m = f32[10,64]{1,0} multiply(%gather, %gather), metadata={op_name="jit(f)/embed/lookup/mul"}
}

%fused_computation.1 (param_0.1: f32[32,64]) -> f32[32,64] {
  %param_0.1 = f32[32,64]{1,0} parameter(0)
  %e = f32[32,64]{1,0} exponential(%param_0.1), metadata={op_name="jit(f)/transpose(jvp(vmap(attn/softmax)))/exp"}
  %a = f32[32,64]{1,0} add(%e, %param_0.1)
  ROOT %t = f32[32,64]{1,0} tanh(%a), metadata={op_name="jit(f)/ffn/act/tanh"}
}

%body (p: (s32[], f32[32,64])) -> (s32[], f32[32,64]) {
  %p = (s32[], f32[32,64]{1,0}) parameter(0)
  %i = s32[] get-tuple-element(%p), index=0
  %x = f32[32,64]{1,0} get-tuple-element(%p), index=1
  %w = f32[64,64]{1,0} constant({...})
  %xc = f32[32,64]{1,0} copy(%x)
  %dot = f32[32,64]{1,0} dot(%xc, %w), lhs_contracting_dims={1}, rhs_contracting_dims={0}, metadata={op_name="jit(f)/rev/residual/attn/qkv/...i,io->...o/dot_general"}
  %one = s32[] constant(1)
  %i1 = s32[] add(%i, %one)
  ROOT %tuple = (s32[], f32[32,64]{1,0}) tuple(%i1, %dot)
}

%cond (q: (s32[], f32[32,64])) -> pred[] {
  %q = (s32[], f32[32,64]{1,0}) parameter(0)
  %j = s32[] get-tuple-element(%q), index=0
  %n = s32[] constant(7)
  ROOT %lt = pred[] compare(%j, %n), direction=LT
}

%cmp (c0: s32[], c1: s32[]) -> pred[] {
  %c0 = s32[] parameter(0)
  %c1 = s32[] parameter(1)
  ROOT %c = pred[] compare(%c0, %c1), direction=LT
}

%maxc (m0: f32[], m1: f32[]) -> f32[] {
  %m0 = f32[] parameter(0)
  %m1 = f32[] parameter(1)
  ROOT %mx = f32[] maximum(%m0, %m1)
}

%addc (a0: f32[], a1: f32[]) -> f32[] {
  %a0 = f32[] parameter(0)
  %a1 = f32[] parameter(1)
  ROOT %ad = f32[] add(%a0, %a1)
}

%fused_computation.2 (param_0.2: f32[32,64]) -> f32[32] {
  %param_0.2 = f32[32,64]{1,0} parameter(0)
  %zero.2 = f32[] constant(-inf)
  %e2 = f32[32,64]{1,0} exponential(%param_0.2)
  ROOT %r2 = f32[32]{0} reduce(%e2, %zero.2), dimensions={1}, to_apply=%maxc, metadata={op_name="jit(f)/attn/softmax/reduce_max"}
}

%fused_computation.3 (param_0.3: f32[64,32]) -> f32[32,64] {
  %param_0.3 = f32[64,32]{1,0} parameter(0)
  %tr = f32[32,64]{0,1} transpose(%param_0.3), dimensions={1,0}
  ROOT %cp = f32[32,64]{1,0} copy(%tr), metadata={op_name="jit(f)/attn/out/transpose"}
}

ENTRY %main (a: f32[1000,64], b: s32[10,1], c: f32[8,32,16], k: s32[4,100], x0: f32[32,64]) -> f32[10,64] {
  %a = f32[1000,64]{1,0} parameter(0)
  %b = s32[10,1]{1,0} parameter(1)
  %c = f32[8,32,16]{2,1,0} parameter(2)
  %k = s32[4,100]{1,0} parameter(3)
  %x0 = f32[32,64]{1,0} parameter(4)
  %fusion = f32[10,64]{1,0} fusion(%a, %b), kind=kLoop, calls=%fused_computation, metadata={op_name="jit(f)/embed/lookup/mul"}
  %fusion.1 = f32[32,64]{1,0} fusion(%x0), kind=kLoop, calls=%fused_computation.1
  %bd = f32[8,32,32]{2,1,0} dot(%c, %c), lhs_batch_dims={0}, lhs_contracting_dims={2}, rhs_batch_dims={0}, rhs_contracting_dims={2}, metadata={op_name="jit(f)/attn/scores/dot_general"}
  %zero = s32[] constant(0)
  %t0 = (s32[], f32[32,64]{1,0}) tuple(%zero, %fusion.1)
  %w = (s32[], f32[32,64]{1,0}) while(%t0), condition=%cond, body=%body, backend_config={"known_trip_count":{"n":"7"}}
  %s = s32[4,100]{1,0} sort(%k), dimensions={1}, is_stable=true, to_apply=%cmp, metadata={op_name="jit(f)/vmap(lsh/sort)/sort"}
  %r = u32[16]{0} rng-bit-generator(%k), algorithm=rng_default
  %mx2 = f32[32]{0} fusion(%x0), kind=kLoop, calls=%fused_computation.2
  %z = f32[] constant(0)
  %sum = f32[32]{0} reduce(%x0, %z), dimensions={1}, to_apply=%addc, metadata={op_name="jit(f)/attn/softmax/reduce_sum"}
  %x0t = f32[64,32]{1,0} bitcast(%x0)
  %tp = f32[32,64]{1,0} fusion(%x0t), kind=kLoop, calls=%fused_computation.3
  ROOT %out = f32[10,64]{1,0} copy(%fusion)
}
"""
TERMS = ("embed/lookup", "attn/softmax", "ffn/act", "attn/qkv", "attn/scores", "rev/residual",
         "lsh/sort")


def by_name():
    regs, unknown, flagged = R.regions_of_text(HLO, TERMS)
    return {r.name: r for r in regs}, unknown, flagged


def test_fusion_bytes_are_its_operands_read_and_results_written():
    regs, _, _ = by_name()
    f = regs["fusion"]
    # the table is read only where gathered: 10 rows x 64 floats, + the 10 indices,
    # + the 10 x 64 result written; one multiply per element
    assert f.bytes == 10 * 64 * 4 + 10 * 4 + 10 * 64 * 4
    assert (f.flops, f.kind, f.term, f.count) == (10 * 64, "gather", "embed/lookup", 1)
    g = regs["fusion.1"]
    # exp, add, tanh on 32 x 64 elements; the intermediates stay inside the fusion
    assert (g.flops, g.transcendentals) == (3 * 32 * 64, 2 * 32 * 64)
    assert g.bytes == 2 * 32 * 64 * 4 and g.kind == "elementwise"
    # the dominant instruction's term (the first of equal FLOPs), transformations stripped
    assert g.term == "attn/softmax"


def test_contractions_loops_sorts_and_unknown_opcodes():
    regs, unknown, _ = by_name()
    bd = regs["bd"]
    assert bd.shape == (32, 16, 32, 8) and bd.flops == 2 * 32 * 16 * 32 * 8
    assert bd.bytes == 2 * 8 * 32 * 16 * 4 + 8 * 32 * 32 * 4 and bd.term == "attn/scores"
    loop_dot = regs["dot"]
    # the while body runs known_trip_count = 7 times; the innermost term wins
    assert (loop_dot.count, loop_dot.shape, loop_dot.term) == (7, (32, 64, 64, 1), "attn/qkv")
    assert regs["xc"].term == "attn/qkv"           # no metadata: its consumer's term
    assert regs["xc"].count == 7 and regs["i1"].count == 7
    s = regs["s"]
    assert (s.kind, s.keys, s.term) == ("sort", 4 * 100, "lsh/sort")
    assert s.flops == 4 * 100 * 7                   # rows x k x ceil(log2 k)
    assert unknown == {"rng-bit-generator": 1}
    assert R.unknown(regs.values()) == {"rng-bit-generator": 1}
    assert regs["r"].kind == "other" and regs["r"].bytes == 4 * 100 * 4 + 16 * 4
    assert R.contraction_flops(regs.values()) == 2 * 32 * 16 * 32 * 8 + 7 * 2 * 32 * 64 * 64


def test_reductions_by_combiner_and_transposing_copies():
    regs, _, _ = by_name()
    mx, sm = regs["mx2"], regs["sum"]
    # a max reduction of the exp computed inside the fusion: 32 x 64 floats compared
    assert (mx.kind, mx.reduced, mx.reduced_max) == ("reduce", 0, 32 * 64 * 4)
    assert mx.flops == 32 * 64 + 32 * 64 - 32 and mx.transcendentals == 32 * 64
    assert (sm.kind, sm.reduced, sm.reduced_max) == ("reduce", 32 * 64 * 4, 0)
    # the transpose is a view (its layout {0,1}); the copy to {1,0} reorders memory one
    # element at a time: 32 x 64 floats read and written
    tp = regs["tp"]
    assert (tp.kind, tp.transposed, tp.run) == ("copy", 2 * 32 * 64 * 4, 1)
    assert regs["fusion.1"].transposed == 0 and regs["xc"].transposed == 0   # same layout


def test_segments_strip_transformations():
    assert R.segments("jit(f)/transpose(jvp(vmap(vmap(lsh/unsort))))/jit(_take)/gather") == [
        "f", "lsh", "unsort", "_take", "gather"]
    find = R.term_finder(["gen/attn/qkv", "disc/attn/qkv", "norm/attn", "rev/residual"])
    assert find("jit(s)/gen/layer_0/attn/qkv/dot_general") == "gen/attn/qkv"
    assert find("jit(s)/rev/residual/norm/attn/square") == "norm/attn"
    assert find("jit(s)/loss/mlm/exp") is None


SMALL = dict(d_model=64, n_layers=2, n_heads=2, d_ff=None)


@pytest.mark.parametrize("arch,seq", [("transformer", 128), ("reformer", 256)])
def test_compiled_contractions_equal_the_traced_matmul_flops(arch, seq):
    """XLA's optimised step keeps every contraction the jaxpr has: the regions' contraction
    FLOPs equal the traced matmul-scope training FLOPs (tolerance 0: both exact integers)."""
    mod = architectures.get(arch)
    cfg = mod.resize(mod.preset(mod.DEFAULT_PRESET), **SMALL)
    regs = R.step_regions(mod, cfg, seq, 1)
    traced = traced_counts(mod, cfg, [seq], 1)[seq].train
    assert R.contraction_flops(regs) == traced.flops("matmul")
    assert R.unknown(regs) == {}
    terms = set(mod.terms(cfg, 1, seq))
    assert {r.term for r in regs} <= terms | {"other"}
    # term by term too (dots whose metadata XLA dropped take their terms by shape)
    per_term = Counter()
    for r in regs:
        if r.kind == "matmul":
            per_term[r.term] += r.flops * r.count
    assert per_term == Counter({k: v for k, v in traced.breakdown("matmul").items() if v})
    assert all(r.kind in R.KINDS and r.bytes >= 0 and r.count >= 1 for r in regs)
