"""End-to-end tests of `comparator sweep` options (issue 3), one per option."""
import csv
import io
import json
import shutil
import subprocess

import pytest

from comparator.cli import app as cli
from comparator.report import tables


def out_of(capsys, *args):
    assert cli.main(list(args)) == 0
    return capsys.readouterr().out


def records(capsys, *args):
    return json.loads(out_of(capsys, *args, "--format", "json"))


def test_default_reformer_job_has_a_transformer_baseline(capsys):
    recs = records(capsys, "sweep", "--arch", "reformer", "--seq", "4096")
    base, ref = recs
    assert base["arch"] == "transformer" and ref["arch"] == "reformer"
    assert (base["seq_len"], ref["seq_len"]) == (4096, 4096)
    assert ref["baseline"] == f"transformer:{base['preset']}"
    assert ref["ratio_train"] == ref["train_flops"] / base["train_flops"] < 1


def test_all_architectures_and_a_geometric_range(capsys):
    recs = records(capsys, "sweep", "--arch", "all", "--seq", "512:2048:x2", "--no-baseline")
    assert {r["arch"] for r in recs} == {"transformer", "albert", "electra", "reformer"}
    assert sorted({r["seq_len"] for r in recs}) == [512, 1024, 2048]


def test_size_grid_derives_heads_and_ffn(capsys):
    recs = records(capsys, "sweep", "--arch", "transformer", "--seq", "128", "--d-model",
                   "256,512", "--layers", "2,4")
    assert [r["preset"] for r in recs] == ["bert-base@d256L2", "bert-base@d256L4",
                                           "bert-base@d512L2", "bert-base@d512L4"]
    d, L, t = 512, 4, 128
    qkv = 2 * t * d * 3 * d * L  # heads of 64 keep qkv at 3d
    assert recs[3]["breakdown"]["attn/qkv"] == qkv
    assert recs[3]["breakdown"]["ffn/in"] == 2 * t * d * 4 * d * L


def test_size_grid_with_explicit_heads_and_ffn(capsys):
    recs = records(capsys, "sweep", "--arch", "albert", "--seq", "128", "--d-model", "256",
                   "--layers", "2", "--heads", "2", "--d-ff", "512", "--no-baseline")
    assert recs[0]["breakdown"]["ffn/in"] == 2 * 128 * 256 * 512 * 2


def test_explicit_baseline_at_the_same_size(capsys):
    recs = records(capsys, "sweep", "--arch", "reformer", "--seq", "1024", "--d-model", "512",
                   "--layers", "4", "--baseline", "transformer:gpt2-small")
    assert recs[0]["preset"] == "gpt2-small@d512L4"
    assert recs[1]["baseline"] == "transformer:gpt2-small@d512L4"


def test_per_token(capsys):
    recs = records(capsys, "sweep", "--arch", "transformer", "--seq", "256", "--batch", "4")
    r = recs[0]
    assert r["tokens"] == 1024 and r["train_flops_per_token"] == r["train_flops"] / 1024
    text = out_of(capsys, "sweep", "--arch", "transformer", "--seq", "256", "--per", "token")
    assert "FLOPs/token" in text and "FLOPs per token" in text


def test_traced_method_matches_analytic_and_shows_no_progress_when_quiet(capsys):
    recs = records(capsys, "sweep", "--arch", "albert", "--seq", "128", "--method", "both",
                   "--quiet", "--no-baseline")
    a, t = recs
    assert a["train_flops"] == t["train_flops"] and capsys.readouterr().err == ""


def test_markdown_text_and_csv_round_trip(capsys):
    md = out_of(capsys, "sweep", "--arch", "electra", "--seq", "512", "--format", "markdown")
    assert md.startswith("| arch") and "1 multiply-add = 2 FLOPs" in md
    rows = list(tables.sweep_rows(records(capsys, "sweep", "--arch", "electra", "--seq", "512")))
    back = list(csv.DictReader(io.StringIO(tables.render(rows, "csv"))))
    assert [r["preset"] for r in back] == [r["preset"] for r in rows]
    assert [float(r["train FLOPs"]) for r in back] == [r["train FLOPs"] for r in rows]


def test_json_round_trip(capsys):
    text = out_of(capsys, "sweep", "--arch", "reformer", "--seq", "1024", "--format", "json")
    recs = json.loads(text)
    assert json.loads(tables.render(recs, "json")) == recs


