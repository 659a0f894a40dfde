"""A paper's convention that does not define an architecture (the Reformer) or a part of a
model (T5's relative position bias, a cross-attention) says so, row by row, and every
command goes on (issue 13): end to end through the CLI."""
import csv
import io
import json

import pytest

import architectures
from comparator.cost import catalogue as accelerators
from comparator.cli import app as cli
from comparator.count import conventions as cv
from comparator.run import sweep
from comparator.run.measuring import with_convention

TR = architectures.get("transformer")
CONTRACT = ("arch", "preset", "seq_len", "batch", "params", "method", "scope", "fwd_flops",
            "train_flops", "breakdown", "unsupported", "convention")


def run(capsys, *args):
    assert cli.main(list(args)) == 0
    return capsys.readouterr().out


def test_sweep_of_every_architecture_under_kaplan_completes(capsys):
    recs = json.loads(run(capsys, "sweep", "--arch", "all", "--convention", "kaplan", "--seq",
                          "512:65536:x2", "--format", "json"))
    lengths = [512 * 2 ** k for k in range(8)]
    for arch in architectures.NAMES:      # every architecture's rows, every length
        assert sorted({r["seq_len"] for r in recs if r["arch"] == arch}) == lengths, arch
    for r in recs:
        assert all(k in r for k in CONTRACT) and r["convention"] == "kaplan"
        if r["arch"] == "reformer":        # not defined: the contract's fields, FLOPs null
            assert r["reason"].startswith("not defined by kaplan:")
            assert r["fwd_flops"] is r["train_flops"] is r["ratio_train"] is None
            assert r["breakdown"] == {} and r["params"] > 0 and r["activation_bytes"] > 0
        else:
            assert "reason" not in r and r["train_flops"] > 0


def test_undefined_rows_render_in_every_format(capsys):
    args = ["sweep", "--arch", "reformer", "--seq", "4096", "--convention", "palm"]
    text = run(capsys, *args)
    assert "not defined by palm: its formulas assume dense attention" in text
    assert "None" not in text
    rows = list(csv.DictReader(io.StringIO(run(capsys, *args, "--format", "csv"))))
    ref = next(r for r in rows if r["arch"] == "reformer")
    assert ref["train FLOPs"] == ref["vs baseline"] == "" and ref["note"].startswith("not")
    assert next(r for r in rows if r["arch"] == "transformer")["train FLOPs"] != ""
    md = run(capsys, *args, "--format", "markdown")
    assert "| not defined by palm" in md
    tex = run(capsys, *args, "--format", "latex")
    assert "not defined by palm" in tex and "None" not in tex


def test_parts_a_convention_does_not_define_are_named(capsys):
    (r,) = json.loads(run(capsys, "sweep", "--arch", "transformer", "--preset", "t5-small",
                          "--seq", "512", "--convention", "chinchilla", "--format", "json"))
    assert set(r["not_defined"]) == {"attn/relbias", "cross-attention"}
    assert r["train_flops"] == cv.flops("chinchilla", "transformer", TR.preset("t5-small"),
                                        512).train
    text = run(capsys, "sweep", "--arch", "transformer", "--preset", "t5-small", "--seq", "512",
               "--convention", "chinchilla")
    assert "not defined by chinchilla: attn/relbias, cross-attention" in text
    assert "T5's relative position bias has no term: left out" in text
    (b,) = json.loads(run(capsys, "sweep", "--arch", "transformer", "--preset", "bert-base",
                          "--seq", "512", "--convention", "kaplan", "--format", "json"))
    assert "not_defined" not in b         # BERT is defined by Kaplan's formula


def test_sweep_with_costs_prices_only_the_defined_rows(capsys):
    recs = json.loads(run(capsys, "sweep", "--arch", "reformer", "--seq", "4096",
                          "--convention", "palm", "--accelerator", "a100-80gb", "--format",
                          "json"))
    base, ref = recs
    assert base["dollars"] > 0 and "dollars" not in ref and ref["reason"]
    assert "not defined by palm" in run(capsys, "sweep", "--arch", "reformer", "--seq", "4096",
                                        "--convention", "palm", "--accelerator", "a100-80gb")


