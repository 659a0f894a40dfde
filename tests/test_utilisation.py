"""Model FLOPs and hardware FLOPs, MFU and HFU (comparator/count/utilisation.py) and
their columns in ``comparator conventions``: recomputation in the hardware count only,
a utilisation above 100% refused with the reason."""
import json
from fractions import Fraction

import pytest

import architectures
from comparator.cli import app as cli
from comparator.count import conventions as cv
from comparator.count import utilisation as ut

TR = architectures.get("transformer")
RF = architectures.get("reformer")
# Chowdhery et al. 2022, PaLM, Sec. 4.1 / Table 3: PaLM 540B on 6144 TPU v4 chips,
# 46.2% model FLOPs utilisation, 57.8% hardware FLOPs utilisation (rematerialisation)
PALM_MFU, PALM_HFU = 0.462, 0.578


def test_layer_terms_are_what_checkpointing_recomputes():
    assert ut.layer_term("attn/qkv") and ut.layer_term("lsh/sort") and ut.layer_term("ffn/in")
    assert ut.layer_term("norm/attn") and ut.layer_term("disc/norm/ffn")
    assert ut.layer_term("dec/attn/kv")
    for name in ("embed/lookup", "norm/embed", "norm/final", "head/logits", "loss/mlm",
                 "gen/embed/proj", "enc/norm/final", "rev/residual"):
        assert not ut.layer_term(name), name


def test_bert_base_model_and_hardware_flops():
    cfg, n, d, L = TR.preset("bert-base"), 512, 768, 12
    terms = TR.terms(cfg, 1, n)
    model, hardware = ut.split(terms, "matmul")
    # no recomputation: both are the training count
    assert model == hardware == TR.flops(cfg, n).train
    model, hardware = ut.split(terms, "matmul", "checkpoint")
    # every layer's forward contractions once more: q, k, v, the two attention products,
    # the output projection and the FFN (d_ff = 4d)
    layer = 2 * n * d * 3 * d + 2 * 2 * n * n * d + 2 * n * d * d + 2 * 2 * n * d * 4 * d
    assert hardware - model == L * layer
    assert model == TR.flops(cfg, n).train


def test_the_reformer_recomputes_its_layers_itself():
    cfg, n = RF.preset("reformer-base"), 4096
    terms = RF.terms(cfg, 1, n)
    model, hardware = ut.split(terms, "all")
    assert hardware == RF.flops(cfg, n, scope="all").train   # what the step runs
    assert hardware - model == sum(t.rc("all") for t in terms.values()) > 0
    with pytest.raises(ut.UtilisationError, match="reversible"):
        ut.check_recompute("checkpoint", "reformer")


def test_megatron_counts_hardware_flops_and_its_model_flops_are_three_passes():
    # a GPT-2-shaped decoder: d_attn = h, d_ff = 4h, V = 50257; Narayanan et al. 2021:
    # 96 B s l h^2 (1 + s/(6h) + V/(16 l h)) with recomputation; without it the layers
    # run 3 passes instead of 4: 72 B s l h^2 (1 + s/(6h) + V/(12 l h))
    cfg = TR.preset("gpt2-small")
    B, s, l, h, V = 2, 1024, cfg.n_layers, cfg.d_model, cfg.vocab
    terms = cv.terms("megatron", "transformer", cfg, s, B)
    for recompute in ut.RECOMPUTE:           # the formula recomputes already
        model, hardware = ut.split(terms, "matmul", recompute, "megatron")
        assert hardware == 96 * B * s * l * h * h * (1 + Fraction(s, 6 * h)
                                                     + Fraction(V, 16 * l * h))
        assert model == 72 * B * s * l * h * h * (1 + Fraction(s, 6 * h)
                                                  + Fraction(V, 12 * l * h))


def test_palm_convention_with_checkpointing_bounds_palms_published_ratio():
    # PaLM's formula (6N + 12 L H Q T) is all layer contractions: checkpointing every
    # layer adds one forward of three passes, HFU / MFU = 4/3 exactly
    cfg = TR.preset("gpt2-xl")
    model, hardware = ut.split(cv.terms("palm", "transformer", cfg, 2048), "matmul",
                               "checkpoint", "palm")
    assert Fraction(hardware, model) == Fraction(4, 3)
    # PaLM 540B's 57.8% / 46.2% = 1.25: more than no recomputation, less than all of it
    assert 1 < PALM_HFU / PALM_MFU < Fraction(4, 3)


def test_utilisations_from_a_time_or_an_mfu():
    u = ut.utilisations(6e12, 8e12, 1e14, step_s=0.2)
    assert u["mfu"] == pytest.approx(6e12 / (0.2 * 1e14))      # 30%
    assert u["hfu"] == pytest.approx(8e12 / (0.2 * 1e14))      # 40%
    u = ut.utilisations(6e12, 8e12, 1e14, mfu=0.3)
    assert u["step_s"] == pytest.approx(6e12 / (0.3 * 1e14))
    assert u["hfu"] / u["mfu"] == pytest.approx(8 / 6)


