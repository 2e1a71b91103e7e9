"""The results store: SQLite, schema-versioned, safe for several writers at once.

Each finished case is committed on its own, so an interrupted run keeps every case it
finished. The database runs in WAL mode with a busy timeout, so two ``gpubench run``
processes can write the same store at once. The schema version lives in ``PRAGMA
user_version`` and old stores are migrated step by step (``MIGRATIONS``), inside one exclusive
transaction, when they are opened.

Schema history:

* 1 — ``runs`` and ``results`` (one row per case: indexed spec columns plus the full record JSON).
* 2 — ``ceilings``: measured machine ceilings per run and device (``gpubench calibrate``).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gpubench.errors import GpubenchError, UsageError
from gpubench.records import CaseResult

SCHEMA_VERSION = 2
DEFAULT_STORE = Path("results") / "gpubench.sqlite"

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

#: MIGRATIONS[v] upgrades a store at schema version v to v + 1.
MIGRATIONS = {0: _V1, 1: _V2}

RUN_STATUSES = ("running", "complete", "interrupted", "failed")

#: Suite name of a ``gpubench calibrate`` run (its results are the evidence behind its ceilings).
CALIBRATE_SUITE = "calibrate"

#: Ceiling kinds of the ``ceilings`` table (unit in brackets).
PEAK_FLOPS = "peak_flops"  # GFLOP/s, per dtype ("tf32" = float32 on tensor cores)
MEM_BW = "mem_bw"  # GB/s, device memory read + written
H2D_BW = "h2d_bw"  # GB/s, pinned host to device
D2H_BW = "d2h_bw"  # GB/s, device to pinned host


def machine_key(env: dict[str, Any]) -> tuple:
    """What identifies a machine across runs: host name, CPU model and GPU names."""
    cpu = (env.get("cpu") or {}).get("model", "")
    gpus = tuple(str(g.get("name", "")) for g in env.get("gpus") or [] if isinstance(g, dict))
    return (str(env.get("hostname", "")), str(cpu), gpus)


def provisional(run: RunInfo) -> bool:
    """Whether a run's measured ceilings are provisional: a ``--quick`` calibration (small sizes, short
    budgets) measures a number, not a roof. The profile name is in the run's settings."""
    return "quick" in str((run.settings or {}).get("profile", ""))


def now_iso() -> str:
    """Current UTC time, ISO 8601 with seconds."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def default_store_path() -> Path:
    """``$GPUBENCH_STORE`` or ``results/gpubench.sqlite``."""
    return Path(os.environ.get("GPUBENCH_STORE") or DEFAULT_STORE)


@dataclass(frozen=True)
class RunInfo:
    """One run's header row."""

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


