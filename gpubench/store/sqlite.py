"""The SQLite store: a single file, the default, safe for several writers on one machine.

The database runs in WAL mode with a busy timeout, so two ``gpubench run`` processes can write the
same store at once. The schema version lives in ``PRAGMA user_version`` and old stores are migrated
step by step (``MIGRATIONS``), inside one ``BEGIN IMMEDIATE`` transaction, when they are opened for
writing; several processes creating or migrating one store at once wait for each other (and retry
while the database is busy).

Opening never changes a store it refuses: the schema version is read first, through a read-only
connection. Read commands open a store read-only, so they work on a read-only file, directory or
mount and never migrate; an old schema is read as it is. Writing to a store that cannot be
written is a one-line :class:`~gpubench.errors.StoreReadOnly` error; a full disk is
:class:`~gpubench.errors.DiskFull`.

A damaged store (a disk or copy that lost some of its pages) is never written into: opening it for
writing runs SQLite's ``quick_check`` first (one pass over the file, about as long as reading it)
and refuses a store that fails it with :class:`~gpubench.errors.StoreDamaged`, leaving its bytes as
they were. Reading one says what is damaged (one warning line) and serves every row that can still
be read (:meth:`SQLiteStore._salvage`).
"""

from __future__ import annotations

import os
import random
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from gpubench.errors import DiskFull, GpubenchError, StoreDamaged, StoreError, StoreReadOnly, UsageError
from gpubench.store.base import (
    RUNS_FOR_UUIDS,
    SCHEMA_VERSION,
    DuplicateRun,
    ResultStore,
    derived_run_uuids,
    migrations,
    step_statements,
)
from gpubench.store.kinds import default_location, sqlite_path

#: How long opening or writing a store waits for other processes that hold it, in seconds.
BUSY_TIMEOUT_S = 60.0

#: MIGRATIONS[v] upgrades a store at schema version v to v + 1 (``{fill}``: the Python step of 4).
MIGRATIONS = migrations({"ID": "INTEGER PRIMARY KEY AUTOINCREMENT", "INT": "INTEGER", "REAL": "REAL"})


def _error_kind(exc: sqlite3.Error) -> str:
    """Classify a SQLite error: busy, readonly, full, io, cantopen, notadb, corrupt, constraint or other."""
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    msg = str(exc).lower()
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "database is locked" in msg or "is busy" in msg:
        return "busy"
    if name.startswith("SQLITE_READONLY") or "readonly database" in msg:
        return "readonly"
    if name == "SQLITE_FULL" or "disk is full" in msg:
        return "full"
    if name.startswith("SQLITE_IOERR") or "disk i/o error" in msg:
        return "io"
    if name.startswith("SQLITE_CANTOPEN") or "unable to open" in msg:
        return "cantopen"
    if name == "SQLITE_NOTADB" or "not a database" in msg:
        return "notadb"
    if name.startswith("SQLITE_CORRUPT") or "malformed" in msg:
        return "corrupt"
    if name.startswith("SQLITE_CONSTRAINT") or isinstance(exc, sqlite3.IntegrityError):
        return "constraint"
    return "other"


def _file_size_limited() -> bool:
    try:
        import resource

        return resource.getrlimit(resource.RLIMIT_FSIZE)[0] != resource.RLIM_INFINITY
    except (ImportError, OSError, ValueError):
        return False


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection that changes nothing on disk.

    A WAL store in a directory that cannot be written (a read-only mount) cannot be opened
    ``mode=ro`` (SQLite needs its ``-shm`` file); it is then opened ``immutable``, which is
    right because nothing can write there either.
    """
    uri = path.resolve().as_uri()
    error: sqlite3.Error | None = None
    for query in ("?mode=ro", "?mode=ro&immutable=1"):
        db = sqlite3.connect(uri + query, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return db
        except sqlite3.OperationalError as exc:
            db.close()
            if _error_kind(exc) not in ("cantopen", "readonly"):
                raise
            error = exc
    assert error is not None
    raise error


def quick_check(db: sqlite3.Connection) -> str:
    """SQLite's ``quick_check`` of an open database: ``""`` when it is sound, else what is damaged (one line)."""
    try:
        found = [r[0] for r in db.execute("PRAGMA quick_check(3)")]
    except sqlite3.DatabaseError as exc:
        return str(exc)
    if found == ["ok"]:
        return ""
    found = [" ".join(str(f).replace("*** in database main ***", "").split()) for f in found]
    return "; ".join(f for f in found if f)[:300]


