import csv
import io
import json
import subprocess
import sys

import pytest

from comparator.cli import app as cli


def run(*args):
    return subprocess.run([sys.executable, "-m", "comparator.cli.app", *args], capture_output=True,
                          text=True)


def test_sweep_text_table(capsys):
    assert cli.main(["sweep", "--arch", "transformer", "--seq", "128,256"]) == 0
    out = capsys.readouterr().out
    assert "bert-base" in out and "109,514,298" in out and "1 multiply-add = 2 FLOPs" in out


def test_sweep_json_records_follow_the_contract(capsys):
    assert cli.main(["sweep", "--arch", "transformer", "--preset", "gpt2-small", "--seq",
                     "64:256:x2", "--format", "json"]) == 0
    recs = json.loads(capsys.readouterr().out)
    assert [r["seq_len"] for r in recs] == [64, 128, 256]
    keys = {"arch", "preset", "seq_len", "batch", "params", "method", "scope", "fwd_flops",
            "train_flops", "breakdown", "unsupported"}
    assert all(keys <= set(r) for r in recs)
    assert all(sum(r["breakdown"].values()) == r["fwd_flops"] for r in recs)


def test_sweep_both_methods_agree(capsys):
    assert cli.main(["sweep", "--arch", "transformer", "--seq", "64", "--method", "both",
                     "--format", "json", "--quiet"]) == 0
    a, t = json.loads(capsys.readouterr().out)
    assert (a["method"], t["method"]) == ("analytic", "traced")
    assert a["train_flops"] == t["train_flops"] and a["params"] == t["params"]


def test_explain_shows_per_term_difference(capsys):
    assert cli.main(["explain", "--arch", "transformer", "--seq", "64", "--scope", "all",
                     "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    total = rows[-1]
    assert total["term"] == "total" and int(total["diff_train"]) == 0
    assert {"attn/scores", "ffn/in", "loss/mlm"} <= {r["term"] for r in rows}


def test_output_file(tmp_path, capsys):
    out = tmp_path / "t.json"
    assert cli.main(["sweep", "--arch", "transformer", "--seq", "128", "--format", "json",
                     "-o", str(out)]) == 0
    assert json.loads(out.read_text())[0]["seq_len"] == 128


@pytest.mark.parametrize("args,field", [
    (["sweep", "--arch", "transfomer", "--seq", "128"], "--arch"),
    (["sweep", "--arch", "transformer", "--seq", "12x"], "--seq"),
    (["sweep", "--arch", "transformer", "--seq", "512:128:x2"], "--seq"),
    (["sweep", "--arch", "transformer", "--seq", "128", "--batch", "0"], "--batch"),
    (["sweep", "--arch", "transformer", "--preset", "bert-huge", "--seq", "128"], "--preset"),
    (["sweep", "--arch", "transformer", "--seq", "128", "--scope", "some"], "--scope"),
])
def test_bad_input_is_one_message_and_exit_2(args, field):
    p = run(*args)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr and field in p.stderr
    assert len(p.stderr.strip().splitlines()) <= 3


def test_analytic_path_imports_no_jax():
    code = ("import sys; from comparator import cli; "
            "cli.main(['sweep', '--arch', 'transformer', '--seq', '4096']); "
            "assert 'jax' not in sys.modules and 'flax' not in sys.modules, 'jax imported'")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
