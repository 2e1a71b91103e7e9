"""The results store's interface: runs, their case results and measured ceilings, whatever holds them.

:class:`ResultStore` says what every store does and does it in portable SQL over a few primitives
(run a query, insert a row, begin and end a transaction) that each kind of store implements:
:class:`~gpubench.store.sqlite.SQLiteStore` (a file, the default) and
:class:`~gpubench.store.postgres.PostgresStore` (a database a team shares). :func:`open_store`
opens one from a location (:mod:`gpubench.store.kinds`).

Every store keeps the same schema, versioned and migrated step by step (:data:`SCHEMA_VERSION`):

* 1 — ``runs`` and ``results`` (one row per case: indexed spec columns plus the full record JSON).
* 2 — ``ceilings``: measured machine ceilings per run and device (``gpubench calibrate``).
* 3 — ``runs.pid``, ``runs.host`` (the process that runs it: a ``running`` run whose process is
  gone reads as ``abandoned``) and ``runs.reason`` (why a run failed); ``ceilings.device_name``
  (the device's own name) and ``ceilings.quality`` (``measured``, or ``provisional`` for ceilings
  from short ``--quick`` cases).
* 4 — ``runs.uuid``: a run's identity in every store it is copied to (``gpubench store copy``).
  Runs stored before have one derived from what identifies them (:func:`derived_run_uuids`), so
  a store read as it is and the same store migrated name its runs alike.

Each finished case is committed on its own, so an interrupted run keeps every case it finished;
several writes that belong together go through :meth:`ResultStore.transaction`. No password
reaches a stored run: its command line, settings and environment are stored redacted
(:func:`gpubench.store.kinds.redact`), and a store's :attr:`~ResultStore.location` prints without it.
No module outside :mod:`gpubench.store` speaks SQL to a store.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from typing import Any

from gpubench.envinfo import machine_key
from gpubench.errors import StoreError
from gpubench.records import CaseResult
from gpubench.shapes import ENVIRONMENT, conform
from gpubench.store.kinds import redact, store_class

SCHEMA_VERSION = 4

#: Ceiling kinds of the ``ceilings`` table, written by ``gpubench calibrate`` (unit in brackets).
PEAK_FLOPS = "peak_flops"  # GFLOP/s, per dtype ("tf32" = float32 on tensor cores)
MEM_BW = "mem_bw"  # GB/s, device memory read + written
H2D_BW = "h2d_bw"  # GB/s, pinned host to device
D2H_BW = "d2h_bw"  # GB/s, device to pinned host
CEILING_KINDS = (PEAK_FLOPS, MEM_BW, H2D_BW, D2H_BW)
#: Quality of a ceiling: measured with full-size cases, or provisional (short ``--quick`` cases).
CEILING_QUALITIES = ("measured", "provisional")

RUN_STATUSES = ("running", "complete", "time_limited", "interrupted", "failed")
#: Status shown, never stored, for a ``running`` run whose process on this machine is gone.
ABANDONED = "abandoned"

#: Suite name of a ``gpubench calibrate`` run (its results are the evidence behind its ceilings).
CALIBRATE_SUITE = "calibrate"

#: Columns of a ``results`` row, as :meth:`ResultStore.copy_run` carries them from store to store.
RESULT_COLUMNS = ("created_at", "workload", "backend", "device", "dtype", "variant", "params", "spec_hash",
                  "status", "record")
_CEILING_FIELDS = ("device", "kind", "dtype", "value", "unit", "method", "device_name", "quality")
_UUID_NAMESPACE = uuid.UUID("5b0e8a52-7f0c-4c1e-9a39-4f1d3c0b6a21")


class DuplicateRun(StoreError):
    """A run whose ``uuid`` the store already holds (another copy of it got there first)."""

    short = "run already stored"


def provisional(run: RunInfo) -> bool:
    """Whether a run's measured ceilings are provisional: a ``--quick`` calibration (small sizes, short
    budgets) measures a number, not a roof. The profile name is in the run's settings; a store older
    than that records the quick harness settings, or ``--quick`` in the run's command."""
    from gpubench.profile import QUICK

    settings = run.settings or {}
    if "profile" in settings:
        return "quick" in str(settings["profile"])
    return ("--quick" in (run.command or "").split()
            or all(settings.get(k) == v for k, v in asdict(QUICK).items()))


