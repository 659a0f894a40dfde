"""Which profile prices a device: a profile file, else the store's latest measured profile
of that device, else the catalogue's datasheet profile (uncalibrated).

Kept apart from ``profile`` (the profile value and its JSON) and ``datasheet`` (profiles
built from the catalogue) so that neither needs the other's resolution.
"""
from __future__ import annotations

import os

from comparator.cost import datasheet
from comparator.cost.profile import DeviceProfile, ProfileError, cpu_name, load


def for_device(name_or_path, store=None, catalogue=None, expect: str | None = None,
               dtype: str | None = None) -> DeviceProfile:
    """The profile to price a device with: a JSON file (a path ending in .json or an
    existing file), else the latest profile the store (a ``comparator.run.store.Store``)
    keeps for that device name, else the datasheet profile of that catalogue name
    (``catalogue``: a loaded catalogue, default the packaged one).  ``"cpu"`` names this
    machine's CPU (``cpu_name()``), which has no datasheet.  ``expect``: the catalogue
    name the profile must describe; a profile of another device is refused."""
    text = os.fspath(name_or_path)
    if text.lower().endswith(".json") or os.path.isfile(text):
        p = load(text)
    else:
        name = cpu_name() if text.strip().lower() == "cpu" else text
        p = store.get_profile(name) if store is not None else None
        if p is None:
            if name.startswith("cpu:"):
                raise ProfileError("device", name, "a calibrated profile: run "
                                                   "'comparator calibrate' on this machine")
            from comparator.cost.catalogue import CatalogueError, load as load_catalogue, lookup
            try:
                acc = lookup(catalogue if catalogue is not None else load_catalogue(), name)
            except CatalogueError as err:
                raise ProfileError("--accelerator", err.value, err.allowed) from None
            p = datasheet.profile(acc, dtype)
    if expect is not None and p.device != expect:
        raise ProfileError(f"{text}: device", p.device, f"a profile of {expect} (this one "
                                                       "describes another device)")
    return p


__all__ = ["for_device"]
