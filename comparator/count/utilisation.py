"""Model FLOPs and hardware FLOPs of a training step, and the utilisations they give.

PaLM (Chowdhery et al. 2022, Sec. 4.1 and App. B) defines the *model FLOPs utilisation*
(MFU) as the observed throughput over the throughput the devices would reach at their
peak FLOP/s, counting only the FLOPs the model needs -- its forward and backward passes,
not rematerialisation; the *hardware FLOPs utilisation* (HFU) counts what the hardware
executes, recomputation included (PaLM 540B on TPU v4: 46.2% MFU, 57.8% HFU).  Over one
step of ``t`` seconds on devices of peak ``P`` FLOP/s:

    MFU = model FLOPs / (t x P)          HFU = hardware FLOPs / (t x P)

so HFU / MFU = hardware / model FLOPs whatever the time, and HFU >= MFU.  From named
terms (``architectures.terms.Term``):

* model FLOPs = each term's forward + backward (``Term.fwd + Term.bwd``);
* hardware FLOPs = model FLOPs + the recomputation: what the model itself runs again
  (``Term.rc``: reversible layers recompute their sublayers, flash attention its scores
  and probabilities; Megatron's formula recomputes every layer) + what the run's
  ``recompute`` policy adds: ``checkpoint`` keeps each layer's input and runs every
  layer's forward once more in the backward (the layer terms: ``attn/``, ``lsh/``,
  ``ffn/``, the layers' ``norm/`` -- not the embeddings, the final norm, the heads and
  the loss).  Megatron's formula recomputes every layer already: ``checkpoint`` adds
  nothing to it.

A utilisation above 1 is refused (``UtilisationError``): no device runs faster than its
peak, so a given MFU whose HFU passes 1, or a step time shorter than its FLOPs at peak,
is a mistake -- in the time, the device, the dtype, or the FLOPs counted.
No jax.
"""
from __future__ import annotations

import math

from comparator.errors import FieldError

RECOMPUTE = ("none", "checkpoint")
LAYER_ROOTS = ("attn", "lsh", "ffn", "norm")
NOT_LAYER = ("norm/embed", "norm/final")
# conventions whose formula runs every layer's forward again (Narayanan et al. 2021's
# activation recomputation): their count is hardware FLOPs under either policy
FORMULA_RECOMPUTES = ("megatron",)
SOURCE = ("Chowdhery et al. 2022, PaLM, Sec. 4.1 and App. B: MFU counts the forward and "
          "backward passes only, HFU adds rematerialisation")


class UtilisationError(FieldError):
    """A utilisation that cannot be: names the field, the value and why."""


def check_recompute(recompute: str, arch: str = "") -> str:
    if recompute not in RECOMPUTE:
        raise UtilisationError("--recompute", recompute, "one of " + ", ".join(RECOMPUTE))
    if recompute == "checkpoint" and arch == "reformer":
        raise UtilisationError("--recompute", recompute, "none for the reformer (its "
                               "reversible layers already run every layer's forward again "
                               "in the backward)")
    return recompute


def layer_term(name: str) -> bool:
    """A term of the repeated layers (what checkpointing recomputes), under any group."""
    parts = name.split("/")
    tail = "/".join(parts[-2:])
    return parts[-2] in LAYER_ROOTS and tail not in NOT_LAYER if len(parts) >= 2 else False


def split(terms: dict, scope: str = "matmul", recompute: str = "none",
          convention: str = "standard") -> tuple:
    """(model FLOPs, hardware FLOPs) of a training step's ``terms`` in ``scope``; a
    convention whose formula recomputes already (``FORMULA_RECOMPUTES``) adds nothing
    for ``checkpoint``."""
    check_recompute(recompute)
    model = sum(t.fwd(scope) + t.bwd(scope) for t in terms.values())
    again = sum(t.rc(scope) for t in terms.values())
    if recompute == "checkpoint" and convention not in FORMULA_RECOMPUTES:
        again += sum(t.fwd(scope) for name, t in terms.items() if layer_term(name))
    return model, model + again


def _over(field: str, value: float, what: str) -> UtilisationError:
    return UtilisationError(field, value, f"a utilisation of at most 1 (100%): {what} "
                                          "would run above the device's peak FLOP/s")


def utilisations(model: float, hardware: float, peak: float, *, step_s: float | None = None,
                 mfu: float | None = None) -> dict:
    """``{step_s, mfu, hfu}`` of a step of ``model`` / ``hardware`` FLOPs on ``peak``
    FLOP/s, from its time ``step_s`` or from a given ``mfu`` (the time it implies).
    UtilisationError when either utilisation would pass 1."""
    if (step_s is None) == (mfu is None):
        raise ValueError("give step_s or mfu")
    if mfu is not None:
        if not 0 < mfu <= 1:
            raise _over("--mfu", mfu, "a step at this MFU") if mfu > 1 else UtilisationError(
                "--mfu", mfu, "a number in (0, 1]")
        step_s = model / (mfu * peak)
    elif not (step_s > 0 and math.isfinite(step_s)):
        raise UtilisationError("--step-time", step_s, "a time in seconds > 0")
    out = {"step_s": step_s, "mfu": model / (step_s * peak), "hfu": hardware / (step_s * peak)}
    if out["mfu"] > 1:
        raise _over("--step-time", step_s, f"its {model:.3g} model FLOPs in {step_s:.3g} s "
                    f"(MFU {out['mfu']:.1%} of {peak:.3g} FLOP/s)")
    if out["hfu"] > 1:
        field, value = ("--mfu", mfu) if mfu is not None else ("--step-time", step_s)
        raise _over(field, value, f"its {hardware:.3g} hardware FLOPs (recomputation "
                    f"included, {hardware / model:.3g}x the model's) in {step_s:.3g} s "
                    f"(HFU {out['hfu']:.1%} of {peak:.3g} FLOP/s)")
    return out


__all__ = ["FORMULA_RECOMPUTES", "LAYER_ROOTS", "RECOMPUTE", "SOURCE", "UtilisationError",
           "check_recompute", "layer_term", "split", "utilisations"]
