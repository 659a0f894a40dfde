"""``Record``: one JSON record (DESIGN.md, "Record contract") as a frozen value.

The contract's core fields are attributes (``None`` where a record has no such field, as
a claim's record has no ``arch``); every field, core or not, is ``record["field"]`` or
``record.field``; ``to_dict()`` is the record exactly as ``--format json`` prints it.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

CORE = ("arch", "preset", "seq_len", "batch", "params", "method", "scope", "fwd_flops",
        "train_flops", "breakdown", "unsupported")


@dataclass(frozen=True)
class Record:
    arch: str | None = None
    preset: str | None = None
    seq_len: int | None = None
    batch: int | None = None
    params: int | None = None
    method: str | None = None
    scope: str | None = None
    fwd_flops: int | None = None
    train_flops: int | None = None
    breakdown: dict | None = None
    unsupported: dict | None = None
    fields: dict = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, rec: dict) -> "Record":
        """The record of a JSON record (a dict); the dict is copied."""
        rec = copy.deepcopy(rec)
        return cls(**{k: rec.get(k) for k in CORE}, fields=rec)

    def to_dict(self) -> dict:
        """The JSON record: every field, in the order the command prints them."""
        return copy.deepcopy(self.fields)

    def __getitem__(self, key: str):
        return self.fields[key]

    def __contains__(self, key) -> bool:
        return key in self.fields

    def get(self, key: str, default=None):
        return self.fields.get(key, default)

    def keys(self):
        return self.fields.keys()

    def __getattr__(self, name: str):
        # only called for a name that is not a dataclass field: the record's other fields
        if name.startswith("__") or name == "fields":
            raise AttributeError(name)
        try:
            return self.fields[name]
        except KeyError:
            raise AttributeError(f"record has no field {name!r}") from None

    __hash__ = None   # holds dicts


def records(dicts) -> list[Record]:
    return [Record.of(d) for d in dicts]


__all__ = ["CORE", "Record", "records"]
