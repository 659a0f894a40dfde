"""Hypothesis strategies for the fault fuzz (tests/test_cli_fuzz.py, benches/fuzz_faults.py):
random configuration files -- released Hugging Face configs with keys changed, random JSON
of any shape, deep nesting, broken text and bytes, comparator TOML with random overrides --
and the greetings of stub servers at a scheduler address."""
from __future__ import annotations

import dataclasses
import json

from hypothesis import strategies as st
from test_configs import HF_CLASS, RELEASED

import architectures
from comparator.run import hfconfig

HF_KEYS = sorted({k for _, data, *_ in RELEASED for k in data}
                 | {k for d in hfconfig.HF_DEFAULTS.values() for k in d})
OUR_FIELDS = sorted({f.name for a in architectures.NAMES
                     for f in dataclasses.fields(architectures.get(a).Config)})
WORDS = ["gelu", "gelu_new", "relu", "swish", "lsh", "local", "bert", "gpt2", "t5", "albert",
         "electra", "reformer", "absolute", "gated-gelu", *HF_CLASS.values(), "silu", "llama",
         "mistral", "mixtral", "qwen2", "gpt_neox", "MixtralForCausalLM", ""]
# sizes around every bound: 0, small, real, at and past the bounds, past int64
SIZES = [0, 1, 2, 3, 7, 8, 12, 63, 64, 100, 128, 768, 1024, 4096, 65536, 100_000, 100_001,
         2**21, 2**21 + 1, 2**27 + 1, 2**30 + 1, 2**31 - 1, 2**31, 2**63 - 1, 2**63, 10**40,
         -1, -768]

scalars = (st.none() | st.booleans() | st.sampled_from(SIZES) | st.integers(-10**6, 10**6)
           | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(WORDS)
           | st.text(max_size=6))
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(HF_KEYS) | st.text(max_size=5), inner, max_size=4),
    max_leaves=10)


def _deep(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    return '{"a": ' * depth + "1" + "}" * depth


@st.composite
def hf_config_text(draw) -> str | bytes:
    """The text (or bytes) of a config.json: mostly a released config with a few keys
    changed or dropped, else random JSON, deep nesting or broken text."""
    kind = draw(st.sampled_from(["released"] * 6 + ["random", "deep", "broken", "bytes"]))
    if kind == "deep":
        depth = draw(st.sampled_from([31, 32, 33, 100, 999, 1000, 2000, 5000]))
        return _deep(depth, draw(st.sampled_from(["list", "dict"])))
    if kind == "bytes":
        return draw(st.binary(max_size=64))
    if kind == "random":
        return json.dumps(draw(json_values))
    _, base, *_ = draw(st.sampled_from(RELEASED))
    data = dict(base)
    for _ in range(draw(st.integers(0, 4))):
        key = draw(st.sampled_from(HF_KEYS))
        if draw(st.integers(0, 4)) == 0:
            data.pop(key, None)
        else:
            data[key] = draw(json_values)
    text = json.dumps(data)
    if kind == "broken":
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + draw(st.sampled_from(["", "\x00", "\ud800", ",", "}}", "\\"]))
    return text


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(v), repr(v))
    if isinstance(v, str):
        return json.dumps(v)
    return "[" + ", ".join(_toml_value(x) for x in v) + "]"


toml_values = (st.booleans() | st.sampled_from(SIZES) | st.integers(-10**6, 10**6)
               | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(WORDS)
               | st.lists(st.sampled_from(SIZES[:12]) | st.sampled_from(WORDS[:6]),
                          max_size=4))


@st.composite
def toml_config_text(draw) -> str:
    """A comparator TOML file: one or more model tables with random overrides (rarely a
    deep array)."""
    tables = []
    n = draw(st.integers(1, 3))
    for _ in range(n):
        arch = draw(st.sampled_from([*architectures.NAMES, "lstm"]))
        lines = [f"arch = {json.dumps(arch)}"]
        if draw(st.booleans()) and arch in architectures.NAMES:
            lines.append("preset = " + json.dumps(draw(st.sampled_from(
                sorted(architectures.get(arch).PRESETS) + ["x"]))))
        over = draw(st.dictionaries(st.sampled_from(OUR_FIELDS + ["d_modle"]), toml_values,
                                    max_size=4))
        if draw(st.integers(0, 9)) == 0:
            over = {"attn_layers": None}
        body = "\n".join(f"{k} = " + (_deep(draw(st.sampled_from([40, 2000])), "list")
                                      if v is None else _toml_value(v))
                         for k, v in over.items())
        head = "[model]" if n == 1 else "[[models]]"
        sub = "[model.config]" if n == 1 else "[models.config]"
        tables.append(f"{head}\n" + "\n".join(lines) + (f"\n{sub}\n{body}" if over else ""))
    return "\n".join(tables) + "\n"


greetings = st.one_of(
    st.binary(min_size=1, max_size=48),
    st.sampled_from([b"HTTP/1.1 400 Bad Request\r\n\r\n", b"SSH-2.0-OpenSSH_9.6\r\n",
                     b"220 smtp.example ESMTP\r\n", b"+OK POP3 ready\r\n", b"\x00" * 8,
                     (58).to_bytes(8, "little") + b"\x01" * 20,
                     (2**62).to_bytes(8, "little")]))


__all__ = ["greetings", "hf_config_text", "json_values", "toml_config_text"]
