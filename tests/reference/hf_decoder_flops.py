#!/usr/bin/env python3
"""Reference parameters and forward FLOPs of Hugging Face decoders (Llama, Mistral, Mixtral,
Qwen2, GPT-NeoX), for the constants of ``tests/test_modern_presets.py``.

Run in a scratch environment outside the repository (the project does not depend on torch):

    python -m venv /tmp/hfref
    /tmp/hfref/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu
    /tmp/hfref/bin/pip install transformers
    /tmp/hfref/bin/python tests/reference/hf_decoder_flops.py [--only NAME] [--out f.json]

(measured with torch 2.13.0+cpu and transformers 5.25.0).  The configs are the released
checkpoints' config.json values (``CONFIGS``; no hub access needed).

* Parameters: the ``AutoModelForCausalLM`` built on the meta device, ``numel`` summed over
  ``model.parameters()`` (a tied table once).
* Forward FLOPs of one sequence (batch 1) at 128 and 2,048 tokens: ``FlopCounterMode``
  (2 FLOPs per multiply-add of every mm/addmm/bmm) around ``model(input_ids)``, eager
  attention (``attn_implementation="eager"``: the scores and the context are two matmuls,
  the full causal square, as our dense attention computes them), split by module:

  - ``rotary``: FLOPs counted inside the rotary-embedding modules.  Older transformers
    formed the angles as a bmm of inner size 1 (``inv_freq @ position_ids``, ``n dh``
    FLOPs a step), which our matmul scope would not count (ours multiply elementwise, the
    ``all`` scope's ``attn/rope``), so the matmul scope's reference is ``total -
    rotary``; transformers 5.25 multiplies elementwise too: 0;
  - ``head``: ``lm_head`` on every position;
  - ``layers``: everything else, by layer.

  Llama, Mistral, Qwen2 and GPT-NeoX run on the meta device at full depth (shapes only).
  Mixtral's routing reads its data (which experts got tokens), so it runs on real
  bfloat16 tensors at depths 0, 1 and 2 (random weights): a dropless top-2 router sends
  every token to exactly 2 experts whatever the weights, so the layers' FLOPs do not
  depend on the routing and the full model is ``F(0) + 32 (F(1) - F(0))``; the script
  checks ``F(2) - F(1) == F(1) - F(0)``.
"""
import argparse
import json
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

import transformers
from transformers import AutoConfig, AutoModelForCausalLM

transformers.logging.set_verbosity_error()
torch.set_num_threads(2)

# config.json of the released checkpoints (keys that change no count left out)
CONFIGS = {
    # meta-llama/Llama-2-7b-hf
    "llama-2-7b": dict(model_type="llama", hidden_act="silu", hidden_size=4096,
                       intermediate_size=11008, max_position_embeddings=4096,
                       num_attention_heads=32, num_hidden_layers=32, num_key_value_heads=32,
                       rms_norm_eps=1e-05, tie_word_embeddings=False, vocab_size=32000),
    # mistralai/Mistral-7B-v0.1
    "mistral-7b": dict(model_type="mistral", hidden_act="silu", hidden_size=4096,
                       intermediate_size=14336, max_position_embeddings=32768,
                       num_attention_heads=32, num_hidden_layers=32, num_key_value_heads=8,
                       rms_norm_eps=1e-05, rope_theta=10000.0, sliding_window=4096,
                       tie_word_embeddings=False, vocab_size=32000),
    # mistralai/Mixtral-8x7B-v0.1
    "mixtral-8x7b": dict(model_type="mixtral", hidden_act="silu", hidden_size=4096,
                         intermediate_size=14336, max_position_embeddings=32768,
                         num_attention_heads=32, num_experts_per_tok=2, num_hidden_layers=32,
                         num_key_value_heads=8, num_local_experts=8, rms_norm_eps=1e-05,
                         rope_theta=1e6, sliding_window=None, tie_word_embeddings=False,
                         vocab_size=32000),
    # Qwen/Qwen2-0.5B
    "qwen2-0.5b": dict(model_type="qwen2", hidden_act="silu", hidden_size=896,
                       intermediate_size=4864, max_position_embeddings=131072,
                       num_attention_heads=14, num_hidden_layers=24, num_key_value_heads=2,
                       rms_norm_eps=1e-06, rope_theta=1000000.0, sliding_window=131072,
                       tie_word_embeddings=True, use_sliding_window=False,
                       vocab_size=151936),
    # EleutherAI/pythia-160m
    "pythia-160m": dict(model_type="gpt_neox", hidden_act="gelu", hidden_size=768,
                        intermediate_size=3072, layer_norm_eps=1e-05,
                        max_position_embeddings=2048, num_attention_heads=12,
                        num_hidden_layers=12, rotary_emb_base=10000, rotary_pct=0.25,
                        tie_word_embeddings=False, use_parallel_residual=True,
                        vocab_size=50304),
}
SEQS = (128, 2048)
ROUTED = ("mixtral-8x7b",)


