"""comparator.run.configs: reading files, and models from a comparator TOML file."""
from __future__ import annotations

import dataclasses

import pytest
from test_configs import BAD_VALUES, write_toml

import architectures
from architectures.config import ConfigError
from comparator.run import configs


# -- files -------------------------------------------------------------------------------

@pytest.mark.parametrize("content,why", [
    ('{"model_type": "bert",', "invalid JSON"),
    ('[1, 2]', "not an object"),
])
def test_bad_json_file(tmp_path, content, why):
    p = tmp_path / "config.json"
    p.write_text(content)
    with pytest.raises(ConfigError) as e:
        configs.load(str(p))
    assert e.value.field == "--config" and e.value.value == str(p)
    assert "Hugging Face config.json or comparator TOML" in e.value.allowed
    assert why in e.value.allowed and str(p) in str(e.value)


def test_unreadable_files(tmp_path):
    for path in (str(tmp_path / "missing.json"), str(tmp_path / "missing.toml")):
        with pytest.raises(ConfigError) as e:
            configs.load(path)
        assert e.value.field == "--config" and e.value.value == path
        assert "No such file" in e.value.allowed
    (tmp_path / "dir.toml").mkdir()
    with pytest.raises(ConfigError) as e:
        configs.load(str(tmp_path / "dir.toml"))
    assert e.value.field == "--config"
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError) as e:
        configs.load(str(tmp_path / "bin.json"))
    assert "UTF-8" in e.value.allowed
    with pytest.raises(ConfigError) as e:
        configs.load(str(tmp_path / "model.yaml"))
    assert e.value.field == "--config" and ".toml" in e.value.allowed


# -- comparator TOML ---------------------------------------------------------------------

def test_toml_single_model(tmp_path):
    path = write_toml(tmp_path, '[model]\narch = "reformer"\npreset = "reformer-enwik8"\n'
                                'name = "enwik8"\n')
    assert configs.load(path) == [
        ("reformer", "enwik8", architectures.get("reformer").preset("reformer-enwik8"))]


def test_toml_default_preset_and_label(tmp_path):
    [(arch, label, cfg)] = configs.load(write_toml(tmp_path, '[model]\narch = "albert"\n'))
    mod = architectures.get("albert")
    assert (arch, label, cfg) == ("albert", mod.DEFAULT_PRESET, mod.preset(mod.DEFAULT_PRESET))


def test_toml_several_models(tmp_path):
    path = write_toml(tmp_path, """
[[models]]
arch = "transformer"
preset = "gpt2-small"

[[models]]
arch = "transformer"
preset = "gpt2-small"
name = "gpt2-deep"
[models.config]
n_layers = 24

[[models]]
arch = "electra"
""")
    got = configs.load(path)
    assert [(a, label) for a, label, _ in got] == [
        ("transformer", "gpt2-small"), ("transformer", "gpt2-deep"),
        ("electra", "electra-base")]
    assert got[1][2].n_layers == 24 and got[1][2].kind == "decoder"


def test_toml_overrides_typed_as_the_config(tmp_path):
    path = write_toml(tmp_path, """
[model]
arch = "reformer"
preset = "reformer-base"
[model.config]
n_hashes = 8
attn_layers = ["lsh", "local"]
axial_shape = [32, 16]
causal = true
eps = 1
""")
    [(arch, label, cfg)] = configs.load(path)
    base = architectures.get("reformer").preset("reformer-base")
    assert cfg == dataclasses.replace(base, n_hashes=8, attn_layers=("lsh", "local"),
                                      axial_shape=(32, 16), causal=True, eps=1.0)
    assert isinstance(cfg.attn_layers, tuple) and isinstance(cfg.eps, float)
    assert label.startswith("reformer-base (") and "n_hashes=8" in label
    assert "attn_layers=lsh,local" in label
    mod = architectures.get("reformer")  # and it counts: local layers are cheaper at 1024
    assert 0 < mod.flops(cfg, 1024).fwd < mod.flops(dataclasses.replace(cfg, attn_layers=(
        "lsh",)), 1024).fwd


def test_toml_bert_head(tmp_path):
    tr = architectures.get("transformer")
    [(_, label, cfg)] = configs.load(write_toml(
        tmp_path, '[model]\narch = "transformer"\n[model.config]\nhead = "pretraining"\n'))
    assert cfg == tr.preset("bert-base-pretraining") and "head=pretraining" in label
    for preset, head in (("bert-base", "nsp"), ("bert-base", 1), ("gpt2-small", "pretraining")):
        value = f'"{head}"' if isinstance(head, str) else head
        err = _toml_error(tmp_path, f'[model]\narch = "transformer"\npreset = "{preset}"\n'
                                    f'[model.config]\nhead = {value}\n')
        assert err.key == "model.config.head" and err.value == head and repr(head) in str(err)


