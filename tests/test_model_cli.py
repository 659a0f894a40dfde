"""``--model FILE.py:FACTORY`` on the command line: a model file that is not part of the
project (the README's, written to a temporary folder, plus variants) counted by ``sweep``,
``explain``, ``cost``, ``roofline`` and ``bench`` -- the FLOPs equal the arithmetic of the
shapes written beside each assertion, the length is symbolic (one trace, the closed form in
n printed), a primitive without a cost rule is named with its count, and a model that
changes with the length is traced at each length instead."""
import csv
import io
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from comparator.cli import app as cli

ROOT = pathlib.Path(__file__).resolve().parent.parent
D, F, HEADS = 64, 256, 4          # the README model's widths
B = 2

# variants of the README's model, appended to its file
VARIANTS = '''

class TopK(nn.Module):
    """The README's block and a primitive without a cost rule (approx_top_k; top_k has one:
    the experts' router)."""
    @nn.compact
    def __call__(self, x):
        y = Block()(x)
        return y + jax.lax.approx_max_k(y, 2)[0].mean(-1, keepdims=True)


def make_topk(seq_len, batch):
    x = jax.ShapeDtypeStruct((batch, seq_len, D), jnp.float32)
    return comparator.UserModel(module=TopK(), inputs=(x,), name="topk")


class Positions(nn.Module):
    """A learned position table of n rows: a new model at every length."""
    n: int

    @nn.compact
    def __call__(self, x):
        return Block()(x + self.param("pos", nn.initializers.zeros, (self.n, D))[None])


def make_positions(seq_len, batch):
    x = jax.ShapeDtypeStruct((batch, seq_len, D), jnp.float32)
    return comparator.UserModel(module=Positions(seq_len), inputs=(x,))


P = {w: jax.ShapeDtypeStruct((D, D), jnp.float32) for w in "qkvo"}


def attention_loss(p, x):
    """A loss function of its parameters, no module, no scopes."""
    b, n, d = x.shape
    q, k, v = ((x @ p[w]).reshape(b, n, HEADS, d // HEADS) for w in "qkv")
    s = jax.nn.softmax(jnp.einsum("bqhe,bkhe->bhqk", q, k))
    return jnp.mean(jnp.einsum("bhqk,bkhe->bqhe", s, v).reshape(b, n, d) @ p["o"])


def make_fn(seq_len, batch):      # the dict form
    return {"fn": attention_loss, "params": P,
            "inputs": (jax.ShapeDtypeStruct((batch, seq_len, D), jnp.float32),)}
'''


def readme_model() -> str:
    text = (ROOT / "README.md").read_text()
    part = text[text.index("### Your own model on the command line"):]
    return re.search(r"```python\n(# my_model\.py\n.*?)```", part, re.S).group(1)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("user")
    path = folder / "my_model.py"
    path.write_text(readme_model() + VARIANTS)
    return str(path)


