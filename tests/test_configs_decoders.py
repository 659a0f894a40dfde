"""comparator.run.hfconfig for the Llama-era decoders (llama, mistral, mixtral, qwen2,
gpt_neox; comparator/run/hfdecoders.py): the released checkpoints' config.json give our
presets and the reference parameter counts; absent keys take HF's defaults; settings we do
not model are refused naming the key."""
from __future__ import annotations

import dataclasses

import pytest

from architectures import transformer as tr
from architectures.config import ConfigError
from comparator.run import configs
from test_configs import BAD_VALUES, load_one
from test_modern_presets import HF_REFERENCE

# config.json of the released checkpoints, key for key (token ids, dtypes and rope
# frequencies included, to show they are ignored)
LLAMA_2_7B = {
    "architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
    "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
    "intermediate_size": 11008, "max_position_embeddings": 4096, "model_type": "llama",
    "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32,
    "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": None,
    "tie_word_embeddings": False, "torch_dtype": "float16",
    "transformers_version": "4.31.0.dev0", "use_cache": True, "vocab_size": 32000}
MISTRAL_7B = {
    "architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
    "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
    "intermediate_size": 14336, "max_position_embeddings": 32768, "model_type": "mistral",
    "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
    "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096,
    "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "transformers_version": "4.34.0.dev0", "use_cache": True, "vocab_size": 32000}
MIXTRAL_8X7B = {
    "architectures": ["MixtralForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 1,
    "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
    "intermediate_size": 14336, "max_position_embeddings": 32768, "model_type": "mixtral",
    "num_attention_heads": 32, "num_experts_per_tok": 2, "num_hidden_layers": 32,
    "num_key_value_heads": 8, "num_local_experts": 8, "output_router_logits": False,
    "rms_norm_eps": 1e-05, "rope_theta": 1e6, "router_aux_loss_coef": 0.02,
    "sliding_window": None, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "transformers_version": "4.36.0.dev0", "use_cache": True, "vocab_size": 32000}
QWEN2_05B = {
    "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
    "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 896,
    "initializer_range": 0.02, "intermediate_size": 4864, "max_position_embeddings": 131072,
    "max_window_layers": 24, "model_type": "qwen2", "num_attention_heads": 14,
    "num_hidden_layers": 24, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0, "sliding_window": 131072, "tie_word_embeddings": True,
    "torch_dtype": "bfloat16", "transformers_version": "4.40.1", "use_cache": True,
    "use_sliding_window": False, "vocab_size": 151936}
PYTHIA_160M = {
    "architectures": ["GPTNeoXForCausalLM"], "bos_token_id": 0, "eos_token_id": 0,
    "hidden_act": "gelu", "hidden_size": 768, "initializer_range": 0.02,
    "intermediate_size": 3072, "layer_norm_eps": 1e-05, "max_position_embeddings": 2048,
    "model_type": "gpt_neox", "num_attention_heads": 12, "num_hidden_layers": 12,
    "rotary_emb_base": 10000, "rotary_pct": 0.25, "tie_word_embeddings": False,
    "torch_dtype": "float16", "transformers_version": "4.24.0", "use_cache": True,
    "use_parallel_residual": True, "vocab_size": 50304}
RELEASED = {"llama-2-7b": LLAMA_2_7B, "mistral-7b": MISTRAL_7B, "mixtral-8x7b": MIXTRAL_8X7B,
            "qwen2-0.5b": QWEN2_05B, "pythia-160m": PYTHIA_160M}


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_released_config_is_our_preset_with_the_reference_parameters(tmp_path, name):
    arch, label, cfg = load_one(tmp_path, RELEASED[name], name)
    assert arch == "transformer" and label.startswith(name)
    assert cfg == tr.preset(name)
    assert tr.params(cfg) == HF_REFERENCE[name][0]


def test_the_choices_each_model_type_makes(tmp_path):
    get = lambda data, **kw: load_one(tmp_path, dict(data, **kw), "m")[2]
    m = get(MISTRAL_7B)
    assert (m.attention, m.window, m.kv_heads, m.rope, m.rms, m.use_bias) == (
        "sliding", 4096, 8, 128, True, False)
    assert get(MISTRAL_7B, sliding_window=None).attention == "dense"
    x = get(MIXTRAL_8X7B)
    assert (x.n_experts, x.top_k, x.capacity_factor, x.router) == (8, 2, None, "renormalized")
    q = get(QWEN2_05B)
    assert (q.use_qkv_bias, q.use_bias, q.tie_embeddings) == (True, False, True)
    p = get(PYTHIA_160M)
    assert (p.rope, p.parallel, p.rms, p.use_bias, p.tie_embeddings) == (16, True, False,
                                                                         True, False)
    # transformers 5 writes the rotary fraction inside rope_parameters
    neox5 = {k: v for k, v in PYTHIA_160M.items() if k != "rotary_pct"}
    neox5["rope_parameters"] = {"rope_theta": 10000.0, "partial_rotary_factor": 0.5,
                                "rope_type": "default"}
    assert get(neox5).rope == 32
    assert get(PYTHIA_160M, rotary_pct=1.0).rope_dim is None      # the whole head
    biased = get(LLAMA_2_7B, attention_bias=True, mlp_bias=True)
    assert biased.use_bias and biased.use_qkv_bias
    assert get(LLAMA_2_7B, head_dim=64).d_head == 64
    assert get(LLAMA_2_7B, num_key_value_heads=4).kv_heads == 4


@pytest.mark.parametrize("model_type,params", [
    ("llama", 6_738_415_616), ("mistral", 7_241_732_096), ("mixtral", 46_702_792_704),
    # HF's default Qwen2Config and GPTNeoXConfig (GPT-NeoX-20B's shape), counted on the
    # meta device as tests/reference/hf_decoder_flops.py does (transformers 5.25.0)
    ("qwen2", 12_049_846_272), ("gpt_neox", 20_554_567_680)])
def test_absent_keys_take_hf_defaults(tmp_path, model_type, params):
    arch, _, cfg = load_one(tmp_path, {"model_type": model_type})
    assert arch == "transformer" and tr.params(cfg) == params


def test_model_type_from_the_class_name(tmp_path):
    data = {k: v for k, v in MIXTRAL_8X7B.items() if k != "model_type"}
    assert load_one(tmp_path, data)[2] == tr.preset("mixtral-8x7b")
    data = {k: v for k, v in QWEN2_05B.items() if k != "model_type"}
    assert load_one(tmp_path, data)[2] == tr.preset("qwen2-0.5b")
    with pytest.raises(ConfigError) as e:           # Qwen2-MoE is not Qwen2
        load_one(tmp_path, dict(data, architectures=["Qwen2MoeForCausalLM"]))
    assert e.value.key == "model_type"


# (data, the file's key the error names, the value, our Config field where one is read)
@pytest.mark.parametrize("data,key,value,ours", [
    (dict(LLAMA_2_7B, attention_bias=True), "mlp_bias", False, None),
    (dict(MIXTRAL_8X7B, output_router_logits=True), "output_router_logits", True, None),
    (dict(MIXTRAL_8X7B, router_jitter_noise=0.1), "router_jitter_noise", 0.1, None),
    (dict(MIXTRAL_8X7B, num_local_experts=0), "num_local_experts", 0, "n_experts"),
    (dict(MIXTRAL_8X7B, num_experts_per_tok=9), "num_experts_per_tok", 9, "top_k"),
    (dict(QWEN2_05B, use_sliding_window=True), "use_sliding_window", True, None),
    (dict(QWEN2_05B, layer_types=["sliding_attention"] * 24), "layer_types",
     ["sliding_attention"] * 24, None),
    (dict(PYTHIA_160M, attention_bias=False), "attention_bias", False, None),
    (dict(PYTHIA_160M, rotary_pct=0), "rotary_pct", 0, None),
    (dict(PYTHIA_160M, rotary_pct=0.01), "rotary_pct", 0.01, None),   # int(64 x 0.01) = 0
    (dict(PYTHIA_160M, rotary_pct=0.05), "rotary_pct", 0.05, None),   # 3 features: odd
    (dict(MISTRAL_7B, sliding_window="4096"), "sliding_window", "4096", "window"),
    (dict(MISTRAL_7B, sliding_window=0), "sliding_window", 0, "window"),
    (dict(MISTRAL_7B, num_key_value_heads=5), "num_key_value_heads", 5, "n_kv_heads"),
    (dict(LLAMA_2_7B, hidden_act="gelu_fast"), "hidden_act", "gelu_fast", "act"),
    (dict(LLAMA_2_7B, hidden_size=-4096), "hidden_size", -4096, "d_model"),
    (dict(QWEN2_05B, num_hidden_layers=2147483647), "num_hidden_layers", 2147483647,
     "n_layers"),
])
def test_unmodelled_settings_name_the_key(tmp_path, data, key, value, ours):
    with pytest.raises(ConfigError) as e:
        load_one(tmp_path, data)
    assert (e.value.key, e.value.value, e.value.ours) == (key, value, ours)
    assert e.value.field.endswith(": " + key + (f" (our {ours})" if ours else ""))


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_any_bad_value_is_a_config_error_never_a_traceback(name):
    data = RELEASED[name]
    for key in sorted((set(data) | set(configs.HF_DEFAULTS[data["model_type"]]))
                      - {"model_type"}):
        for bad in BAD_VALUES:
            try:
                configs.from_hf(dict(data, **{key: bad}))
            except ConfigError:
                pass


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_hf_model_built_from_the_same_dict_has_our_count(name):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    d = {k: v for k, v in RELEASED[name].items() if k != "architectures"}
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(
            transformers.AutoConfig.for_model(**d))
    assert sum(p.numel() for p in model.parameters()) == tr.params(tr.preset(name))


def test_a_toml_file_sets_the_block_fields(tmp_path):
    p = tmp_path / "m.toml"
    p.write_text('[model]\narch = "transformer"\npreset = "mixtral-8x7b"\n'
                 '[model.config]\ncapacity_factor = 1.25\ntop_k = 1\nrouter = "softmax"\n')
    [(_, label, cfg)] = configs.load(str(p))
    assert cfg == dataclasses.replace(tr.preset("mixtral-8x7b"), capacity_factor=1.25,
                                      top_k=1, router="softmax")
    assert "capacity_factor=1.25" in label
