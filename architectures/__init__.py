"""The architecture registry: name -> module, each checked for the common interface.

Every architecture module provides (and imports no jax at module level, so
analytic answers stay instant):

  NAME, Config (frozen dataclass, validated), PRESETS {name: (Config, source)},
  DEFAULT_PRESET (comparable to BERT-base), preset(name) -> Config,
  terms(cfg, batch, seq) -> {term: Term}, flops(cfg, seq, batch=1, scope) -> FlopCount,
  params(cfg) -> int, model(cfg, policy=None) -> Program (imports jax/flax lazily; policy:
  one of POLICIES, the activation-memory policies the step can be built with, default
  DEFAULT_POLICY),
  resize(cfg, d_model, n_layers, n_heads, d_ff) -> Config (the architecture's sizing
  rules), transformer_baseline(cfg) -> transformer.Config of the same widths,
  activation_terms(cfg, seq, batch=1, bytes_per=4) -> {term: bytes} and
  activation_bytes(...) -> int: the residuals a training step keeps for its backward.
"""
from __future__ import annotations

import importlib

NAMES = ("transformer", "albert", "electra", "reformer")
INTERFACE = ("NAME", "Config", "PRESETS", "DEFAULT_PRESET", "preset", "terms", "flops",
             "params", "model", "resize", "transformer_baseline", "activation_terms",
             "activation_bytes", "POLICIES", "DEFAULT_POLICY")
_loaded: dict = {}


def get(name: str):
    """The module of architecture ``name`` (KeyError naming the choices otherwise)."""
    if name not in NAMES:
        raise KeyError(f"unknown architecture {name!r}; choose from {', '.join(NAMES)}")
    if name not in _loaded:
        mod = importlib.import_module(f"{__name__}.{name}")
        missing = [a for a in INTERFACE if not hasattr(mod, a)]
        if missing:
            raise TypeError(f"architecture {name!r} lacks {', '.join(missing)}")
        if mod.DEFAULT_PRESET not in mod.PRESETS:
            raise TypeError(f"architecture {name!r}: default preset not in PRESETS")
        _loaded[name] = mod
    return _loaded[name]


def all_presets():
    """(arch, preset, Config, source) for every preset of every architecture."""
    for name in NAMES:
        mod = get(name)
        for p, (cfg, src) in mod.PRESETS.items():
            yield name, p, cfg, src