def test_plot_leaves_out_and_names_what_it_cannot_plot(tmp_path, capsys):
    out = tmp_path / "f.svg"
    text = run(capsys, "plot", "--arch", "transformer,reformer", "--seq", "512,1024",
               "--convention", "kaplan", "-o", str(out))
    assert out.exists() and "reformer:reformer-base (not plotted)" in text
    assert cli.main(["plot", "--arch", "reformer", "--seq", "512,1024", "--convention",
                     "kaplan", "-o", str(out)]) == 2
    assert "error: --convention: 'kaplan'" in capsys.readouterr().err


def test_conventions_command_for_the_reformer(capsys):
    recs = json.loads(run(capsys, "conventions", "--preset", "reformer-base", "--seq", "4096",
                          "--format", "json"))
    assert recs[0]["convention"] == "standard" and recs[0]["train_flops"] > 0
    assert all(r["train_flops"] is None and r["reason"] == cv.undefined(r["convention"],
                                                                        "reformer")
               for r in recs[1:])
    assert "not defined by chinchilla" in run(capsys, "conventions", "--preset",
                                              "reformer-base", "--seq", "4096")


def test_roofline_utilisation_by_a_convention(capsys):
    args = ["roofline", "--arch", "transformer", "--seq", "128", "--accelerator", "h100-sxm",
            "--time-model", "unfused", "--format", "json"]
    ours = json.loads(run(capsys, *args))[-1]
    rows = json.loads(run(capsys, *args, "--convention", "palm"))
    total = rows[-1]
    palm = cv.flops("palm", "transformer", TR.preset("bert-base"), 128, 1, "all").train
    assert total["convention"] == "palm" and total["convention_train_flops"] == palm
    # the same roofline time: utilisation scales with the count, the terms stay traced
    assert total["time_s"] == ours["time_s"] and total["flops"] == ours["flops"]
    peak = accelerators.get("h100-sxm").peak("bf16")
    assert total["mfu_bound_convention"] == pytest.approx(palm / (peak * total["time_s"]))
    assert "By the palm (Chowdhery et al. 2022, App. B) convention" in run(
        capsys, *args[:-2], "--convention", "palm")
    assert cli.main(["roofline", "--arch", "reformer", "--seq", "128", "--accelerator",
                     "h100-sxm", "--convention", "kaplan"]) == 2
    assert "error: --convention: 'kaplan'" in capsys.readouterr().err


def test_bench_records_recounted_by_a_convention():
    pt = sweep.Point("transformer", "bert-base", 128)
    measured = {"arch": "transformer", "preset": "bert-base", "seq_len": 128, "batch": 1,
                "skipped": None, "step_s": 2.0, "train_flops": 7e10, "utilisation": 0.035,
                "achieved_flops": 3.5e10, "peak_flops": 1e12}
    assert with_convention(measured, pt, "standard") is measured
    r = with_convention(measured, pt, "kaplan")
    kaplan = cv.flops("kaplan", "transformer", TR.preset("bert-base"), 128, 1, "all").train
    assert r["convention"] == "kaplan" and r["train_flops"] == kaplan
    assert r["achieved_flops"] == kaplan / 2.0 and r["utilisation"] == kaplan / 2.0 / 1e12
    assert (r["traced_train_flops"], r["traced_utilisation"]) == (7e10, 0.035)
    assert r["step_s"] == 2.0                                   # the measurement stays
    ref = with_convention({**measured, "arch": "reformer"},
                          sweep.Point("reformer", "reformer-base", 128), "kaplan")
    assert ref["train_flops"] is ref["utilisation"] is None and ref["reason"]


def test_bench_command_labels_and_refuses(capsys):
    recs = json.loads(run(capsys, "bench", "--arch", "transformer,reformer", "--seq", "64",
                          "--memory-limit", "1", "--convention", "kaplan", "--format", "json"))
    assert [r["convention"] for r in recs] == ["kaplan", "kaplan"]
    assert recs[0]["skipped"] and "reason" not in recs[0] and recs[1]["reason"]
    assert cli.main(["bench", "--kernel", "attention", "--seq", "64", "--convention",
                     "kaplan"]) == 2
    err = capsys.readouterr().err
    assert "error: --convention: 'kaplan' is not allowed; standard with --kernel" in err
