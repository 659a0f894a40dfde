"""comparator.run.configs: models from a Hugging Face config.json (TOML: test_configs_toml)."""
from __future__ import annotations

import dataclasses
import json

import pytest

import architectures
from architectures.config import ConfigError
from comparator.errors import FieldError
from comparator.run import configs

# The config.json of released checkpoints, key for key (dropouts, token ids and other keys
# we do not model included, to show they are ignored).
BERT_BASE_UNCASED = {
    "architectures": ["BertForMaskedLM"], "attention_probs_dropout_prob": 0.1,
    "gradient_checkpointing": False, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
    "hidden_size": 768, "initializer_range": 0.02, "intermediate_size": 3072,
    "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert",
    "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 0,
    "position_embedding_type": "absolute", "transformers_version": "4.6.0.dev0",
    "type_vocab_size": 2, "use_cache": True, "vocab_size": 30522}
# the same config naming the model BERT was pre-trained as: MLM + NSP heads and the pooler
BERT_FOR_PRETRAINING = dict(BERT_BASE_UNCASED, architectures=["BertForPreTraining"])
GPT2 = {
    "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"],
    "attn_pdrop": 0.1, "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256,
    "initializer_range": 0.02, "layer_norm_epsilon": 1e-05, "model_type": "gpt2",
    "n_ctx": 1024, "n_embd": 768, "n_head": 12, "n_layer": 12, "n_positions": 1024,
    "resid_pdrop": 0.1, "summary_activation": None, "summary_first_dropout": 0.1,
    "summary_proj_to_labels": True, "summary_type": "cls_index", "summary_use_proj": True,
    "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
    "vocab_size": 50257}
T5_SMALL = {  # no num_decoder_layers / feed_forward_proj: HF's defaults (= num_layers, relu)
    "architectures": ["T5ForConditionalGeneration"], "d_ff": 2048, "d_kv": 64,
    "d_model": 512, "decoder_start_token_id": 0, "dropout_rate": 0.1, "eos_token_id": 1,
    "initializer_factor": 1.0, "is_encoder_decoder": True, "layer_norm_epsilon": 1e-06,
    "model_type": "t5", "n_positions": 512, "num_heads": 8, "num_layers": 6,
    "output_past": True, "pad_token_id": 0, "relative_attention_num_buckets": 32,
    "vocab_size": 32128}
ALBERT_BASE_V2 = {
    "architectures": ["AlbertForMaskedLM"], "attention_probs_dropout_prob": 0,
    "bos_token_id": 2, "classifier_dropout_prob": 0.1, "down_scale_factor": 1,
    "embedding_size": 128, "eos_token_id": 3, "gap_size": 0, "hidden_act": "gelu_new",
    "hidden_dropout_prob": 0, "hidden_size": 768, "initializer_range": 0.02,
    "inner_group_num": 1, "intermediate_size": 3072, "layer_norm_eps": 1e-12,
    "max_position_embeddings": 512, "model_type": "albert", "net_structure_type": 0,
    "num_attention_heads": 12, "num_hidden_groups": 1, "num_hidden_layers": 12,
    "num_memory_blocks": 0, "pad_token_id": 0, "type_vocab_size": 2, "vocab_size": 30000}
ELECTRA_SMALL_DISCRIMINATOR = {
    "architectures": ["ElectraForPreTraining"], "attention_probs_dropout_prob": 0.1,
    "embedding_size": 128, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
    "hidden_size": 256, "initializer_range": 0.02, "intermediate_size": 1024,
    "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "electra",
    "num_attention_heads": 4, "num_hidden_layers": 12, "pad_token_id": 0,
    "type_vocab_size": 2, "vocab_size": 30522}
