"""The file under the results store (``comparator.run.store``): an SQLite file opened so
that work goes on when it cannot be written or is damaged.

* Cannot be written (a read-only file or folder -- a shared cache, a container's read-only
  home --, a full disk): the points it holds are read and served; points computed now are
  not stored, counted in ``unsaved``, with one warning saying why.  A default store whose
  folder cannot be created is no store at all, the same way.
* Damaged (an SQLite error on opening, ``PRAGMA quick_check`` failing, "malformed" on a
  later read or write): moved aside to ``<file>.damaged-<YYYYmmdd-HHMMSS>`` (with its
  ``-wal``/``-shm`` files) and a fresh store created, with one warning naming both files.
  ``recover=False`` refuses it instead.
* Not an SQLite database at all: refused when the user named it (the file is not
  touched; ``--db config.json`` is a slip), moved aside when it is the default path.

Warnings are ``StoreWarning``s, or go to ``NOTIFY`` when a caller sets it (the command
line prints them as one line).  Errors are ``StoreError``s naming ``--db`` only when the
user gave the path.
"""
from __future__ import annotations

import os
import sqlite3
import time
import urllib.parse
import weakref

from comparator.run.sweep import RequestError

class StoreError(RequestError):
    """The database cannot be opened, read or written: names the path and why -- as
    ``--db`` only when the user gave it, else as the default results store."""

    def __init__(self, path: str, why: str, named: bool = True):
        self.why = why
        if named:
            super().__init__("--db", path, f"a writable SQLite database file ({why})")
        else:
            super().__init__("results store", path, f"a writable SQLite database file ({why}); "
                             "this is the default store: --db FILE names another, --no-cache "
                             "uses none")


class StoreWarning(UserWarning):
    """The store works in a reduced way: read-only (points read, none written), absent, or
    found damaged and replaced.  Given once per store and reason."""


# how a warning reaches the user: None, Python's warnings (StoreWarning); the command line
# sets a function of the message that prints it its way
NOTIFY = None
SQLITE_HEADER = b"SQLite format 3\x00"
DAMAGED = ("malformed", "not a database", "quick_check", "corrupt")
CANNOT_WRITE = ("readonly", "read-only", "disk is full", "disk i/o error")


