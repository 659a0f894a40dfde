"""Models from a file, for ``comparator sweep --config FILE``: ``load(path)`` returns
``[(arch, preset label, Config), ...]``.  See ``comparator.run.hfconfig`` for how a Hugging
Face ``config.json`` (``*.json``) is mapped, by ``model_type``, to our architectures.

**comparator TOML** (``*.toml``)::

    [model]                     # or several [[models]] tables with the same keys
    arch = "reformer"           # required
    preset = "reformer-base"    # optional; default: the arch's DEFAULT_PRESET
    name = "my-reformer"        # optional label (default: the preset, plus any overrides)
    [model.config]              # optional overrides of Config fields
    n_hashes = 8
    attn_layers = ["lsh", "local"]

Overrides are type-checked against the Config's fields (arrays become tuples where the
Config holds tuples), then validated by the Config.  TOML has no null: an ``int | None``
field takes only an int.  Every bad input is a ConfigError naming field, value and what
is allowed; the Config's own validation errors propagate unchanged.
"""
from __future__ import annotations

import dataclasses
import json
import os

import architectures
from architectures.config import ConfigError

from comparator.run.sweep import suggest
from comparator.run.hfconfig import HF_DEFAULTS, MODEL_TYPES, _is_int, _is_num, from_hf

FILE_ALLOWED = "a readable Hugging Face config.json or comparator TOML file"
MODEL_KEYS = ("arch", "preset", "name", "config")


def load(path) -> list[tuple[str, str, object]]:
    """(arch, preset label, Config) for each model of a config.json or TOML file."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".json", ".toml"):
        raise ConfigError("--config", path, FILE_ALLOWED + " (a name ending in .json or .toml)")
    text = _read(path)
    if ext == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise _bad_file(path, f"invalid JSON: {err}") from None
        if not isinstance(data, dict):
            raise _bad_file(path, "the JSON is not an object")
        return [from_hf(data, _file_label(path))]
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise _bad_file(path, "reading TOML needs Python >= 3.11 or the tomli "
                                  "package") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise _bad_file(path, f"invalid TOML: {err}") from None
    return from_toml(data)


def _bad_file(path: str, why: str) -> ConfigError:
    return ConfigError("--config", path, f"{FILE_ALLOWED} ({why})")


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as err:
        raise _bad_file(path, err.strerror or str(err)) from None
    except UnicodeDecodeError as err:
        raise _bad_file(path, f"not UTF-8 text: {err.reason}") from None


def _file_label(path: str) -> str:
    """``.../bert-base-uncased/config.json`` -> bert-base-uncased; ``gpt2.json`` -> gpt2."""
    base = os.path.basename(path)
    if base.lower() == "config.json":
        return os.path.basename(os.path.dirname(os.path.abspath(path))) or "config"
    return os.path.splitext(base)[0]


# -- comparator TOML --------------------------------------------------------------------

def from_toml(data: dict) -> list[tuple[str, str, object]]:
    """(arch, label, Config) for each [model] / [[models]] table of a parsed TOML file."""
    for key in data:
        if key not in ("model", "models"):
            raise ConfigError(key, data[key], "a [model] table or [[models]] tables")
    tables = []
    if "model" in data:
        if not isinstance(data["model"], dict):
            raise ConfigError("model", data["model"], "a table: [model]")
        tables.append(data["model"])
    if "models" in data:
        models = data["models"]
        if not (isinstance(models, list) and all(isinstance(m, dict) for m in models)):
            raise ConfigError("models", models, "an array of tables: [[models]]")
        tables.extend(models)
    if not tables:
        raise ConfigError("model", None, "a [model] table or [[models]] tables, each with arch")
    out, seen = [], set()
    for table in tables:
        arch, label, cfg = _toml_model(table)
        if (arch, label) in seen:
            raise ConfigError("name", label, f"a label not used by another {arch} model of the "
                                             "file (set name)")
        seen.add((arch, label))
        out.append((arch, label, cfg))
    return out


def _toml_model(t: dict):
    for key in t:
        if key not in MODEL_KEYS:
            raise ConfigError(key, t[key], "a model key: " + ", ".join(MODEL_KEYS))
    arch = t.get("arch")
    if arch not in architectures.NAMES:  # also catches a missing arch (None)
        raise ConfigError("arch", arch, suggest(arch, architectures.NAMES))
    mod = architectures.get(arch)
    preset = t.get("preset", mod.DEFAULT_PRESET)
    if not isinstance(preset, str) or preset not in mod.PRESETS:
        raise ConfigError("preset", preset, f"a {arch} preset: " + suggest(preset, mod.PRESETS))
    name = t.get("name")
    if name is not None and (not isinstance(name, str) or not name):
        raise ConfigError("name", name, "a non-empty string")
    overrides = t.get("config", {})
    if not isinstance(overrides, dict):
        raise ConfigError("config", overrides, "a table of Config fields: [model.config]")
    base = mod.PRESETS[preset][0]
    fields = {f.name: f for f in dataclasses.fields(mod.Config)}
    values = {}
    for key, v in overrides.items():
        if key not in fields:
            raise ConfigError(key, v, f"a field of {arch}'s Config: " + suggest(key, fields))
        values[key] = _coerce(key, v, str(fields[key].type), getattr(base, key))
    cfg = dataclasses.replace(base, **values)
    if name is None:
        name = preset
        if values:
            name += " (" + "; ".join(f"{k}={_show(v)}" for k, v in values.items()) + ")"
    return arch, name, cfg


def _show(v) -> str:
    return ",".join(map(str, v)) if isinstance(v, tuple) else str(v)


def _coerce(key: str, v, annotation: str, current):
    """A TOML value as the Config field ``key`` holds it (type-checked, lists -> tuples)."""
    if annotation.startswith("int | tuple"):   # an int or a list of ints (Reformer buckets)
        if v is None or _is_int(v):
            return v
        if not (isinstance(v, list) and all(_is_int(x) for x in v)):
            raise ConfigError(key, v, "an integer or a list of integers")
        return tuple(v)
    if "tuple" in annotation:
        ints = all(_is_int(x) for x in current)
        ok = _is_int if ints else (lambda x: isinstance(x, str))
        if not (isinstance(v, list) and all(ok(x) for x in v)):
            raise ConfigError(key, v, "a list of " + ("integers" if ints else "strings"))
        return tuple(v)
    if "bool" in annotation:
        if not isinstance(v, bool):
            raise ConfigError(key, v, "true or false")
    elif "float" in annotation:
        if not _is_num(v):
            raise ConfigError(key, v, "a number")
        return float(v)
    elif "int" in annotation:
        if not _is_int(v):
            raise ConfigError(key, v, "an integer")
    elif "str" in annotation and not isinstance(v, str):
        raise ConfigError(key, v, "a string")
    return v


__all__ = ["FILE_ALLOWED", "HF_DEFAULTS", "MODEL_TYPES", "from_hf", "from_toml", "load"]