REFORMER_ENWIK8 = {
    "architectures": ["ReformerModelWithLMHead"], "attention_head_size": 128,
    "attn_layers": ["local", "local", "lsh", "local", "local", "local", "lsh", "local",
                    "local", "local", "lsh", "local"],
    "axial_norm_std": 1.0, "axial_pos_embds": True, "axial_pos_embds_dim": [256, 768],
    "axial_pos_shape": [128, 512], "chunk_size_feed_forward": 0, "chunk_size_lm_head": 0,
    "eos_token_id": 2, "feed_forward_size": 4096, "hash_seed": None, "hidden_act": "relu",
    "hidden_dropout_prob": 0.2, "hidden_size": 1024, "initializer_range": 0.02,
    "is_decoder": True, "layer_norm_eps": 1e-12, "local_attention_probs_dropout_prob": 0.2,
    "local_attn_chunk_length": 128, "local_num_chunks_after": 0,
    "local_num_chunks_before": 1, "lsh_attention_probs_dropout_prob": 0.1,
    "lsh_attn_chunk_length": 256, "lsh_num_chunks_after": 0, "lsh_num_chunks_before": 1,
    "max_position_embeddings": 65536, "model_type": "reformer", "num_attention_heads": 8,
    "num_buckets": 512, "num_hashes": 4, "num_hidden_layers": 12, "pad_token_id": 0,
    "tie_word_embeddings": False, "vocab_size": 258}

# (checkpoint, its config.json, our arch, matching preset, parameters: ours = HF's model)
RELEASED = [
    ("bert-base-uncased", BERT_BASE_UNCASED, "transformer", "bert-base", 109_514_298),
    # Hugging Face BertForPreTraining's count (tests/test_transformer.py says where from)
    ("bert-for-pretraining", BERT_FOR_PRETRAINING, "transformer", "bert-base-pretraining",
     110_106_428),
    ("gpt2", GPT2, "transformer", "gpt2-small", 124_439_808),
    ("t5-small", T5_SMALL, "transformer", "t5-small", 60_506_624),
    ("albert-base-v2", ALBERT_BASE_V2, "albert", "albert-base", 11_813_810),
    ("electra-small-discriminator", ELECTRA_SMALL_DISCRIMINATOR, "electra", "electra-small",
     13_549_057),
    ("reformer-enwik8", REFORMER_ENWIK8, "reformer", "reformer-enwik8", 149_182_722),
]
# the HF model class whose parameter count the released checkpoint's count is
HF_CLASS = {"bert": "BertForMaskedLM", "gpt2": "GPT2LMHeadModel",
            "t5": "T5ForConditionalGeneration", "albert": "AlbertForPreTraining",
            "electra": "ElectraForPreTraining", "reformer": "ReformerModelWithLMHead"}


def _hf_class(data) -> str:
    """BertForPreTraining where the file names it (our pre-training head), else HF_CLASS."""
    return ("BertForPreTraining" if "BertForPreTraining" in data.get("architectures", [])
            else HF_CLASS[data["model_type"]])


def _params(arch, cfg):
    mod = architectures.get(arch)
    return mod.discriminator_params(cfg) if arch == "electra" else mod.params(cfg)


def write_json(tmp_path, name, data) -> str:
    d = tmp_path / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps(data))
    return str(d / "config.json")


def write_toml(tmp_path, text, name="models.toml") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def load_one(tmp_path, data, name="model"):
    [entry] = configs.load(write_json(tmp_path, name, data))
    return entry


# -- Hugging Face config.json ------------------------------------------------------------

@pytest.mark.parametrize("name,data,arch,preset,expected", RELEASED,
                         ids=[r[0] for r in RELEASED])
def test_released_checkpoint_counts_as_our_preset(tmp_path, name, data, arch, preset, expected):
    got_arch, label, cfg = load_one(tmp_path, data, name)
    assert got_arch == arch and label.startswith(name)  # label from the folder name
    mod = architectures.get(arch)
    assert _params(arch, cfg) == expected == _params(arch, mod.preset(preset))
    # the FLOPs agree too: same sizes, same step
    seq = 1024 if arch == "reformer" else 512
    assert mod.flops(cfg, seq).fwd == mod.flops(mod.preset(preset), seq).fwd


@pytest.mark.parametrize("name,data,arch,preset,expected", RELEASED,
                         ids=[r[0] for r in RELEASED])
def test_hf_model_built_from_the_same_dict_has_our_count(name, data, arch, preset, expected):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    d = {k: v for k, v in data.items() if k != "architectures"}
    hf_cfg = transformers.AutoConfig.for_model(**d)
    with torch.device("meta"):  # shapes only, nothing allocated
        model = getattr(transformers, _hf_class(data))(hf_cfg)
    n = sum(p.numel() for p in model.parameters())  # unique tensors: tied ones once
    head = getattr(model, "lm_head", None)
    if data["model_type"] == "reformer" and head.bias is not head.decoder.bias:
        # transformers 5's ReformerOnlyLMHead registers a `bias` its forward never reads
        # (v4 tied it to decoder.bias); the checkpoint has one output bias
        n -= head.bias.numel()
    assert n == expected


