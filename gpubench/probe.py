"""Backend probes: ask backends about themselves in worker processes, never in the caller's.

``gpubench list`` and ``gpubench env`` need each backend's availability, reason, devices and
environment facts. Finding them out runs plug-in code (imports, driver calls) that may crash,
hang or print; so each backend is asked in its own ``python -m gpubench.worker`` process
(the ``{"op": "env"}`` request ``gpubench run`` uses), all at once, each within a time limit.
A backend whose probe crashes or times out is unavailable, with that as its reason.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gpubench.errors import UsageError

#: Seconds a backend probe may take (``$GPUBENCH_PROBE_TIMEOUT`` or ``--probe-timeout`` change it).
DEFAULT_PROBE_TIMEOUT_S = 60.0
PROBE_TIMEOUT_ENV = "GPUBENCH_PROBE_TIMEOUT"


def probe_timeout(value: float | str | None = None) -> float:
    """The probe time limit in seconds: ``value``, else ``$GPUBENCH_PROBE_TIMEOUT``, else 60.

    A positive number; ``inf`` means no limit. Anything else is a :class:`UsageError`.
    """
    where = "--probe-timeout"
    if value is None:
        value = os.environ.get(PROBE_TIMEOUT_ENV) or None
        where = f"${PROBE_TIMEOUT_ENV}"
    if value is None:
        return DEFAULT_PROBE_TIMEOUT_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not seconds > 0:
        raise UsageError(f"{where} must be a positive number of seconds (or inf), got {value!r}")
    return seconds


def ask_backend(worker: Any, name: str, timeout_s: float) -> tuple[dict[str, Any], bool]:
    """Send the probe request to a started worker: (facts, whether the probe itself answered).

    A probe that times out, dies or answers nonsense gives ``available: False`` with that as
    the reason, and False; the caller should kill that worker.
    """
    from gpubench.workerproc import WorkerDied

    try:
        reply = worker.request({"op": "env", "backend": name}, timeout_s)
    except TimeoutError:
        return {"available": False, "reason": f"{name}: probe gave no answer within {timeout_s:g} s"}, False
    except WorkerDied as exc:
        return {"available": False, "reason": f"{name}: probe failed: {exc}"}, False
    except ValueError as exc:
        return {"available": False, "reason": f"{name}: probe sent a malformed reply ({exc})"}, False
    if not isinstance(reply, dict) or not isinstance(reply.get("available"), bool):
        return {"available": False, "reason": f"{name}: probe sent a malformed reply"}, False
    return reply, True


def probe_backends(names: list[str] | tuple[str, ...], timeout_s: float | None = None) -> dict[str, dict[str, Any]]:
    """Probe each named backend in its own worker process, concurrently; name → facts.

    Facts are those of :func:`gpubench.worker.backend_environment`: ``available`` always,
    ``reason`` when unavailable, ``device_kinds``, ``workloads``, ``devices`` and environment facts
    when known. Returns within about ``timeout_s`` (default :func:`probe_timeout`) whatever the
    backends do.
    """
    from gpubench.workerproc import Worker

    timeout_s = probe_timeout() if timeout_s is None else timeout_s
    if not names:
        return {}
    # Workers start in this thread: a worker dies with the thread that started it (PR_SET_PDEATHSIG).
    workers = {name: Worker(name) for name in names}
    try:
        with ThreadPoolExecutor(max_workers=len(workers)) as pool:
            futures = {name: pool.submit(ask_backend, w, name, timeout_s) for name, w in workers.items()}
            return {name: f.result()[0] for name, f in futures.items()}
    finally:
        for w in workers.values():
            w.kill()
