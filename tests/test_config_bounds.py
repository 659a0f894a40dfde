"""Bounds of a config's sizes (architectures.config.BOUNDS): every preset within them, a
size orders of magnitude beyond the largest published model refused at once, naming the
bound and why -- before any count or trace."""
import dataclasses
import json

import pytest

import architectures
from architectures.config import BOUNDS, MAX_LAYER_WEIGHTS, ConfigError
from comparator.run import configs

# the published sizes the bounds are measured against (architectures/config.py)
DEEPNET_LAYERS = 1_000        # Wang et al. 2022, "Scaling Transformers to 1,000 Layers"
MT_NLG_HIDDEN = 20_480        # Smith et al. 2022, MT-NLG 530B
PALM_FFN = 4 * 18_432         # Chowdhery et al. 2022, Table 1: d_ff = 4 d_model
PALM_VOCAB = 256_000          # Chowdhery et al. 2022: a 256k SentencePiece vocabulary
GEMINI_CONTEXT = 10_000_000   # Reid et al. 2024: contexts of up to 10M tokens


def test_bounds_are_orders_of_magnitude_beyond_the_largest_published():
    assert BOUNDS["n_layers"][0] >= 100 * DEEPNET_LAYERS
    assert BOUNDS["d_model"][0] >= 100 * MT_NLG_HIDDEN
    assert BOUNDS["ff_dim"][0] >= 100 * PALM_FFN
    assert BOUNDS["vocab"][0] >= 100 * PALM_VOCAB
    assert BOUNDS["max_len"][0] >= 100 * GEMINI_CONTEXT


@pytest.mark.parametrize("arch", architectures.NAMES)
def test_every_preset_is_within_the_bounds(arch):
    mod = architectures.get(arch)
    for name, (cfg, _) in mod.PRESETS.items():
        for field, (most, _) in BOUNDS.items():
            v = getattr(cfg, field, None)
            assert v is None or v <= most, (name, field, v)
        assert dataclasses.replace(cfg) == cfg   # validates


@pytest.mark.parametrize("arch", architectures.NAMES)
@pytest.mark.parametrize("field", ["n_layers", "d_model", "vocab", "max_len"])
def test_a_size_past_its_bound_is_refused_naming_bound_and_why(arch, field):
    base = architectures.get(arch).PRESETS[architectures.get(arch).DEFAULT_PRESET][0]
    most, why = BOUNDS[field]
    with pytest.raises(ConfigError) as e:
        dataclasses.replace(base, **{field: most + 1})
    assert e.value.field == field and e.value.value == most + 1
    assert e.value.allowed == f"at most {most:,}: {why}"


def test_sizes_each_within_bounds_but_absurd_together_are_refused():
    tr = architectures.get("transformer")
    d, layers = BOUNDS["d_model"][0], BOUNDS["n_layers"][0]
    # 4 d inner + 2 d (4 d) per layer = 12 d^2 weights a layer, inner = d
    assert layers * 12 * d * d > MAX_LAYER_WEIGHTS
    with pytest.raises(ConfigError) as e:
        tr.Config(d_model=d, n_heads=d // 64, n_layers=layers)
    assert e.value.field == "n_layers" and f"{MAX_LAYER_WEIGHTS:.0e} weights" in e.value.allowed


def test_absurd_depth_in_a_config_file_is_refused_before_anything_is_built(tmp_path,
                                                                            monkeypatch):
    p = tmp_path / "config.json"
    p.write_text(json.dumps({"model_type": "bert", "num_hidden_layers": 2147483647}))
    # refused from the number alone: no model (of two billion layers) is made to find out
    tr = architectures.get("transformer")
    monkeypatch.setattr(tr, "model", lambda *a, **k: pytest.fail("a model was built"))
    monkeypatch.setattr(tr, "terms", lambda *a, **k: pytest.fail("terms were built"))
    with pytest.raises(ConfigError) as e:
        configs.load(str(p))
    assert e.value.key == "num_hidden_layers" and e.value.ours == "n_layers"
    assert "at most 100,000" in e.value.allowed and "DeepNet" in e.value.allowed


def test_reformer_lengths_and_buckets_are_bounded():
    rf = architectures.get("reformer")
    most = BOUNDS["max_len"][0]
    for change in ({"axial_shape": (most + 1, 2)}, {"n_buckets": most + 2},
                   {"n_buckets": (2, most + 2)}, {"lsh_chunk": most + 1},
                   {"chunks_before": most + 1}, {"n_hashes": BOUNDS["n_hashes"][0] + 1},
                   {"axial_shape": ("a", 2)}):
        with pytest.raises(ConfigError):
            dataclasses.replace(rf.PRESETS["reformer-base"][0], **change)


SWITCH_C_EXPERTS = 2_048      # Fedus et al. 2022, Table 9: Switch-C, 2,048 experts a layer


def test_the_modern_blocks_sizes_are_bounded():
    tr = architectures.get("transformer")
    mixtral = tr.preset("mixtral-8x7b")
    assert BOUNDS["n_experts"][0] >= 100 * SWITCH_C_EXPERTS
    assert BOUNDS["n_kv_heads"] == BOUNDS["n_heads"]
    for field, value, base in (("n_experts", BOUNDS["n_experts"][0] + 1, mixtral),
                               ("top_k", BOUNDS["top_k"][0] + 1, mixtral),
                               ("n_kv_heads", BOUNDS["n_kv_heads"][0] + 1, mixtral),
                               ("rope_dim", BOUNDS["rope_dim"][0] + 1, mixtral)):
        with pytest.raises(ConfigError) as e:
            dataclasses.replace(base, **{field: value})
        assert e.value.field == field and e.value.value == value
        assert e.value.allowed == f"at most {BOUNDS[field][0]:,}: {BOUNDS[field][1]}"
    for field, value in (("n_kv_heads", 0), ("top_k", 0), ("rope_dim", -2), ("n_experts", -1)):
        with pytest.raises(ConfigError) as e:
            dataclasses.replace(mixtral, **{field: value})
        assert e.value.field == field and f"at most {BOUNDS[field][0]}" in e.value.allowed


def test_the_weights_bound_counts_every_expert_and_the_gate():
    tr = architectures.get("transformer")
    mixtral = tr.preset("mixtral-8x7b")
    d, ff, L = mixtral.d_model, mixtral.d_ff, mixtral.n_layers
    # experts within their bound, each as wide as Mixtral's: L d (4 d + E x 3 ff) weights
    experts = MAX_LAYER_WEIGHTS // (L * d * 3 * ff) + 1
    assert experts <= BOUNDS["n_experts"][0]
    assert L * d * (4 * d + experts * 3 * ff) > MAX_LAYER_WEIGHTS
    assert L * d * (4 * d + experts * 2 * ff) < MAX_LAYER_WEIGHTS      # without the gate
    with pytest.raises(ConfigError) as e:
        dataclasses.replace(mixtral, n_experts=experts)
    assert e.value.field == "n_layers" and f"{MAX_LAYER_WEIGHTS:.0e} weights" in e.value.allowed
    dataclasses.replace(mixtral, n_experts=experts, ffn="mlp")          # ungated experts fit