@pytest.mark.parametrize("model_type", configs.MODEL_TYPES)
def test_default_tables_are_hf_defaults(model_type):
    transformers = pytest.importorskip("transformers")
    hf = transformers.AutoConfig.for_model(model_type).to_dict()
    ours = configs.HF_DEFAULTS[model_type]
    for key, value in ours.items():
        if key == "num_decoder_layers":  # HF stores None resolved to num_layers
            assert hf[key] == hf["num_layers"]
        elif key == "num_key_value_heads" and value is None:   # None: as many as queries
            assert hf[key] == hf["num_attention_heads"]
        elif key == "head_dim" and value is None:               # None: hidden / heads
            assert hf[key] in (None, hf["hidden_size"] // hf["num_attention_heads"])
        elif key in hf:  # position_embedding_type is gone from transformers 5's BertConfig
            assert hf[key] == value, key


@pytest.mark.parametrize("model_type,arch,preset", [
    ("bert", "transformer", "bert-base"), ("gpt2", "transformer", "gpt2-small"),
    ("t5", "transformer", "t5-small"), ("albert", "albert", "albert-xxlarge"),
    ("electra", "electra", "electra-small")])
def test_absent_keys_take_hf_defaults(tmp_path, model_type, arch, preset):
    # HF's default config of each type is the base/small/xxlarge checkpoint's
    got_arch, _, cfg = load_one(tmp_path, {"model_type": model_type})
    assert got_arch == arch
    assert _params(arch, cfg) == _params(arch, architectures.get(arch).preset(preset))


def test_reformer_defaults_give_hf_default_model(tmp_path):
    _, _, cfg = load_one(tmp_path, {"model_type": "reformer"})
    assert cfg.attn_layers == ("local", "lsh") * 3 and cfg.n_layers == 6
    assert (cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_ff) == (256, 12, 64, 512)
    assert cfg.n_buckets is None and not cfg.causal and cfg.axial_dims == (64, 192)


def test_mapped_fields(tmp_path):
    _, _, gpt = load_one(tmp_path, GPT2, "gpt2")
    assert (gpt.kind, gpt.act, gpt.eps, gpt.ff_dim, gpt.d_ff) == (
        "decoder", "gelu_tanh", 1e-5, None, 3072)  # n_inner absent -> 4 * n_embd
    _, _, t5 = load_one(tmp_path, dict(T5_SMALL, num_decoder_layers=4), "t5")
    assert (t5.kind, t5.n_layers, t5.n_dec_layers, t5.rel_buckets, t5.act) == (
        "encdec", 6, 4, 32, "relu")
    _, _, ref = load_one(tmp_path, REFORMER_ENWIK8, "ref")
    assert ref == architectures.get("reformer").preset("reformer-enwik8")
    _, _, ref = load_one(tmp_path, dict(REFORMER_ENWIK8, chunk_size_feed_forward=64,
                                        is_decoder=False, lsh_num_chunks_after=1,
                                        local_num_chunks_after=1, num_buckets=None), "ref2")
    assert (ref.ffn_chunk, ref.causal, ref.chunks_after, ref.n_buckets) == (64, False, 1, None)
    assert ref.max_len == 65536                      # max_position_embeddings: the bucket rule
    _, _, ref = load_one(tmp_path, dict(REFORMER_ENWIK8, num_buckets=[32, 16]), "ref3")
    assert ref.n_buckets == (32, 16) and ref.bucket_factors(4096) == (32, 16)
    assert ref.rotation_size(4096) == 48 and ref.buckets(4096) == 512


def test_bert_head_follows_architectures(tmp_path):
    _, label, cfg = load_one(tmp_path, BERT_FOR_PRETRAINING, "pt")
    assert cfg.head == "pretraining" and "BertForPreTraining" in label
    # HF states the FFN width (3072); the preset leaves it to the 4 x H default
    assert cfg == dataclasses.replace(
        architectures.get("transformer").preset("bert-base-pretraining"), ff_dim=3072)
    for names in (["BertForMaskedLM"], ["BertModel"], None):   # None: no architectures key
        data = dict(BERT_BASE_UNCASED, architectures=names)
        if names is None:
            del data["architectures"]
        _, label, cfg = load_one(tmp_path, data, "mlm")
        assert cfg.head == "mlm" and label == "mlm"
    # no model_type: the class name gives both the type and the head
    data = {k: v for k, v in BERT_FOR_PRETRAINING.items() if k != "model_type"}
    arch, _, cfg = load_one(tmp_path, data, "pt2")
    assert arch == "transformer" and cfg.kind == "encoder" and cfg.head == "pretraining"


def test_model_type_from_architectures_when_absent(tmp_path):
    data = {k: v for k, v in GPT2.items() if k != "model_type"}
    arch, _, cfg = load_one(tmp_path, data)
    assert arch == "transformer" and cfg.kind == "decoder"


def test_label_is_file_stem_unless_config_json(tmp_path):
    p = tmp_path / "my-bert.json"
    p.write_text(json.dumps(BERT_BASE_UNCASED))
    assert configs.load(str(p))[0][1] == "my-bert"
    assert configs.load(p)[0][1] == "my-bert"  # a Path works too


def test_albert_one_group_per_layer_is_no_sharing(tmp_path):
    _, _, cfg = load_one(tmp_path, dict(ALBERT_BASE_V2, num_hidden_groups=12))
    base = architectures.get("albert").preset("albert-base")
    assert cfg.share == "none" and cfg == dataclasses.replace(base, share="none", ff_dim=3072)


def test_electra_generator_follows_matching_preset_or_default(tmp_path):
    large = dict(ELECTRA_SMALL_DISCRIMINATOR, embedding_size=1024, hidden_size=1024,
                 num_attention_heads=16, num_hidden_layers=24, intermediate_size=4096)
    _, label, cfg = load_one(tmp_path, large, "electra-large-discriminator")
    # HF states the FFN width (4096); the preset leaves it to the 4 x H default
    assert cfg == dataclasses.replace(architectures.get("electra").preset("electra-large"),
                                      ff_dim=4096)
    assert "generator 1/4" in label and "electra-large" in label
    _, label, cfg = load_one(tmp_path, dict(ELECTRA_SMALL_DISCRIMINATOR, num_hidden_layers=6))
    assert cfg.gen_fraction == 1 / 3 and "generator 1/3" in label and "default" in label
    _, label, cfg = load_one(tmp_path, ELECTRA_SMALL_DISCRIMINATOR, "small")
    assert cfg == dataclasses.replace(architectures.get("electra").preset("electra-small"),
                                      ff_dim=1024)


def _hf_error(tmp_path, data) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        load_one(tmp_path, data)
    return e.value


# (data, the file's key the error names, the value, our Config field where it differs)
@pytest.mark.parametrize("data,key,value,ours", [
    ({"model_type": "roberta"}, "model_type", "roberta", None),
    ({"hidden_size": 768}, "model_type", None, None),
    (dict(T5_SMALL, feed_forward_proj="gated-gelu"), "feed_forward_proj", "gated-gelu", None),
    (dict(ALBERT_BASE_V2, num_hidden_groups=3), "num_hidden_groups", 3, None),
    (dict(ALBERT_BASE_V2, inner_group_num=2), "inner_group_num", 2, None),
    (dict(ELECTRA_SMALL_DISCRIMINATOR, architectures=["ElectraForMaskedLM"]),
     "architectures", ["ElectraForMaskedLM"], None),
    (dict(REFORMER_ENWIK8, num_buckets=[32, 15]), "num_buckets", [32, 15], "n_buckets"),
    (dict(REFORMER_ENWIK8, num_buckets=[4, 8, 16]), "num_buckets", [4, 8, 16], "n_buckets"),
    (dict(REFORMER_ENWIK8, num_buckets=33), "num_buckets", 33, "n_buckets"),
    (dict(REFORMER_ENWIK8, num_buckets="512"), "num_buckets", "512", "n_buckets"),
    (dict(REFORMER_ENWIK8, local_num_chunks_before=2), "local_num_chunks_before", 2, None),
    (dict(REFORMER_ENWIK8, axial_pos_embds=False), "axial_pos_embds", False, None),
    (dict(BERT_BASE_UNCASED, position_embedding_type="relative_key"),
     "position_embedding_type", "relative_key", None),
    (dict(GPT2, tie_word_embeddings=False), "tie_word_embeddings", False, None),
    (dict(BERT_BASE_UNCASED, hidden_act="quick_gelu"), "hidden_act", "quick_gelu",
     "act"),
    # wrong types name the HF key
    (dict(BERT_BASE_UNCASED, hidden_size="768"), "hidden_size", "768", "d_model"),
    (dict(GPT2, n_layer=True), "n_layer", True, "n_layers"),
    (dict(GPT2, n_embd=None), "n_embd", None, "d_model"),
    (dict(T5_SMALL, layer_norm_epsilon="1e-6"), "layer_norm_epsilon", "1e-6", "eps"),
    (dict(REFORMER_ENWIK8, is_decoder=1), "is_decoder", 1, "causal"),
    (dict(REFORMER_ENWIK8, axial_pos_shape=[128, "512"]), "axial_pos_shape", [128, "512"],
     "axial_shape"),
    (dict(REFORMER_ENWIK8, attn_layers="lsh"), "attn_layers", "lsh", "attn_layers"),
    # the Config's own validation (of our fields) names the file's key too
    (dict(BERT_BASE_UNCASED, num_attention_heads=7), "num_attention_heads", 7, "n_heads"),
    (dict(BERT_BASE_UNCASED, hidden_size=-768), "hidden_size", -768, "d_model"),
    (dict(GPT2, n_layer=2147483647), "n_layer", 2147483647, "n_layers"),
    (dict(T5_SMALL, num_decoder_layers=0), "num_decoder_layers", 0, "n_dec_layers"),
    (dict(REFORMER_ENWIK8, axial_pos_embds_dim=[256, 512]), "axial_pos_embds_dim",
     (256, 512), "axial_dims"),
])
def test_hf_errors_name_file_key_and_value(tmp_path, data, key, value, ours):
    err = _hf_error(tmp_path, data)
    assert isinstance(err, FieldError)       # the CLI's exit status 2
    assert err.key == key and err.value == value and err.ours == ours
    assert err.file == str(tmp_path / "model" / "config.json")
    head = f"{err.file}: {key}" + (f" (our {ours})" if ours and ours != key else "")
    assert err.field == head and str(err).startswith(head + ": " + repr(value))


def test_a_default_that_fails_says_it_is_hf_default(tmp_path):
    # 100 wide with BertConfig's default 12 heads: the file has no num_attention_heads
    data = {k: v for k, v in BERT_BASE_UNCASED.items() if k != "num_attention_heads"}
    err = _hf_error(tmp_path, dict(data, hidden_size=100))
    assert (err.key, err.ours, err.value) == ("num_attention_heads", "n_heads", 12)
    assert "the file has no num_attention_heads: HF's bert default 12 was taken" in err.allowed


def test_hf_error_messages_say_what_is_supported(tmp_path):
    err = _hf_error(tmp_path, {"model_type": "roberta"})
    assert err.allowed.startswith("choose from bert, gpt2, t5, albert, electra, reformer")
    assert _hf_error(tmp_path, {"model_type": "gtp2"}).allowed.endswith("(did you mean gpt2?)")
    err = _hf_error(tmp_path, dict(T5_SMALL, feed_forward_proj="gated-gelu"))
    assert "relu" in err.allowed and "not modelled" in err.allowed
    err = _hf_error(tmp_path, dict(REFORMER_ENWIK8, num_buckets=[32, 15]))
    assert "two even integers" in err.allowed
    err = _hf_error(tmp_path, dict(REFORMER_ENWIK8, lsh_num_chunks_after=1))
    assert err.key == "local_num_chunks_after" and "lsh_num_chunks_after=1" in err.allowed


def test_chunk_counts_of_an_unused_attention_kind_are_ignored(tmp_path):
    data = dict(REFORMER_ENWIK8, attn_layers=["lsh"] * 4, local_num_chunks_before=5)
    _, _, cfg = load_one(tmp_path, data)
    assert cfg.chunks_before == 1 and cfg.n_layers == 4


BAD_VALUES = [None, True, -1, 0, 3, 1.5, "x", [], [1, 2], ["lsh"], {}]


@pytest.mark.parametrize("name,data", [(r[0], r[1]) for r in RELEASED])
def test_any_bad_value_is_a_config_error_never_a_traceback(tmp_path, name, data):
    keys = set(data) | set(configs.HF_DEFAULTS[data["model_type"]])
    for key in sorted(keys - {"model_type"}):
        for bad in BAD_VALUES:
            try:
                configs.from_hf(dict(data, **{key: bad}))
            except ConfigError:
                pass
