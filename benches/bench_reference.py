"""Our jit-compiled training steps vs the reference implementations users would otherwise
run: Hugging Face transformers on PyTorch (CPU), the same configuration, one process.

    python benches/bench_reference.py [--steps 5]

Needs torch and transformers (optional: ``pip install torch transformers``).  Each model
is built from one Hugging Face config dict: the reference from it directly, ours through
``comparator.hfconfig.from_hf``, so both have the same sizes (parameter counts printed).
A training step is the loss, its backward pass and every parameter gradient:

1. Reformer, 4 LSH layers, d_model 256, 4 heads, 2 hashes, chunks of 64, causal LM at
   seq 4096: ``ReformerModelWithLMHead`` (loss on every position, reversible layers) vs
   our Reformer step;
2. BERT, 4 layers, d_model 256, 4 heads, FFN 1024, batch 8 x 512: ``BertForMaskedLM``
   with ``attn_implementation="sdpa"`` vs our BERT step.  The reference scores the MLM
   head on every position (labels -100 off the masked 15%); ours gathers the masked
   positions first, as BERT's original code does, so it also does fewer FLOPs.

Both sides warm up, then the median of ``--steps`` steps is reported; the ratio is the
reference's time over ours (above 1: ours is faster).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import architectures
from comparator import bench
from comparator.hfconfig import from_hf

REFORMER = {"model_type": "reformer", "architectures": ["ReformerModelWithLMHead"],
            "attn_layers": ["lsh"] * 4, "hidden_size": 256, "num_attention_heads": 4,
            "attention_head_size": 64, "feed_forward_size": 1024, "num_hashes": 2,
            "lsh_attn_chunk_length": 64, "local_attn_chunk_length": 64,
            "lsh_num_chunks_before": 1, "lsh_num_chunks_after": 0, "num_buckets": 128,
            "axial_pos_shape": [64, 64], "axial_pos_embds_dim": [64, 192],
            "is_decoder": True, "vocab_size": 320, "hidden_act": "relu",
            "chunk_size_feed_forward": 0, "max_position_embeddings": 4096,
            "hidden_dropout_prob": 0.0, "lsh_attention_probs_dropout_prob": 0.0,
            "local_attention_probs_dropout_prob": 0.0, "axial_pos_embds": True}
BERT = {"model_type": "bert", "architectures": ["BertForMaskedLM"], "hidden_size": 256,
        "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 1024,
        "vocab_size": 30522, "max_position_embeddings": 512, "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0}


def torch_step_time(model, inputs, steps: int) -> float:
    model.train()

    def step():
        model.zero_grad(set_to_none=True)
        loss = model(**inputs).loss
        loss.backward()

    step()   # warm-up
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def reference(data: dict, batch: int, seq: int, steps: int):
    import torch
    import transformers
    cfg = transformers.AutoConfig.for_model(**{k: v for k, v in data.items()
                                               if k != "architectures"})
    kind = data["architectures"][0]
    if kind == "BertForMaskedLM":
        cfg._attn_implementation = "sdpa"
    model = getattr(transformers, kind)(cfg)
    ids = torch.randint(0, data["vocab_size"], (batch, seq))
    if kind == "BertForMaskedLM":
        labels = torch.full_like(ids, -100)
        masked = torch.rand(batch, seq) < 0.15
        labels[masked] = ids[masked]
        inputs = {"input_ids": ids, "labels": labels}
    else:
        inputs = {"input_ids": ids, "labels": ids}
    n = sum(p.numel() for p in model.parameters())
    return torch_step_time(model, inputs, steps), n, torch.get_num_threads()


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    a = ap.parse_args(argv)
    print("$ python benches/bench_reference.py " + " ".join(sys.argv[1:] if argv is None
                                                             else argv))
    for label, data, batch, seq in (("Reformer, causal LM", REFORMER, 1, 4096),
                                    ("BERT, MLM (reference: sdpa)", BERT, 8, 512)):
        arch, _, cfg = from_hf(data, label)
        mod = architectures.get(arch)
        ours = bench.bench_step(mod, cfg, seq, batch, steps=a.steps, peak=1.0)
        ref_s, ref_n, threads = reference(data, batch, seq, a.steps)
        print(f"\n{label}: batch {batch} x seq {seq}; parameters ours {ours['params']:,}, "
              f"reference {ref_n:,}; torch threads {threads}")
        print(f"   {'reference (transformers, PyTorch)':36s} {ref_s:8.3f} s per step")
        print(f"   {'ours (jax.jit)':36s} {ours['step_s']:8.3f} s per step   "
              f"reference / ours = {ref_s / ours['step_s']:.2f}x")


if __name__ == "__main__":
    main()
