"""Our jit-compiled training steps vs the reference implementations users would otherwise
run: Hugging Face transformers on PyTorch (CPU), the same configuration, one process.

    python benches/bench_reference.py [--steps 5] [--only reformer|bert] [--xla-option K=V]

Needs torch and transformers (optional: ``pip install torch transformers``).  Each model
is built from one Hugging Face config dict: the reference from it directly, ours through
``comparator.run.hfconfig.from_hf``, so both have the same sizes (parameter counts printed).
A training step is the loss, its backward pass and every parameter gradient:

1. Reformer, 4 LSH layers, d_model 256, 4 heads, 2 hashes, chunks of 64, causal LM at
   seq 4096: ``ReformerModelWithLMHead`` (loss on every position, reversible layers) vs
   our Reformer step;
2. BERT, 4 layers, d_model 256, 4 heads, FFN 1024, batch 8 x 512: ``BertForMaskedLM``
   with ``attn_implementation="sdpa"`` vs our BERT step.  The reference scores the MLM
   head on every position (labels -100 off the masked 15%); ours gathers the masked
   positions first, as BERT's original code does, so it also does fewer FLOPs.

Both sides warm up, then run ``--steps`` rounds of one step each, alternating, so both
see the same load on a shared machine; the ratio is the reference's time over ours (above
1: ours is faster), of the medians, the median of the per-round ratios and of the minima.
Our step is compiled as ``comparator bench`` compiles it (on CPU with
``comparator.measure.bench.CPU_COMPILE_OPTIONS``; ``--xla-defaults``: XLA's defaults);
``--xla-option KEY=VALUE`` adds an XLA compile option.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import architectures
from comparator.measure import bench
from comparator.run.hfconfig import from_hf

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


def torch_step(model, inputs):
    model.train()

    def step():
        model.zero_grad(set_to_none=True)
        loss = model(**inputs).loss
        loss.backward()

    return step


def reference(data: dict, batch: int, seq: int):
    """(one training step of the reference, its parameter count, torch threads)."""
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
    return torch_step(model, inputs), n, torch.get_num_threads()


def ours(data: dict, label: str, batch: int, seq: int, options: dict, cpu_defaults: bool):
    """(one training step of ours, its parameter count), compiled as 'comparator bench'
    compiles it (``bench.CPU_COMPILE_OPTIONS`` on CPU unless ``cpu_defaults`` is False)."""
    import jax
    arch, _, cfg = from_hf(data, label)
    mod = architectures.get(arch)
    compiled, args, _ = bench.prepare_step(mod, cfg, seq, batch, compile_options=options,
                                           cpu_defaults=cpu_defaults)
    return (lambda: jax.block_until_ready(compiled(*args))), mod.params(cfg, seq)


def interleaved(steps: dict, rounds: int) -> dict:
    """Each step run once to warm up, then ``rounds`` rounds of one run each, in turn, so
    that both sides see the same load on a shared machine; seconds per run, by name."""
    for fn in steps.values():
        fn()
    times = {name: [] for name in steps}
    for _ in range(rounds):
        for name, fn in steps.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def parse_options(pairs) -> dict:
    out = {}
    for pair in pairs or ():
        k, _, v = pair.partition("=")
        out[k] = {"true": True, "false": False}.get(v.lower(), int(v) if v.isdigit() else v)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5, help="rounds (one step each side)")
    ap.add_argument("--only", choices=("reformer", "bert"), help="one model only")
    ap.add_argument("--xla-option", action="append", metavar="KEY=VALUE",
                    help="an XLA compile option for our step (repeatable)")
    ap.add_argument("--xla-defaults", action="store_true", help="compile our step with "
                    "XLA's defaults, not comparator.measure.bench.CPU_COMPILE_OPTIONS")
    a = ap.parse_args(argv)
    options = parse_options(a.xla_option)
    print("$ python benches/bench_reference.py " + " ".join(sys.argv[1:] if argv is None
                                                             else argv))
    models = (("reformer", "Reformer, causal LM", REFORMER, 1, 4096),
              ("bert", "BERT, MLM (reference: sdpa)", BERT, 8, 512))
    for key, label, data, batch, seq in models:
        if a.only and key != a.only:
            continue
        mine, n_ours = ours(data, label, batch, seq, options or None, not a.xla_defaults)
        ref, n_ref, threads = reference(data, batch, seq)
        load0 = os.getloadavg()[0]
        t = interleaved({"ours": mine, "reference": ref}, a.steps)
        load = f"load average {load0:.1f} before, {os.getloadavg()[0]:.1f} after (2 cores)"
        med = {k: statistics.median(v) for k, v in t.items()}
        per_round = statistics.median(r / o for r, o in zip(t["reference"], t["ours"]))
        print(f"\n{label}: batch {batch} x seq {seq}; parameters ours {n_ours:,}, "
              f"reference {n_ref:,}; torch threads {threads}; {a.steps} rounds, interleaved; "
              f"{load}")
        print(f"   {'reference (transformers, PyTorch)':36s} {med['reference']:8.3f} s per step "
              f"(min {min(t['reference']):.3f})")
        print(f"   {'ours (jax.jit)':36s} {med['ours']:8.3f} s per step "
              f"(min {min(t['ours']):.3f})   reference / ours = "
              f"{med['reference'] / med['ours']:.2f}x (medians), {per_round:.2f}x (median "
              f"of rounds), {min(t['reference']) / min(t['ours']):.2f}x (minima)")


if __name__ == "__main__":
    main()
