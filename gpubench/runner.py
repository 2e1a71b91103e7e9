"""The runner: one worker process per backend, one case at a time, every result committed at once.

Isolation rules: a case that crashes its worker (segfault, out-of-memory kill) is stored as
``error`` with the exit status and the tail of the worker's stderr; a case that runs past its
timeout is stored as ``timeout`` and its worker is killed; either way the next case gets a fresh
worker. Ctrl-C or SIGTERM stops the run: the worker is killed, every finished case stays in the
store, and the run is marked ``interrupted``. Cases run strictly one after another so that no
two measurements disturb each other.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Any

from gpubench.harness import HarnessSettings
from gpubench.records import CaseResult, CaseSpec
from gpubench.store import ResultStore

DEFAULT_TIMEOUT_S = 600.0


class WorkerDied(Exception):
    """The worker exited or stopped answering."""


class Worker:
    """A ``python -m gpubench.worker`` subprocess serving one backend."""

    def __init__(self, backend: str):
        self.backend = backend
        self.stderr = tempfile.TemporaryFile(mode="w+b")
        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gpubench.worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.stderr, env=env, start_new_session=True,
        )
        self.sel = selectors.DefaultSelector()
        assert self.proc.stdout is not None
        self.sel.register(self.proc.stdout, selectors.EVENT_READ)
        self._buf = b""

    def request(self, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send one request and wait up to ``timeout`` seconds for its reply."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write((json.dumps(payload) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise WorkerDied(self.death_reason()) from exc
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            if not self.sel.select(left):
                continue
            chunk = os.read(self.proc.stdout.fileno(), 1 << 20)
            if not chunk:
                self.proc.wait(timeout=5)
                raise WorkerDied(self.death_reason())
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return json.loads(line)

    def stderr_tail(self, limit: int = 300) -> str:
        """The last non-empty line of the worker's stderr (for error messages)."""
        self.stderr.seek(0)
        lines = [ln for ln in self.stderr.read().decode(errors="replace").splitlines() if ln.strip()]
        return lines[-1][-limit:] if lines else ""

    def death_reason(self) -> str:
        """Why the worker ended, as one line."""
        code = self.proc.poll()
        if code is None:
            return "worker stopped answering"
        if code < 0:
            sig = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            what = f"worker killed by {sig}"
            if -code == signal.SIGKILL:
                what += " (out of memory?)"
        else:
            what = f"worker exited with status {code}"
        tail = self.stderr_tail()
        return f"{what}: {tail}" if tail else what

    def kill(self) -> None:
        """Stop the worker and everything it started."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
        self.proc.wait()
        self.close_files()

    def close(self) -> None:
        """Ask the worker to exit (stdin closed), killing it if it does not."""
        if self.proc.poll() is None and self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()

    def close_files(self) -> None:
        self.sel.close()
        for f in (self.proc.stdout, self.proc.stdin):
            if f is not None and not f.closed:
                f.close()
        self.stderr.close()


def _sigterm_to_interrupt(signum, frame):  # pragma: no cover - exercised through a subprocess test
    raise KeyboardInterrupt


ProgressFn = Callable[[int, int, CaseSpec, CaseResult | None], None]


class Runner:
    """Runs case specs through worker processes into a :class:`ResultStore` run."""

    def __init__(self, store: ResultStore, settings: HarnessSettings = HarnessSettings(),
                 timeout_s: float = DEFAULT_TIMEOUT_S, progress: ProgressFn | None = None, wait_idle_s: float = 0.0):
        self.store = store
        self.wait_idle_s = wait_idle_s
        """Each case waits up to this long for the machine to go quiet (``--wait-idle``; added to its timeout)."""
        self.settings = settings
        self.timeout_s = timeout_s
        self.progress = progress

    def run(self, specs: Iterable[CaseSpec], *, suite: str, baseline: str = "", label: str = "",
            command: str = "", environment: dict[str, Any] | None = None) -> tuple[int, str]:
        """Run every spec; return ``(run_id, run status)``. Re-raises KeyboardInterrupt after recording it."""
        specs = list(specs)
        environment = dict(environment or {})
        environment.setdefault("backends", {})
        run_id = self.run_id = self.store.begin_run(suite, baseline=baseline, label=label, command=command,
                                      settings={**asdict(self.settings), "timeout_s": self.timeout_s},
                                      environment=environment)
        old = signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
        worker: Worker | None = None
        done = 0
        try:
            # Group by backend (stable order) so each framework is imported once per worker.
            rank = {b: r for r, b in enumerate(dict.fromkeys(s.backend for s in specs))}
            for spec in sorted(specs, key=lambda s: rank[s.backend]):
                if self.progress:
                    self.progress(done, len(specs), spec, None)
                if worker is None or worker.backend != spec.backend or worker.proc.poll() is not None:
                    if worker is not None:
                        worker.close()
                    worker = Worker(spec.backend)
                    if spec.backend not in environment["backends"]:
                        try:
                            environment["backends"][spec.backend] = worker.request(
                                {"op": "env", "backend": spec.backend}, self.timeout_s)
                        except (TimeoutError, WorkerDied) as exc:
                            environment["backends"][spec.backend] = {"available": False,
                                                                     "reason": str(exc) or "timed out"}
                            worker.kill()
                            worker = Worker(spec.backend)
                        self.store.update_environment(run_id, environment)
                result, worker = self._run_one(worker, spec)
                self.store.add_result(run_id, result)
                done += 1
                if self.progress:
                    self.progress(done, len(specs), spec, result)
        except KeyboardInterrupt:
            if worker is not None:
                worker.kill()
                worker = None
            self.store.finish_run(run_id, "interrupted")
            raise
        finally:
            signal.signal(signal.SIGTERM, old)
            if worker is not None:
                worker.close()
        self.store.finish_run(run_id, "complete")
        return run_id, "complete"

    def _run_one(self, worker: Worker, spec: CaseSpec) -> tuple[CaseResult, Worker | None]:
        t0 = time.perf_counter()
        try:
            payload: dict[str, Any] = {"op": "case", "spec": spec.to_dict(), "settings": asdict(self.settings)}
            if self.wait_idle_s > 0:
                payload["wait_idle_s"] = self.wait_idle_s
            reply = worker.request(payload, self.timeout_s + self.wait_idle_s)
            return CaseResult.from_dict(reply), worker
        except TimeoutError:
            worker.kill()
            return CaseResult(spec, "timeout", error=f"no result within {self.timeout_s:g} s; worker killed",
                              wall_s=time.perf_counter() - t0), None
        except WorkerDied as exc:
            worker.kill()
            return CaseResult(spec, "error", error=str(exc), wall_s=time.perf_counter() - t0), None
