"""Models from a Hugging Face ``config.json``: ``from_hf(dict, label)`` returns
``(arch, preset label, Config)``; ``comparator.run.configs.load`` reads the file.

A config is mapped by ``model_type`` (or, when absent, by the
``architectures`` class names): bert -> transformer encoder, gpt2 -> transformer decoder,
t5 -> transformer encdec, albert, electra, reformer; llama, mistral, mixtral, qwen2 and
gpt_neox -> the transformer decoder with the modern blocks (``comparator.run.hfdecoders``
says how each is read and what is refused).  The label is the checkpoint folder's
name (``.../bert-base-uncased/config.json``) or the file's stem, plus a note where a choice
was made.  A key absent from the file takes HF's default for that model type
(``HF_DEFAULTS``, the keyword defaults of transformers' ``<X>Config``, checked against
transformers in the tests); a key of the wrong type is a ConfigError naming the key.  Keys
that do not change the counts (dropouts, token ids) are ignored; settings that change them
and that we do not model are refused, naming the key:

* bert: ``position_embedding_type`` other than absolute; any model: an untied LM head;
* t5: a gated ``feed_forward_proj`` (T5 v1.1 "gated-gelu"); non-gated relu/gelu are kept;
* albert: ``inner_group_num`` != 1, or ``num_hidden_groups`` other than 1 (share "all")
  or num_hidden_layers (share "none");
* electra: the file describes one network.  A discriminator's sizes are mapped and the
  generator follows ``gen_fraction``: that of our preset with the same sizes, whose
  training settings (gen_fraction, mask_prob) are kept -- so google/electra-large-
  discriminator, whose hidden 1024 x the default 1/3 has no valid head split, loads --
  otherwise the Config default; the label says which.  A generator config
  (``ElectraForMaskedLM`` without ``ElectraForPreTraining``) is refused;
* reformer: ``num_buckets`` an even int, a factorised ``[a, b]`` (hashed with a/2 + b/2
  rotations a round, a*b buckets) or null: the length-derived rule of the reference, which
  reads ``max_position_embeddings``; the lsh_ and local_ ``num_chunks_before/after`` must
  agree for the kinds ``attn_layers`` uses (our model has one of each);
  ``axial_pos_embds: false`` is refused.

BERT's head follows ``architectures``: ``BertForPreTraining`` is BERT as pre-trained (MLM +
next-sentence prediction and the pooler: ``head="pretraining"``, noted in the label); any
other class (``BertForMaskedLM``, the released checkpoints' class) gives the MLM head alone.
"""
from __future__ import annotations

import dataclasses
from fractions import Fraction

import architectures
from architectures.config import ConfigError

from comparator.run import hfdecoders
from comparator.run.sweep import suggest

MODEL_TYPES = ("bert", "gpt2", "t5", "albert", "electra", "reformer") + tuple(hfdecoders.MAPPERS)
# HF activation names (transformers.activations.ACT2FN) -> ours
HF_ACT = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
          "relu": "relu", "silu": "silu", "swish": "silu"}

# HF's documented defaults (the keyword defaults of transformers' BertConfig, GPT2Config,
# T5Config, AlbertConfig, ElectraConfig, ReformerConfig), used for keys absent from a file.
_TIED = {"tie_word_embeddings": True}
HF_DEFAULTS = {
    "bert": dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12,
                 num_attention_heads=12, intermediate_size=3072, hidden_act="gelu",
                 max_position_embeddings=512, type_vocab_size=2, layer_norm_eps=1e-12,
                 position_embedding_type="absolute", **_TIED),
    "gpt2": dict(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12,
                 n_inner=None, activation_function="gelu_new", layer_norm_epsilon=1e-5,
                 **_TIED),
    # num_decoder_layers: None means "as num_layers" (T5Config)
    "t5": dict(vocab_size=32128, d_model=512, d_kv=64, d_ff=2048, num_layers=6,
               num_decoder_layers=None, num_heads=8, relative_attention_num_buckets=32,
               relative_attention_max_distance=128, layer_norm_epsilon=1e-6,
               feed_forward_proj="relu", **_TIED),
    "albert": dict(vocab_size=30000, embedding_size=128, hidden_size=4096,
                   num_hidden_layers=12, num_hidden_groups=1, num_attention_heads=64,
                   intermediate_size=16384, inner_group_num=1, hidden_act="gelu_new",
                   max_position_embeddings=512, type_vocab_size=2, layer_norm_eps=1e-12,
                   **_TIED),
    "electra": dict(vocab_size=30522, embedding_size=128, hidden_size=256,
                    num_hidden_layers=12, num_attention_heads=4, intermediate_size=1024,
                    hidden_act="gelu", max_position_embeddings=512, type_vocab_size=2,
                    layer_norm_eps=1e-12),
    "reformer": dict(attention_head_size=64, attn_layers=["local", "lsh", "local", "lsh",
                                                          "local", "lsh"],
                     axial_pos_embds=True, axial_pos_shape=[64, 64],
                     axial_pos_embds_dim=[64, 192], chunk_size_feed_forward=0,
                     feed_forward_size=512, hidden_act="relu", hidden_size=256,
                     is_decoder=False, layer_norm_eps=1e-12, local_attn_chunk_length=64,
                     local_num_chunks_before=1, local_num_chunks_after=0,
                     lsh_attn_chunk_length=64, lsh_num_chunks_before=1,
                     lsh_num_chunks_after=0, max_position_embeddings=4096,
                     num_attention_heads=12, num_buckets=None, num_hashes=1, vocab_size=320),
    **hfdecoders.DECODER_DEFAULTS,
}



