"""Reading the files a user names -- model configs, catalogue overrides, scenarios, device
profiles, calibrations: a regular file of bounded size, UTF-8 text, JSON or TOML nested at
most ``MAX_DEPTH`` deep.  Every failure is one error naming the option, the file and why
(the caller's ``FieldError`` subclass), never a ``RecursionError``, a
``UnicodeDecodeError``, a ``MemoryError`` or a read that never ends (a FIFO, a device).
"""
from __future__ import annotations

import json
import os
import stat

from comparator.errors import FieldError

# these files are kilobytes (a config.json naming 1,000 labels is about 40 kB): a file of
# megabytes is another file named by mistake
MAX_BYTES = 4 * 2**20
# they nest 2 to 4 deep ([accelerators.<name>], [[models]] with [model.config])
MAX_DEPTH = 32
FORMATS = ("json", "toml")


def read_text(path, field: str, what: str, error=FieldError) -> str:
    """The UTF-8 text of the regular file ``path`` (at most ``MAX_BYTES``); else
    ``error(field, path, f"{what} (why)")``."""
    path = os.fspath(path)

    def refuse(why: str):
        return error(field, path, f"{what} ({why})")

    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise refuse("not a regular file: a folder, device or pipe is not read")
        if st.st_size > MAX_BYTES:
            raise refuse(f"{st.st_size:,} bytes; such files are kilobytes, at most "
                         f"{MAX_BYTES:,} bytes are read")
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as err:
        raise refuse(err.strerror or str(err)) from None
    if len(data) > MAX_BYTES:      # grew since stat
        raise refuse(f"more than {MAX_BYTES:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise refuse(f"not UTF-8 text: byte 0x{data[err.start]:02x} at offset "
                     f"{err.start}") from None


def depth(value, most: int = MAX_DEPTH) -> int:
    """How deep ``value`` nests lists and dicts (a scalar: 0), counted without recursion
    and no further than ``most + 1``."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        v, d = todo.pop()
        if isinstance(v, (dict, list, tuple)):
            deepest = max(deepest, d)
            if d > most:
                return d
            todo.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def _toml():
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            return None
    return tomllib


def parse(text: str, fmt: str, path, field: str, what: str, error=FieldError):
    """``text`` parsed as ``fmt`` (json or toml), nested at most ``MAX_DEPTH`` deep."""
    path = os.fspath(path) if path is not None else path

    def refuse(why: str):
        return error(field, path, f"{what} ({why})")

    try:
        if fmt == "json":
            data = json.loads(text)
        else:
            tomllib = _toml()
            if tomllib is None:
                raise refuse("reading TOML needs Python >= 3.11 or the tomli package")
            data = tomllib.loads(text)
    except RecursionError:
        raise refuse(f"invalid {fmt.upper()}: nested deeper than Python parses; such "
                     f"files nest a few levels, at most {MAX_DEPTH}") from None
    except ValueError as err:  # JSONDecodeError, TOMLDecodeError, a number of 5,000 digits
        raise refuse(f"invalid {fmt.upper()}: {err}") from None
    if depth(data) > MAX_DEPTH:
        raise refuse(f"nested more than {MAX_DEPTH} levels deep; such files nest a few")
    return data


def load(path, field: str, what: str, fmt: str | None = None, error=FieldError):
    """The JSON or TOML file ``path`` parsed (``fmt`` default: by its extension, JSON
    for ``.json``, else TOML)."""
    path = os.fspath(path)
    fmt = fmt or ("json" if path.lower().endswith(".json") else "toml")
    return parse(read_text(path, field, what, error), fmt, path, field, what, error)


__all__ = ["FORMATS", "MAX_BYTES", "MAX_DEPTH", "depth", "load", "parse", "read_text"]
