"""The papers' conventions on the modern decoder blocks (comparator/count/conventions.py):
Kaplan's and PaLM's 2N with N the weights as the model has them (a mixture: those a token
uses), written out by hand; ELECTRA's script, Megatron and Chinchilla refuse grouped-query
attention, a gated FFN and experts -- a null row naming the fields in a sweep, one error
in a one-model command -- instead of counting a dense layer the model does not have."""
import dataclasses
import json

import pytest

from architectures import transformer as tr
from comparator.cli import app as cli
from comparator.count import conventions as cv

MIXTRAL, MISTRAL = tr.preset("mixtral-8x7b"), tr.preset("mistral-7b")
DENSE_ONLY = ("electra", "megatron", "chinchilla")
# Mixtral-8x7B / Mistral-7B (their config.json): d 4096, 32 layers, 32 query heads of 128,
# 8 k/v heads, FFN 14,336 (SwiGLU: gate, up, down), 8 experts, 2 a token, vocab 32,000
D, L, H, DH, KV, F, E, K, V = 4096, 32, 32, 128, 8, 14336, 8, 2, 32000


def run(capsys, *args):
    assert cli.main(list(args)) == 0
    return capsys.readouterr().out


def test_mixtral_n_is_the_weights_a_token_uses():
    attn = D * H * DH + 2 * D * KV * DH + H * DH * D         # q, k and v of 8 heads, output
    expert = 3 * D * F                                       # gate, up, down
    active = L * (attn + K * expert + D * E)                 # top-2 experts and the router
    every = L * (attn + E * expert + D * E)
    assert cv.non_embedding_params("transformer", MIXTRAL, 2048) == active == 12_617_515_008
    assert cv.non_embedding_params("transformer", MIXTRAL, 2048, active=False) == every
    # our active parameters less the embeddings, the untied head and the RMSNorm scales
    assert tr.active_params(MIXTRAL) - active == 2 * V * D + (2 * L + 1) * D
    assert tr.params(MIXTRAL) - every == 2 * V * D + (2 * L + 1) * D


def test_kaplan_on_mixtral_is_2n_plus_its_context_term():
    n = 2048
    N = cv.non_embedding_params("transformer", MIXTRAL, n)
    f = cv.flops("kaplan", "transformer", MIXTRAL, n)
    assert f.fwd == n * (2 * N + 2 * L * n * H * DH)         # Kaplan et al. 2020, Sec. 2.1
    assert f.train == 3 * f.fwd
    _, notes = cv.counted("kaplan", "transformer", MIXTRAL, n)
    assert set(notes["not_defined"]) == {"n_kv_heads", "ffn", "n_experts"}
    assert "top_k=2 of 8 experts" in notes["not_defined"]["n_experts"]


def test_palm_on_mistral_is_6n_plus_12_l_h_q_t():
    n = 4096
    N = L * (D * H * DH + 2 * D * KV * DH + H * DH * D + 3 * D * F)
    assert cv.non_embedding_params("transformer", MISTRAL, n) == N
    f = cv.flops("palm", "transformer", MISTRAL, n)
    assert f.train == n * (6 * N + 12 * L * H * DH * n)      # Chowdhery et al. 2022, App. B
    # PaLM's own layers are multi-query and SwiGLU: only the sliding window (counted as
    # dense attention, as for every attention kernel) is named
    assert set(cv.not_defined("palm", "transformer", MISTRAL)) == {"attention"}
    assert "n_experts" in cv.not_defined("palm", "transformer", MIXTRAL)


def test_grouped_query_attention_alone_saves_its_k_v_weights_under_kaplan():
    gpt2 = tr.preset("gpt2-small")                           # d 768, 12 heads of 64, 12 layers
    gqa = dataclasses.replace(gpt2, n_kv_heads=3)
    assert cv.modern_fields(gqa) == {"n_kv_heads": 3}
    assert cv.modern_fields(dataclasses.replace(gpt2, n_kv_heads=12)) == {}
    n = 1024
    saved = 12 * 2 * 768 * (12 - 3) * 64                     # k and v of 9 heads a layer
    assert cv.flops("kaplan", "transformer", gpt2, n).train - \
        cv.flops("kaplan", "transformer", gqa, n).train == 3 * n * 2 * saved
    assert cv.non_embedding_params("transformer", gpt2, n) - \
        cv.non_embedding_params("transformer", gqa, n) == saved


