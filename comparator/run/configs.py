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
field takes only an int.

Every bad input of a file is a ``ConfigFileError`` -- a ``FieldError`` (the CLI's exit
status 2) and a ``ConfigError`` -- naming the file, the file's own key (``hidden_size``,
``models[1].config.n_hashes``), our Config field where it differs (``d_model``), the value
and what is allowed.  The file itself is read by ``comparator.cost.files``: a regular file
of at most a few MB, UTF-8, nested at most a few dozen levels (a JSON nested 2,000 deep
is refused, not a RecursionError).
"""
from __future__ import annotations

import dataclasses
import os

import architectures
from architectures.config import ConfigError

from comparator.cost import files
from comparator.run.sweep import RequestError, suggest
from comparator.run.hfconfig import HF_DEFAULTS, MODEL_TYPES, _is_int, _is_num, from_hf

FILE_ALLOWED = "a readable Hugging Face config.json or comparator TOML file"
MODEL_KEYS = ("arch", "preset", "name", "config")


class ConfigFileError(RequestError, ConfigError):
    """A configuration file refused: ``field`` names the file and the file's key (and our
    Config field where it differs) -- or is ``--config`` for the file as a whole --, with
    ``file``, ``key`` (the file's key; None for a value the file does not set), ``ours``
    (our Config field, or None), the value and what is allowed.  Both a ``FieldError``
    and a ``ConfigError``."""

    def __init__(self, field: str, value, allowed: str, file=None, key=None, ours=None):
        self.field, self.value, self.allowed = field, value, allowed
        self.file, self.key, self.ours = file, key, ours
        ValueError.__init__(self, f"{field}: {value!r} is not allowed; {allowed}")


def in_file(path: str, err: ConfigError) -> ConfigFileError:
    """``err`` (a ConfigError naming a key of the file at ``path`` or our field) as a
    ``ConfigFileError`` naming the file."""
    if isinstance(err, ConfigFileError):
        return err
    key = getattr(err, "key", err.field)
    ours = getattr(err, "ours", None)
    name = key if key is not None else f"our {ours}"
    last = str(key).rsplit(".", 1)[-1] if key is not None else None
    if key is not None and ours is not None and ours != last:
        name += f" (our {ours})"
    return ConfigFileError(f"{path}: {name}", err.value, err.allowed, path, key, ours)


def load(path) -> list[tuple[str, str, object]]:
    """(arch, preset label, Config) for each model of a config.json or TOML file."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".json", ".toml"):
        raise _bad_file(path, "a name ending in .json or .toml")
    data = files.load(path, "--config", FILE_ALLOWED, ext[1:], _bad_file_error)
    try:
        if ext == ".json":
            if not isinstance(data, dict):
                raise _bad_file(path, "the JSON is not an object")
            return [from_hf(data, _file_label(path))]
        return from_toml(data)
    except ConfigError as err:
        raise in_file(path, err) from None


def _bad_file_error(field, path, allowed) -> ConfigFileError:
    return ConfigFileError(field, path, allowed, path)


def _bad_file(path: str, why: str) -> ConfigFileError:
    return _bad_file_error("--config", path, f"{FILE_ALLOWED} ({why})")


def _file_label(path: str) -> str:
    """``.../bert-base-uncased/config.json`` -> bert-base-uncased; ``gpt2.json`` -> gpt2."""
    base = os.path.basename(path)
    if base.lower() == "config.json":
        return os.path.basename(os.path.dirname(os.path.abspath(path))) or "config"
    return os.path.splitext(base)[0]


# -- comparator TOML --------------------------------------------------------------------

def _error(key: str, value, allowed: str, ours: str | None = None) -> ConfigError:
    """A ConfigError naming the TOML file's key (a dotted path) and our field."""
    err = ConfigError(key, value, allowed)
    err.key, err.ours = key, ours
    return err


def from_toml(data: dict) -> list[tuple[str, str, object]]:
    """(arch, label, Config) for each [model] / [[models]] table of a parsed TOML file;
    an error names the file's key as a dotted path (``models[1].config.n_hashes``)."""
    for key in data:
        if key not in ("model", "models"):
            raise _error(key, data[key], "a [model] table or [[models]] tables")
    tables = []
    if "model" in data:
        if not isinstance(data["model"], dict):
            raise _error("model", data["model"], "a table: [model]")
        tables.append(("model", data["model"]))
    if "models" in data:
        models = data["models"]
        if not (isinstance(models, list) and all(isinstance(m, dict) for m in models)):
            raise _error("models", models, "an array of tables: [[models]]")
        tables.extend((f"models[{i}]", m) for i, m in enumerate(models))
    if not tables:
        raise _error("model", None, "a [model] table or [[models]] tables, each with arch")
    out, seen = [], set()
    for where, table in tables:
        arch, label, cfg = _toml_model(table, where)
        if (arch, label) in seen:
            raise _error(f"{where}.name", label, f"a label not used by another {arch} model "
                                                 "of the file (set name)")
        seen.add((arch, label))
        out.append((arch, label, cfg))
    return out


def _toml_model(t: dict, where: str = "model"):
    for key in t:
        if key not in MODEL_KEYS:
            raise _error(f"{where}.{key}", t[key], "a model key: " + ", ".join(MODEL_KEYS))
    arch = t.get("arch")
    if arch not in architectures.NAMES:  # also catches a missing arch (None)
        raise _error(f"{where}.arch", arch, suggest(arch, architectures.NAMES))
    mod = architectures.get(arch)
    preset = t.get("preset", mod.DEFAULT_PRESET)
    if not isinstance(preset, str) or preset not in mod.PRESETS:
        raise _error(f"{where}.preset", preset, f"a {arch} preset: "
                     + suggest(preset, mod.PRESETS))
    name = t.get("name")
    if name is not None and (not isinstance(name, str) or not name):
        raise _error(f"{where}.name", name, "a non-empty string")
    overrides = t.get("config", {})
    if not isinstance(overrides, dict):
        raise _error(f"{where}.config", overrides, "a table of Config fields: [model.config]")
    base = mod.PRESETS[preset][0]
    fields = {f.name: f for f in dataclasses.fields(mod.Config)}
    values = {}
    for key, v in overrides.items():
        if key not in fields:
            raise _error(f"{where}.config.{key}", v, f"a field of {arch}'s Config: "
                         + suggest(key, fields))
        try:
            values[key] = _coerce(key, v, str(fields[key].type), getattr(base, key))
        except ConfigError as err:
            raise _error(f"{where}.config.{key}", err.value, err.allowed, key) from None
    try:
        cfg = dataclasses.replace(base, **values)
    except ConfigError as err:   # the Config's own validation: its field set here, or not
        if err.field in values:
            raise _error(f"{where}.config.{err.field}", err.value, err.allowed,
                         err.field) from None
        raise _error(where, err.value, f"{err.allowed} ({preset}'s value: not set in the "
                     "file)", err.field) from None
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
