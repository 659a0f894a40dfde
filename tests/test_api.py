"""The front door, ``comparator/__init__.py``: ``sweep``, ``cost`` and ``claims`` give the
records the commands print (the commands are built on the same run-room functions),
``import comparator`` stays free of jax, flax and matplotlib, and the README's "Python
API" example runs and prints the arithmetic written beside it."""
import pathlib
import re
import subprocess
import sys

import pytest

import comparator
from comparator.cli import app as cli
from comparator.report import tables

ROOT = pathlib.Path(__file__).resolve().parent.parent


def cli_json(capsys, *args) -> str:
    capsys.readouterr()
    assert cli.main([*args, "--format", "json"]) == 0
    return capsys.readouterr().out


def as_json(recs) -> str:
    return tables.render([r.to_dict() for r in recs], "json")


def test_import_comparator_imports_no_jax_flax_or_matplotlib():
    code = ("import sys, comparator\n"
            "heavy = lambda: sorted({m.split('.')[0] for m in sys.modules} & "
            "{'jax', 'flax', 'matplotlib'})\n"
            "assert heavy() == [], heavy()\n"
            "recs = comparator.sweep('transformer', 128, with_baseline=False)\n"
            "assert recs[0].train_flops > 0 and heavy() == [], heavy()   # analytic: no jax\n"
            "assert all(map(callable, (comparator.count, comparator.cost, comparator.claims)))\n"
            "from comparator.cost import pricing   # the rooms of those names, as modules\n"
            "from comparator.count import targets\n"
            "assert callable(comparator.cost) and callable(comparator.count)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("args,kwargs", [
    (["--arch", "reformer,albert", "--seq", "1024,4096"],
     dict(archs="reformer,albert", seqs=(1024, 4096))),
    (["--arch", "transformer", "--seq", "512", "--d-model", "256,512", "--layers", "4",
      "--baseline", "albert", "--scope", "all", "--batch", "2"],
     dict(archs="transformer", seqs=512, d_model=[256, 512], layers=4, baseline="albert",
          scope="all", batch=2)),
    (["--arch", "electra", "--seq", "512", "--convention", "kaplan", "--no-baseline"],
     dict(archs="electra", seqs=512, convention="kaplan", with_baseline=False)),
    (["--arch", "albert", "--seq", "512", "--accelerator", "a100-80gb,h100-sxm",
      "--time-model", "mfu", "--tokens", "1e9", "--devices", "8"],
     dict(archs="albert", seqs=512, accelerators="a100-80gb,h100-sxm", time_model="mfu",
          tokens=10 ** 9, devices=8)),
])
def test_sweep_records_are_the_json_records_of_the_command(capsys, args, kwargs):
    recs = comparator.sweep(**kwargs)
    assert as_json(recs) == cli_json(capsys, "sweep", *args)
    r = recs[-1]
    assert (r.arch, r.seq_len, r.train_flops) == (r["arch"], r["seq_len"], r["train_flops"])
    assert r.tokens == r.batch * r.seq_len and "tokens" in r


def test_traced_sweep_records_are_the_commands(capsys, tmp_path):
    kw = dict(archs="transformer", seqs=(64, 128), methods="traced", d_model=64, layers=1,
              heads=1, with_baseline=False, no_cache=True)
    recs = comparator.sweep(**kw)
    assert as_json(recs) == cli_json(capsys, "sweep", "--arch", "transformer", "--seq",
                                     "64,128", "--method", "traced", "--d-model", "64",
                                     "--layers", "1", "--heads", "1", "--no-baseline",
                                     "--no-cache")
    assert [r.method for r in recs] == ["traced", "traced"]
    assert recs == comparator.sweep(comparator.SweepRequest(
        "transformer", (64, 128), methods=("traced",), sizes=[(64, 1, 1, None)],
        with_baseline=False, no_cache=True))