@pytest.mark.parametrize("convention", DENSE_ONLY)
@pytest.mark.parametrize("name,fields", [
    ("llama-2-7b", {"ffn": "glu"}),
    ("mistral-7b", {"n_kv_heads": 8, "ffn": "glu"}),
    ("mixtral-8x7b", {"n_kv_heads": 8, "ffn": "glu", "n_experts": 8}),
    ("qwen2-0.5b", {"n_kv_heads": 2, "ffn": "glu"}),
])
def test_dense_formulas_refuse_the_modern_blocks(convention, name, fields):
    cfg = tr.preset(name)
    assert cv.modern_fields(cfg) == fields
    why = cv.undefined(convention, "transformer", cfg)
    assert why.startswith(f"not defined by {convention}:")
    assert all(f"{k}={v!r}" in why for k, v in fields.items())
    f, extra = cv.counted(convention, "transformer", cfg, 512)
    assert extra["reason"] == why and all(extra[k] is None for k in cv.FLOP_FIELDS)
    with pytest.raises(cv.ConventionError) as e:
        cv.check_defined(convention, "transformer", cfg)
    assert e.value.field == "--convention" and e.value.value == convention
    assert e.value.allowed.startswith("standard, kaplan or palm for a model with")
    assert all(f"{k}={v!r}" in e.value.allowed for k, v in fields.items())
    with pytest.raises(cv.ConventionError):                 # never counted as a dense layer
        cv.terms(convention, "transformer", cfg, 512)
    for ok in ("standard", "kaplan", "palm"):
        assert cv.undefined(ok, "transformer", cfg) is None


def test_rotary_positions_look_up_no_position_table_in_electras_script():
    pythia = tr.preset("pythia-160m")                        # rope, parallel: a dense layer
    assert cv.modern_fields(pythia) == {}
    learned = dataclasses.replace(pythia, positions="learned", rope_dim=None)
    n, d = 1024, 768
    fwd = lambda cfg: cv.flops("electra", "transformer", cfg, n).fwd
    assert fwd(learned) - fwd(pythia) == 2 * n * d * n       # the one-hot product 2 t E rows
    assert "attn/rope" in cv.not_defined("electra", "transformer", pythia)
    for convention in cv.NAMES:
        assert cv.undefined(convention, "transformer", pythia) is None


def test_sweep_rows_say_why_and_one_model_commands_refuse(capsys):
    recs = json.loads(run(capsys, "sweep", "--arch", "transformer", "--preset",
                          "mixtral-8x7b,pythia-160m", "--seq", "512", "--convention",
                          "megatron", "--format", "json"))
    mix, py = recs[0], recs[-1]
    assert mix["preset"] == "mixtral-8x7b" and mix["train_flops"] is None
    assert "n_experts=8" in mix["reason"] and mix["active_params"] < mix["params"]
    assert py["preset"] == "pythia-160m" and py["train_flops"] > 0
    for args in (["explain", "--arch", "transformer", "--preset", "mistral-7b"],
                 ["cost", "--arch", "transformer", "--preset", "mistral-7b", "--steps", "10"],
                 ["roofline", "--arch", "transformer", "--preset", "mistral-7b",
                  "--accelerator", "h100-sxm"]):
        assert cli.main([*args, "--seq", "512", "--convention", "chinchilla"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.endswith("n_kv_heads=8), a gated FFN (ffn='glu'): chinchilla's formula "
                            "writes out a dense layer (k and v of every head, a two-matrix "
                            "MLP); kaplan and palm count 2N with N the weights a token uses")


def test_conventions_command_names_both_n_of_a_mixture(capsys):
    out = json.loads(run(capsys, "conventions", "--preset", "mixtral-8x7b", "--seq", "512",
                         "--format", "json"))
    by = {r["convention"]: r for r in out}
    assert all(by[c]["train_flops"] is None and by[c]["model_flops"] is None
               for c in DENSE_ONLY)
    assert by["kaplan"]["train_flops"] == by["kaplan"]["model_flops"] > 0
    text = run(capsys, "conventions", "--preset", "mixtral-8x7b", "--seq", "512")
    assert "(N of Kaplan and PaLM) 12,617,515,008 a token uses, of 46,440,382,464" in text
