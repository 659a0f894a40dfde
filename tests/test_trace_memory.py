"""Tracing allocates no activations: bert-large at 16384 tokens traces in a small process.

Its real training step would hold about 16 heads x 16384^2 x 4 bytes = 17 GB of
attention scores per layer; the trace works on shapes only.  Run in a fresh
process so the peak resident size is this trace's alone.
"""
import subprocess
import sys

CODE = """
import resource, time, jax
t0 = time.perf_counter()
from architectures import transformer as tr
from architectures.program import spec_structs
from comparator.count.trace import trace
cfg = tr.preset("bert-large"); prog = tr.model(cfg)
P = prog.abstract_params(1, 16384); D = spec_structs(prog.spec(1, 16384))
r = trace(prog.train_step, P, D, None)
assert r.flops("matmul") == tr.flops(cfg, 16384).train
try:   # this program's own peak: VmHWM starts afresh at exec, ru_maxrss does not (it
        # keeps the forking parent's, e.g. a large pytest process's, across exec)
    with open("/proc/self/status") as fh:
        peak = next(int(l.split()[1]) for l in fh if l.startswith("VmHWM:")) * 1024
except (OSError, StopIteration):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(peak, time.perf_counter() - t0)
"""


def test_bert_large_16k_traces_without_allocating_activations():
    p = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    peak_bytes, seconds = p.stdout.split()
    scores_one_layer = 16 * 16384 ** 2 * 4
    assert int(peak_bytes) < 2 * 1024 ** 3 < scores_one_layer