def _sqlite_file(path: str) -> bool:
    """Whether ``path`` is absent, empty or starts as an SQLite database does."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return True
    except OSError:
        return True     # unreadable: the connection says why
    return head in (b"", SQLITE_HEADER)


def _writable(path: str) -> bool:
    folder = os.path.dirname(path)
    if not os.access(folder, os.W_OK | os.X_OK):      # the journal files live beside it
        return False
    return not os.path.exists(path) or os.access(path, os.W_OK)


def _is(err, words) -> bool:
    text = str(err).lower()
    return any(w in text for w in words)


class StoreFile:
    """An SQLite file opened so that work goes on.  ``named``: the user gave the path
    (only then do messages say ``--db``).  A store that cannot be written -- a read-only file
    or folder, a full disk -- is read: its points are served, points computed now are not
    stored (``unsaved`` counts them), with one ``StoreWarning`` saying why; a default
    store whose folder cannot be created is none at all, the same way.  A damaged store
    (an SQLite error on opening, ``PRAGMA quick_check`` failing, or "malformed" later)
    is moved aside to ``<file>.damaged-<time>`` and a fresh one created, with one warning
    naming both files; ``recover=False`` refuses it instead (``comparator store check``).
    A file that is no SQLite database at all is refused when the user named it (it is
    not touched) and moved aside when it sits at the default path."""

    TABLES: tuple = ()     # CREATE TABLE IF NOT EXISTS statements of a fresh store

    def __init__(self, given: str, named: bool, recover: bool = True):
        self.named = named
        self.given = given                       # as the user wrote it (or the default)
        self.path = os.path.abspath(given)
        self.unsaved = 0          # computed points not stored (read-only, or no store)
        self.readonly = None      # why nothing is written, when so
        self.moved = None         # where a damaged file was moved aside
        self.recover = recover
        self.db = None
        self._warned: set = set()
        self._open()

    # -- opening, and what is done when the file is not a healthy, writable store -------

    def _error(self, why: str) -> StoreError:
        return StoreError(self.given, why, self.named)

    def _open(self) -> None:
        folder = os.path.dirname(self.path)
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as err:
            if self.named:
                raise self._error(err.strerror or str(err)) from None
            return self._without(f"its folder {folder} cannot be created: "
                                 f"{err.strerror or err}")
        if not _sqlite_file(self.path):
            if self.named:
                raise self._error("file is not a database; it is left as it is")
            return self._damaged("not an SQLite database")
        if not _writable(self.path):
            return self._read_only("no write permission")
        try:
            self.db = self._connect(self.path)
            self._check()
        except sqlite3.Error as err:
            self.close()
            if _is(err, CANNOT_WRITE):
                return self._read_only(str(err))
            if isinstance(err, sqlite3.OperationalError) and not _is(err, DAMAGED):
                raise self._error(str(err)) from None    # locked, unopenable, ...
            return self._damaged(str(err))

    def _connect(self, target: str, uri: bool = False, schema: bool = True):
        db = sqlite3.connect(target, timeout=60, isolation_level=None, uri=uri)
        # closed at exit at the latest, never left to the collector: the last connection's
        # close moves the write-ahead log into the file (a copy of the file alone then
        # holds every record), and an object the collector has frozen is never finalised
        weakref.finalize(self, db.close)
        if schema:
            db.execute("PRAGMA journal_mode=WAL")
            for table in self.TABLES:
                db.execute(table)
        return db

    def _check(self) -> None:
        """``PRAGMA quick_check`` (a fraction of a second for a store of 100 MB)."""
        rows = [r[0] for r in self.db.execute("PRAGMA quick_check").fetchall()]
        if rows != ["ok"]:
            raise sqlite3.DatabaseError("quick_check: " + "; ".join(map(str, rows[:3])))

    def _damaged(self, why: str) -> None:
        if not self.recover:
            raise self._error(f"damaged: {why}")
        self.close()
        moved = f"{self.path}.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
        try:
            for suffix in ("", "-wal", "-shm", "-journal"):
                if os.path.exists(self.path + suffix):
                    os.replace(self.path + suffix, moved + suffix)
        except OSError as err:
            return self._without(f"it is damaged ({why}) and cannot be moved aside "
                                 f"({err.strerror or err})")
        self.moved = moved
        self._warn("damaged", f"the results store {self.given} was damaged ({why}): moved "
                              f"aside to {moved}; a fresh store was created in its place "
                              "(the points stored before are computed again)")
        try:
            self.db = self._connect(self.path)
        except sqlite3.Error as err:
            raise self._error(str(err)) from None

    def _read_only(self, why: str) -> None:
        """Read the points there are; write none."""
        self.readonly = why
        if not os.path.exists(self.path):
            return self._without(f"{os.path.dirname(self.path)} is not writable")
        uri = "file:" + urllib.parse.quote(self.path)
        for mode in ("?mode=ro", "?immutable=1"):   # immutable: no -shm can be created
            try:
                self.db = self._connect(uri + mode, uri=True, schema=False)
                self.db.execute("SELECT count(*) FROM sqlite_master").fetchone()
                return None
            except sqlite3.Error:
                self.close()
        return self._without(f"it cannot be read ({why})")

    def _without(self, why: str) -> None:
        """No store at all: an empty one in memory, nothing kept."""
        self.readonly = why
        self.path = ":memory:"
        self.db = self._connect(":memory:", schema=False)
        for table in self.TABLES:
            self.db.execute(table)

    def _warn(self, reason: str, message: str) -> None:
        if reason in self._warned:
            return
        self._warned.add(reason)
        if NOTIFY is not None:
            NOTIFY(message)
        else:
            import warnings
            warnings.warn(message, StoreWarning, stacklevel=4)

    def _dropped(self, n: int) -> None:
        """``n`` computed points not stored: counted, and said once why."""
        self.unsaved += n
        if self.path == ":memory:":
            self._warn("dropped", f"no results store ({self.readonly}): points computed now "
                                  "are not stored")
        else:
            self._warn("dropped", f"the results store {self.given} is read-only "
                                  f"({self.readonly}): the points it holds are used, points "
                                  "computed now are not stored")

    def query(self, sql: str, args=(), many: bool = False):
        """Rows of a query; none from a store without the table (an empty read-only file)
        or found damaged now (moved aside: the points are computed again)."""
        try:
            cur = self.db.execute(sql, args)
            return cur.fetchall() if many else cur.fetchone()
        except sqlite3.OperationalError as err:
            if "no such table" in str(err):
                return [] if many else None
            if not _is(err, DAMAGED):
                raise self._error(str(err)) from None
            why = str(err)
        except sqlite3.DatabaseError as err:
            why = str(err)
        if self.readonly is not None:
            raise self._error(f"damaged: {why}") from None
        self._damaged(why)
        return [] if many else None

    def transaction(self, n: int, fn) -> bool:
        """``fn(db)`` in a transaction; when the store cannot be written, the ``n``
        points are counted as not stored (False)."""
        for attempt in (0, 1):
            if self.readonly is not None:
                self._dropped(n)
                return False
            try:
                with self.db:
                    fn(self.db)
                return True
            except sqlite3.Error as err:
                if _is(err, CANNOT_WRITE):
                    self.readonly = str(err)
                elif _is(err, DAMAGED) and attempt == 0:
                    self._damaged(str(err))
                else:
                    raise self._error(str(err)) from None
        return False

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None



__all__ = ["CANNOT_WRITE", "DAMAGED", "NOTIFY", "StoreError", "StoreFile", "StoreWarning"]
