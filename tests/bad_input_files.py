"""The files the bad inputs of tests/test_bad_inputs.py read (``FILES``: name -> text,
written into the working directory before each case): configuration files, catalogue
overrides, device profiles and a user's model file, each bad in one way."""
import json


def _profile(change=None, drop=None) -> str:
    """A device profile's JSON (comparator calibrate -o), with one field changed or gone."""
    p = {"schema_version": 1, "device": "cpu: test", "kind": "cpu", "calibrated": True,
         "source": "a test", "date": "2026-12-07", "software": {"jax": "0"},
         "matmul": [{"m": 64, "k": 64, "n": 64, "batch": 1, "dtype": "fp32",
                     "flops_per_s": 1e10}],
         "bandwidth": 7e9, "vector_flops": 5e10, "transcendentals": 3e8, "sort": 3e7,
         "gather": 2e10, "scatter": 1e10, "overhead_s": 1e-6, "first_touch": None}
    p.update(change or {})
    p.pop(drop, None)
    return json.dumps(p)


MODEL = """import flax.linen as nn
import jax
import jax.numpy as jnp

import comparator


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(8)(x)


def x(seq_len, batch):
    return jax.ShapeDtypeStruct((batch, seq_len, 8), jnp.float32)


def make(seq_len, batch):
    return comparator.UserModel(module=MLP(), inputs=(x(seq_len, batch),))


def raising(seq_len, batch):
    raise ValueError("no model at this length")


def pair(seq_len, batch):
    return MLP(), x(seq_len, batch)


def short(seq_len, batch):
    return comparator.UserModel(module=MLP(), inputs=(x(64, batch),))
"""
FILES = {   # written into the (temporary) working directory before each case
    "bad.json": '{"model_type": "bert", "hidden_size": 768,',
    "gtp2.json": '{"model_type": "gtp2"}',
    "heads.json": '{"model_type": "bert", "hidden_size": 768, "num_attention_heads": 0}',
    "typo.toml": '[model]\narch = "transformer"\n[model.config]\nd_modle = 512\n',
    "gen.toml": '[model]\narch = "electra"\n[model.config]\ngen_fraction = 1.5\n',
    "buckets.toml": '[model]\narch = "reformer"\n[model.config]\nn_buckets = 256\n',
    "attn.toml": '[model]\narch = "transformer"\n[model.config]\nattention = "lsh"\n',
    "window.toml": '[model]\narch = "albert"\n[model.config]\nattention = "local"\nwindow = 0\n',
    "factors.toml": '[model]\narch = "reformer"\n[model.config]\nn_buckets = [8, 16, 2]\n',
    "odd.toml": '[model]\narch = "reformer"\n[model.config]\nn_buckets = 63\n',
    "odd-factor.json": '{"model_type": "reformer", "num_buckets": [8, 15]}',
    "huge.toml": '[model]\narch = "transformer"\n[model.config]\nvocab = 9223372036854775807\n',
    "arch.toml": '[model]\narch = "reformr"\n',
    "model.yaml": "arch: transformer\n",
    "afile": "",
    "peak.toml": "[accelerators.h100-sxm]\nbf16 = -1\n",
    "field.toml": "[accelerators.h100-sxm]\nbf61 = 1e15\n",
    "head.toml": '[model]\narch = "transformer"\n[model.config]\nhead = "nsp"\n',
    "gpt2-head.toml": '[model]\narch = "transformer"\npreset = "gpt2-small"\n'
                      '[model.config]\nhead = "pretraining"\n',
    "kaplan.json": '[{"arch": "transformer", "accelerator": "a100-80gb", "dtype": "fp32", '
                   '"utilisation": 0.3, "skipped": null, "convention": "kaplan"}]',
    "cpu.json": _profile(),
    "zero.json": _profile({"bandwidth": 0}),
    "neg.json": _profile({"matmul": [{"m": 64, "k": 64, "n": 64, "batch": 1, "dtype": "fp32",
                                      "flops_per_s": -1e10}]}),
    "nosort.json": _profile(drop="sort"),
    "type.json": _profile({"gather": "fast"}),
    "negprice.toml": '[[accelerators.t4.prices]]\ndate = "2020"\nkind = "on-demand"\n'
                     'usd_per_hour = -0.35\nprovider = "x"\nsource = "y"\n',
    "pue.toml": "[ranges.pue]\nlow = 1.6\nhigh = 1.2\n",
    "mymodel.py": MODEL,
    "crash.py": 'raise RuntimeError("half-written")\n',
    "layers.json": '{"model_type": "bert", "num_hidden_layers": 2147483647}',
    "width.json": '{"model_type": "bert", "hidden_size": -768}',
    "deep.json": "[" * 2000 + "]" * 2000,
    "deep.toml": "[accelerators.h100-sxm]\nbf16 = " + "[" * 2000 + "]" * 2000 + "\n",
    "wide.toml": '[[models]]\narch = "albert"\n[[models]]\narch = "reformer"\n'
                 '[models.config]\nd_model = 3000000\n',
    "kv.toml": '[model]\narch = "transformer"\npreset = "mistral-7b"\n[model.config]\n'
               'n_kv_heads = 5\n',
    "experts.toml": '[model]\narch = "transformer"\npreset = "mixtral-8x7b"\n[model.config]\n'
                    'n_experts = 1\n',
    "topk.toml": '[model]\narch = "transformer"\npreset = "mixtral-8x7b"\n[model.config]\n'
                 'top_k = 9\n',
    "capacity.toml": '[model]\narch = "transformer"\npreset = "mixtral-8x7b"\n'
                     '[model.config]\ncapacity_factor = 0\n',
    "rope.toml": '[model]\narch = "transformer"\npreset = "bert-base"\n[model.config]\n'
                 'positions = "rope"\n',
    "router.json": '{"model_type": "mixtral", "output_router_logits": true}',
    "qwen.json": '{"model_type": "qwen2", "use_sliding_window": true}',
}