def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_KINDS = {  # kind: (test, what is allowed)
    "int": (_is_int, "an integer"),
    "int?": (lambda v: v is None or _is_int(v), "an integer or null"),
    "num": (_is_num, "a number"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "pair": (lambda v: isinstance(v, list) and len(v) == 2 and all(map(_is_int, v)),
             "a list of 2 integers"),
    "words": (lambda v: isinstance(v, list) and v and all(isinstance(x, str) for x in v),
              "a non-empty list of strings"),
}


class _Keys:
    """Typed reads of one HF config dict; absent keys take HF's default for the type.
    ``source``: our Config field -> the file's key it was read from (``to=``), so that an
    error of our Config names the file's key."""

    def __init__(self, data: dict, model_type: str):
        self.data, self.model_type = data, model_type
        self.defaults = HF_DEFAULTS[model_type]
        self.source: dict = {}

    def fields(self, keys: dict, kind: str = "int") -> dict:
        """``{our field: the value of its key}`` for ``keys`` = {our field: the file's key}."""
        return {ours: self(key, kind, to=ours) for ours, key in keys.items()}

    def named(self, err: ConfigError, ours_fields) -> ConfigError:
        """``err`` naming the file's key: ``key`` (the file's key, None for a value that is
        not read from the file), ``ours`` (our Config field) and ``field`` (the key, else
        ours) set; a key absent from the file says that HF's default was taken."""
        read_as = {key: ours for ours, key in self.source.items()}
        if err.field in self.source:            # our Config refused a value it was given
            key, ours = self.source[err.field], err.field
        elif err.field in read_as:              # a key of the file refused as it was read
            key, ours = err.field, read_as[err.field]
        elif err.field in ours_fields:          # our value, not read from the file
            key, ours = None, err.field
        else:
            key, ours = err.field, None
        allowed = err.allowed
        if key is not None and ours is not None and key not in self.data:
            allowed += (f" (the file has no {key}: HF's {self.model_type} default "
                        f"{self.defaults.get(key)!r} was taken)")
        elif key is None:
            allowed += " (our value, not a key of the file)"
        out = ConfigError(key or ours, err.value, allowed)
        out.key, out.ours = key, ours
        return out

    def raw(self, key):
        if key in self.data:
            return self.data[key]
        if key in self.defaults:
            return self.defaults[key]
        raise ConfigError(key, None, f"a value: required in a {self.model_type} config.json")

    def __call__(self, key: str, kind: str = "int", to: str | None = None):
        if to is not None:
            self.source[to] = key
        v = self.raw(key)
        test, allowed = _KINDS[kind]
        if not test(v):
            raise ConfigError(key, v, allowed)
        return float(v) if kind == "num" else tuple(v) if isinstance(v, list) else v

    def act(self, key: str) -> str:
        v = self(key, "str", to="act")
        if v not in HF_ACT:
            raise ConfigError(key, v, "one of " + ", ".join(HF_ACT))
        return HF_ACT[v]

    def tied(self, what: str) -> None:
        if not self("tie_word_embeddings", "bool"):
            raise ConfigError("tie_word_embeddings", False,
                              f"true: our {what} ties its output layer to the word embeddings")


def _model_type(data: dict):
    if "model_type" in data:
        return data["model_type"]
    prefixes = {"Bert": "bert", "GPT2": "gpt2", "T5": "t5", "Albert": "albert",
                "Electra": "electra", "Reformer": "reformer"}
    archs = data.get("architectures")
    for name in archs if isinstance(archs, list) else []:
        for prefix, mt in prefixes.items():
            if isinstance(name, str) and name.startswith(prefix):
                return mt
        for prefix, mt in hfdecoders.CLASS_PREFIXES.items():   # Qwen2For..., not Qwen2Moe
            if isinstance(name, str) and name.startswith((prefix + "For", prefix + "Model")):
                return mt
    return None


def from_hf(data: dict, label: str = "hf") -> tuple[str, str, object]:
    """(arch, label, Config) for the dict of a Hugging Face config.json."""
    mt = _model_type(data)
    if not isinstance(mt, str) or mt not in MODEL_TYPES:
        raise ConfigError("model_type", mt, suggest(mt, MODEL_TYPES))
    keys = _Keys(data, mt)
    try:
        if mt in hfdecoders.MAPPERS:
            fields, note = hfdecoders.MAPPERS[mt](keys)
            arch, cfg = "transformer", _transformer(**fields)
        else:
            arch, cfg, note = _HF_MAPPERS[mt](keys)
    except ConfigError as err:
        ours = {f.name for arch in architectures.NAMES
                for f in dataclasses.fields(architectures.get(arch).Config)}
        raise keys.named(err, ours) from None
    return arch, f"{label} ({note})" if note else label, cfg


def _bert_sizes(k: _Keys) -> dict:
    """The keys BERT, ALBERT and ELECTRA configs share, as our Config fields."""
    return dict(k.fields(dict(vocab="vocab_size", d_model="hidden_size",
                              n_layers="num_hidden_layers", n_heads="num_attention_heads",
                              ff_dim="intermediate_size", max_len="max_position_embeddings",
                              type_vocab="type_vocab_size")),
                act=k.act("hidden_act"), eps=k("layer_norm_eps", "num", to="eps"))


def _transformer(**kw):
    return architectures.get("transformer").Config(**kw)


def _class_names(k: _Keys) -> list:
    """The file's ``architectures`` class names (a lone string read as one)."""
    names = k.data.get("architectures") or []
    return names if isinstance(names, list) else [names]


def _bert(k: _Keys):
    pos = k("position_embedding_type", "str")
    if pos != "absolute":
        raise ConfigError("position_embedding_type", pos,
                          "absolute (relative position embeddings are not modelled)")
    k.tied("BERT")
    pretraining = "BertForPreTraining" in _class_names(k)
    cfg = _transformer(kind="encoder", head="pretraining" if pretraining else "mlm",
                       **_bert_sizes(k))
    return "transformer", cfg, "BertForPreTraining: MLM + NSP heads" if pretraining else ""


def _gpt2(k: _Keys):
    k.tied("GPT-2")
    return "transformer", _transformer(
        kind="decoder", **k.fields(dict(vocab="vocab_size", d_model="n_embd",
                                        n_layers="n_layer", n_heads="n_head",
                                        max_len="n_positions")),
        ff_dim=k("n_inner", "int?", to="ff_dim"),  # None: 4 * n_embd, as HF
        type_vocab=0, act=k.act("activation_function"),
        eps=k("layer_norm_epsilon", "num", to="eps")), ""


def _t5(k: _Keys):
    proj = k("feed_forward_proj", "str")
    if proj.startswith("gated-") or proj not in HF_ACT:
        raise ConfigError("feed_forward_proj", proj,
                          "a non-gated activation: relu (T5 v1.0), gelu or gelu_new; gated "
                          "feed-forward layers (T5 v1.1 'gated-gelu') are not modelled")
    k.tied("T5")
    n_layers = k("num_layers", to="n_layers")
    n_dec = k("num_decoder_layers", "int?", to="n_dec_layers")
    if n_dec is None:
        k.source["n_dec_layers"] = "num_layers"
    k.source["act"] = "feed_forward_proj"
    return "transformer", _transformer(
        kind="encdec", n_layers=n_layers, n_dec_layers=n_layers if n_dec is None else n_dec,
        **k.fields(dict(vocab="vocab_size", d_model="d_model", n_heads="num_heads",
                        head_dim="d_kv", ff_dim="d_ff", rel_buckets="relative_attention_num_buckets",
                        rel_max_distance="relative_attention_max_distance")),
        max_len=0, type_vocab=0, act=HF_ACT[proj],
        eps=k("layer_norm_epsilon", "num", to="eps")), ""


def _albert(k: _Keys):
    layers, groups, inner = k("num_hidden_layers"), k("num_hidden_groups"), k("inner_group_num")
    if inner != 1:
        raise ConfigError("inner_group_num", inner,
                          "1 (several layers per group are not modelled)")
    if groups not in (1, layers):
        raise ConfigError("num_hidden_groups", groups,
                          f"1 (one layer shared by all: share='all') or num_hidden_layers="
                          f"{layers} (no sharing: share='none'); partial sharing is not modelled")
    k.tied("ALBERT")
    sizes = _bert_sizes(k)
    cfg = architectures.get("albert").Config(emb_dim=k("embedding_size", to="emb_dim"),
                                             share="all" if groups == 1 else "none", **sizes)
    return "albert", cfg, "E = H: HF's E->H projection not counted" if (
        cfg.emb_dim == cfg.d_model) else ""


def _electra(k: _Keys):
    names = _class_names(k)
    if (any("ForMaskedLM" in str(n) for n in names)
            and not any("ForPreTraining" in str(n) for n in names)):
        raise ConfigError("architectures", k.data["architectures"],
                          "a discriminator config (ElectraForPreTraining): a generator "
                          "config does not give the discriminator's sizes")
    mod = architectures.get("electra")
    sizes = dict(_bert_sizes(k), emb_dim=k("embedding_size", to="emb_dim"))
    shape = ("d_model", "n_layers", "n_heads", "emb_dim")
    base, source = mod.Config(), "the Config default"
    for pname, (pcfg, _) in mod.PRESETS.items():
        if all(getattr(pcfg, f) == sizes[f] for f in shape) and pcfg.d_ff == sizes["ff_dim"]:
            base, source = pcfg, f"as {pname}"
            break
    cfg = dataclasses.replace(base, **sizes)
    frac = Fraction(cfg.gen_fraction).limit_denominator(1000)
    return "electra", cfg, f"discriminator; generator {frac} of it, {source}"


def _reformer(k: _Keys):
    kinds = k("attn_layers", "words", to="attn_layers")
    k.source["n_layers"] = "attn_layers"    # one layer per entry
    if not k("axial_pos_embds", "bool"):
        raise ConfigError("axial_pos_embds", False,
                          "true (only axial position embeddings are modelled)")
    buckets = k.raw("num_buckets")
    k.source["n_buckets"] = "num_buckets"
    if not (buckets is None or _is_int(buckets) or (isinstance(buckets, list)
                                                    and all(map(_is_int, buckets)))):
        raise ConfigError("num_buckets", buckets, "an even integer, a list of two even "
                          "integers [a, b] (a factorised hash), or null (length-derived)")
    chunks = {}
    for side in ("before", "after"):
        used = {kind: k(f"{kind}_num_chunks_{side}") for kind in ("lsh", "local")
                if kind in kinds}
        if len(set(used.values())) > 1:
            raise ConfigError(f"local_num_chunks_{side}", used["local"],
                              f"equal to lsh_num_chunks_{side}={used['lsh']}: our model uses "
                              f"one chunks_{side} for LSH and local attention")
        chunks[side] = next(iter(used.values()), 1 if side == "before" else 0)
        if used:
            k.source[f"chunks_{side}"] = f"{next(iter(used))}_num_chunks_{side}"
    cfg = architectures.get("reformer").Config(
        n_layers=len(kinds), attn_layers=kinds,
        **k.fields(dict(vocab="vocab_size", d_model="hidden_size",
                        n_heads="num_attention_heads", head_dim="attention_head_size",
                        ff_dim="feed_forward_size", n_hashes="num_hashes",
                        max_len="max_position_embeddings", lsh_chunk="lsh_attn_chunk_length",
                        local_chunk="local_attn_chunk_length",
                        ffn_chunk="chunk_size_feed_forward")),
        n_buckets=tuple(buckets) if isinstance(buckets, list) else buckets,
        chunks_before=chunks["before"], chunks_after=chunks["after"],
        **k.fields(dict(axial_shape="axial_pos_shape", axial_dims="axial_pos_embds_dim"),
                   "pair"),
        causal=k("is_decoder", "bool", to="causal"), act=k.act("hidden_act"),
        eps=k("layer_norm_eps", "num", to="eps"))
    return "reformer", cfg, ""


_HF_MAPPERS = {"bert": _bert, "gpt2": _gpt2, "t5": _t5, "albert": _albert,
               "electra": _electra, "reformer": _reformer}



__all__ = ["HF_ACT", "HF_DEFAULTS", "MODEL_TYPES", "from_hf"]
