"""The runner: one worker process per backend, one case at a time, every result committed at once.

Isolation rules: a case that crashes its worker (segfault, out-of-memory kill) is stored as
``error`` with the exit status and the tail of the worker's stderr; a case that runs past its
timeout is stored as ``timeout`` and its worker is killed; either way the next case gets a fresh
worker. A backend whose probe crashes or hangs has its cases skipped with that reason. Ctrl-C,
SIGTERM or SIGHUP stops the run: the worker is killed, every finished case stays in the store,
and the run is marked ``interrupted``. Any other error (a full disk, a bug) marks the run
``failed`` with the reason and raises :class:`~gpubench.errors.RunFailed`, one line that says how
many finished cases were kept. If the runner itself is killed (SIGKILL), its workers die with it
(:mod:`gpubench.lifeline`) and the run reads as ``abandoned``. Cases run strictly one after
another so that no two measurements disturb each other, in the order they are given
(:func:`gpubench.spec.run_order` decides it).

With a time limit (``time_limit_s``, counted from ``started``), a case starts only when its
estimate (:class:`gpubench.estimate.CostModel`: the case, plus its backend's startup when no worker
of that backend is running) fits in the time left; the cases that do not are left out, and later,
smaller ones still run. The cost model learns from every finished case. A case still running
when the limit passes is stopped and not kept. The run then ends ``time_limited`` with the reason
saying how many cases ran of how many; when every case fitted it ends ``complete``.

A CPU case given a limit per call (``cpu_limits``, from a suite entry's ``max_cpu_call_s``) is
skipped, with that reason, when its estimated call (refined by what the run measured so far) is
longer: a tour keeps its CPU baselines to the sizes where they take under a second a call.

The run is recorded through :class:`gpubench.recorder.RunRecorder` (source ``run`` or ``calibrate``).
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Any

from gpubench.errors import RunFailed, StoreError
from gpubench.estimate import CostModel, TimeBudget, device_kind, format_duration
from gpubench.harness import HarnessSettings
from gpubench.recorder import TIME_LIMITED, RunRecorder, RunSettings, ran_of_planned
from gpubench.records import CaseResult, CaseSpec
from gpubench.store import ResultStore
from gpubench.workerproc import Worker, WorkerDied

__all__ = ["DEFAULT_TIMEOUT_S", "Runner", "Worker", "WorkerDied"]

#: Per-case timeout in seconds; ``math.inf`` means no limit.
DEFAULT_TIMEOUT_S = 600.0
def _sigterm_to_interrupt(signum, frame):  # pragma: no cover - exercised through a subprocess test
    raise KeyboardInterrupt


def _reason(exc: BaseException) -> tuple[str, str]:
    """(a few words, one full line) describing why a run failed."""
    if isinstance(exc, StoreError):
        return exc.short, str(exc)
    line = f"{type(exc).__name__}: " + (str(exc).strip().splitlines() or [""])[0][:300]
    return line, line


ProgressFn = Callable[[int, int, CaseSpec, CaseResult | None], None]


class Runner:
    """Runs case specs through worker processes into a :class:`ResultStore` run.

    ``timeout_s`` is the per-case limit (``math.inf``: none); ``probe_timeout_s`` limits each
    backend's first request, its probe (default :func:`gpubench.probe.probe_timeout`).
    ``time_limit_s`` limits the whole run, counted from ``started`` (a ``clock`` reading; default: when
    :meth:`run` starts), with ``cost`` estimating each case (default: a :class:`CostModel` of ``settings``
    and the run's environment). ``cpu_limits`` maps CPU cases to their longest estimated call.
    ``source`` names the writer in the run's settings (``run`` or ``calibrate``).
    """

    def __init__(self, store: ResultStore, settings: HarnessSettings = HarnessSettings(),
                 timeout_s: float = DEFAULT_TIMEOUT_S, progress: ProgressFn | None = None,
                 probe_timeout_s: float | None = None, profile: str = "", wait_idle_s: float = 0.0, *,
                 source: str = "run", time_limit_s: float | None = None, cost: CostModel | None = None,
                 clock: Callable[[], float] = time.monotonic, started: float | None = None,
                 cpu_limits: dict[CaseSpec, float] | None = None):
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        if time_limit_s is not None and not time_limit_s > 0:
            raise ValueError(f"time_limit_s must be positive, got {time_limit_s}")
        self.store = store
        self.wait_idle_s = wait_idle_s
        """Each case waits up to this long for the machine to go quiet (``--wait-idle``; added to its timeout)."""
        self.settings = settings
        self.timeout_s = timeout_s
        self.progress = progress
        self.probe_timeout_s = probe_timeout_s
        self.run_id: int | None = None
        self.done = 0
        self.profile = profile
        """Name of the run profile (:mod:`gpubench.profile`), stored with the run's settings when given."""
        self.source = source
        self.time_limit_s = time_limit_s
        self.cost = cost
        self.clock = clock
        self.started = started
        self.cpu_limits = dict(cpu_limits or {})
        self.budget: TimeBudget | None = None
        self.planned = 0
        """Cases the run set out to run."""
        self.not_started: list[CaseSpec] = []
        """Cases the time limit left out (never started)."""
        self.cut: CaseSpec | None = None
        """The case that was running when the time limit passed (stopped, not kept)."""
        self.status = ""
        self.reason = ""
        self._pending: list[CaseSpec] = []
        self._worker: Worker | None = None

    def remaining_s(self) -> float | None:
        """Estimated seconds until the run ends: the cases still to come (and their backends' startups), at most the
        time left under the limit; None before the run starts."""
        if self.cost is None:
            return None
        left = self.budget.left() if self.budget is not None else math.inf
        total, alive = 0.0, self._worker.backend if self._worker is not None else None
        for spec in self._pending:
            need = self.cost.case_s(spec) + (self.cost.startup_s(spec.backend) if spec.backend != alive else 0.0)
            if total + need > left:
                continue  # it would not be started
            total += need
            alive = spec.backend
        return total

    def run(self, specs: Iterable[CaseSpec], *, suite: str, baseline: str = "", label: str = "",
            command: str = "", environment: dict[str, Any] | None = None) -> tuple[int, str]:
        """Run every spec, in the order given; return ``(run_id, run status)``.

        The status is ``complete``, or ``time_limited`` when the time limit left cases out. Re-raises
        KeyboardInterrupt after marking the run ``interrupted``; any other error marks it ``failed`` (with the
        reason) and raises :class:`RunFailed` naming what was kept.
        """
        specs = list(specs)
        environment = dict(environment or {})
        environment.setdefault("backends", {})
        if self.cost is None:
            self.cost = CostModel(self.settings, environment)
        if self.started is None:
            self.started = self.clock()
        if self.time_limit_s is not None:
            self.budget = TimeBudget(self.time_limit_s, self.clock, self.started)
        timeout = None if math.isinf(self.timeout_s) else self.timeout_s
        self.planned = len(specs)
        recorder = self.recorder = RunRecorder(
            self.store, suite, RunSettings(self.source, self.settings, self.profile, timeout, self.time_limit_s,
                                           len(specs), self.wait_idle_s),
            baseline=baseline, label=label, command=command, environment=environment)
        run_id = self.run_id = recorder.begin()
        self.done = 0
        self.not_started, self.cut = [], None
        self._worker = None
        stop_signals = [sig for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if sig is not None]
        old = {sig: signal.signal(sig, _sigterm_to_interrupt) for sig in stop_signals}
        try:
            self._run_all(specs, environment)
        except KeyboardInterrupt:
            self._stop_worker(kill=True)
            recorder.finish("interrupted")
            raise
        except Exception as exc:  # noqa: BLE001 - whatever stops a run is recorded, never a traceback
            self._stop_worker(kill=True)
            short, full = _reason(exc)
            kept = f"{self.done} finished case{'s' if self.done != 1 else ''} kept in run {run_id}"
            try:
                recorder.fail(full)
            except Exception as mark_exc:  # noqa: BLE001 - the store may be what failed
                raise RunFailed(f"{short}: {kept} (store {self.store.location}); the run could not be marked failed "
                                f"({_reason(mark_exc)[0]}) and will read as abandoned") from exc
            raise RunFailed(f"{short}: {kept} (store {self.store.location})") from exc
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
            self._stop_worker()
            self._pending = []
        if self.not_started or self.cut is not None:
            self.status = TIME_LIMITED
            self.reason = ran_of_planned(self.done, self.planned, self.time_limit_s, len(self.not_started),
                                         self.cut.label() if self.cut is not None else "")
        else:
            self.status = "complete"
            self.reason = ""
        recorder.finish(self.status, self.reason)
        return run_id, self.status

    def _stop_worker(self, kill: bool = False) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.kill() if kill else worker.close()

    def _alive(self, backend: str) -> bool:
        worker = self._worker
        return worker is not None and worker.backend == backend and worker.proc.poll() is None

    def _worker_for(self, backend: str, environment: dict[str, Any], probe_s: float) -> str | None:
        """Make ``self._worker`` a live worker for ``backend``; the reason to skip its cases if its probe failed."""
        from gpubench.probe import ask_backend

        if self._alive(backend):
            return None
        self._stop_worker()
        t0 = self.clock()
        self._worker = Worker(backend)
        if backend in environment["backends"]:
            return None
        limit = min(probe_s, self.timeout_s)
        if self.budget is not None:
            limit = max(min(limit, self.budget.left()), 1e-3)
        facts, answered = ask_backend(self._worker, backend, limit)
        if answered and self.cost is not None:
            self.cost.observe_startup(backend, self.clock() - t0, bool(facts.get("available", True)))
        if not answered and self.budget is not None and self.budget.expired():
            self._stop_worker(kill=True)
            raise _LimitReached
        environment["backends"][backend] = facts
        self.recorder.update_environment(environment)
        if not answered:
            self._stop_worker(kill=True)
            return facts["reason"]
        return None

    def _fits(self, spec: CaseSpec) -> bool:
        """Whether ``spec``'s estimate (with its backend's startup when no worker of it runs) fits the time left."""
        if self.budget is None:
            return True
        assert self.cost is not None
        need = self.cost.case_s(spec) + (0.0 if self._alive(spec.backend) else self.cost.startup_s(spec.backend))
        return self.budget.fits(need)

    def _skipped_here(self, spec: CaseSpec, environment: dict[str, Any], probe_s: float) -> CaseResult | None:
        """The ``skipped`` record of a case whose estimate does not fit, when its backend would skip it anyway
        (unsupported on this device, too large for the memory free): asked of its worker, if one is running or
        starting one fits the time left; None otherwise (the case is then left out, not run)."""
        assert self.budget is not None and self.cost is not None
        if not self._alive(spec.backend) and not self.budget.fits(self.cost.startup_s(spec.backend)):
            return None
        try:
            if self._worker_for(spec.backend, environment, probe_s):
                return None
            assert self._worker is not None
            reply = self._worker.request({"op": "check", "spec": spec.to_dict()},
                                         min(self.timeout_s, max(self.budget.left(), 1e-3)))
            found = reply.get("skipped")
            return CaseResult.from_dict(found) if found else None
        except (TimeoutError, WorkerDied, ValueError, KeyError, TypeError, AttributeError):
            self._stop_worker(kill=True)
            return None

    def _cpu_gate(self, spec: CaseSpec) -> CaseResult | None:
        """The skip of a CPU case whose estimated call is longer than its entry's ``max_cpu_call_s``, else None."""
        limit = self.cpu_limits.get(spec)
        if limit is None or device_kind(spec) != "cpu":
            return None
        assert self.cost is not None
        call = self.cost.call_s(spec)
        if call <= limit:
            return None
        return CaseResult(spec, "skipped", metrics={"estimated_call_s": call, "max_cpu_call_s": limit},
                          error=f"left out: a call on this CPU is estimated above the suite's max_cpu_call_s "
                                f"({format_duration(limit)})")

    def _run_all(self, specs: list[CaseSpec], environment: dict[str, Any]) -> None:
        from gpubench.probe import probe_timeout

        probe_s = self.probe_timeout_s if self.probe_timeout_s is not None else probe_timeout()
        unprobed: dict[str, str] = {}  # backend -> why its probe failed: its cases are skipped
        total = len(specs)
        self._pending = list(specs)
        while self._pending:
            spec = self._pending.pop(0)
            if spec.backend not in unprobed and not self._fits(spec):
                skipped = self._skipped_here(spec, environment, probe_s)
                if skipped is None:
                    self.not_started.append(spec)
                    continue
                self.recorder.add(skipped)  # it would not have run anyway: a skip costs no time
                self.done += 1
                if self.progress:
                    self.progress(self.done, total, spec, skipped)
                continue
            if self.progress:
                self.progress(self.done, total, spec, None)
            try:
                if spec.backend not in unprobed:
                    reason = self._worker_for(spec.backend, environment, probe_s)
                    if reason:
                        unprobed[spec.backend] = reason
                if spec.backend in unprobed:
                    result = CaseResult(spec, "skipped", error=unprobed[spec.backend])
                else:
                    result = self._cpu_gate(spec)
                    if result is None:
                        assert self._worker is not None
                        t0 = self.clock()
                        result, self._worker = self._run_one(self._worker, spec)
                        assert self.cost is not None
                        self.cost.observe(spec, self.clock() - t0, result)
            except _LimitReached:
                self.cut = spec
                self.not_started += self._pending
                self._pending = []
                return
            self.recorder.add(result)
            self.done += 1
            if self.progress:
                self.progress(self.done, total, spec, result)

    def _run_one(self, worker: Worker, spec: CaseSpec) -> tuple[CaseResult, Worker | None]:
        t0 = time.perf_counter()
        timeout = self.timeout_s + self.wait_idle_s
        limited = False
        if self.budget is not None and self.budget.left() < timeout:
            timeout, limited = max(self.budget.left(), 1e-3), True
        try:
            payload: dict[str, Any] = {"op": "case", "spec": spec.to_dict(), "settings": asdict(self.settings)}
            if self.wait_idle_s > 0:
                payload["wait_idle_s"] = self.wait_idle_s
            reply = worker.request(payload, timeout)
            return CaseResult.from_dict(reply), worker
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            worker.kill()
            error = f"worker sent a malformed result ({type(exc).__name__}: {exc})"[:500]
            return CaseResult(spec, "error", error=error, wall_s=time.perf_counter() - t0), None
        except TimeoutError:
            worker.kill()
            if limited:
                raise _LimitReached from None
            return CaseResult(spec, "timeout", error=f"no result within {self.timeout_s:g} s; worker killed",
                              wall_s=time.perf_counter() - t0), None
        except WorkerDied as exc:
            worker.kill()
            return CaseResult(spec, "error", error=str(exc), wall_s=time.perf_counter() - t0), None


class _LimitReached(Exception):
    """The run's time limit passed while a case (or its backend's probe) was running."""