class ResultStore:
    """A SQLite results store. Use as a context manager or call :meth:`close`."""

    def __init__(self, path: str | os.PathLike[str] | None = None, create: bool = True):
        self.path = Path(path) if path is not None else default_store_path()
        if not create and not self.path.exists():
            raise UsageError(f"no results store at {self.path} (run 'gpubench run' first or pass --store)")
        if self.path.is_dir():
            raise UsageError(f"store path {self.path} is a directory")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            self.db.execute("PRAGMA busy_timeout = 60000")
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise UsageError(f"{self.path} is not a gpubench store: {exc}") from exc

    # --- schema --------------------------------------------------------------------------------
    @property
    def schema_version(self) -> int:
        """Schema version of the open database."""
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self) -> None:
        if self.schema_version == SCHEMA_VERSION:
            return
        self.db.execute("BEGIN EXCLUSIVE")
        try:
            version = self.schema_version  # re-read: another process may have migrated meanwhile
            if version > SCHEMA_VERSION:
                raise GpubenchError(f"store {self.path} has schema {version}, newer than this gpubench "
                                    f"({SCHEMA_VERSION}): upgrade gpubench")
            while version < SCHEMA_VERSION:
                for statement in MIGRATIONS[version].split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                version += 1
                self.db.execute(f"PRAGMA user_version = {version}")
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- runs ----------------------------------------------------------------------------------
    def begin_run(self, suite: str, *, baseline: str = "", label: str = "", command: str = "",
                  settings: dict[str, Any] | None = None, environment: dict[str, Any] | None = None,
                  started_at: str | None = None) -> int:
        """Create a run in state ``running`` and return its id."""
        cur = self.db.execute(
            "INSERT INTO runs (started_at, status, suite, label, baseline, command, settings, environment)"
            " VALUES (?, 'running', ?, ?, ?, ?, ?, ?)",
            (started_at or now_iso(), suite, label, baseline, command, json.dumps(settings or {}),
             json.dumps(environment or {}, default=str)),
        )
        return int(cur.lastrowid)

    def update_environment(self, run_id: int, environment: dict[str, Any]) -> None:
        """Replace the stored environment of a run (backends add their facts as they start)."""
        self.db.execute("UPDATE runs SET environment = ? WHERE id = ?",
                        (json.dumps(environment, default=str), run_id))

    def finish_run(self, run_id: int, status: str = "complete") -> None:
        """Mark a run finished with ``status`` (complete, interrupted or failed)."""
        if status not in RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        self.db.execute("UPDATE runs SET status = ?, finished_at = ? WHERE id = ?", (status, now_iso(), run_id))

    def add_result(self, run_id: int, result: CaseResult) -> int:
        """Commit one case result at once (its own transaction)."""
        s = result.spec
        cur = self.db.execute(
            "INSERT INTO results (run_id, created_at, workload, backend, device, dtype, variant, params,"
            " spec_hash, status, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, now_iso(), s.workload, s.backend, s.device, s.dtype, s.variant,
             json.dumps(s.param_dict, sort_keys=True), result.spec_hash, result.status,
             json.dumps(result.to_dict())),
        )
        return int(cur.lastrowid)

    def add_ceiling(self, run_id: int, device: str, kind: str, value: float, unit: str,
                    dtype: str = "", method: str = "") -> None:
        """Store one measured machine ceiling (peak FLOP/s or bandwidth) for a run."""
        self.db.execute(
            "INSERT INTO ceilings (run_id, device, kind, dtype, value, unit, method) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (run_id, device, kind, dtype, float(value), unit, method),
        )

    def ceilings(self, run_id: int) -> list[dict[str, Any]]:
        """Ceilings stored for a run."""
        rows = self.db.execute(
            "SELECT device, kind, dtype, value, unit, method FROM ceilings WHERE run_id = ? ORDER BY id", (run_id,))
        return [dict(zip(("device", "kind", "dtype", "value", "unit", "method"), r)) for r in rows]

    def applicable_ceilings(self, run: RunInfo, extra_runs: list[RunInfo] | tuple[RunInfo, ...] = ()
                            ) -> tuple[list[dict[str, Any]], int | None]:
        """The measured ceilings that apply to ``run`` and the calibration run they come from: its own, else
        those of the newest calibration of the same machine (``extra_runs`` first). A ``--quick``
        calibration's ceilings are provisional and never a roof (:func:`provisional`)."""
        if not provisional(run):
            own = self.ceilings(run.id)
            if own:
                return own, run.id
        key = machine_key(run.environment or {})
        candidates = [r for r in extra_runs if r.suite == CALIBRATE_SUITE]
        candidates += [r for r in reversed(self.runs()) if r.suite == CALIBRATE_SUITE]
        for cal in candidates:
            if provisional(cal) or machine_key(cal.environment or {}) != key:
                continue
            found = self.ceilings(cal.id)
            if found:
                return found, cal.id
        return [], None

    # --- reading -------------------------------------------------------------------------------
    def _run_from_row(self, row: tuple) -> RunInfo:
        return RunInfo(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7],
                       json.loads(row[8] or "{}"), json.loads(row[9] or "{}"))

    _RUN_COLS = "id, started_at, finished_at, status, suite, label, baseline, command, settings, environment"

    def runs(self) -> list[RunInfo]:
        """Every run, oldest first."""
        return [self._run_from_row(r) for r in self.db.execute(f"SELECT {self._RUN_COLS} FROM runs ORDER BY id")]

    def run(self, ref: str | int | None = None) -> RunInfo:
        """Find a run by id, or ``latest`` / ``latest~N`` / None for the newest (``UsageError`` if none)."""
        if ref is None or str(ref).startswith("latest"):
            back = 0
            if ref is not None and str(ref) != "latest":
                try:
                    back = int(str(ref).split("~", 1)[1])
                except (IndexError, ValueError) as exc:
                    raise UsageError(f"bad run reference {ref!r} (use an id, latest or latest~N)") from exc
            rows = self.db.execute(f"SELECT {self._RUN_COLS} FROM runs ORDER BY id DESC LIMIT 1 OFFSET ?",
                                   (back,)).fetchall()
            if not rows:
                raise UsageError(f"no runs in {self.path}" if back == 0 else f"no run {ref!r} in {self.path}")
            return self._run_from_row(rows[0])
        try:
            run_id = int(ref)
        except ValueError as exc:
            raise UsageError(f"bad run id {ref!r} (use a number, latest or latest~N)") from exc
        rows = self.db.execute(f"SELECT {self._RUN_COLS} FROM runs WHERE id = ?", (run_id,)).fetchall()
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

    def count_results(self, run_id: int | None = None) -> int:
        """Number of stored results (of one run, or all)."""
        if run_id is None:
            return self.db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        return self.db.execute("SELECT COUNT(*) FROM results WHERE run_id = ?", (run_id,)).fetchone()[0]
