"""Sweeping attention choices: one model per choice, labelled ``preset@choice``, the dense
Transformer as the baseline of its variants, ``lsh`` the Reformer of its widths."""
import pytest

from architectures import reformer as rf, transformer as tr
from architectures.config import BOUNDS, ConfigError
from comparator.count import conventions as cv
from comparator.run import execute, sweep, variants
from comparator.run.measurerequests import BenchRequest
from comparator.run.requests import SweepRequest
from comparator.run.sweep import RequestError

ALL = ("dense", "flash", "local", "linformer", "performer", "lsh")


def run(**kw):
    return execute.sweep(SweepRequest(**kw)).records


def test_one_model_per_choice_with_dense_as_baseline():
    recs = run(archs=("transformer",), seqs=(512, 4096), attentions=ALL)
    assert [(r["arch"], r["preset"], r["seq_len"]) for r in recs] == [
        ("transformer" if a != "lsh" else "reformer", f"bert-base@{a}", s)
        for a in ALL for s in (512, 4096)]
    dense = {r["seq_len"]: r for r in recs if r["preset"] == "bert-base@dense"}
    for r in recs:
        if r["preset"] == "bert-base@dense":
            assert "baseline" not in r                    # itself the baseline: one row
        else:
            assert r["baseline"] == "transformer:bert-base@dense"
            assert r["ratio_train"] == r["train_flops"] / dense[r["seq_len"]]["train_flops"]
    by = {(r["preset"], r["seq_len"]): r for r in recs}
    # flash: dense's FLOPs and its recomputed scores, activations far below dense's
    f, d = by[("bert-base@flash", 4096)], dense[4096]
    assert f["fwd_flops"] == d["fwd_flops"] and f["train_flops"] > d["train_flops"]
    assert f["activation_bytes"] < d["activation_bytes"] / 4
    # the linear kernels' attention share stays flat from 512 to 4096 (up to the MLM
    # head's rounding: 77 of 512 positions, 615 of 4096)
    for a in ("local", "linformer", "performer"):
        assert by[(f"bert-base@{a}", 4096)]["attention_share"] == pytest.approx(
            by[(f"bert-base@{a}", 512)]["attention_share"], rel=1e-3), a
        assert by[(f"bert-base@{a}", 4096)]["attention_share"] > 0.05
    assert by[("bert-base@lsh", 4096)]["params"] == rf.params(rf.like(tr.preset("bert-base")),
                                                              4096)


def test_traced_equals_analytic_for_every_choice_at_short_lengths():
    recs = run(archs=("transformer",), seqs=(256, 512), attentions=ALL, methods="both",
               sizes=[(128, 2, None, None)], no_cache=True)
    pairs = {}
    for r in recs:
        pairs.setdefault((r["preset"], r["seq_len"]), {})[r["method"]] = r
    assert len(pairs) == 12
    for key, m in pairs.items():
        a, t = m["analytic"], m["traced"]
        assert (a["fwd_flops"], a["train_flops"], a["params"]) == (
            t["fwd_flops"], t["train_flops"], t["params"]), key
        nonzero = {k: v for k, v in a["breakdown"].items() if v}   # traced rows drop zeros
        assert nonzero == t["breakdown"] and a["activation_bytes"] == t["activation_bytes"]


def test_sizes_and_choices_combine_in_the_label():
    ms = variants.models(("transformer", "albert"), (), [(256, 2, None, None)], ("dense", "flash"))
    assert [m.preset for m in ms] == ["bert-base@d256L2@dense", "bert-base@d256L2@flash",
                                      "albert-base@d256L2@dense", "albert-base@d256L2@flash"]
    assert ms[3].cfg.attention == "flash" and ms[3].cfg.d_model == 256
    assert ms[1].base == ms[0] and ms[3].base is None   # ALBERT: the BERT of its widths


@pytest.mark.parametrize("kw,value,allowed", [
    (dict(attentions=("sparse",)), "sparse", "choose from dense, flash"),
    (dict(attentions="flash,flash"), "flash,flash", "each choice once"),
    (dict(attentions=("linformer",), presets=("gpt2-small",)), "linformer", "causal model"),
    (dict(attentions=("flash",), presets=("t5-small",)), "flash", "encoder-decoder"),
    (dict(attentions=("flash",), archs=("reformer",)), "flash", "lsh for the Reformer"),
    (dict(attentions=("lsh",), archs=("albert",)), "lsh", "for albert")])
def test_refused_choices_name_the_option(kw, value, allowed):
    kw = {"archs": ("transformer",), "seqs": (512,), **kw}
    with pytest.raises(RequestError) as e:
        run(**kw)
    assert e.value.field == "--attention" and e.value.value == value
    assert allowed in e.value.allowed


