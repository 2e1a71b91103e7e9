"""One recorder for every writer of runs: ``gpubench run``, ``gpubench calibrate``, the collective launcher
(``python -m gpubench.collective``) and the pytest plug-in (``--gpubench-store``).

Each of them records a run the same way through :class:`RunRecorder`: the run begins in state ``running``
with its settings in one schema (:class:`RunSettings`), every finished case is committed at once (so a run
cut short keeps every case it finished), and the run ends ``complete``, ``time_limited`` (a time limit left
cases out: the reason says how many ran of how many), ``interrupted`` (Ctrl-C, SIGTERM) or ``failed`` (with
the reason; a store whose disk is full makes room itself).

The settings schema (``settings`` of a run, version :data:`SETTINGS_SCHEMA`) is flat, so that older readers
keep working: the harness settings (:class:`~gpubench.harness.HarnessSettings`: ``warmup_s``, ``budget_s``,
``target_rel_ci``, ...), then ``schema``, ``source`` (``run``, ``calibrate``, ``collective``, ``pytest``),
``profile`` (:mod:`gpubench.profile`), ``timeout_s`` (per case; None for no limit), ``time_limit_s`` (the
whole run; None for none), ``planned_cases`` (cases the run set out to run, where known), ``wait_idle_s``,
and ``extra`` (what one writer adds: the collective's world size, say).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from gpubench.harness import HarnessSettings
from gpubench.records import CaseResult

#: Version of the run settings schema (:meth:`RunSettings.to_dict`).
SETTINGS_SCHEMA = 1
#: Writers of runs (``source`` in the settings).
SOURCES = ("run", "calibrate", "collective", "pytest")
#: Status of a run that a time limit cut short (see :data:`gpubench.store.RUN_STATUSES`).
TIME_LIMITED = "time_limited"


@dataclass(frozen=True)
class RunSettings:
    """How a run was measured: the one settings schema of every writer (see the module's docstring)."""

    source: str
    harness: HarnessSettings = HarnessSettings()
    profile: str = ""
    timeout_s: float | None = None
    time_limit_s: float | None = None
    planned_cases: int | None = None
    wait_idle_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"unknown run source {self.source!r} (known: {', '.join(SOURCES)})")

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready settings of a run (flat harness fields first, as runs have always stored them)."""
        def finite(x: float | None) -> float | None:
            return None if x is None or math.isinf(x) else float(x)

        out: dict[str, Any] = {**asdict(self.harness), "schema": SETTINGS_SCHEMA, "source": self.source,
                               "timeout_s": finite(self.timeout_s), "time_limit_s": finite(self.time_limit_s),
                               "wait_idle_s": float(self.wait_idle_s)}
        if self.profile:
            out["profile"] = self.profile
        if self.planned_cases is not None:
            out["planned_cases"] = int(self.planned_cases)
        if self.extra:
            out["extra"] = dict(self.extra)
        return out


class RunRecorder:
    """Records one run in a :class:`~gpubench.store.ResultStore`: :meth:`begin`, :meth:`add` each finished case,
    :meth:`finish` (or :meth:`fail`). The store stays the caller's to open and close."""

    def __init__(self, store, suite: str, settings: RunSettings, *, baseline: str = "", label: str = "",
                 command: str = "", environment: dict[str, Any] | None = None):
        self.store = store
        self.suite = suite
        self.settings = settings
        self.baseline = baseline
        self.label = label
        self.command = command
        self.environment: dict[str, Any] = dict(environment or {})
        self.run_id: int | None = None
        self.added = 0
        """Cases committed so far."""

    def begin(self) -> int:
        """Create the run (state ``running``) and return its id."""
        self.run_id = self.store.begin_run(self.suite, baseline=self.baseline, label=self.label,
                                           command=self.command, settings=self.settings.to_dict(),
                                           environment=self.environment)
        return self.run_id

    def _id(self) -> int:
        if self.run_id is None:
            raise RuntimeError("RunRecorder: begin() the run first")
        return self.run_id

    def add(self, result: CaseResult) -> None:
        """Commit one finished case at once."""
        self.store.add_result(self._id(), result)
        self.added += 1

    def update_environment(self, environment: dict[str, Any] | None = None) -> None:
        """Store the run's environment again (backends add their facts as they start)."""
        if environment is not None:
            self.environment = environment
        self.store.update_environment(self._id(), self.environment)

    def add_ceilings(self, ceilings: list[dict[str, Any]], quality: str = "measured") -> None:
        """Store ceiling rows (:func:`gpubench.calibrate.derive_ceilings`) with this run, in one transaction."""
        run_id = self._id()
        with self.store.transaction():
            for c in ceilings:
                self.store.add_ceiling(run_id, c["device"], c["kind"], c["value"], c["unit"], dtype=c.get("dtype", ""),
                                       method=c.get("method", ""), device_name=c.get("device_name", ""),
                                       quality=c.get("quality") or quality)

    def finish(self, status: str = "complete", reason: str = "") -> None:
        """End the run: ``complete``, ``time_limited``, ``interrupted`` or ``failed``, and why."""
        self.store.finish_run(self._id(), status, reason)

    def fail(self, reason: str) -> None:
        """Mark the run ``failed`` (a store whose disk is full makes room itself: the SQLite store checkpoints its
        write-ahead log and tries once more)."""
        self.finish("failed", reason)


def ran_of_planned(ran: int, planned: int, time_limit_s: float | None, not_started: int, cut: str = "") -> str:
    """The sentence a time-limited run ends with: how many cases ran of how many, and why the rest did not."""
    from gpubench.estimate import format_duration

    text = f"time limit {format_duration(time_limit_s)}: {ran} of {planned} cases ran"
    if not_started:
        text += f", {not_started} not started (their estimates did not fit in the time left)"
    if cut:
        text += f"; stopped at the limit during {cut} (not kept)"
    return text
