"""Attention variants of the models a sweep names (``--attention``): each model once per
choice of attention kernel, labelled ``preset@choice``.

A Transformer, ALBERT or ELECTRA model takes the Transformer family's kernels
(``architectures.zoo``) through its config's ``attention`` field; ``lsh``, the Reformer's
attention, makes a Transformer into the Reformer of its widths (``reformer.like``).  A
Transformer's variants carry its dense attention (``preset@dense``) as their default
baseline (``sweep.Model.base``), so each row's ratio is to the same model with dense
attention.
"""
from __future__ import annotations

import dataclasses

import architectures
from architectures.config import ConfigError
from architectures.zoo import ATTENTIONS, CAUSAL_ONLY

from comparator.run import sweep
from comparator.run.sweep import Model, RequestError, suggest

# the Transformer family's kernels and the Reformer's LSH attention
ATTENTION_CHOICES = ATTENTIONS + ("lsh",)


def models(archs, presets=(), sizes=None, attentions=()) -> list[Model]:
    """``sweep.models`` of ``archs``, ``presets`` and ``sizes``, each with every choice of
    ``attentions`` when given."""
    out = sweep.models(archs, presets, sizes)
    return [with_attention(m, a) for m in out for a in attentions] if attentions else out


def check_choice(arch: str, choice: str) -> None:
    """Refuse an attention ``choice`` architecture ``arch`` cannot take, whatever its
    config: the Reformer takes only its own (lsh), ALBERT and ELECTRA not the Reformer's
    nor a causal window (``sliding``: they are encoders)."""
    if choice not in ATTENTION_CHOICES:
        raise RequestError("--attention", choice, suggest(choice, ATTENTION_CHOICES))
    if arch == "reformer" and choice != "lsh":
        raise RequestError("--attention", choice, "lsh for the Reformer (its attn_layers "
                                                  "choose LSH or local attention per layer)")
    encoder = [a for a in ATTENTIONS if a not in CAUSAL_ONLY]     # ALBERT's and ELECTRA's
    if choice == "lsh" and arch not in ("transformer", "reformer"):
        raise RequestError("--attention", choice, f"one of {', '.join(encoder)} for "
                           f"{arch} (lsh: the Reformer of a Transformer's widths)")
    if choice in CAUSAL_ONLY and arch in ("albert", "electra"):
        raise RequestError("--attention", choice, f"one of {', '.join(encoder)} for {arch} "
                           f"({choice}: a causal window, a decoder's; {arch} is an encoder)")


def check(archs, attentions, config=None) -> None:
    """The attention choices of a request naming ``archs`` (its presets' architectures;
    with a ``config`` file the models are checked as they are loaded): each one each
    architecture can take (``check_choice``), and refused as doing nothing when every
    architecture is the Reformer (whose attention is LSH already)."""
    if config or not attentions:
        return
    for arch in archs:
        for choice in attentions:
            check_choice(arch, choice)
    if archs and set(archs) == {"reformer"}:
        raise RequestError("--attention", ",".join(attentions), "only with a Transformer, "
                           "ALBERT or ELECTRA (the Reformer's attention is lsh already: its "
                           "attn_layers choose LSH or local attention per layer)")


def with_attention(m: Model, choice: str) -> Model:
    """``m`` with the attention kernel ``choice``, labelled ``preset@choice``: its config
    with ``attention=choice`` (Transformer, ALBERT, ELECTRA); ``lsh``: the Reformer of a
    Transformer's widths (``reformer.like``), or a Reformer itself.  A Transformer's
    variants have its dense attention (``preset@dense``) as their default baseline."""
    check_choice(m.arch, choice)
    label = f"{m.preset}@{choice}"
    if m.arch == "reformer":
        return Model(m.arch, label, m.cfg)
    base = None
    if m.arch == "transformer":
        try:
            dense = dataclasses.replace(m.cfg, attention="dense")
        except ConfigError as err:
            raise RequestError("--attention", choice, f"{m.arch}:{m.preset}: {err}") from None
        base = Model(m.arch, f"{m.preset}@dense", dense)
    try:
        cfg = (architectures.get("reformer").like(m.cfg) if choice == "lsh"
               else dataclasses.replace(m.cfg, attention=choice))
    except ConfigError as err:
        raise RequestError("--attention", choice, f"{err.allowed} ({m.arch}:{m.preset} "
                                                  f"refuses {err.field}={err.value!r})") from None
    if choice == "dense" and base is not None:
        return base
    return Model("reformer" if choice == "lsh" else m.arch, label, cfg, base)


__all__ = ["ATTENTION_CHOICES", "check", "check_choice", "models", "with_attention"]
