"""The front door, ``comparator/__init__.py``: ``sweep``, ``cost``, ``budget`` and ``claims``
give the records the commands print (the commands are built on the same run-room functions),
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
    (["--arch", "reformer", "--seq", "4096", "--accelerator", "v100-16gb,tpu-v2",
      "--time-model", "mfu", "--dtype", "bf16", "--prices", "2020-06",
      "--price-kind", "preemptible"],     # v100: no bf16, a row saying so
     dict(archs="reformer", seqs=4096, accelerators="v100-16gb,tpu-v2", time_model="mfu",
          dtype="bf16", prices="2020-06", price_kind="preemptible")),
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
    (["--arch", "transformer", "--seq", "512", "--steps", "1000", "--accelerator",
      "tpu-v2,h100-sxm,t4", "--time-model", "mfu", "--prices", "2020"],
     dict(accelerators="tpu-v2,h100-sxm,t4", steps=1000, time_model="mfu", prices=2020)),
])
def test_cost_records_are_the_json_records_of_the_command(capsys, args, kwargs):
    recs = comparator.cost("transformer", 512, **kwargs)
    assert as_json(recs) == cli_json(capsys, "cost", *args)


@pytest.mark.parametrize("args,kwargs", [
    (["--dollars", "10000", "--accelerator", "a100-80gb,mi250x", "--arch",
      "transformer,reformer", "--seq", "4096"],
     dict(archs="transformer,reformer", dollars=10_000, accelerators="a100-80gb,mi250x",
          seq=4096)),
    (["--kwh", "500", "--accelerator", "h100-sxm", "--arch", "transformer", "--find", "model",
      "--seq", "1024", "--batch", "64", "--tokens-per-param", "20", "--d-model", "512,768",
      "--layers", "6,12", "--prices", "2026-10", "--dtype", "fp16"],
     dict(archs="transformer", kwh=500, accelerators="h100-sxm", find="model", seq=1024,
          batch=64, tokens_per_param=20, sizes=[(512, 6), (512, 12), (768, 6), (768, 12)],
          prices="2026-10", dtype="fp16")),
    (["--break-even", "--accelerator", "tpu-v3", "--arch", "transformer,reformer",
      "--batch", "8"],
     dict(archs=("transformer", "reformer"), break_even=True, accelerators="tpu-v3", batch=8)),
])
def test_budget_records_are_the_json_records_of_the_command(capsys, args, kwargs):
    recs = comparator.budget(**kwargs)
    assert as_json(recs) == cli_json(capsys, "budget", *args)
    assert recs == comparator.budget(comparator.BudgetRequest(
        **{k: v for k, v in kwargs.items() if k in {"archs", "dollars", "kwh", "find", "seq",
                                                    "batch", "tokens_per_param", "sizes",
                                                    "break_even"}},
        pricing=comparator.Pricing(kwargs["accelerators"],
                                   **{k: v for k, v in kwargs.items()
                                      if k in {"prices", "dtype"}})))


@pytest.mark.parametrize("kwargs,field", [
    (dict(dollars=100, seq=512, runs=20), "--runs"),           # one run: not a budget option
    (dict(dollars=100, seq=512, time_model="roofline"), "--time-model"),
    (dict(dollars=100, kwh=5, seq=512), "--kwh"),
    (dict(dollars=-1, seq=512), "--dollars"),
    (dict(dollars=100, seq=512, sizes=[(512,)]), "--sizes"),
    (dict(dollars=100, seq=512, accelerators=None), "--accelerator"),
    (dict(dollars=100, seq=512, colour="red"), "keyword"),
])
def test_bad_budget_arguments_are_request_errors(kwargs, field):
    with pytest.raises(comparator.RequestError) as e:
        comparator.budget("transformer", **kwargs)
    assert e.value.field == field


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
