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
another so that no two measurements disturb each other.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Any

from gpubench.errors import RunFailed, StoreError
from gpubench.harness import HarnessSettings
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
    """

    def __init__(self, store: ResultStore, settings: HarnessSettings = HarnessSettings(),
                 timeout_s: float = DEFAULT_TIMEOUT_S, progress: ProgressFn | None = None,
                 probe_timeout_s: float | None = None, profile: str = "", wait_idle_s: float = 0.0):
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
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

    def run(self, specs: Iterable[CaseSpec], *, suite: str, baseline: str = "", label: str = "",
            command: str = "", environment: dict[str, Any] | None = None) -> tuple[int, str]:
        """Run every spec; return ``(run_id, run status)``.

        Re-raises KeyboardInterrupt after marking the run ``interrupted``; any other error marks it
        ``failed`` (with the reason) and raises :class:`RunFailed` naming what was kept.
        """
        specs = list(specs)
        environment = dict(environment or {})
        environment.setdefault("backends", {})
        timeout = None if math.isinf(self.timeout_s) else self.timeout_s
        run_id = self.run_id = self.store.begin_run(suite, baseline=baseline, label=label, command=command,
                                                    settings={**asdict(self.settings), "timeout_s": timeout,
                                                              **({"profile": self.profile} if self.profile else {})},
                                                    environment=environment)
        self.done = 0
        self._worker: Worker | None = None
        stop_signals = [sig for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if sig is not None]
        old = {sig: signal.signal(sig, _sigterm_to_interrupt) for sig in stop_signals}
        try:
            self._run_all(specs, environment)
        except KeyboardInterrupt:
            self._stop_worker(kill=True)
            self.store.finish_run(run_id, "interrupted")
            raise
        except Exception as exc:  # noqa: BLE001 - whatever stops a run is recorded, never a traceback
            self._stop_worker(kill=True)
            short, full = _reason(exc)
            kept = f"{self.done} finished case{'s' if self.done != 1 else ''} kept in run {run_id}"
            try:
                self._mark_failed(run_id, full)
            except Exception as mark_exc:  # noqa: BLE001 - the store may be what failed
                raise RunFailed(f"{short}: {kept} (store {self.store.location}); the run could not be marked failed "
                                f"({_reason(mark_exc)[0]}) and will read as abandoned") from exc
            raise RunFailed(f"{short}: {kept} (store {self.store.location})") from exc
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
            self._stop_worker()
        self.store.finish_run(run_id, "complete")
        return run_id, "complete"

    def _mark_failed(self, run_id: int, reason: str) -> None:
        self.store.finish_run(run_id, "failed", reason)  # a store with a full disk makes room itself

    def _stop_worker(self, kill: bool = False) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.kill() if kill else worker.close()

    def _worker_for(self, backend: str, environment: dict[str, Any], probe_s: float) -> str | None:
        """Make ``self._worker`` a live worker for ``backend``; the reason to skip its cases if its probe failed."""
        from gpubench.probe import ask_backend

        worker = self._worker
        if worker is not None and worker.backend == backend and worker.proc.poll() is None:
            return None
        self._stop_worker()
        self._worker = Worker(backend)
        if backend in environment["backends"]:
            return None
        facts, answered = ask_backend(self._worker, backend, min(probe_s, self.timeout_s))
        environment["backends"][backend] = facts
        self.store.update_environment(self.run_id, environment)
        if not answered:
            self._stop_worker(kill=True)
            return facts["reason"]
        return None

    def _run_all(self, specs: list[CaseSpec], environment: dict[str, Any]) -> None:
        from gpubench.probe import probe_timeout

        probe_s = self.probe_timeout_s if self.probe_timeout_s is not None else probe_timeout()
        unprobed: dict[str, str] = {}  # backend -> why its probe failed: its cases are skipped
        # Group by backend (stable order) so each framework is imported once per worker.
        rank = {b: r for r, b in enumerate(dict.fromkeys(s.backend for s in specs))}
        for spec in sorted(specs, key=lambda s: rank[s.backend]):
            if self.progress:
                self.progress(self.done, len(specs), spec, None)
            if spec.backend not in unprobed:
                reason = self._worker_for(spec.backend, environment, probe_s)
                if reason:
                    unprobed[spec.backend] = reason
            if spec.backend in unprobed:
                result = CaseResult(spec, "skipped", error=unprobed[spec.backend])
            else:
                assert self._worker is not None
                result, self._worker = self._run_one(self._worker, spec)
            self.store.add_result(self.run_id, result)
            self.done += 1
            if self.progress:
                self.progress(self.done, len(specs), spec, result)

    def _run_one(self, worker: Worker, spec: CaseSpec) -> tuple[CaseResult, Worker | None]:
        t0 = time.perf_counter()
        try:
            payload: dict[str, Any] = {"op": "case", "spec": spec.to_dict(), "settings": asdict(self.settings)}
            if self.wait_idle_s > 0:
                payload["wait_idle_s"] = self.wait_idle_s
            reply = worker.request(payload, self.timeout_s + self.wait_idle_s)
            return CaseResult.from_dict(reply), worker
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            worker.kill()
            error = f"worker sent a malformed result ({type(exc).__name__}: {exc})"[:500]
            return CaseResult(spec, "error", error=error, wall_s=time.perf_counter() - t0), None
        except TimeoutError:
            worker.kill()
            return CaseResult(spec, "timeout", error=f"no result within {self.timeout_s:g} s; worker killed",
                              wall_s=time.perf_counter() - t0), None
        except WorkerDied as exc:
            worker.kill()
            return CaseResult(spec, "error", error=str(exc), wall_s=time.perf_counter() - t0), None