@pytest.mark.parametrize("args,kwargs", [
    (["--arch", "transformer", "--seq", "512", "--steps", "1000", "--accelerator",
      "a100-80gb,v100-16gb", "--time-model", "mfu", "--dtype", "fp32", "--policy",
      "checkpoint"],
     dict(accelerators="a100-80gb,v100-16gb", steps=1000, time_model="mfu", dtype="fp32",
          policy="checkpoint")),
    (["--arch", "transformer", "--seq", "512", "--tokens", "1e9", "--accelerator", "none",
      "--convention", "palm"],
     dict(accelerators="none", tokens=10 ** 9, convention="palm")),
    (["--arch", "transformer", "--seq", "512", "--steps", "10", "--accelerator", "h100-sxm",
      "--mfu", "0.5", "--d-model", "512", "--layers", "6"],
     dict(accelerators="h100-sxm", steps=10, mfu=0.5, size=(512, 6, None, None))),
])
def test_cost_records_are_the_json_records_of_the_command(capsys, args, kwargs):
    recs = comparator.cost("transformer", 512, **kwargs)
    assert as_json(recs) == cli_json(capsys, "cost", *args)


def test_claims_records_are_the_json_records_of_the_command(capsys):
    recs = comparator.claims(["albert-params", "electra-small-compute"], time_model="mfu")
    assert as_json(recs) == cli_json(capsys, "claims", "--id",
                                     "albert-params,electra-small-compute", "--time-model", "mfu")
    assert [r.id for r in recs] == ["albert-params", "electra-small-compute"]
    assert all(r.verdict and r.arch is None for r in recs)   # no arch: not a sweep record


def test_bad_api_arguments_are_request_errors():
    with pytest.raises(comparator.RequestError) as e:
        comparator.sweep("transformer", 128, colour="red")
    assert e.value.field == "keyword" and e.value.value == "colour"
    with pytest.raises(comparator.RequestError) as e:
        comparator.cost("transformer", 128)                  # neither tokens nor steps
    assert e.value.field == "--tokens"
    with pytest.raises(comparator.RequestError) as e:
        comparator.claims(["no-such-claim"], time_model="mfu")
    assert e.value.field == "--id"


# -- the README's example -------------------------------------------------------------

def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_runs_and_prints_the_arithmetic(capsys):
    ns = {}
    exec(compile(readme_example(), "README.md", "exec"), ns)
    b, n, d, f = (ns[k] for k in "bndf")
    mlp, att = ns["mlp"], ns["att"]
    assert mlp.params == d * f + f + f * d + d               # two kernels and two biases
    assert mlp.fwd_flops == 2 * (2 * b * n * d * f)          # two dense layers, 2*b*n*d*f each
    # backward: both weight gradients, and the input gradient of the second layer only
    # (the first layer's input, x, is not differentiated)
    assert mlp.train_flops == 2 * (2 * b * n * d * f) + 3 * (2 * b * n * d * f)
    assert att.fwd_flops == 4 * (2 * b * n * d * d) + 2 * (2 * b * n * n * d)
    assert att.formula == f"{4 * b * d}*n**2 + {8 * b * d * d}*n"
    assert att.at(4 * n).fwd_flops == 4 * (2 * b * 4 * n * d * d) + 2 * (2 * b * (4 * n) ** 2 * d)
    out = capsys.readouterr().out
    for value in (mlp.params, mlp.fwd_flops, mlp.train_flops, att.fwd_flops):
        assert f"{value:,}" in out
    assert att.formula in out
    # the numbers written in the README's comments are the printed ones
    for written in re.findall(r"#.*?= ([\d,]+)\s*$", readme_example(), re.M):
        assert written in out, written


def test_rooms_named_like_the_front_door_stay_importable():
    """comparator.count / cost / claims are callable rooms: the functions and the packages
    never shadow each other, whatever is imported first."""
    import inspect
    from unittest import mock

    import comparator
    import comparator.count.trace as trace_module
    from comparator.cost import pricing
    assert trace_module.trace is comparator.count.trace.trace
    assert "seq_axis" in inspect.signature(comparator.count).parameters
    with mock.patch("comparator.cost.pricing.dtype_key", lambda d: "patched"):
        assert pricing.dtype_key("bf16") == "patched"
    import jax.numpy as jnp
    rec = comparator.count(lambda x, w: x @ w, jnp.ones((4, 8)), jnp.ones((8, 16)))
    assert rec.fwd_flops == 2 * 4 * 8 * 16          # 2 * m * k * n
