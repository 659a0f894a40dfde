"""`comparator budget`: every answer recomputed forward with train_cost, so that
cost(answer) <= budget < cost(next step); the analytic path answers in under a second
and imports no jax."""
import json
import math
import subprocess
import sys

import pytest

import architectures
from comparator.cli import app as cli
from comparator.cost import catalogue as accelerators
from comparator.cost.pricing import train_cost
from comparator.run import budget as bd
from comparator.run.sweep import resized

CAT = accelerators.load()
A100 = CAT["a100-80gb"]


def _json(capsys, *args):
    assert cli.main(["budget", *args, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def _cost(arch, cfg, seq, batch, steps, acc, field="dollars"):
    per_step = architectures.get(arch).flops(cfg, seq, batch).train
    return train_cost(per_step, steps, acc)[field]


def _cfg(arch, preset=None):
    mod = architectures.get(arch)
    return mod.PRESETS[preset or mod.DEFAULT_PRESET][0]


def test_tokens_for_ten_thousand_dollars_on_an_a100(capsys):
    recs = _json(capsys, "--dollars", "10000", "--accelerator", "a100-80gb", "--arch",
                 "transformer,reformer", "--seq", "4096")
    assert [r["arch"] for r in recs] == ["transformer", "reformer"]
    for r in recs:
        steps = r["steps"]
        assert r["answer"] == steps * 4096                   # tokens = steps x batch x seq
        spent = _cost(r["arch"], _cfg(r["arch"]), 4096, 1, steps, A100)
        nxt = _cost(r["arch"], _cfg(r["arch"]), 4096, 1, steps + 1, A100)
        assert spent <= 10_000 < nxt
        assert r["cost"] == pytest.approx(spent) and r["next_cost"] == pytest.approx(nxt)
        assert r["cost_low"] < r["cost"] < r["cost_high"]
    # at 4,096 tokens the Reformer's step has fewer FLOPs: more tokens for the money
    assert recs[1]["answer"] > recs[0]["answer"]


@pytest.mark.parametrize("budget, field", [("--device-hours", "device_hours"),
                                           ("--kwh", "energy_kwh")])
def test_tokens_for_device_hours_and_kwh(capsys, budget, field):
    (r,) = _json(capsys, budget, "50", "--accelerator", "h100-sxm", "--arch", "transformer",
                 "--seq", "512", "--batch", "64")
    h100, cfg = CAT["h100-sxm"], _cfg("transformer")
    assert _cost("transformer", cfg, 512, 64, r["steps"], h100, field) <= 50 < \
        _cost("transformer", cfg, 512, 64, r["steps"] + 1, h100, field)


def test_largest_model_on_the_gpt3_grid_with_chinchillas_rule(capsys):
    recs = _json(capsys, "--dollars", "10000", "--accelerator", "a100-80gb", "--arch",
                 "transformer", "--seq", "2048", "--batch", "256", "--find", "model",
                 "--tokens-per-param", "20")
    (r,) = recs
    grid = r["grid"]
    assert [g["params"] for g in grid] == sorted(g["params"] for g in grid)
    assert len(grid) == len(bd.GPT3_SIZES)
    i = [g["params"] for g in grid].index(r["answer"])
    mod, base = architectures.get("transformer"), _cfg("transformer")
    for j, within in ((i, True), (i + 1, False)):
        g = grid[j]
        d, L = next(s for s in bd.GPT3_SIZES if g["preset"].endswith(f"@d{s[0]}L{s[1]}"))
        cfg = resized("transformer", "bert-base", base, (d, L, None, None)).cfg
        assert mod.params(cfg, 2048) == g["params"]
        steps = -(-math.ceil(20 * g["params"]) // (256 * 2048))   # 20 tokens per parameter
        assert g["steps"] == steps
        cost = _cost("transformer", cfg, 2048, 256, steps, A100)
        assert (cost <= 10_000) is within
    assert r["next_cost"] > 10_000 >= r["cost"]


def test_longest_sequence_for_a_fixed_number_of_tokens(capsys):
    (r,) = _json(capsys, "--dollars", "2000", "--accelerator", "h100-sxm", "--arch",
                 "transformer", "--find", "seq", "--tokens", "1e10", "--batch", "8")
    L, step, h100, cfg = r["answer"], r["seq_step"], CAT["h100-sxm"], _cfg("transformer")
    assert step == 64 and L % step == 0

    def cost(n):   # steps = ceil(tokens / (batch x seq))
        return _cost("transformer", cfg, n, 8, -(-10**10 // (8 * n)), h100)
    assert cost(L) <= 2000 < cost(L + step)


def test_break_even_length_of_the_reformer_against_the_transformer(capsys):
    recs = _json(capsys, "--break-even", "--accelerator", "a100-80gb", "--arch",
                 "transformer,reformer", "--batch", "8")
    (r,) = recs
    L, step = r["answer"], r["seq_step"]
    assert step == 64 and L % step == 0

    def per_token(arch, n):
        return _cost(arch, _cfg(arch), n, 8, 1, A100) / (8 * n)
    assert per_token("reformer", L) < per_token("transformer", L)
    assert per_token("reformer", L - step) >= per_token("transformer", L - step)
    # a flat utilisation: where the training FLOPs per token cross, the same on any device
    (h,) = _json(capsys, "--break-even", "--accelerator", "tpu-v3", "--arch",
                 "transformer,reformer", "--batch", "8")
    assert h["answer"] == L


def test_a_budget_below_one_step_says_so(capsys):
    (r,) = _json(capsys, "--dollars", "0.000001", "--accelerator", "a100-80gb", "--arch",
                 "transformer", "--seq", "512")
    assert r["answer"] == 0 and r["cost"] is None and r["next_cost"] > 1e-6


def test_a_device_without_the_budgets_quantity_answers_with_the_reason(capsys):
    recs = _json(capsys, "--dollars", "100", "--accelerator", "mi250x,tpu-v5e", "--arch",
                 "transformer", "--seq", "512")
    mi, v5e = recs
    assert mi["answer"] is None and "no public price" in mi["answer_text"]
    assert v5e["answer"] > 0
    (k,) = _json(capsys, "--kwh", "100", "--accelerator", "tpu-v5e", "--arch", "transformer",
                 "--seq", "512")
    assert k["answer"] is None and "power" in k["answer_text"]


def test_answers_without_importing_jax():
    # a fresh interpreter answers every kind of question on the analytic path: no jax, so
    # no second of imports (how fast it is: benches, not a wall-clock assertion here)
    code = ("import io, sys, time, contextlib\n"
            "t, times = time.perf_counter(), []\n"
            "from comparator.cli import app\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    for find in (['--seq', '4096'], ['--find', 'seq', '--tokens', '1e9'],\n"
            "                 ['--find', 'model', '--seq', '1024', '--tokens-per-param', '20'],\n"
            "                 ['--break-even', '--seq', '512']):\n"
            "        assert app.main(['budget', '--dollars', '10000', '--accelerator',\n"
            "                         'a100-80gb', '--arch', 'transformer,reformer', *find]) == 0\n"
            "        times.append(time.perf_counter() - t)\n"
            "        t = time.perf_counter()\n"
            "print(sorted(m for m in ('jax', 'flax', 'numba') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    assert out.strip() == "[]", out


@pytest.mark.parametrize("args, field", [
    (["--dollars", "0", "--arch", "transformer", "--seq", "512"], "--dollars"),
    (["--dollars", "-5", "--arch", "transformer", "--seq", "512"], "--dollars"),
    (["--kwh", "nan", "--arch", "transformer", "--seq", "512"], "--kwh"),
    (["--dollars", "5", "--kwh", "5", "--arch", "transformer", "--seq", "512"], "--kwh"),
    (["--arch", "transformer", "--seq", "512"], "--dollars"),
    (["--dollars", "5", "--arch", "transformer"], "--seq"),
    (["--dollars", "5", "--arch", "transformer", "--seq", "512", "--find", "model"],
     "--tokens"),
    (["--break-even", "--arch", "transformer"], "--arch"),
    (["--dollars", "5", "--arch", "transformer", "--seq", "512", "--price-kind", "cheap"],
     "--price-kind"),
    (["--dollars", "5", "--arch", "transformer", "--seq", "512", "--accelerator",
      "h100-sxm", "--prices", "2019"], "--prices"),
])
def test_bad_budget_requests_are_named(capsys, args, field):
    assert cli.main(["budget", *args]) == 2
    err = capsys.readouterr().err
    assert f"error: {field}:" in err and "Traceback" not in err
