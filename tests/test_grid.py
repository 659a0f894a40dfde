"""kernels/grid.py: formulas recorded as exact polynomials and compiled with numba."""
from fractions import Fraction

import numpy as np
import pytest

import architectures
from architectures.num import ceil_div, ceil_log2, maximum
from kernels.grid import compile_formula, record


def test_recording_is_exact_polynomial_arithmetic():
    (p,), rec, _ = record(lambda s, b: ((2 * b * s * 768 * 3 * 768) + b * s * s * 24,), ("s", "b"))
    assert p.terms == {(("b", 1), ("s", 1)): 2 * 768 * 3 * 768, (("b", 1), ("s", 2)): 24}
    assert rec.atoms == []


def test_non_polynomial_operations_become_atoms():
    f = compile_formula(lambda s, b: (maximum(1, ceil_div(s * 3, 20)) * b, s * ceil_log2(s)), 2)
    out = f(np.array([1.0, 100.0, 128.0, 129.0]), np.array([2.0]))
    assert out[0].tolist() == [2 * max(1, -(-s * 3 // 20)) for s in (1, 100, 128, 129)]
    assert out[1].tolist() == [0, 100 * 7, 128 * 7, 129 * 8]


def test_exact_division_stays_polynomial():
    (p,), rec, _ = record(lambda s, b: ((4 * s * b) // 2,))
    assert rec.atoms == [] and p.terms == {(("batch", 1), ("seq", 1)): Fraction(2)}


def test_branching_on_a_grid_variable_is_refused():
    with pytest.raises(TypeError):
        record(lambda s, b: (1 if s > 3 else 2,))


@pytest.mark.parametrize("arch", architectures.NAMES)
def test_compiled_presets_equal_the_scalar_formulas(arch):
    mod = architectures.get(arch)
    seqs = np.array([512.0, 1024.0, 2048.0, 4096.0])
    for name, (cfg, _) in mod.PRESETS.items():
        for scope in ("matmul", "all"):
            f = compile_formula(lambda s, b: (mod.flops(cfg, s, b, scope).fwd,
                                              mod.flops(cfg, s, b, scope).train), 2)
            out = f(seqs, np.array([4.0]))
            for i, s in enumerate(seqs.astype(int)):
                one = mod.flops(cfg, int(s), 4, scope)
                assert out[0, i] == pytest.approx(one.fwd, rel=2 ** -50)
                assert out[1, i] == pytest.approx(one.train, rel=2 ** -50)