def test_reformer_keeps_its_own_attention_under_lsh():
    (m,) = variants.models(("reformer",), (), None, ("lsh",))
    assert m.arch == "reformer" and m.preset == "reformer-base@lsh"
    assert m.cfg == rf.preset("reformer-base")


def test_paper_conventions_note_that_they_count_dense_attention():
    cfg = variants.with_attention(sweep.Model("transformer", "bert-base", tr.preset("bert-base")),
                               "performer").cfg
    notes = cv.not_defined("kaplan", "transformer", cfg)
    assert "performer" in notes["attention"] and "dense" in notes["attention"]
    assert "attention" not in cv.not_defined("kaplan", "transformer", tr.preset("bert-base"))


def test_cli_sweep_and_plot_take_the_attention_choices(capsys, tmp_path):
    import json

    from comparator.cli import app as cli
    args = ["--arch", "transformer", "--attention", ",".join(ALL), "--seq", "512:8192:x2"]
    assert cli.main(["sweep", *args, "--format", "json"]) == 0
    recs = json.loads(capsys.readouterr().out)
    assert {r["preset"] for r in recs} == {f"bert-base@{a}" for a in ALL}
    assert all(r["fwd_flops"] > 0 and r["activation_bytes"] > 0 for r in recs)
    assert cli.main(["plot", *args, "-o", str(tmp_path / "zoo.png")]) == 0
    out = capsys.readouterr().out
    # local attention (3 windows of 256) costs more than dense at 512, less from ~730 on
    assert "bert-base@local below transformer:bert-base@dense beyond" in out
    assert (tmp_path / "zoo.png").stat().st_size > 0


@pytest.mark.parametrize("make,kw,value,allowed", [
    (SweepRequest, dict(archs=("reformer",), attentions="lsh"), "lsh",
     "only with a Transformer, ALBERT or ELECTRA"),
    (SweepRequest, dict(archs=("transformer", "reformer"), attentions="dense,flash"), "dense",
     "lsh for the Reformer"),
    (SweepRequest, dict(model="mymodel.py:make", attentions="flash"), "flash",
     "not with --model"),
    (BenchRequest, dict(archs=("albert",), attentions="lsh"), "lsh", "for albert"),
    (BenchRequest, dict(model="mymodel.py:make", attentions="flash"), "flash",
     "not with --model")])
def test_requests_refuse_choices_with_no_effect_when_made(make, kw, value, allowed):
    # refused as the request value is made: before any model, file or measurement
    with pytest.raises(RequestError) as e:
        make(seqs=(512,), **kw)
    assert e.value.field == "--attention" and e.value.value == value
    assert allowed in e.value.allowed


def test_the_zoo_sizes_are_bounded_like_the_other_lengths():
    most, why = BOUNDS["window"]
    assert (most, why) == BOUNDS["max_len"]        # a window, block, k: lengths
    for name in ("window", "block", "proj_len", "features"):
        with pytest.raises(ConfigError) as e:
            tr.Config(attention="dense", **{name: BOUNDS[name][0] + 1})
        assert e.value.field == name and e.value.allowed.startswith(
            f"at most {BOUNDS[name][0]:,}: ")
    assert tr.Config(features=BOUNDS["features"][0]).features == 2**21


def test_cost_takes_one_attention_choice(capsys):
    """cost --attention CHOICE prices the model with that kernel: its counts are the
    sweep's record of PRESET@CHOICE; lsh makes a Transformer the Reformer of its widths."""
    import json

    from comparator.cli import app as cli
    base = ["--arch", "transformer", "--d-model", "64", "--layers", "2", "--seq", "1024"]
    for choice in ("flash", "lsh"):
        assert cli.main(["cost", *base, "--attention", choice, "--steps", "1",
                         "--accelerator", "none", "--format", "json"]) == 0
        (rec,) = json.loads(capsys.readouterr().out)
        assert cli.main(["sweep", *base, "--attention", choice, "--no-baseline",
                         "--format", "json"]) == 0
        (want,) = json.loads(capsys.readouterr().out)
        assert (rec["arch"], rec["preset"], rec["train_flops"]) == (
            want["arch"], want["preset"], want["train_flops"])
    assert rec["arch"] == "reformer" and rec["preset"] == "bert-base@d64L2@lsh"
    for bad in ("flash,local", "nope"):
        assert cli.main(["cost", *base, "--attention", bad, "--steps", "1",
                         "--accelerator", "none"]) == 2
        assert "--attention" in capsys.readouterr().err
