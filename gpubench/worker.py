"""Running one case (:func:`measure_case`) and the worker process that runs a backend's cases.

The worker talks to the runner over JSON lines on a private copy of its stdout; its own
stdout is pointed at stderr so that a framework printing to stdout cannot corrupt the protocol.
Requests: ``{"op": "env", "backend": ...}`` (the backend probe of ``gpubench run``, ``list`` and
``env``) and ``{"op": "case", "spec": ..., "settings": ...}``; every request gets exactly one reply
line. A worker dies with the process that started it (:func:`gpubench.lifeline.die_with_parent`),
even when that process is killed with SIGKILL.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import time
import traceback
from dataclasses import asdict
from typing import Any

import numpy as np

from gpubench.errors import Unavailable
from gpubench.harness import HarnessSettings, measure
from gpubench.records import CaseResult, CaseSpec, spec_hash


def case_seed(spec: CaseSpec) -> int:
    """Seed of a case's random inputs: derived from its spec, so every tool draws the same inputs."""
    return int(hashlib.sha256(spec.match_key().encode()).hexdigest()[:8], 16)


def _result(spec: CaseSpec, status: str, error: str = "", **kw: Any) -> CaseResult:
    return CaseResult(spec=spec, status=status, error=error, **kw)


def measure_case(spec: CaseSpec, settings: HarnessSettings = HarnessSettings()) -> CaseResult:
    """Run one case in this process: check availability, build, verify against float64, time.

    Never raises for a problem of the case itself: an unavailable backend, device or dtype is
    ``skipped``; an exception is ``error``; a wrong output is ``incorrect`` (timed, but never
    reported as a speedup).
    """
    from gpubench.backends import get_backend
    from gpubench.workloads import get_workload

    t0 = time.perf_counter()
    workload = get_workload(spec.workload)
    params = workload.normalize_params(spec.param_dict)
    backend = get_backend(spec.backend)
    sources = {f"workload:{workload.name}": f"v{workload.version}"}
    base = {"flops": workload.flops(params), "bytes": workload.bytes_moved(params, spec.dtype)}
    op = None
    try:
        backend.load()
        device = backend.resolve_device(spec.device)
        reason = backend.unsupported(spec, params, device)
        if reason:
            return _result(spec, "skipped", reason, spec_hash=spec_hash(spec, sources), device_name=device.name)
        need = workload.memory_bytes(params, spec.dtype)
        if device.memory_bytes and device.kind != "cpu" and need > device.memory_bytes:
            return _result(spec, "skipped", f"needs about {need / 2**30:.1f} GiB, {device.id} has "
                           f"{device.memory_bytes / 2**30:.1f} GiB", spec_hash=spec_hash(spec, sources))
        inputs = workload.make_inputs(params, spec.dtype, np.random.default_rng(case_seed(spec)))
        # The reference comes first, from pristine inputs: an op may update its inputs in place.
        ref = workload.reference(inputs, params)
        op = backend.build(spec, params, inputs, device)
        sources.update(op.sources)
        # Correctness first: one call on fresh inputs, checked against the float64 reference.
        op.call()
        out = op.result()
        rel, tol = workload.check(out, ref, params, spec.dtype)
        del out, inputs, ref
        if getattr(workload, "self_timed", False):
            # A training run is timed from within (per epoch) during the call above; never repeated.
            m = workload.measurement(op, settings)
        else:
            m = measure(op.call, op.timer, settings)
        ok = rel <= tol
        return CaseResult(
            spec=spec, status="ok" if ok else "incorrect",
            error="" if ok else f"relative error {rel:.3g} exceeds tolerance {tol:.3g}",
            samples=m.samples, number=m.number, clock=m.clock, rel_error=rel, tolerance=tol,
            target_met=m.target_met, device_name=device.name, spec_hash=spec_hash(spec, sources),
            wall_s=time.perf_counter() - t0, metrics=dict(op.metrics), **base,
        )
    except Unavailable as exc:
        return _result(spec, "skipped", str(exc), spec_hash=spec_hash(spec, sources))
    except MemoryError:
        return _result(spec, "error", "out of memory (MemoryError)", spec_hash=spec_hash(spec, sources),
                       wall_s=time.perf_counter() - t0)
    except Exception as exc:  # any failure of the case is a result, not a crash
        msg = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:500]
        return _result(spec, "error", msg, spec_hash=spec_hash(spec, sources), wall_s=time.perf_counter() - t0,
                       metrics={"traceback": traceback.format_exc()[-4000:]})
    finally:
        if op is not None and op.close is not None:
            try:
                op.close()
            except Exception:  # noqa: BLE001 - freeing must not mask the result
                pass


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
    if req.get("op") == "case":
        spec = CaseSpec.from_dict(req["spec"])
        try:
            return measure_case(spec, HarnessSettings(**req["settings"])).to_dict()
        except Exception as exc:  # noqa: BLE001 - whatever happens to a case is its result
            msg = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:500]
            return _result(spec, "error", msg, metrics={"traceback": traceback.format_exc()[-4000:]}).to_dict()
    return {"error": f"unknown request {req.get('op')!r}"}


def main() -> int:
    """Serve requests from the runner until stdin closes; die with the runner, however it ends."""
    from gpubench.lifeline import PARENT_PID_ENV, die_with_parent

    parent = os.environ.pop(PARENT_PID_ENV, "")  # not inherited by the processes this worker starts
    die_with_parent(int(parent) if parent.isdigit() else None, pipe_fd=sys.stdin.fileno())
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
