"""The analytic formulas evaluate over NumPy float64 arrays exactly as over ints."""
import numpy as np
import pytest

import architectures

SEQS = {"transformer": [128, 512, 2048, 4096, 65536], "albert": [128, 512, 2048, 4096],
        "electra": [128, 512, 2048, 4096], "reformer": [512, 2048, 4096, 16384, 65536]}


@pytest.mark.parametrize("arch", architectures.NAMES)
@pytest.mark.parametrize("scope", ["matmul", "all"])
def test_array_sweep_equals_scalar_counts(arch, scope):
    mod = architectures.get(arch)
    for name, (cfg, _) in mod.PRESETS.items():
        seqs = SEQS[arch]
        vec = mod.flops(cfg, np.array(seqs, dtype=np.float64), 2, scope)
        assert vec.train.dtype == np.float64
        for i, s in enumerate(seqs):
            one = mod.flops(cfg, s, 2, scope)
            assert isinstance(one.train, int)
            # float64 holds every count below 2**53 exactly; beyond, to 1 part in 2**52
            assert vec.train[i] == pytest.approx(one.train, rel=2 ** -50)
            assert vec.fwd[i] == pytest.approx(one.fwd, rel=2 ** -50)