def now_iso() -> str:
    """Current UTC time, ISO 8601 with seconds."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def derived_run_uuids(runs: Iterable[Sequence[Any]]) -> list[tuple[str, Any]]:
    """A stable uuid for each run stored before runs had one: ``(uuid, id)`` for rows of
    ``(id, started_at, host, pid, suite, label, baseline, command)`` in id order.

    The uuid depends only on what never changes once a run has begun, plus how many runs before it
    had the very same values, so the same run gets the same uuid in a store migrated to schema 4
    and in the same store read as it is (:meth:`ResultStore.runs`).
    """
    seen: dict[str, int] = {}
    out = []
    for row in runs:
        key = json.dumps([str(v) if v is not None else None for v in row[1:]])
        n = seen[key] = seen.get(key, -1) + 1
        out.append((str(uuid.uuid5(_UUID_NAMESPACE, f"{key}#{n}")), row[0]))
    return out


def new_run_uuid() -> str:
    """A fresh run identity."""
    return str(uuid.uuid4())


def _redacted_json(value: dict[str, Any] | None) -> str:
    return redact(json.dumps(value or {}, default=str))


@dataclass(frozen=True)
class RunInfo:
    """One run's header row.

    ``status`` is ``running``, ``complete``, ``time_limited`` (a time limit left cases out), ``interrupted``
    or ``failed`` as stored, or
    ``abandoned`` for a ``running`` run whose process (``pid`` on ``host``, this machine) is gone.
    ``reason`` says why a run failed or was abandoned. ``uuid`` names the run in every store it is
    copied to (empty only in a store of schema 3 or older read as it is).
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
    uuid: str = ""

    def __post_init__(self) -> None:
        # Readers see the environment shapes they rely on, whatever a store holds (an imported file's own).
        object.__setattr__(self, "environment", conform(self.environment, ENVIRONMENT))


def open_store(location: str | os.PathLike[str] | None = None, *, create: bool = True,
               readonly: bool = False) -> ResultStore:
    """Open the store at ``location``: a path or ``sqlite:///PATH`` (SQLite), ``postgresql://…``
    (PostgreSQL); ``None`` is ``$GPUBENCH_STORE`` or ``results/gpubench.sqlite``.

    ``create``: make the store when it does not exist (else a missing store is a
    :class:`~gpubench.errors.UsageError`). ``readonly``: only read; the store must exist, is never
    migrated and refuses writes (read commands open stores so). The one way to open a store;
    ``ResultStore(location, ...)`` does the same.
    """
    return store_class(location)(location, create=create, readonly=readonly)


