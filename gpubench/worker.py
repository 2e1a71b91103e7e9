"""The worker process that runs a backend's cases (each through :func:`gpubench.case.run_case`).

The worker talks to the runner over JSON lines on a private copy of its stdout; its own
stdout is pointed at stderr so that a framework printing to stdout cannot corrupt the protocol.
Requests: ``{"op": "env"}`` and ``{"op": "case", "spec": ..., "settings": ..., "wait_idle_s": S}``
(``wait_idle_s`` optional: wait up to S seconds for the machine to go quiet before timing); every
request gets exactly one reply line.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import asdict
from typing import Any

from gpubench.case import run_case
from gpubench.harness import HarnessSettings
from gpubench.records import CaseSpec


def backend_environment(name: str) -> dict[str, Any]:
    """The backend's own environment facts, or its unavailability reason."""
    from gpubench.backends import get_backend

    backend = get_backend(name)
    reason = backend.availability()
    if reason:
        return {"available": False, "reason": reason}
    env = {"available": True}
    try:
        env.update(backend.environment())
        env["devices"] = [asdict(d) for d in backend.devices()]
    except Exception as exc:  # noqa: BLE001 - environment facts are best effort
        env["environment_error"] = f"{type(exc).__name__}: {exc}"
    return env


def main() -> int:
    """Serve requests from the runner until stdin closes."""
    # Ctrl-C is the runner's to handle: it stops this process itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    proto = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        if req["op"] == "env":
            reply: dict[str, Any] = backend_environment(req["backend"])
        elif req["op"] == "case":
            spec = CaseSpec.from_dict(req["spec"])
            result = run_case(spec, HarnessSettings(**req["settings"]), float(req.get("wait_idle_s") or 0.0))
            reply = result.to_dict()
        else:
            reply = {"error": f"unknown request {req['op']!r}"}
        proto.write(json.dumps(reply, default=str) + "\n")
        proto.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
