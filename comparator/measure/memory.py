"""The memory estimate checked against what the compiler allocates and what a step uses.

``xla_memory`` compiles the real step of ``cost.stepmemory`` (loss, gradients, Adam, the
parameters and moments donated) for abstract inputs -- nothing is allocated -- with the
options ``comparator bench`` compiles with, and reads XLA's ``memory_analysis()``:
arguments, temporaries, outputs and the outputs aliasing donated arguments;
``xla_bytes = arguments + temporaries + outputs - aliases``.  On a CPU the step keeps
JAX's remat barriers through scheduling (``cost.compiled.BARRIERS_KEPT``, as XLA:GPU
does); XLA:CPU's default drops them before its last CSE and schedule, which merges part of
a checkpointed layer's recomputation with the forward and runs the rest early -- a
checkpointed step's total as it compiles by default is kept beside it
(``xla_cpu_default_bytes``), not compared.

``measured_peak`` runs that step on real random inputs in a fresh process and reports the
peak it used: on a device that keeps memory statistics (GPUs, TPUs) the peak bytes in
use; on the CPU the peak resident size during the step above the resident size before
it, plus the arguments (already resident).  What it adds to XLA's plan is the
allocator's and framework's overhead.

``check`` is one point of ``comparator memory``: our estimate beside XLA's analysis (and
the measured peak), as a record with ``estimated_bytes``, ``xla_bytes`` and
``measured_peak_bytes``.
"""
from __future__ import annotations

import json
import subprocess
import sys

from comparator.cost import stepmemory
from comparator.cost.compiled import BARRIERS_KEPT, compile_options_for, matmul_precision


def xla_memory(mod, cfg, seq: int, batch: int = 1, policy: str | None = None,
               dtype: str = "fp32") -> dict | None:
    """XLA's memory analysis of the compiled step (None where the backend gives none)."""
    import jax
    prog = mod.model(cfg, policy or mod.DEFAULT_POLICY)
    args = stepmemory.step_args(prog, batch, seq)
    with jax.default_matmul_precision(matmul_precision(dtype)):
        lowered = jax.jit(stepmemory.step_of(prog, dtype), donate_argnums=(0, 1, 2)).lower(
            *args)
        options = compile_options_for()
        ma = lowered.compile(options or None).memory_analysis()
        if ma is None:
            return None
        out = _totals(ma)
        out["xla_cpu_default_bytes"] = None
        if jax.default_backend() == "cpu" and "optimization_barrier" in lowered.as_text():
            # a checkpointed step: also as XLA:CPU compiles it by default (module doc)
            default = {k: v for k, v in options.items() if k not in BARRIERS_KEPT}
            out["xla_cpu_default_bytes"] = _totals(
                lowered.compile(default or None).memory_analysis())["xla_bytes"]
    return out


def _totals(ma) -> dict:
    out = {"xla_argument_bytes": int(ma.argument_size_in_bytes),
           "xla_temp_bytes": int(ma.temp_size_in_bytes),
           "xla_output_bytes": int(ma.output_size_in_bytes),
           "xla_alias_bytes": int(ma.alias_size_in_bytes)}
    out["xla_bytes"] = (out["xla_argument_bytes"] + out["xla_temp_bytes"]
                        + out["xla_output_bytes"] - out["xla_alias_bytes"])
    return out


_RUN = r"""
import json, sys, jax, numpy as np
import architectures
from comparator.cost import stepmemory
from comparator.cost.compiled import compile_options_for
arch, cfg_fields, seq, batch, policy, dtype = json.loads(sys.argv[1])
mod = architectures.get(arch)
cfg = mod.Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg_fields.items()})
prog = mod.model(cfg, policy)
params = jax.jit(lambda r: prog.init(r, batch, seq))(jax.random.PRNGKey(0))
zeros = lambda t: jax.tree_util.tree_map(jax.numpy.zeros_like, t)
rng = np.random.default_rng(0)
data = {k: rng.integers(0, b, s.shape).astype(s.dtype) for k, (s, b) in prog.spec(batch, seq).items()}
key = jax.random.PRNGKey(1)
args = (params, zeros(params), zeros(params), data, key)
step = jax.jit(stepmemory.step_of(prog, dtype), donate_argnums=(0, 1, 2)).lower(*args).compile(
    compile_options_for() or None)
arg_bytes = sum(x.nbytes for x in jax.tree_util.tree_leaves(args))
def status(field):
    try:
        for line in open("/proc/self/status"):
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
jax.block_until_ready(args)
dev = jax.devices()[0]
stats = dev.memory_stats() or {}
if "peak_bytes_in_use" not in stats:
    try:
        open("/proc/self/clear_refs", "w").write("5")   # reset the resident high-water mark
    except OSError:
        pass
before = status("VmRSS:")
out = step(*args)
jax.block_until_ready(out)
stats = dev.memory_stats() or {}
if "peak_bytes_in_use" in stats:
    peak, how = int(stats["peak_bytes_in_use"]), f"{dev.platform}: peak bytes in use"
else:
    peak_rss = status("VmHWM:")
    peak = None if peak_rss is None or before is None else peak_rss - before + arg_bytes
    how = "cpu: peak resident size during the step above the size before it, + arguments"
print(json.dumps({"measured_peak_bytes": peak, "measured_how": how}))
"""


def measured_peak(mod, cfg, seq: int, batch: int = 1, policy: str | None = None,
                  dtype: str = "fp32", timeout: float = 600) -> dict:
    """Run one step in a fresh process (module doc): ``measured_peak_bytes`` (None if the
    platform reports nothing) and how it was measured; ``measured_error`` on a failure."""
    import dataclasses
    fields = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    arg = json.dumps([mod.NAME, fields, seq, batch, policy or mod.DEFAULT_POLICY, dtype])
    import os
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    try:
        p = subprocess.run([sys.executable, "-c", _RUN, arg], capture_output=True, text=True,
                           timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"measured_peak_bytes": None, "measured_error": f"timed out after {timeout:g} s"}
    if p.returncode != 0:
        return {"measured_peak_bytes": None,
                "measured_error": (p.stderr.strip().splitlines() or ["failed"])[-1][:200]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def check(mod, cfg, seq: int, batch: int = 1, policy: str | None = None,
          dtype: str = "fp32", run: bool = False) -> dict:
    """One point: the estimate (``cpu`` schedule on a CPU backend, else ``memory``) and its
    parts, XLA's analysis and their ratio, and with ``run`` the measured peak."""
    import jax
    schedule = "cpu" if jax.default_backend() == "cpu" else "memory"
    est = stepmemory.estimate(mod, cfg, seq, batch, policy, dtype, schedule)
    rec = {"policy": est["policy"], "dtype": est["dtype"], "schedule": schedule,
           "estimated_bytes": est["estimated_bytes"],
           "estimate": {k: est[k] for k in stepmemory.PARTS}, "peak_at": est["peak_at"],
           "device": jax.default_backend()}
    xla = xla_memory(mod, cfg, seq, batch, policy, dtype)
    rec.update(xla or {"xla_bytes": None})
    rec["ratio"] = est["estimated_bytes"] / xla["xla_bytes"] if xla else None
    rec["measured_peak_bytes"] = None
    if run:
        rec.update(measured_peak(mod, cfg, seq, batch, policy, dtype))
        if rec["measured_peak_bytes"] and xla:
            rec["overhead_bytes"] = rec["measured_peak_bytes"] - xla["xla_bytes"]
    return rec


__all__ = ["check", "measured_peak", "xla_memory"]