def _latex(capsys):
    return out_of(capsys, "sweep", "--arch", "albert,reformer", "--seq", "512,4096",
                  "--format", "latex")


def test_latex_is_a_booktabs_table_with_a_caption(capsys):
    tex = _latex(capsys)
    assert tex.count("\\toprule") == tex.count("\\midrule") == tex.count("\\bottomrule") == 1
    assert "\\times10^{" in tex and "\\caption{FLOPs: 1 multiply-add = 2 FLOPs" in tex
    assert "\\hline" not in tex and "_" not in tex.replace("\\_", "")
    body = tex.split("\\midrule")[1].split("\\bottomrule")[0]
    cols = tex.split("\\begin{tabular}{")[1].split("}")[0]
    assert all(line.count("&") == len(cols) - 1 for line in body.strip().splitlines())


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no TeX engine installed")
def test_latex_compiles(capsys, tmp_path):
    doc = ("\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
           + _latex(capsys) + "\\end{document}\n")
    (tmp_path / "t.tex").write_text(doc)
    p = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout[-2000:]
    assert (tmp_path / "t.pdf").stat().st_size > 1000


def test_explain_single_method_and_latex(capsys):
    tex = out_of(capsys, "explain", "--arch", "reformer", "--seq", "1024", "--method",
                 "analytic", "--format", "latex")
    assert "lsh/hash" in tex and "diff\\_fwd" not in tex and "traced" not in tex.split("\\midrule")[0]


def test_presets_lists_every_preset_with_sizes(capsys):
    rows = json.loads(out_of(capsys, "presets", "--format", "json"))
    names = {r["preset"] for r in rows}
    assert {"bert-base", "t5-11b", "albert-xxlarge", "electra-small", "reformer-enwik8"} <= names
    bert = next(r for r in rows if r["preset"] == "bert-base")
    assert (bert["d_model"], bert["layers"], bert["heads"], bert["params"]) == (768, 12, 12,
                                                                                109_514_298)


@pytest.mark.parametrize("args,field", [
    (["--d-model", "0"], "--d-model"), (["--layers", "x"], "--layers"),
    (["--baseline", "cnn"], "--arch"), (["--baseline", "transformer:gpt5"], "--preset"),
    (["--no-baseline", "--baseline", "transformer"], "--baseline"),
    (["--d-model", "500"], "n_heads"), (["--per", "word"], "--per"),
    (["--format", "docx"], "--format"), (["--trace", "quick"], "--trace"),
])
def test_bad_values_exit_2_with_one_message(args, field, capsys):
    rc = cli.main(["sweep", "--arch", "reformer", "--seq", "1024", *args]) if not {
        "--per", "--format", "--trace"} & set(args) else None
    if rc is None:
        with pytest.raises(SystemExit) as e:
            cli.main(["sweep", "--arch", "reformer", "--seq", "1024", *args])
        rc = e.value.code
    assert rc == 2
    err = capsys.readouterr().err
    assert field in err and "Traceback" not in err


