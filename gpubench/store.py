"""The results store: SQLite, schema-versioned, safe for several writers at once.

Each finished case is committed on its own, so an interrupted run keeps every case it
finished; several writes that belong together go through :meth:`ResultStore.transaction`.
The database runs in WAL mode with a busy timeout, so two ``gpubench run`` processes can write
the same store at once. The schema version lives in ``PRAGMA user_version`` and old stores are
migrated step by step (``MIGRATIONS``), inside one ``BEGIN IMMEDIATE`` transaction, when they are
opened for writing; several processes creating or migrating one store at once wait for each
other (and retry while the database is busy).

Opening never changes a store it refuses: the schema version is read first, through a
read-only connection. Read commands open a store read-only (``readonly=True``), so they work
on a read-only file, directory or mount and never migrate; an old schema is read as it is.
Writing to a store that cannot be written is a one-line :class:`~gpubench.errors.StoreReadOnly`
error; a full disk is :class:`~gpubench.errors.DiskFull`.

No module outside this one touches the database with SQL.

Schema history:

* 1 — ``runs`` and ``results`` (one row per case: indexed spec columns plus the full record JSON).
* 2 — ``ceilings``: measured machine ceilings per run and device (``gpubench calibrate``).
* 3 — ``runs.pid``, ``runs.host`` (the process that runs it: a ``running`` run whose process is
  gone reads as ``abandoned``) and ``runs.reason`` (why a run failed); ``ceilings.device_name``
  (the device's own name) and ``ceilings.quality`` (``measured``, or ``provisional`` for ceilings
  from short ``--quick`` cases).
"""

from __future__ import annotations

import json
import os
import random
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gpubench.envinfo import machine_key
from gpubench.errors import DiskFull, GpubenchError, StoreError, StoreReadOnly, UsageError
from gpubench.records import CaseResult

SCHEMA_VERSION = 3
DEFAULT_STORE = Path("results") / "gpubench.sqlite"

#: How long opening or writing a store waits for other processes that hold it, in seconds.
BUSY_TIMEOUT_S = 60.0

#: Ceiling kinds written by ``gpubench calibrate`` (unit in brackets).
PEAK_FLOPS = "peak_flops"  # GFLOP/s, per dtype ("tf32" = float32 on tensor cores)
MEM_BW = "mem_bw"  # GB/s, device memory read + written
H2D_BW = "h2d_bw"  # GB/s, pinned host to device
D2H_BW = "d2h_bw"  # GB/s, device to pinned host
CEILING_KINDS = (PEAK_FLOPS, MEM_BW, H2D_BW, D2H_BW)
#: Quality of a ceiling: measured with full-size cases, or provisional (short ``--quick`` cases).
CEILING_QUALITIES = ("measured", "provisional")

_V1 = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,
    suite TEXT NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    baseline TEXT NOT NULL DEFAULT '',
    command TEXT NOT NULL DEFAULT '',
    settings TEXT NOT NULL DEFAULT '{}',
    environment TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    created_at TEXT NOT NULL,
    workload TEXT NOT NULL,
    backend TEXT NOT NULL,
    device TEXT NOT NULL,
    dtype TEXT NOT NULL,
    variant TEXT NOT NULL,
    params TEXT NOT NULL,
    spec_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX results_run ON results(run_id);
"""

_V2 = """
CREATE TABLE ceilings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    device TEXT NOT NULL,
    kind TEXT NOT NULL,
    dtype TEXT NOT NULL DEFAULT '',
    value REAL NOT NULL,
    unit TEXT NOT NULL,
    method TEXT NOT NULL DEFAULT ''
);
CREATE INDEX ceilings_run ON ceilings(run_id);
"""

_V3 = """
ALTER TABLE runs ADD COLUMN pid INTEGER;
ALTER TABLE runs ADD COLUMN host TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN reason TEXT NOT NULL DEFAULT '';
ALTER TABLE ceilings ADD COLUMN device_name TEXT NOT NULL DEFAULT '';
ALTER TABLE ceilings ADD COLUMN quality TEXT NOT NULL DEFAULT 'measured';
"""

#: MIGRATIONS[v] upgrades a store at schema version v to v + 1.
MIGRATIONS = {0: _V1, 1: _V2, 2: _V3}

RUN_STATUSES = ("running", "complete", "time_limited", "interrupted", "failed")
#: Status shown, never stored, for a ``running`` run whose process on this machine is gone.
ABANDONED = "abandoned"

#: Suite name of a ``gpubench calibrate`` run (its results are the evidence behind its ceilings).
CALIBRATE_SUITE = "calibrate"

#: Ceiling kinds of the ``ceilings`` table (unit in brackets).
PEAK_FLOPS = "peak_flops"  # GFLOP/s, per dtype ("tf32" = float32 on tensor cores)
MEM_BW = "mem_bw"  # GB/s, device memory read + written
H2D_BW = "h2d_bw"  # GB/s, pinned host to device
D2H_BW = "d2h_bw"  # GB/s, device to pinned host


def provisional(run: RunInfo) -> bool:
    """Whether a run's measured ceilings are provisional: a ``--quick`` calibration (small sizes, short
    budgets) measures a number, not a roof. The profile name is in the run's settings; a store older
    than that records the quick harness settings, or ``--quick`` in the run's command."""
    from dataclasses import asdict

    from gpubench.profile import QUICK

    settings = run.settings or {}
    if "profile" in settings:
        return "quick" in str(settings["profile"])
    return ("--quick" in (run.command or "").split()
            or all(settings.get(k) == v for k, v in asdict(QUICK).items()))


