"""The Llama-era presets against their reference implementation (Hugging Face transformers):
parameters and forward matmul FLOPs equal the reference's, counted by an independent
counter; the traced step equals the analytic count at 4 lengths.

How the reference numbers were obtained: ``tests/reference/hf_decoder_flops.py``, run in a
scratch venv (torch 2.13.0+cpu, transformers 5.25.0; the project does not depend on
torch), on the released checkpoints' config.json values.  Parameters: the model built on
the meta device, ``numel`` summed over ``parameters()``.  FLOPs: torch's
``FlopCounterMode`` around one forward of ``AutoModelForCausalLM`` (eager attention),
batch 1, at 128 and 2,048 tokens: every mm/addmm/bmm at 2 FLOPs a multiply-add -- the
projections, the scores and context matmuls (the full causal square, as ours), the
experts the router chose, the router, and the LM head on every position.  The rotary
tables are elementwise in transformers 5.25 (0 matmul FLOPs; older versions' inv_freq @
positions bmm would be subtracted: our RoPE is elementwise, the ``all`` scope's
``attn/rope``).  Llama, Mistral, Qwen2 and Pythia ran on the meta device at full depth;
Mixtral's routing reads data, so it ran on random bfloat16 weights at depths 0, 1 and 2
and the 32 layers are F(0) + 32 (F(1) - F(0)) (checked: F(2) - F(1) = F(1) - F(0)):
dropless top-2 sends every token to 2 experts whatever the weights.
"""
import dataclasses

import pytest

from architectures import transformer as tr
from helpers import assert_counts_agree, fast_traced

# preset: (parameters, forward FLOPs at 128 tokens, at 2,048 tokens), from the script above
HF_REFERENCE = {
    "llama-2-7b": (6_738_415_616, 1_700_001_742_848, 29_261_612_187_648),
    "mistral-7b": (7_241_732_096, 1_828_850_761_728, 31_323_196_489_728),
    "mixtral-8x7b": (46_702_792_704, 3_272_228_208_640, 54_417_235_640_320),
    "qwen2-0.5b": (494_032_768, 127_863_357_440, 2_384_042_393_600),
    "pythia-160m": (162_322_944, 32_237_420_544, 660_753_874_944),
}
# the LM head's share of the reference counts (module lm_head): 2 x tokens x d x V
HF_HEAD = {"llama-2-7b": (33_554_432_000, 536_870_912_000),
           "qwen2-0.5b": (34_850_471_936, 557_607_550_976),
           "pythia-160m": (9_890_168_832, 158_242_701_312)}


@pytest.mark.parametrize("name", sorted(HF_REFERENCE))
def test_parameters_and_forward_flops_equal_the_reference(name):
    cfg = tr.preset(name)
    params, f128, f2048 = HF_REFERENCE[name]
    assert tr.params(cfg) == params
    assert tr.flops(cfg, 128).fwd == f128 and tr.flops(cfg, 2048).fwd == f2048
    if name in HF_HEAD:
        assert (tr.flops(cfg, 128).breakdown["head/logits"],
                tr.flops(cfg, 2048).breakdown["head/logits"]) == HF_HEAD[name]


def test_the_published_parameter_counts():
    """The issue's numbers, and Mixtral's 12.9B active (Jiang et al. 2024: "13B active")."""
    assert tr.params(tr.preset("llama-2-7b")) == 6_738_415_616
    assert tr.params(tr.preset("mistral-7b")) == 7_241_732_096
    mix = tr.preset("mixtral-8x7b")
    assert tr.params(mix) == 46_702_792_704
    d, f, L, V = 4096, 14336, 32, 32000
    expert = 3 * d * f
    assert tr.active_params(mix) == tr.params(mix) - L * 6 * expert == 12_879_925_248
    # the arithmetic: embeddings + head, 32 x (attention, 8 experts, router, 2 norms), norm
    attn = d * (32 + 2 * 8) * 128 + 32 * 128 * d
    assert tr.params(mix) == 2 * V * d + L * (attn + 8 * expert + d * 8 + 2 * d) + d


def test_mixtral_forward_flops_per_token_by_hand():
    """At 2,048 tokens: each token's projections (q, k, v, o), two SwiGLU experts and the
    router (2 FLOPs a weight it uses), attention over all 2,048 positions (scores and
    context, 4 n d), and the head."""
    n, d, f, L, V, h, g, dh = 2048, 4096, 14336, 32, 32000, 32, 8, 128
    per_token = L * (2 * d * (h + 2 * g) * dh + 2 * h * dh * d + 2 * 2 * 3 * d * f
                     + 2 * d * 8 + 4 * n * h * dh) + 2 * d * V
    assert tr.flops(tr.preset("mixtral-8x7b"), n).fwd == n * per_token
    assert n * per_token == HF_REFERENCE["mixtral-8x7b"][2]


PRESET_SEQS = [128, 512, 2048, 4096]


@pytest.mark.parametrize("name", sorted(HF_REFERENCE))
def test_presets_traced_equal_analytic_at_four_lengths(name):
    """The real training step of each preset, traced at full size (abstract shapes)."""
    cfg = tr.preset(name)
    counts = fast_traced(tr, cfg, 1, PRESET_SEQS)
    for s in PRESET_SEQS:
        assert_counts_agree(tr, cfg, 1, s, all_rtol=0, counts=counts[s])


def test_mistral_window_beyond_4096_tokens():
    """Mistral's sliding window (4,096): at 8,192 tokens each query computes 2 windows of
    keys (its block and the one before); Hugging Face's eager attention computes the
    whole masked square: as many at 8,192 tokens (2 x 4,096 keys a query), twice ours at
    16,384."""
    cfg = tr.preset("mistral-7b")
    dense = dataclasses.replace(cfg, attention="dense")
    for n in (8192, 16384):
        ours = tr.flops(cfg, n).breakdown["attn/scores"]
        assert ours == 32 * 2 * 32 * n * 2 * 4096 * 128
        assert ours / tr.flops(dense, n).breakdown["attn/scores"] == 2 * 4096 / n


def test_records_and_presets_report_total_and_active_parameters(capsys):
    import json

    from comparator import cli
    assert cli.main(["sweep", "--arch", "transformer", "--preset", "mixtral-8x7b,llama-2-7b",
                     "--seq", "128", "--format", "json"]) == 0
    mix, llama = json.loads(capsys.readouterr().out)
    assert (mix["params"], mix["active_params"]) == (46_702_792_704, 12_879_925_248)
    assert "active_params" not in llama                 # dense: every parameter is active
    assert mix["fwd_flops"] == HF_REFERENCE["mixtral-8x7b"][1]
    assert cli.main(["presets", "--format", "json"]) == 0
    rows = {r["preset"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["mixtral-8x7b"]["active params"] == 12_879_925_248
    assert rows["llama-2-7b"]["active params"] == rows["llama-2-7b"]["params"]