def test_plot_command_writes_a_figure_and_prints_fits(tmp_path, capsys):
    out = tmp_path / "flops.png"
    text = out_of(capsys, "plot", "--arch", "all", "--seq", "512:16384:x2", "-o", str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "reformer:reformer-base" in text and "crossover" in text
    svg = tmp_path / "size.svg"
    out_of(capsys, "plot", "--arch", "transformer", "--seq", "1024", "--d-model", "256,512",
           "--layers", "4", "--x", "params", "-o", str(svg))
    assert "<svg" in svg.read_text()


def test_plot_of_step_times_on_accelerators_shows_time_crossovers(tmp_path, capsys):
    out = tmp_path / "time.png"
    args = ["plot", "--arch", "transformer", "--attention", "dense,local", "--seq",
            "512:4096:x2", "--y", "step_time_s", "-o", str(out)]
    text = out_of(capsys, *args, "--accelerator", "h100-sxm,a100-40gb", "--time-model",
                  "mfu")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # one series per device; local attention (3 windows of 256) below dense from ~730
    # tokens, in time as in FLOPs under one flat MFU
    for dev in ("h100-sxm", "a100-40gb"):
        assert f"transformer:bert-base@local ({dev}) below transformer:bert-base@dense " \
               f"({dev}) beyond" in text
    assert cli.main(args) == 2                  # no device: no step time, and it says so
    assert "with --accelerator" in capsys.readouterr().err
    assert cli.main([*args, "--dtype", "bf16"]) == 2        # a time option without a device
    assert "--dtype" in capsys.readouterr().err


@pytest.mark.parametrize("args,field", [(["-o", "f.jpg"], "-o"), ([], "-o"),
                                        (["-o", "f.png", "--y", "colour"], "--y")])
def test_plot_bad_values(args, field, capsys):
    assert cli.main(["plot", "--arch", "transformer", "--seq", "512,1024", *args]) == 2
    assert field in capsys.readouterr().err


def test_config_files_hf_json_and_toml(tmp_path, capsys):
    hf = tmp_path / "bert-base-uncased" / "config.json"
    hf.parent.mkdir()
    hf.write_text(json.dumps({
        "model_type": "bert", "architectures": ["BertForMaskedLM"], "vocab_size": 30522,
        "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
        "intermediate_size": 3072, "hidden_act": "gelu", "max_position_embeddings": 512,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12}))
    (r,) = records(capsys, "sweep", "--config", str(hf), "--seq", "512")
    assert r["arch"] == "transformer" and r["params"] == 109_514_298
    toml = tmp_path / "m.toml"
    toml.write_text('[model]\narch = "reformer"\nname = "ref8"\n[model.config]\nn_hashes = 8\n')
    base, r = records(capsys, "sweep", "--config", str(toml), "--seq", "1024")
    assert r["preset"] == "ref8" and base["arch"] == "transformer"
    assert cli.main(["sweep", "--config", str(tmp_path / "missing.json"), "--seq", "8"]) == 2
    assert "--config" in capsys.readouterr().err


def test_progress_bar_only_on_a_terminal():
    import os
    import sys
    cmd = [sys.executable, "-m", "comparator.cli.app", "sweep", "--arch", "transformer", "--preset",
           "gpt2-small", "--layers", "1", "--seq", "64,128", "--method", "traced",
           "--no-baseline"]
    main_fd, term_fd = os.openpty()  # stderr is a terminal for this run
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=term_fd)
    os.close(term_fd)
    chunks = []
    while True:
        try:
            data = os.read(main_fd, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    assert p.wait() == 0
    os.close(main_fd)
    assert "2/2 traced points" in b"".join(chunks).decode(errors="replace")
    piped = subprocess.run(cmd, capture_output=True, text=True)
    assert piped.returncode == 0 and "traced points" not in piped.stderr


@pytest.mark.parametrize("arch,preset,depth", [("transformer", "gpt2-small", False),
                                              ("albert", "albert-base", True)])
def test_fast_and_full_traces_give_the_same_records(arch, preset, depth, capsys):
    """``--trace fast`` (default: symbolic-length traces; shallow ones extrapolated over
    depth where layers are not jitted calls, as ALBERT's) equals ``--trace full`` field by
    field, memory included; only ``trace`` (how it was traced) differs."""
    from comparator.count import fasttrace
    fasttrace.clear_cache()   # (lengths an earlier test traced concretely stay concrete)
    args = ("sweep", "--arch", arch, "--preset", preset, "--layers", "4",
            "--seq", "64,128,192,256", "--method", "traced", "--no-baseline", "--quiet")
    fast = records(capsys, *args)
    full = records(capsys, *args, "--trace", "full")
    assert [r.pop("trace") for r in full] == ["full"] * 4
    how = [r.pop("trace") for r in fast]
    assert all(h.startswith("depth n_layers 1,2->4") == depth for h in how), how
    assert "symbolic" in " ".join(how), how
    assert fast == full


def test_activation_memory_column_agrees_between_methods(capsys):
    a, t = records(capsys, "sweep", "--arch", "reformer", "--seq", "1024", "--method", "both",
                   "--no-baseline", "--quiet")
    assert a["activation_bytes"] == t["activation_bytes"] > 0
    assert a["activation_bytes_per_seq"] == a["activation_bytes"]
    text = out_of(capsys, "sweep", "--arch", "transformer", "--seq", "512")
    assert "activations/seq" in text and "808 MiB" in text


def test_accelerators_listing(capsys, tmp_path):
    text = out_of(capsys, "accelerators")
    assert "h100-sxm" in text and "989 T" in text and "tpu-v3" in text
    rows = json.loads(out_of(capsys, "accelerators", "--format", "json"))
    assert all(r["source"] for r in rows)
    bad = tmp_path / "bad.toml"
    bad.write_text('[accelerators.h100-sxm]\ndefault_mfu = 1.5\n')
    assert cli.main(["accelerators", "--accelerators", str(bad)]) == 2
    assert "h100-sxm" in capsys.readouterr().err


def test_cost_command_arithmetic_and_errors(capsys):
    from comparator.cost.catalogue import load
    recs = json.loads(out_of(capsys, "cost", "--arch", "transformer", "--seq", "512", "--steps",
                             "1000", "--batch", "8", "--accelerator", "a100-80gb", "--runs",
                             "20", "--time-model", "mfu", "--format", "json"))
    (r,) = recs
    acc = load()["a100-80gb"]
    step = r["train_flops"] / (acc.peak("bf16") * acc.default_mfu)
    assert r["step_time_s"] == pytest.approx(step)
    assert r["dollars"] == pytest.approx(1000 * step / 3600 * acc.price_per_hour)
    assert r["dollars_all_runs"] == pytest.approx(20 * r["dollars"])
    assert r["total_train_flops"] == 1000 * r["train_flops"]
    text = out_of(capsys, "cost", "--arch", "reformer", "--seq", "4096", "--tokens", "1e9"
                  .replace("1e9", "1000000000"), "--accelerator", "all", "--time-model", "mfu")
    # every device priced in its own precision: the V100 in fp16 (it has no bf16)
    assert "h100-sxm" in text and "skipped" not in text and "not priced" not in text
    v100 = next(line for line in text.splitlines() if line.startswith("v100-16gb"))
    assert " fp16 " in v100
    for args, field in ((["--accelerator", "v100-16gb", "--dtype", "fp8"], "--dtype"),
                        (["--accelerator", "h100-sxm", "--mfu", "1.5"], "--mfu"),
                        (["--accelerator", "h100-sxm", "--devices", "0"], "--devices"),
                        (["--accelerator", "h100"], "h100")):
        assert cli.main(["cost", "--arch", "transformer", "--seq", "512", "--steps", "10",
                         *args]) == 2
        assert field in capsys.readouterr().err


def test_sweep_with_accelerator_cost_columns(capsys):
    from comparator.cost import catalogue as accelerators
    recs = records(capsys, "sweep", "--arch", "reformer", "--seq", "4096,16384", "--accelerator",
                   "a100-80gb,tpu-v3", "--tokens", "1e9", "--devices", "2", "--time-model", "mfu")
    assert len(recs) == 8                        # (baseline + reformer) x 2 lengths x 2 devices
    for r in recs:
        acc = accelerators.get(r["accelerator"])
        steps = -(-10**9 // (r["batch"] * r["seq_len"]))            # ceil(tokens / tokens per step)
        assert r["steps"] == steps
        assert r["step_time_s"] == r["train_flops"] / (acc.bf16 * acc.default_mfu * 2)
        assert r["device_hours"] == 2 * steps * r["step_time_s"] / 3600
        assert r["dollars"] == r["device_hours"] * acc.price_per_hour
        assert r["total_train_flops"] == r["train_flops"] * steps
    ref = [r for r in recs if r["arch"] == "reformer" and r["seq_len"] == 16384]
    base = [r for r in recs if r["arch"] == "transformer" and r["seq_len"] == 16384]
    assert all(a["dollars"] < b["dollars"] for a, b in zip(ref, base))   # 0.33x the FLOPs
    text = out_of(capsys, "sweep", "--arch", "reformer", "--seq", "4096", "--accelerator",
                  "h100-sxm", "--time-model", "mfu")
    assert "one training step" in text and "device-hours" in text


@pytest.mark.parametrize("args,field", [(["--tokens", "1e9"], "--tokens"),
                                        (["--accelerator", "h100"], "--accelerator"),
                                        (["--accelerator", "v100-16gb", "--dtype", "fp8"], "--dtype"),
                                        (["--accelerator", "h100-sxm", "--steps", "0"], "--steps"),
                                        (["--accelerator", "h100-sxm", "--mfu", "1.5"], "--mfu")])
def test_sweep_cost_bad_values(args, field, capsys):
    assert cli.main(["sweep", "--arch", "reformer", "--seq", "1024", *args]) == 2
    err = capsys.readouterr().err
    assert field in err and "Traceback" not in err