class SQLiteStore(ResultStore):
    """A results store in one SQLite file (``path``). See :func:`gpubench.store.open_store`."""

    def __init__(self, location: str | os.PathLike[str] | None = None, create: bool = True, readonly: bool = False):
        self.path = sqlite_path(default_location() if location is None else location)
        self.location = str(self.path)
        self.readonly = readonly
        self.damage = ""
        if not self.path.exists() and (readonly or not create):
            raise UsageError(f"no results store at {self.path} (run 'gpubench run' first or pass --store)")
        if self.path.is_dir():
            raise UsageError(f"store path {self.path} is a directory")
        try:
            self.db = self._open_readonly() if readonly else self._open_for_writing()
        except sqlite3.DatabaseError as exc:
            kind = _error_kind(exc)
            if kind == "corrupt":
                raise StoreDamaged(f"store {self.path} is damaged and cannot be read ({exc})") from exc
            if kind in ("notadb", "other"):
                raise UsageError(f"{self.path} is not a gpubench store, or is damaged: {exc}") from exc
            raise self._store_error(exc) from exc
        try:
            self._columns = self._table_columns()
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise StoreDamaged(f"store {self.path} is damaged and cannot be read ({exc})") from exc

    # --- opening -------------------------------------------------------------------------------
    def _check_version(self, db: sqlite3.Connection) -> int:
        """The schema version; refuse a newer one and a database that is not a gpubench store.

        The tables are counted before the version is read: a store's tables and its version are committed in one
        transaction, so tables seen first come with their version; read the other way round, a store that another
        process created between the two reads would look like a database with other tables."""
        has_tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise GpubenchError(f"store {self.path} has schema {version}, newer than this gpubench "
                                f"({SCHEMA_VERSION}): upgrade gpubench")
        if version == 0 and has_tables:
            raise UsageError(f"{self.path} is not a gpubench store (an SQLite database with other tables)")
        return version

    def _connect_reader(self) -> sqlite3.Connection:
        """A connection that only reads and leaves no file behind."""
        if os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK):
            # A store this process could write: an ordinary connection that refuses to write
            # (``query_only``), which cleans up its -wal and -shm files when it closes.
            db = sqlite3.connect(self.path.resolve().as_uri() + "?mode=rw", uri=True, timeout=BUSY_TIMEOUT_S,
                                 isolation_level=None)
            db.execute("PRAGMA query_only = ON")
            return db
        return _connect_readonly(self.path)

    def _open_readonly(self) -> sqlite3.Connection:
        db = self._connect_reader()
        try:
            if self._check_version(db) == 0:
                raise UsageError(f"{self.path} is not a gpubench store (an empty database)")
        except BaseException:
            db.close()
            raise
        return db

    def _open_for_writing(self) -> sqlite3.Connection:
        """Open read-write, creating or migrating the store; retried while another process holds it."""
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                return self._open_for_writing_once()
            except sqlite3.OperationalError as exc:
                if _error_kind(exc) != "busy" or time.monotonic() > deadline:
                    raise
                time.sleep(random.uniform(0.01, 0.1))

    def _open_for_writing_once(self) -> sqlite3.Connection:
        if self.path.exists() and self.path.stat().st_size:
            # Version and soundness first, without writing: a store this gpubench refuses stays untouched.
            peek = self._connect_reader()
            try:
                self._check_version(peek)
                damage = quick_check(peek)
            finally:
                peek.close()
            if damage:
                raise StoreDamaged(f"store {self.path} is damaged (SQLite quick_check: {damage}); nothing was "
                                   "written to it: restore it from a copy, or read what is left with "
                                   "'gpubench export --run all' or 'gpubench store copy'")
        if self.path.exists():
            if not (os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK)):
                raise StoreReadOnly(f"store {self.path} is read-only")
        else:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreReadOnly(f"cannot create store {self.path}: {exc.strerror or exc}") from exc
            if not os.access(self.path.parent, os.W_OK):
                raise StoreReadOnly(f"cannot create store {self.path}: directory {self.path.parent} is read-only")
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            db.execute("PRAGMA foreign_keys = ON")
            if db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                self._migrate(db)
            if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                db.execute("PRAGMA journal_mode = WAL")
        except BaseException:
            db.close()
            raise
        return db

    def _migrate(self, db: sqlite3.Connection) -> None:
        """Create or upgrade the schema step by step, in one transaction that other openers wait for."""
        db.execute("BEGIN IMMEDIATE")
        try:
            version = self._check_version(db)  # re-read: another process may have migrated meanwhile
            while version < SCHEMA_VERSION:
                for statement in step_statements(MIGRATIONS[version]):
                    if statement is not None:
                        db.execute(statement)
                        continue
                    runs = db.execute(RUNS_FOR_UUIDS).fetchall()
                    db.executemany("UPDATE runs SET uuid = ? WHERE id = ?", derived_run_uuids(runs))
                version += 1
                db.execute(f"PRAGMA user_version = {version}")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _table_columns(self) -> dict[str, set[str]]:
        tables = [r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: {r[1] for r in self.db.execute(f"PRAGMA table_info({t})")} for t in tables}

    @property
    def schema_version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    def close(self) -> None:
        self.db.close()

    # --- primitives ----------------------------------------------------------------------------
    def _store_error(self, exc: sqlite3.Error) -> GpubenchError:
        """A SQLite error as a one-line gpubench error."""
        kind = _error_kind(exc)
        if kind == "readonly" or (self.readonly and kind == "cantopen"):
            return StoreReadOnly(f"store {self.path} is read-only")
        if kind == "full":
            return DiskFull(f"disk full: cannot write store {self.path}")
        if kind == "io" and _file_size_limited():
            err = DiskFull(f"file size limit reached (ulimit -f): cannot write store {self.path}")
            err.short = "file size limit reached"
            return err
        if kind == "io":
            err = StoreError(f"disk I/O error writing store {self.path}")
            err.short = "disk I/O error"
            return err
        if kind == "busy":
            err = StoreError(f"store {self.path} is locked by another process (waited {BUSY_TIMEOUT_S:g} s)")
            err.short = "store locked"
            return err
        if kind == "corrupt":
            return StoreDamaged(f"store {self.path} is damaged ({exc})")
        if kind == "constraint" and "uuid" in str(exc):
            return DuplicateRun(f"that run is already in {self.path}")
        return StoreError(f"store {self.path}: {exc}")

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            return self.db.execute(sql, tuple(params))
        except sqlite3.DatabaseError as exc:
            raise self._store_error(exc) from exc

    def _write(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._execute(sql, params)

    def _insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        return int(self._execute(sql, params).lastrowid)

    def _begin(self) -> None:
        self._write("BEGIN IMMEDIATE")

    def _end(self, commit: bool) -> None:
        if commit:
            self._write("COMMIT")
        elif self.db.in_transaction:  # SQLite may have rolled back already (disk full, I/O error)
            self.db.execute("ROLLBACK")

    def _in_transaction(self) -> bool:
        return self.db.in_transaction

    def _stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple]:
        try:
            yield from self.db.execute(sql, tuple(params))
        except sqlite3.DatabaseError as exc:
            if _error_kind(exc) != "corrupt":
                raise self._store_error(exc) from exc
            self._note_damage(exc)
            raise _Unreadable() from exc

    def finish_run(self, run_id: int, status: str = "complete", reason: str = "") -> None:
        try:
            super().finish_run(run_id, status, reason)
        except (StoreReadOnly, StoreDamaged):
            raise
        except StoreError:
            # A full disk: a checkpoint folds the write-ahead log into the database and frees room.
            self._write("PRAGMA wal_checkpoint(TRUNCATE)")
            super().finish_run(run_id, status, reason)

    # --- a damaged store -----------------------------------------------------------------------
    def _note_damage(self, exc: BaseException) -> None:
        """Say once what is damaged; from now on reads serve what they can."""
        if self.damage:
            return
        self.damage = quick_check(self.db) or str(exc)
        print(f"gpubench: warning: store {self.path} is damaged ({self.damage}); showing what can still be read",
              file=sys.stderr)

    def _select(self, table: str, columns: Sequence[str], where: dict[str, Any] | None = None, *,
                newest_first: bool = False, limit: int | None = None, offset: int = 0) -> Iterator[tuple]:
        if self.damage:
            yield from self._salvage(table, columns, where, newest_first, limit, offset)
            return
        served = []  # ids of the rows already served, when the damage shows half way
        try:
            for row in super()._select(table, ("id", *columns), where, newest_first=newest_first, limit=limit,
                                       offset=offset):
                served.append(row[0])
                yield row[1:]
        except _Unreadable:
            skip = set(served)
            rest = self._salvage(table, ("id", *columns), where, newest_first, None, 0)
            rows = [r for r in rest if r[0] not in skip]
            if limit is not None:
                rows = rows[max(0, offset - len(served)):][:max(0, limit - len(served))]
            yield from (r[1:] for r in rows)

    def status_counts(self) -> dict[int, dict[str, int]]:
        try:
            return super().status_counts()
        except _Unreadable:
            out: dict[int, dict[str, int]] = {}
            for run_id, status in self._salvage("results", ("run_id", "status"), None):
                counts = out.setdefault(int(run_id), {})
                counts[status] = counts.get(status, 0) + 1
            return {k: dict(sorted(v.items())) for k, v in sorted(out.items())}

    def count_results(self, run_id: int | None = None) -> int:
        try:
            return super().count_results(run_id)
        except _Unreadable:
            return sum(1 for _ in self._salvage("results", ("id",), None if run_id is None else {"run_id": run_id}))

    def _salvage(self, table: str, columns: Sequence[str], where: dict[str, Any] | None,
                 newest_first: bool = False, limit: int | None = None, offset: int = 0) -> list[tuple]:
        """The rows of ``table`` that can still be read, walking its b-tree by id (no index, which may
        be what is damaged) and stepping over damaged pages and rows; filtered, ordered and cut in Python."""
        where = where or {}
        keys = list(where)
        cols = ", ".join(("id", *keys, *columns))
        rows: list[tuple] = []
        last = 0
        while True:
            try:
                row = self.db.execute(f"SELECT {cols} FROM {table} WHERE id > ? ORDER BY id LIMIT 1",
                                      (last,)).fetchone()
            except sqlite3.DatabaseError:
                found, page_lost = self._next_readable_id(table, last)
                if found is None:
                    break
                # After a lost page, read on from the first row found; else that row itself is lost.
                last = found - 1 if page_lost else found
                continue
            if row is None:
                break
            last = row[0]
            if all(row[1 + i] == where[k] for i, k in enumerate(keys)):
                rows.append(row[1 + len(keys):])
        if newest_first:
            rows.reverse()
        return rows[offset:] if limit is None else rows[offset:offset + limit]

    def _next_readable_id(self, table: str, last: int) -> tuple[int | None, bool]:
        """The smallest id above ``last`` that can be found, and whether a damaged page lay before it.

        When the row after ``last`` can be found, only its own contents are damaged. Otherwise the
        page holding it is: widening steps past it, then bisection, find the first id after it.
        """

        def probe(after: int) -> tuple[bool, int | None]:
            """(whether the seek to the first id above ``after`` worked, that id or None at the end)."""
            try:
                row = self.db.execute(f"SELECT id FROM {table} WHERE id > ? ORDER BY id LIMIT 1", (after,)).fetchone()
            except sqlite3.DatabaseError:
                return False, None
            return True, None if row is None else int(row[0])

        ok, found = probe(last)
        if ok:
            return found, False
        bad, step = last, 1
        while not (ok := probe(last + step))[0]:
            bad, step = last + step, step * 2
            if step > 1 << 62:
                return None, True
        good, found = last + step, ok[1]
        while found is not None and good - bad > 1:  # probe(bad) fails, probe(good) finds ``found``
            mid = (bad + good) // 2
            works, at = probe(mid)
            if not works:
                bad = mid
            else:
                good, found = mid, at
        return found, True


class _Unreadable(Exception):
    """A read met a damaged page (already noted in :attr:`SQLiteStore.damage`)."""