def now_iso() -> str:
    """Current UTC time, ISO 8601 with seconds."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def default_store_path() -> Path:
    """``$GPUBENCH_STORE`` or ``results/gpubench.sqlite``."""
    return Path(os.environ.get("GPUBENCH_STORE") or DEFAULT_STORE)


def _error_kind(exc: sqlite3.Error) -> str:
    """Classify a SQLite error: busy, readonly, full, io, cantopen, notadb or other."""
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


@dataclass(frozen=True)
class RunInfo:
    """One run's header row.

    ``status`` is ``running``, ``complete``, ``time_limited`` (a time limit left cases out), ``interrupted`` or
    ``failed`` as stored, or
    ``abandoned`` for a ``running`` run whose process (``pid`` on ``host``, this machine) is gone.
    ``reason`` says why a run failed or was abandoned.
    """

    id: int
    started_at: str
    finished_at: str | None
    status: str
    suite: str
    label: str
    baseline: str
    command: str
    settings: dict[str, Any]
    environment: dict[str, Any]
    pid: int | None = None
    host: str = ""
    reason: str = ""


class ResultStore:
    """A SQLite results store. Use as a context manager or call :meth:`close`.

    ``create``: make the store when it does not exist (else a missing store is a
    :class:`UsageError`). ``readonly``: only read; the store must exist, is opened read-only and
    is never migrated (read commands use it, so they work on stores that cannot be written).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, create: bool = True, readonly: bool = False):
        self.path = Path(path) if path is not None else default_store_path()
        self.readonly = readonly
        if path is not None and str(path) == "":
            raise UsageError("the store path must not be empty")
        if not self.path.exists() and (readonly or not create):
            raise UsageError(f"no results store at {self.path} (run 'gpubench run' first or pass --store)")
        if self.path.is_dir():
            raise UsageError(f"store path {self.path} is a directory")
        try:
            self.db = self._open_readonly() if readonly else self._open_for_writing()
        except sqlite3.DatabaseError as exc:
            kind = _error_kind(exc)
            if kind in ("notadb", "other"):
                raise UsageError(f"{self.path} is not a gpubench store: {exc}") from exc
            raise self._store_error(exc) from exc
        self._columns = self._read_columns()

    # --- opening -------------------------------------------------------------------------------
    def _check_version(self, db: sqlite3.Connection) -> int:
        """The schema version; refuse a newer one and a database that is not a gpubench store."""
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise GpubenchError(f"store {self.path} has schema {version}, newer than this gpubench "
                                f"({SCHEMA_VERSION}): upgrade gpubench")
        if version == 0 and db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            raise UsageError(f"{self.path} is not a gpubench store (an SQLite database with other tables)")
        return version

    def _open_readonly(self) -> sqlite3.Connection:
        if os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK):
            # A store this process could write: an ordinary connection that refuses to write
            # (``query_only``), which cleans up its -wal and -shm files when it closes.
            db = sqlite3.connect(self.path.resolve().as_uri() + "?mode=rw", uri=True, timeout=BUSY_TIMEOUT_S,
                                 isolation_level=None)
            db.execute("PRAGMA query_only = ON")
        else:
            db = _connect_readonly(self.path)
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
            # The version first, without writing: a store this gpubench refuses stays untouched.
            peek = _connect_readonly(self.path)
            try:
                self._check_version(peek)
            finally:
                peek.close()
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
                for statement in MIGRATIONS[version].split(";"):
                    if statement.strip():
                        db.execute(statement)
                version += 1
                db.execute(f"PRAGMA user_version = {version}")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _read_columns(self) -> dict[str, set[str]]:
        """Columns per table (a store opened read-only may have an older schema)."""
        tables = [r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: {r[1] for r in self.db.execute(f"PRAGMA table_info({t})")} for t in tables}

    def _col(self, table: str, name: str, default: str) -> str:
        return name if name in self._columns.get(table, ()) else f"{default} AS {name}"

    # --- schema --------------------------------------------------------------------------------
    @property
    def schema_version(self) -> int:
        """Schema version of the open database."""
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing -------------------------------------------------------------------------------
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
        return StoreError(f"store {self.path}: {exc}")

    def _write(self, sql: str, params: tuple = ()) -> sqlite3.Cursor:
        try:
            return self.db.execute(sql, params)
        except sqlite3.OperationalError as exc:
            raise self._store_error(exc) from exc

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the database file and truncate it (frees room on a full disk)."""
        self._write("PRAGMA wal_checkpoint(TRUNCATE)")

    @contextmanager
    def transaction(self) -> Iterator[ResultStore]:
        """All or nothing: the writes inside the ``with`` block commit together, or none does.

        Takes the write lock at once (``BEGIN IMMEDIATE``, waiting for other writers). Inside an
        enclosing transaction it joins that one.
        """
        if self.db.in_transaction:
            yield self
            return
        self._write("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            if self.db.in_transaction:  # SQLite may have rolled back already (disk full, I/O error)
                self.db.execute("ROLLBACK")
            raise
        self._write("COMMIT")

    # --- runs ----------------------------------------------------------------------------------
    def begin_run(self, suite: str, *, baseline: str = "", label: str = "", command: str = "",
                  settings: dict[str, Any] | None = None, environment: dict[str, Any] | None = None,
                  started_at: str | None = None) -> int:
        """Create a run in state ``running`` (recording this process's pid and host) and return its id."""
        cur = self._write(
            "INSERT INTO runs (started_at, status, suite, label, baseline, command, settings, environment, pid, host)"
            " VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?)",
            (started_at or now_iso(), suite, label, baseline, command, json.dumps(settings or {}),
             json.dumps(environment or {}, default=str), os.getpid(), socket.gethostname()),
        )
        return int(cur.lastrowid)

    def update_environment(self, run_id: int, environment: dict[str, Any]) -> None:
        """Replace the stored environment of a run (backends add their facts as they start)."""
        self._write("UPDATE runs SET environment = ? WHERE id = ?",
                        (json.dumps(environment, default=str), run_id))

    def finish_run(self, run_id: int, status: str = "complete", reason: str = "") -> None:
        """Mark a run finished with ``status`` (complete, time_limited, interrupted or failed) and why (``reason``)."""
        if status not in RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        self._write("UPDATE runs SET status = ?, finished_at = ?, reason = ? WHERE id = ?",
                    (status, now_iso(), reason, run_id))

    def add_result(self, run_id: int, result: CaseResult) -> int:
        """Commit one case result at once (its own transaction)."""
        s = result.spec
        cur = self._write(
            "INSERT INTO results (run_id, created_at, workload, backend, device, dtype, variant, params,"
            " spec_hash, status, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, now_iso(), s.workload, s.backend, s.device, s.dtype, s.variant,
             json.dumps(s.param_dict, sort_keys=True), result.spec_hash, result.status,
             json.dumps(result.to_dict())),
        )
        return int(cur.lastrowid)

    def add_ceiling(self, run_id: int, device: str, kind: str, value: float, unit: str,
                    dtype: str = "", method: str = "", *, device_name: str = "", quality: str = "measured") -> None:
        """Store one machine ceiling (peak FLOP/s or bandwidth, ``kind`` one of :data:`CEILING_KINDS`) for a run.

        ``device_name`` is the device's own name (``NVIDIA H100 80GB HBM3``); ``quality`` is
        ``measured``, or ``provisional`` when it comes from short cases (``calibrate --quick``).
        """
        if quality not in CEILING_QUALITIES:
            raise ValueError(f"unknown ceiling quality {quality!r} (known: {', '.join(CEILING_QUALITIES)})")
        self._write(
            "INSERT INTO ceilings (run_id, device, kind, dtype, value, unit, method, device_name, quality)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, device, kind, dtype, float(value), unit, method, device_name, quality),
        )

    _CEILING_FIELDS = ("device", "kind", "dtype", "value", "unit", "method", "device_name", "quality")

    def ceilings(self, run_id: int) -> list[dict[str, Any]]:
        """Ceilings stored for a run: dicts with keys device, kind, dtype, value, unit, method, device_name, quality."""
        if "ceilings" not in self._columns:
            return []
        cols = ", ".join(self._col("ceilings", c, {"device_name": "''", "quality": "'measured'"}.get(c, "''"))
                         for c in self._CEILING_FIELDS)
        rows = self.db.execute(f"SELECT {cols} FROM ceilings WHERE run_id = ? ORDER BY id", (run_id,))
        return [dict(zip(self._CEILING_FIELDS, r)) for r in rows]

    def applicable_ceilings(self, run: RunInfo, extra_runs: list[RunInfo] | tuple[RunInfo, ...] = ()
                            ) -> tuple[list[dict[str, Any]], int | None]:
        """The ceilings that apply to ``run`` and the calibration run they come from, each with its ``quality``.

        Measured ceilings first: the run's own, else those of the newest full calibration of the same
        machine (``extra_runs`` first). Only where the machine has none, the newest ``--quick``
        calibration's, marked ``provisional`` (small sizes and short budgets: real cases may sit above
        them, and are flagged ``above_ceiling``). A ceiling is provisional when stored so or when its run
        was a quick calibration (:func:`provisional`: stores older than the quality column).
        """
        key = machine_key(run.environment or {})
        candidates = [run, *(r for r in extra_runs if r.suite == CALIBRATE_SUITE)]
        candidates += [r for r in reversed(self.runs()) if r.suite == CALIBRATE_SUITE]
        fallback: tuple[list[dict[str, Any]], int | None] = ([], None)
        seen: set[int] = set()
        for cal in candidates:
            if cal.id in seen or (cal.id != run.id and machine_key(cal.environment or {}) != key):
                continue
            seen.add(cal.id)
            quick = provisional(cal)
            found = [{**c, "quality": "provisional" if quick else (c.get("quality") or "measured")}
                     for c in self.ceilings(cal.id)]
            measured = [c for c in found if c["quality"] != "provisional"]
            if measured:
                return measured, cal.id
            if found and fallback[1] is None:
                fallback = (found, cal.id)
        return fallback

    # --- reading -------------------------------------------------------------------------------
    @property
    def _run_cols(self) -> str:
        return ("id, started_at, finished_at, status, suite, label, baseline, command, settings, environment, "
                + ", ".join(self._col("runs", c, d) for c, d in (("pid", "NULL"), ("host", "''"), ("reason", "''"))))

    def _run_from_row(self, row: tuple) -> RunInfo:
        status, reason = row[3], row[12] or ""
        pid, host = row[10], row[11] or ""
        if status == "running" and pid and host == socket.gethostname():
            from gpubench.lifeline import process_alive

            if not process_alive(int(pid), row[1]):
                status = ABANDONED
                reason = reason or f"the process that ran it (pid {pid} on {host}) is gone"
        return RunInfo(row[0], row[1], row[2], status, row[4], row[5], row[6], row[7],
                       json.loads(row[8] or "{}"), json.loads(row[9] or "{}"), pid, host, reason)

    def runs(self) -> list[RunInfo]:
        """Every run, oldest first."""
        return [self._run_from_row(r) for r in self.db.execute(f"SELECT {self._run_cols} FROM runs ORDER BY id")]

    def run(self, ref: str | int | None = None) -> RunInfo:
        """Find a run by id, or ``latest`` / ``latest~N`` / None for the newest (``UsageError`` if none)."""
        if ref is None or str(ref).startswith("latest"):
            back = 0
            if ref is not None and str(ref) != "latest":
                try:
                    back = int(str(ref).split("~", 1)[1])
                except (IndexError, ValueError) as exc:
                    raise UsageError(f"bad run reference {ref!r} (use an id, latest or latest~N)") from exc
            rows = self.db.execute(f"SELECT {self._run_cols} FROM runs ORDER BY id DESC LIMIT 1 OFFSET ?",
                                   (back,)).fetchall()
            if not rows:
                raise UsageError(f"no runs in {self.path}" if back == 0 else f"no run {ref!r} in {self.path}")
            return self._run_from_row(rows[0])
        try:
            run_id = int(ref)
        except ValueError as exc:
            raise UsageError(f"bad run id {ref!r} (use a number, latest or latest~N)") from exc
        rows = self.db.execute(f"SELECT {self._run_cols} FROM runs WHERE id = ?", (run_id,)).fetchall()
        if not rows:
            raise UsageError(f"no run {run_id} in {self.path}")
        return self._run_from_row(rows[0])

    def results(self, run_id: int) -> list[CaseResult]:
        """Results of a run in the order they were stored."""
        return list(self.iter_results(run_id))

    def iter_results(self, run_id: int) -> Iterator[CaseResult]:
        """Iterate a run's results without loading them all at once."""
        for (record,) in self.db.execute("SELECT record FROM results WHERE run_id = ? ORDER BY id", (run_id,)):
            yield CaseResult.from_dict(json.loads(record))

    def status_counts(self) -> dict[int, dict[str, int]]:
        """Number of results per status, for every run: ``{run_id: {status: n}}``."""
        out: dict[int, dict[str, int]] = {}
        for run_id, status, n in self.db.execute(
                "SELECT run_id, status, COUNT(*) FROM results GROUP BY run_id, status ORDER BY run_id, status"):
            out.setdefault(run_id, {})[status] = n
        return out

    def count_results(self, run_id: int | None = None) -> int:
        """Number of stored results (of one run, or all)."""
        if run_id is None:
            return self.db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        return self.db.execute("SELECT COUNT(*) FROM results WHERE run_id = ?", (run_id,)).fetchone()[0]