def build(name, device, dtype=torch.float32, **overrides):
    data = dict(CONFIGS[name], **overrides)
    cfg = AutoConfig.for_model(**data)
    extra = {}
    if name in ROUTED:   # the per-expert loop (not a grouped-GEMM kernel FlopCounterMode lacks)
        extra["experts_implementation"] = "eager"
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)            # parameters created in dtype (no fp32 copy)
    try:
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager", **extra)
    finally:
        torch.set_default_dtype(previous)
    assert model.config._attn_implementation == "eager"
    assert name not in ROUTED or model.config._experts_implementation == "eager"
    return model


def params(name) -> int:
    return sum(p.numel() for p in build(name, "meta").parameters())


def split(counts: dict, head_name: str) -> dict:
    """FlopCounterMode's per-module totals -> rotary, head, layers (and the total)."""
    total = sum(counts["Global"].values())
    mod = lambda suffix: sum(sum(v.values()) for k, v in counts.items()
                             if k.endswith(suffix))
    rotary, head = mod("rotary_emb"), mod(head_name)
    return {"total": total, "rotary": rotary, "head": head, "layers": total - rotary - head}


def forward_flops(name, seq, device="meta", dtype=torch.float32, **overrides) -> dict:
    model = build(name, device, dtype, **overrides)
    ids = torch.zeros((1, seq), dtype=torch.long, device=device)
    mask = torch.ones((1, seq), dtype=torch.long, device=device)   # (no packed-sequence probe)
    counter = FlopCounterMode(display=False, depth=None)
    with torch.no_grad(), counter:
        model(input_ids=ids, attention_mask=mask, use_cache=False)
    return split(counter.get_flop_counts(), "lm_head")


def routed_flops(name, seq) -> dict:
    """Depths 0, 1, 2 on real bfloat16 tensors; the full depth by linearity (checked)."""
    L = CONFIGS[name]["num_hidden_layers"]
    f = [forward_flops(name, seq, "cpu", torch.bfloat16, num_hidden_layers=k)
         for k in (0, 1, 2)]
    layer = {k: f[1][k] - f[0][k] for k in f[0]}
    assert all(f[2][k] - f[1][k] == layer[k] for k in layer), (f, layer)
    return {k: f[0][k] + L * layer[k] for k in layer}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default=None)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    out = {}
    for name in CONFIGS:
        if a.only and name not in a.only.split(","):
            continue
        t0 = time.time()
        rec = {"params": params(name)}
        for seq in SEQS:
            fl = routed_flops(name, seq) if name in ROUTED else forward_flops(name, seq)
            rec[str(seq)] = dict(fl, matmul_scope=fl["total"] - fl["rotary"])
        out[name] = rec
        print(name, json.dumps(rec), f"({time.time() - t0:.0f} s)", flush=True)
    if a.out:
        with open(a.out, "w") as fh:
            json.dump({"torch": torch.__version__, "transformers": transformers.__version__,
                       "counts": out}, fh, indent=1)


if __name__ == "__main__":
    main()