@pytest.mark.parametrize("arch", architectures.NAMES)
def test_any_bad_override_is_a_config_error_never_a_traceback(arch):
    for f in dataclasses.fields(architectures.get(arch).Config):
        for bad in [v for v in BAD_VALUES if v is not None]:  # TOML has no null
            try:
                configs.from_toml({"model": {"arch": arch, "config": {f.name: bad}}})
            except ConfigError:
                pass


def _toml_error(tmp_path, text) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        configs.load(write_toml(tmp_path, text))
    return e.value


def test_toml_unknown_field_lists_the_allowed(tmp_path):
    err = _toml_error(tmp_path, '[model]\narch = "reformer"\n[model.config]\nn_hashez = 8\n')
    assert err.key == "model.config.n_hashez" and err.value == 8
    assert err.field == f"{err.file}: model.config.n_hashez" and ".n_hashez: 8 " in str(err)
    for f in dataclasses.fields(architectures.get("reformer").Config):
        assert f.name in err.allowed


@pytest.mark.parametrize("override,field,value", [
    ('n_hashes = "8"', "n_hashes", "8"),
    ("n_hashes = 8.0", "n_hashes", 8.0),
    ("n_hashes = true", "n_hashes", True),
    ("causal = 1", "causal", 1),
    ('attn_layers = "lsh"', "attn_layers", "lsh"),
    ("attn_layers = [1, 2]", "attn_layers", [1, 2]),
    ('axial_shape = ["a", 1]', "axial_shape", ["a", 1]),
    ('eps = "small"', "eps", "small"),
    ("act = 3", "act", 3),
    # the Config's own validation propagates
    ("n_buckets = 3", "n_buckets", 3),
    ('attn_layers = ["lsh", "dense"]', "attn_layers", ("lsh", "dense")),
])
def test_toml_bad_override_types(tmp_path, override, field, value):
    err = _toml_error(tmp_path, f'[model]\narch = "reformer"\n[model.config]\n{override}\n')
    assert err.key == f"model.config.{field}" and err.ours == field
    assert err.value == value and repr(value) in str(err) and err.file in str(err)


@pytest.mark.parametrize("text,field,value", [
    ('[model]\npreset = "bert-base"\n', "model.arch", None),
    ('[model]\narch = "lstm"\n', "model.arch", "lstm"),
    ('[model]\narch = 3\n', "model.arch", 3),
    ('[model]\narch = "albert"\npreset = "bert-base"\n', "model.preset", "bert-base"),
    ('[model]\narch = "albert"\nname = 5\n', "model.name", 5),
    ('[model]\narch = "albert"\nsize = "big"\n', "model.size", "big"),
    ('[model]\narch = "albert"\nconfig = 3\n', "model.config", 3),
    ('arch = "albert"\n', "arch", "albert"),
    ('model = 3\n', "model", 3),
    ('models = [1, 2]\n', "models", [1, 2]),
    ('', "model", None),
    ('[[models]]\narch = "albert"\n[[models]]\narch = "albert"\n', "models[1].name",
     "albert-base"),
    ('[[models]]\narch = "albert"\n[[models]]\narch = "reformer"\n[models.config]\n'
     'n_hashes = 0\n', "models[1].config.n_hashes", 0),
])
def test_toml_structure_errors(tmp_path, text, field, value):
    err = _toml_error(tmp_path, text)
    assert err.key == field and err.value == value and repr(value) in str(err)
    assert err.field.startswith(err.file + ": " + field)


def test_toml_error_of_a_preset_value_says_the_file_does_not_set_it(tmp_path):
    err = _toml_error(tmp_path, '[model]\narch = "transformer"\n[model.config]\nd_model = 100\n')
    assert (err.key, err.ours, err.value) == ("model", "n_heads", 12)
    assert err.field == f"{err.file}: model (our n_heads)"
    assert "bert-base's value: not set in the file" in err.allowed


def test_bad_toml_syntax(tmp_path):
    path = write_toml(tmp_path, '[model\narch = "albert"\n')
    with pytest.raises(ConfigError) as e:
        configs.load(path)
    assert e.value.field == "--config" and e.value.value == path
    assert "invalid TOML" in e.value.allowed and path in str(e.value)
