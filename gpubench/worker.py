"""The worker process that runs a backend's cases (each through :func:`gpubench.case.run_case`).

The worker talks to the runner over JSON lines on a private copy of its stdout; its own
stdout is pointed at stderr so that a framework printing to stdout cannot corrupt the protocol.
Requests: ``{"op": "env", "backend": ...}`` (the backend probe of ``gpubench run``, ``list`` and
``env``), ``{"op": "check", "spec": ...}`` (the ``skipped`` record of a case that cannot run here, or
null: asked by a time-limited run before it leaves a case out) and ``{"op": "case", "spec": ...,
"settings": ..., "wait_idle_s": S}`` (``wait_idle_s`` optional: wait up to S seconds for the machine to
go quiet before timing); every request gets
exactly one reply line. A worker dies with the process that started it
(:func:`gpubench.lifeline.die_with_parent`), even when that process is killed with SIGKILL.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import sys
import traceback
from dataclasses import asdict
from typing import Any

from gpubench.case import run_case
from gpubench.harness import HarnessSettings
from gpubench.records import CaseResult, CaseSpec


def backend_environment(name: str) -> dict[str, Any]:
    """The backend's own environment facts, or its unavailability reason; never raises.

    Always ``available`` (bool); ``reason`` when unavailable; ``device_kinds`` and ``workloads``
    (what it declares) whenever the adapter could be constructed; its environment facts and
    ``devices`` when available. A broken plug-in (its module or constructor raises, or ``load``
    raises something other than :class:`Unavailable`) is unavailable with the error as reason.
    """
    from gpubench.backends import get_backend
    from gpubench.errors import GpubenchError

    try:
        backend = get_backend(name)
    except GpubenchError as exc:
        return {"available": False, "reason": str(exc)}
    env: dict[str, Any] = {}
    try:
        env["device_kinds"] = list(backend.device_kinds)
        env["workloads"] = list(backend.workloads())
        reason = backend.availability()
    except Exception as exc:  # noqa: BLE001 - a plug-in's bug is its unavailability, not a crash
        reason = f"{name}: {type(exc).__name__}: " + (str(exc).strip().splitlines() or [""])[0][:300]
    if reason:
        return {"available": False, "reason": reason, **env}
    env["available"] = True
    try:
        env.update(backend.environment())
        env["devices"] = [asdict(d) for d in backend.devices()]
    except Exception as exc:  # noqa: BLE001 - environment facts are best effort
        env["environment_error"] = f"{type(exc).__name__}: {exc}"
    return env


def _serve(req: dict[str, Any]) -> dict[str, Any]:
    """The reply to one request."""
    if req.get("op") == "env":
        return backend_environment(req["backend"])
    if req.get("op") == "check":  # would this case be skipped here? (the runner asks before leaving it out)
        from gpubench.case import skipped_case

        skipped = skipped_case(CaseSpec.from_dict(req["spec"]))
        return {"skipped": skipped.to_dict() if skipped is not None else None}
    if req.get("op") == "case":
        spec = CaseSpec.from_dict(req["spec"])
        try:
            return run_case(spec, HarnessSettings(**req["settings"]), float(req.get("wait_idle_s") or 0.0)).to_dict()
        except Exception as exc:  # noqa: BLE001 - whatever happens to a case is its result
            msg = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:500]
            return CaseResult(spec=spec, status="error", error=msg,
                              metrics={"traceback": traceback.format_exc()[-4000:]}).to_dict()
    return {"error": f"unknown request {req.get('op')!r}"}


def main() -> int:
    """Serve requests from the runner until stdin closes; die with the runner, however it ends."""
    from gpubench.lifeline import PARENT_PID_ENV, become_subreaper, die_with_parent, kill_descendants

    parent = os.environ.pop(PARENT_PID_ENV, "")  # not inherited by the processes this worker starts
    die_with_parent(int(parent) if parent.isdigit() else None, pipe_fd=sys.stdin.fileno())
    # Orphans of the processes a backend starts become this worker's children, and die with it on exit
    # (registered first, so it runs after every library's own exit handlers).
    become_subreaper()
    atexit.register(kill_descendants)
    # Ctrl-C is the runner's to handle: it stops this process itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    proto = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    for line in sys.stdin:
        if not line.strip():
            continue
        reply = _serve(json.loads(line))
        proto.write(json.dumps(reply, default=str) + "\n")
        proto.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