class ResultStore(ABC):
    """A results store. Use as a context manager or call :meth:`close`.

    Open one with :func:`open_store` (``ResultStore(location)`` is the same call: it builds the
    kind of store the location names). A store kind implements the primitives marked abstract
    below; everything else is shared.
    """

    #: Display form of the store's location, without any password (for messages and reports).
    location: str = ""
    #: Whether the store was opened read-only.
    readonly: bool = False
    #: What is known to be damaged in the store (empty while nothing is); reads then serve what they can.
    damage: str = ""

    def __new__(cls, location: str | os.PathLike[str] | None = None, *args: Any, **kwargs: Any) -> ResultStore:
        if cls is ResultStore:
            cls = store_class(location)
        return super().__new__(cls)

    # --- primitives a store kind implements ---------------------------------------------------
    @abstractmethod
    def _stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple]:
        """Run a read query (``?`` placeholders) and yield its rows."""

    @abstractmethod
    def _write(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run a writing statement (``?`` placeholders); errors become one-line :class:`StoreError`."""

    @abstractmethod
    def _insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run an ``INSERT`` into a table with an ``id`` column and return the new row's id."""

    @abstractmethod
    def _begin(self) -> None:
        """Begin a transaction that takes the write lock at once (other writers wait)."""

    @abstractmethod
    def _end(self, commit: bool) -> None:
        """Commit (``commit``) or roll back the open transaction."""

    @abstractmethod
    def _in_transaction(self) -> bool:
        """Whether a transaction is open."""

    @abstractmethod
    def _table_columns(self) -> dict[str, set[str]]:
        """Columns per table (a store opened read-only may have an older schema)."""

    @property
    @abstractmethod
    def schema_version(self) -> int:
        """Schema version of the open store."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection."""

    # --- shared ---------------------------------------------------------------------------------
    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.location}>"

    def _col(self, table: str, name: str, default: str) -> str:
        return name if name in self._columns.get(table, ()) else f"{default} AS {name}"

    def _select(self, table: str, columns: Sequence[str], where: dict[str, Any] | None = None, *,
                newest_first: bool = False, limit: int | None = None, offset: int = 0) -> Iterator[tuple]:
        """Rows of ``table`` (``columns`` are SQL expressions), in id order, matching ``where`` (equality)."""
        sql = f"SELECT {', '.join(columns)} FROM {table}"
        params: list[Any] = list((where or {}).values())
        if where:
            sql += " WHERE " + " AND ".join(f"{k} = ?" for k in where)
        sql += " ORDER BY id DESC" if newest_first else " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params += [limit, offset]
        return self._stream(sql, params)

    @contextmanager
    def transaction(self) -> Iterator[ResultStore]:
        """All or nothing: the writes inside the ``with`` block commit together, or none does.

        Takes the write lock at once (waiting for other writers). Inside an enclosing transaction
        it joins that one.
        """
        if self._in_transaction():
            yield self
            return
        self._begin()
        try:
            yield self
        except BaseException:
            self._end(commit=False)
            raise
        self._end(commit=True)

    # --- writing --------------------------------------------------------------------------------
    def begin_run(self, suite: str, *, baseline: str = "", label: str = "", command: str = "",
                  settings: dict[str, Any] | None = None, environment: dict[str, Any] | None = None,
                  started_at: str | None = None) -> int:
        """Create a run in state ``running`` (recording this process's pid and host) and return its id."""
        return self._insert(
            "INSERT INTO runs (started_at, status, suite, label, baseline, command, settings, environment, pid, host,"
            " uuid) VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (started_at or now_iso(), suite, redact(label), baseline, redact(command), _redacted_json(settings),
             _redacted_json(environment), os.getpid(), socket.gethostname(), new_run_uuid()))

    def update_environment(self, run_id: int, environment: dict[str, Any]) -> None:
        """Replace the stored environment of a run (backends add their facts as they start)."""
        self._write("UPDATE runs SET environment = ? WHERE id = ?", (_redacted_json(environment), run_id))

    def finish_run(self, run_id: int, status: str = "complete", reason: str = "") -> None:
        """Mark a run finished with ``status`` (complete, interrupted or failed) and why (``reason``)."""
        if status not in RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        self._write("UPDATE runs SET status = ?, finished_at = ?, reason = ? WHERE id = ?",
                    (status, now_iso(), redact(reason), run_id))

    def add_result(self, run_id: int, result: CaseResult) -> int:
        """Commit one case result at once (its own transaction, unless inside :meth:`transaction`)."""
        s = result.spec
        return self._insert(
            "INSERT INTO results (run_id, created_at, workload, backend, device, dtype, variant, params,"
            " spec_hash, status, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, now_iso(), s.workload, s.backend, s.device, s.dtype, s.variant,
             json.dumps(s.param_dict, sort_keys=True), result.spec_hash, result.status,
             json.dumps(result.to_dict())))

    def add_ceiling(self, run_id: int, device: str, kind: str, value: float, unit: str,
                    dtype: str = "", method: str = "", *, device_name: str = "", quality: str = "measured") -> None:
        """Store one machine ceiling (peak FLOP/s or bandwidth, ``kind`` one of :data:`CEILING_KINDS`) for a run.

        ``device_name`` is the device's own name (``NVIDIA H100 80GB HBM3``); ``quality`` is
        ``measured``, or ``provisional`` when it comes from short cases (``calibrate --quick``).
        """
        if quality not in CEILING_QUALITIES:
            raise ValueError(f"unknown ceiling quality {quality!r} (known: {', '.join(CEILING_QUALITIES)})")
        self._insert(
            "INSERT INTO ceilings (run_id, device, kind, dtype, value, unit, method, device_name, quality)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, device, kind, dtype, float(value), unit, method, device_name, quality))

    def copy_run(self, source: ResultStore, run: RunInfo, run_uuid: str) -> int:
        """Store ``run`` of ``source`` here under ``run_uuid``, with its results and ceilings, in one
        transaction; return its id here. Raises :class:`DuplicateRun` when a run with that uuid is here."""
        status, reason = run.status, run.reason
        if status == ABANDONED:  # stored so, it would read as running on every other machine
            status, reason = "failed", f"abandoned: {run.reason}"
        with self.transaction():
            if self.run_by_uuid(run_uuid) is not None:
                raise DuplicateRun(f"run {run_uuid} is already in {self.location}")
            run_id = self._insert(
                "INSERT INTO runs (started_at, finished_at, status, suite, label, baseline, command, settings,"
                " environment, pid, host, reason, uuid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run.started_at, run.finished_at, status, run.suite, redact(run.label), run.baseline,
                 redact(run.command), _redacted_json(run.settings), _redacted_json(run.environment), run.pid,
                 run.host, redact(reason), run_uuid))
            placeholders = ", ".join("?" * (len(RESULT_COLUMNS) + 1))
            for row in source._select("results", RESULT_COLUMNS, {"run_id": run.id}):
                self._insert(f"INSERT INTO results (run_id, {', '.join(RESULT_COLUMNS)}) VALUES ({placeholders})",
                             (run_id, *row))
            for c in source.ceilings(run.id):
                self.add_ceiling(run_id, c["device"], c["kind"], c["value"], c["unit"], c["dtype"], c["method"],
                                 device_name=c["device_name"], quality=c["quality"])
        return run_id

    # --- reading runs ---------------------------------------------------------------------------
    @property
    def _run_cols(self) -> tuple[str, ...]:
        return ("id", "started_at", "finished_at", "status", "suite", "label", "baseline", "command", "settings",
                "environment", *(self._col("runs", c, d)
                                 for c, d in (("pid", "NULL"), ("host", "''"), ("reason", "''"), ("uuid", "''"))))

    def _run_from_row(self, row: tuple) -> RunInfo:
        status, reason = row[3], row[12] or ""
        pid, host = row[10], row[11] or ""
        if status == "running" and pid and host == socket.gethostname():
            from gpubench.lifeline import process_alive

            if not process_alive(int(pid), row[1]):
                status = ABANDONED
                reason = reason or f"the process that ran it (pid {pid} on {host}) is gone"
        return RunInfo(int(row[0]), row[1], row[2], status, row[4], row[5], row[6], row[7],
                       json.loads(row[8] or "{}"), json.loads(row[9] or "{}"), pid, host, reason, row[13] or "")

    def runs(self) -> list[RunInfo]:
        """Every run, oldest first (runs of a store older than schema 4 get their derived uuid)."""
        rows = list(self._select("runs", self._run_cols))
        runs = [self._run_from_row(r) for r in rows]
        if any(not r.uuid for r in runs):
            derived = dict((i, u) for u, i in derived_run_uuids((r[0], r[1], r[11], r[10], r[4], r[5], r[6], r[7])
                                                                for r in rows))
            runs = [r if r.uuid else replace(r, uuid=derived[r.id]) for r in runs]
        return runs

    def run(self, ref: str | int | None = None) -> RunInfo:
        """Find a run by id, or ``latest`` / ``latest~N`` / None for the newest (``UsageError`` if none)."""
        from gpubench.errors import UsageError

        if ref is None or str(ref).startswith("latest"):
            back = 0
            if ref is not None and str(ref) != "latest":
                try:
                    back = int(str(ref).split("~", 1)[1])
                except (IndexError, ValueError) as exc:
                    raise UsageError(f"bad run reference {ref!r} (use an id, latest or latest~N)") from exc
                if back < 0:
                    raise UsageError(f"bad run reference {ref!r} (use an id, latest or latest~N)")
            rows = list(self._select("runs", self._run_cols, newest_first=True, limit=1, offset=back))
            if not rows:
                raise UsageError(f"no runs in {self.location}" if back == 0 else f"no run {ref!r} in {self.location}")
            return self._run_from_row(rows[0])
        try:
            run_id = int(ref)
        except ValueError as exc:
            raise UsageError(f"bad run id {ref!r} (use a number, latest or latest~N)") from exc
        rows = list(self._select("runs", self._run_cols, {"id": run_id}))
        if not rows:
            raise UsageError(f"no run {run_id} in {self.location}")
        return self._run_from_row(rows[0])

    def run_by_uuid(self, run_uuid: str) -> RunInfo | None:
        """The run stored under ``run_uuid``, or None."""
        if "uuid" not in self._columns.get("runs", ()):
            return next((r for r in self.runs() if r.uuid == run_uuid), None)
        rows = list(self._select("runs", self._run_cols, {"uuid": run_uuid}))
        return self._run_from_row(rows[0]) if rows else None

    # --- reading results ------------------------------------------------------------------------
    def results(self, run_id: int) -> list[CaseResult]:
        """Results of a run in the order they were stored."""
        return list(self.iter_results(run_id))

    def iter_results(self, run_id: int) -> Iterator[CaseResult]:
        """Iterate a run's results without loading them all at once.

        In a damaged store (:attr:`damage`), a record that no longer parses is left out."""
        for (record,) in self._select("results", ("record",), {"run_id": run_id}):
            try:
                yield CaseResult.from_dict(json.loads(record))
            except (ValueError, TypeError, KeyError, AttributeError):
                if not self.damage:
                    raise

    def status_counts(self) -> dict[int, dict[str, int]]:
        """Number of results per status, for every run: ``{run_id: {status: n}}``."""
        out: dict[int, dict[str, int]] = {}
        for run_id, status, n in self._stream(
                "SELECT run_id, status, COUNT(*) FROM results GROUP BY run_id, status ORDER BY run_id, status"):
            out.setdefault(int(run_id), {})[status] = int(n)
        return out

    def count_results(self, run_id: int | None = None) -> int:
        """Number of stored results (of one run, or all)."""
        if run_id is None:
            return int(next(iter(self._stream("SELECT COUNT(*) FROM results")))[0])
        return int(next(iter(self._stream("SELECT COUNT(*) FROM results WHERE run_id = ?", (run_id,))))[0])

    # --- ceilings -------------------------------------------------------------------------------
    def ceilings(self, run_id: int) -> list[dict[str, Any]]:
        """Ceilings stored for a run: dicts with keys device, kind, dtype, value, unit, method, device_name, quality."""
        if "ceilings" not in self._columns:
            return []
        cols = [self._col("ceilings", c, {"device_name": "''", "quality": "'measured'"}.get(c, "''"))
                for c in _CEILING_FIELDS]
        return [dict(zip(_CEILING_FIELDS, r)) for r in self._select("ceilings", cols, {"run_id": run_id})]

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