@pytest.mark.parametrize("kw,field,why", [
    ({"mfu": 1.5}, "--mfu", "at most 1 (100%)"),
    ({"mfu": 0.8}, "--mfu", "HFU 106.7%"),                   # 0.8 x 8/6 of the peak
    ({"step_s": 0.05}, "--step-time", "MFU 120.0%"),         # 6e12 / (0.05 x 1e14)
    ({"step_s": 0.07}, "--step-time", "HFU 114.3%"),         # 8e12 / (0.07 x 1e14)
    ({"step_s": 0.0}, "--step-time", "> 0"),
    ({"mfu": 0.0}, "--mfu", "(0, 1]"),
])
def test_a_utilisation_above_one_is_refused_with_the_reason(kw, field, why):
    with pytest.raises(ut.UtilisationError) as err:
        ut.utilisations(6e12, 8e12, 1e14, **kw)
    assert err.value.field == field and why in err.value.allowed


def _conventions(capsys, *args):
    assert cli.main(["conventions", "--preset", "bert-base", "--seq", "512", *args,
                     "--format", "json"]) == 0
    return {r["convention"]: r for r in json.loads(capsys.readouterr().out)}


def test_conventions_command_shows_model_and_hardware_flops_mfu_and_hfu(capsys):
    recs = _conventions(capsys, "--recompute", "checkpoint", "--accelerator", "a100-40gb",
                        "--step-time", "0.01")
    peak = 312e12                                            # A100 bf16 dense (catalogue)
    for name, r in recs.items():
        assert r["mfu"] == pytest.approx(r["model_flops"] / (0.01 * peak))
        assert r["hfu"] == pytest.approx(r["hardware_flops"] / (0.01 * peak))
        assert r["hfu"] > r["mfu"] and r["dtype"] == "bf16", name
    assert recs["standard"]["model_flops"] == recs["standard"]["train_flops"]
    assert recs["megatron"]["hardware_flops"] == recs["megatron"]["train_flops"]
    plain = _conventions(capsys)
    assert plain["standard"]["hardware_flops"] == plain["standard"]["model_flops"]
    assert "mfu" not in plain["standard"]
    # our MFU instead of a time: the time it implies
    recs = _conventions(capsys, "--accelerator", "tpu-v3", "--mfu", "0.4")
    assert recs["standard"]["mfu"] == pytest.approx(0.4)
    assert recs["standard"]["step_s"] == pytest.approx(
        recs["standard"]["model_flops"] / (0.4 * 123e12))
    assert cli.main(["conventions", "--preset", "bert-base", "--seq", "512",
                     "--recompute", "checkpoint"]) == 0
    out = capsys.readouterr().out
    assert "model FLOPs" in out and "hardware FLOPs" in out and "PaLM" in out


@pytest.mark.parametrize("args,field", [
    (["--preset", "reformer-base", "--seq", "4096", "--accelerator", "tpu-v3", "--mfu",
      "0.9"], "--mfu"),                      # the reversible recomputation: HFU 117%
    (["--preset", "bert-base", "--seq", "512", "--accelerator", "tpu-v3", "--step-time",
      "0.001"], "--step-time"),
    (["--preset", "bert-base", "--seq", "512", "--mfu", "0.4"], "--mfu"),
    (["--preset", "bert-base", "--seq", "512", "--accelerator", "tpu-v3"], "--accelerator"),
    (["--preset", "reformer-base", "--seq", "512", "--recompute", "checkpoint"],
     "--recompute"),
])
def test_conventions_refuses_impossible_utilisations(args, field, capsys):
    assert cli.main(["conventions", *args]) == 2
    err = capsys.readouterr().err
    assert f"error: {field}:" in err and "Traceback" not in err and err.count("\n") == 1


def test_priced_records_carry_mfu_and_hfu_of_the_predicted_step():
    from comparator.run.costing import utilisation_fields
    cfg = RF.resize(RF.preset("reformer-base"), d_model=64, n_layers=2, n_heads=2, d_ff=128)
    rec = {"arch": "reformer", "seq_len": 256, "scope": "matmul"}
    f = utilisation_fields(rec, cfg, 2, 0.01, 1e12)          # 2 sequences in 10 ms at 1 TFLOP/s
    model, hardware = ut.split(RF.terms(cfg, 2, 256), "matmul")
    assert (f["model_flops_per_device"], f["hardware_flops_per_device"]) == (model, hardware)
    assert f["model_flops_utilisation"] == pytest.approx(model / (0.01 * 1e12))
    assert f["hardware_flops_utilisation"] == pytest.approx(hardware / (0.01 * 1e12))
    assert hardware > model                                   # the reversible recomputation


def test_the_conventions_request_value_refuses_what_would_do_nothing():
    from comparator.run.conventions import conventions
    from comparator.run.steprequests import ConventionsRequest, RequestError
    for kw, field in (({"dtype": "fp16"}, "--dtype"), ({"accelerator": "tpu-v3"},
                      "--accelerator"), ({"step_time": 0.1}, "--step-time"),
                      ({"accelerator": "tpu-v3", "step_time": 0.1, "mfu": 0.4}, "--mfu"),
                      ({"accelerator": "tpu-v3", "mfu": 0.4, "dtype": "int8"}, "--dtype"),
                      ({"recompute": "always"}, "--recompute")):
        with pytest.raises(RequestError) as err:
            ConventionsRequest("transformer", 512, "bert-base", **kw)
        assert err.value.field == field, kw
    assert ConventionsRequest("transformer", 512, "bert-base").dtype is None
    req = ConventionsRequest("transformer", 512, "bert-base", accelerator="a100-40gb",
                             dtype="fp32", step_time=1.0)
    std = conventions(req, ["standard"]).records[0]
    assert std["dtype"] == "fp32" and std["mfu"] == pytest.approx(std["model_flops"] / 19.5e12)