def run_json(capsys, *args):
    capsys.readouterr()
    assert cli.main([*args, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def fwd(n, b=B):
    # qkv 2*b*n*d*3d, scores and context 2*b*n*n*d each, out 2*b*n*d*d, FFN 2 * 2*b*n*d*f
    return 2 * b * n * D * 3 * D + 2 * (2 * b * n * n * D) + 2 * b * n * D * D \
        + 2 * (2 * b * n * D * F)


def train(n, b=B):
    # every contraction forward + both operand gradients (3x), but the QKV projection,
    # whose input is data: forward + weight gradient (2x)
    return 2 * (2 * b * n * D * 3 * D) + 3 * (fwd(n, b) - 2 * b * n * D * 3 * D)


PARAMS = D * 3 * D + 3 * D + D * D + D + D * F + F + F * D + D   # Dense kernels + biases


def test_sweep_counts_the_model_symbolic_in_length(model_file, capsys):
    seqs = [512, 1024, 2048, 4096]
    recs = run_json(capsys, "sweep", "--model", f"{model_file}:make", "--seq", "512:4096:x2",
                    "--batch", str(B))
    assert [r["seq_len"] for r in recs] == seqs
    for r, n in zip(recs, seqs):
        assert (r["arch"], r["preset"], r["method"], r["batch"]) == ("my_model.py:make",
                                                                     "custom", "traced", B)
        assert r["fwd_flops"] == fwd(n) and r["train_flops"] == train(n)
        assert r["breakdown"]["attn/scores"] == 2 * B * n * n * D        # h x 2*n*n*(d/h)
        assert r["breakdown"]["dot_general"] == 2 * (2 * B * n * D * F)  # unscoped FFN
        assert r["params"] == PARAMS and r["unsupported"] == {}
        assert r["trace"] == "symbolic"       # one trace with n symbolic counted them all
    # the same polynomials, in n: 4*b*d*n**2 + b*(8*d*d + 4*d*f)*n forward
    assert recs[0]["formula"] == f"{4 * B * D}*n**2 + {B * (8 * D * D + 4 * D * F)}*n"
    assert recs[0]["train_formula"] == (f"{12 * B * D}*n**2 + "
                                        f"{B * (12 * D * D + 6 * D * D + 12 * D * F)}*n")
    assert recs[0]["breakdown_formula"]["attn/context"] == f"{2 * B * D}*n**2"


def test_explain_prints_each_term_in_n(model_file, capsys):
    capsys.readouterr()
    assert cli.main(["explain", "--model", f"{model_file}:make", "--seq", "1024",
                     "--format", "csv"]) == 0
    rows = {r["term"]: r for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    assert int(rows["total"]["traced_train"]) == train(1024, 1)
    # per sequence (batch 1): the README's numbers
    assert rows["total"]["train_in_n"] == "768*n**2 + 270336*n" == \
        f"{12 * D}*n**2 + {12 * D * D + 6 * D * D + 12 * D * F}*n"
    assert "768*n**2 + 270336*n" in (ROOT / "README.md").read_text()
    assert rows["attn/qkv"]["fwd_in_n"] == f"{6 * D * D}*n"
    assert set(rows) == {"attn/context", "attn/out", "attn/qkv", "attn/scores", "dot_general",
                         "total"}


def test_unsupported_primitive_is_named_with_its_count(model_file, capsys):
    recs = run_json(capsys, "sweep", "--model", f"{model_file}:make_topk", "--seq", "256,512",
                    "--batch", str(B))
    assert all(r["unsupported"] == {"approx_top_k": 1} for r in recs)
    assert recs[0]["arch"] == "topk" and recs[0]["fwd_flops"] == fwd(256)   # counted as 0
    assert cli.main(["explain", "--model", f"{model_file}:make_topk", "--seq", "256"]) == 0
    assert "unsupported primitives: approx_top_k x1" in capsys.readouterr().out


def test_a_model_that_changes_with_the_length_is_traced_at_each(model_file, capsys):
    recs = run_json(capsys, "sweep", "--model", f"{model_file}:make_positions", "--seq",
                    "128,256")
    for r, n in zip(recs, (128, 256)):
        assert r["trace"] == "concrete" and r["formula"] is None
        assert r["fwd_flops"] == fwd(n, 1) and r["params"] == PARAMS + n * D   # + table
        assert "differs between lengths" in r["formula_note"]


def test_a_loss_function_counts_its_gradients(model_file, capsys):
    n = 256
    (r,) = run_json(capsys, "cost", "--model", f"{model_file}:make_fn", "--seq", str(n),
                    "--steps", "10", "--accelerator", "none")
    # projections 4 x 2*n*d*d; scores and context 2*n*n*d each
    assert r["fwd_flops"] == 8 * n * D * D + 4 * n * n * D
    # q, k, v: weight gradients only (x is data); the rest: both operands
    assert r["train_flops"] == 18 * n * D * D + 12 * n * n * D
    assert r["total_train_flops"] == 10 * r["train_flops"] and r["params"] == 4 * D * D
    assert r["breakdown"] == {"dot_general": r["fwd_flops"]}      # no scopes: by primitive


def test_priced_by_the_flat_mfu_and_by_the_time_model(model_file, capsys):
    spec = f"{model_file}:make"
    (flat,) = run_json(capsys, "cost", "--model", spec, "--seq", "128", "--steps", "100",
                       "--accelerator", "h100-sxm", "--time-model", "mfu")
    a = flat["assumptions"]
    assert flat["train_flops"] == train(128, 1) and a["time_model"] == "mfu"
    assert flat["step_time_s"] == pytest.approx(train(128, 1) / (a["peak_flops"] * a["mfu"]))
    (timed,) = run_json(capsys, "cost", "--model", spec, "--seq", "128", "--steps", "100",
                        "--accelerator", "h100-sxm")
    assert timed["assumptions"]["time_model"] == "roofline" and timed["step_time_s"] > 0
    assert "time_model_failed" not in timed
    assert set(timed["time_breakdown_s"]) >= {"attn/scores", "attn/qkv"}  # its term scopes


def test_roofline_of_the_step(model_file, capsys):
    rows = run_json(capsys, "roofline", "--model", f"{model_file}:make_topk", "--seq", "128",
                    "--accelerator", "h100-sxm", "--time-model", "unfused")
    total = rows[-1]
    assert total["term"] == "total" and total["arch"] == "topk"
    assert total["unsupported"] == {"approx_top_k": 1} and total["model"].endswith(":make_topk")
    assert {r["term"] for r in rows} >= {"attn/scores", "dot_general"}
    fused = run_json(capsys, "roofline", "--model", f"{model_file}:make", "--seq", "128",
                     "--accelerator", "h100-sxm")
    assert fused[-1]["time_model"] == "roofline" and fused[-1]["train FLOPs"] > train(128, 1)


def test_bench_measures_the_users_step(model_file, capsys):
    recs = run_json(capsys, "bench", "--model", f"{model_file}:make", "--seq", "64",
                    "--steps", "1", "--accelerator", "h100-sxm")
    (r,) = recs
    assert r["arch"] == "my_model.py:make" and r["preset"] == "custom" and r["step_s"] > 0
    assert r["train_flops"] == train(64, 1) and r["params"] == PARAMS
    assert r["achieved_flops"] == pytest.approx(r["train_flops"] / r["step_s"])


def test_the_command_in_a_subprocess(model_file):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-m", "comparator", "sweep", "--model",
                        f"{model_file}:make_topk", "--seq", "512,1024"], capture_output=True,
                       text=True, env=env, cwd=os.path.dirname(model_file))
    assert p.returncode == 0, p.stderr
    assert "topk" in p.stdout and "approx_top_k x1" in p.stdout
    assert f"training FLOPs = {12 * D}*n**2 + " in p.stdout      # the closed form, per seq


@pytest.mark.parametrize("args,field", [
    (["sweep", "--model", "{f}:nope", "--seq", "128"], "--model"),
    (["sweep", "--model", "{f}", "--seq", "128"], "--model"),
    (["explain", "--model", "{f}:make", "--seq", "128", "--method", "analytic"], "--method"),
    (["roofline", "--model", "{f}:make", "--seq", "128", "--accelerator", "h100-sxm",
      "--convention", "kaplan"], "--convention"),
    (["sweep", "--model", "{f}:make", "--arch", "transformer", "--seq", "128"], "--arch"),
    (["bench", "--model", "{f}:make", "--seq", "128", "--predict"], "--predict"),
])
def test_bad_model_options_exit_2_naming_the_field(model_file, args, field, capsys):
    capsys.readouterr()
    assert cli.main([a.format(f=model_file) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"error: {field}:" in err and "Traceback" not in err


def test_the_python_api_takes_the_model_too(model_file, capsys):
    import comparator
    spec = f"{model_file}:make"
    recs = comparator.sweep(seqs=(256, 512), model=spec, batch=B)
    assert [r.to_dict() for r in recs] == run_json(capsys, "sweep", "--model", spec, "--seq",
                                                   "256,512", "--batch", str(B))
    (run,) = comparator.cost(None, 256, model=spec, steps=10, accelerators=None)
    assert run.train_flops == train(256, 1) and run["total_train_flops"] == 10 * train(256, 1)