# --- the schema: one text for every kind of store ------------------------------------------------------
# Each step is written once, with the column types a kind names differently as {ID} (an auto-numbered
# primary key), {INT} (a 64-bit integer) and {REAL} (a double); a store's module fills them in
# (:func:`migrations`). The step to 4 holds ``{fill}``, where the store adds the runs' derived uuids.

_V1 = """
CREATE TABLE runs (
    id {ID},
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
    id {ID},
    run_id {INT} NOT NULL REFERENCES runs(id),
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
    id {ID},
    run_id {INT} NOT NULL REFERENCES runs(id),
    device TEXT NOT NULL,
    kind TEXT NOT NULL,
    dtype TEXT NOT NULL DEFAULT '',
    value {REAL} NOT NULL,
    unit TEXT NOT NULL,
    method TEXT NOT NULL DEFAULT ''
);
CREATE INDEX ceilings_run ON ceilings(run_id);
"""

_V3 = """
ALTER TABLE runs ADD COLUMN pid {INT};
ALTER TABLE runs ADD COLUMN host TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN reason TEXT NOT NULL DEFAULT '';
ALTER TABLE ceilings ADD COLUMN device_name TEXT NOT NULL DEFAULT '';
ALTER TABLE ceilings ADD COLUMN quality TEXT NOT NULL DEFAULT 'measured';
"""

