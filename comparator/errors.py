"""The one shape of a refused value: the field, the value and what is allowed."""
from __future__ import annotations


class FieldError(ValueError):
    """A value refused: names the field, the value and what is allowed (the CLI prints
    the message and exits with status 2)."""

    def __init__(self, field: str, value, allowed: str):
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"{field}: {value!r} is not allowed; {allowed}")


__all__ = ["FieldError"]