# Runs stored before get their derived uuid (derived_run_uuids) in place of {fill}.
_V4 = """
ALTER TABLE runs ADD COLUMN uuid TEXT;
{fill}
CREATE UNIQUE INDEX runs_uuid ON runs(uuid);
"""

#: The schema's steps: MIGRATION_STEPS[v] upgrades a store at schema version v to v + 1.
MIGRATION_STEPS = {0: _V1, 1: _V2, 2: _V3, 3: _V4}


#: The stored runs, with what their derived uuid is made from (:func:`derived_run_uuids`), in its order.
RUNS_FOR_UUIDS = "SELECT id, started_at, host, pid, suite, label, baseline, command FROM runs ORDER BY id"


def step_statements(step: str) -> Iterator[str | None]:
    """One migration step's SQL statements in order, and None where its ``{fill}`` stands: there the store sets
    every stored run's derived uuid (the runs read with :data:`RUNS_FOR_UUIDS`, :func:`derived_run_uuids`)."""
    before, marker, after = step.partition("{fill}")
    yield from (s for s in before.split(";") if s.strip())
    if marker:
        yield None
    yield from (s for s in after.split(";") if s.strip())


def migrations(types: dict[str, str]) -> dict[int, str]:
    """The schema's steps in one kind's SQL: ``types`` names ``ID``, ``INT`` and ``REAL`` (``{fill}`` is kept)."""
    out = {}
    for version, text in MIGRATION_STEPS.items():
        for name, sql in types.items():
            text = text.replace("{" + name + "}", sql)
        out[version] = text
    return out

