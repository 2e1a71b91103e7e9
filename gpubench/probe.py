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


#: Lowest NVIDIA driver (major version) that runs CUDA 12 and CUDA 13 builds (CUDA's minor-version compatibility
#: lets any 12.x build run on a driver of the 12.0 release or later).
CUDA_DRIVERS = ((13, 580), (12, 525))
#: The one install that brings every backend's CUDA build (pyproject.toml's ``gpu`` extra).
GPU_EXTRA_COMMAND = "pip install -e \".[gpu]\""


def _installed(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def driver_cuda_major(driver: str) -> int | None:
    """The newest CUDA major an NVIDIA driver version (``570.86.15``) runs, None when it is older than CUDA 12."""
    try:
        major = int(driver.split(".")[0])
    except ValueError:
        return None
    return next((cuda for cuda, least in CUDA_DRIVERS if major >= least), None)


def _has_cuda_device(facts: dict[str, Any]) -> bool:
    return any(d.get("kind") == "cuda" for d in facts.get("devices") or ())


def gpu_fixes(facts: dict[str, dict[str, Any]], gpus: list[dict[str, str]],
              installed=_installed) -> dict[str, str]:
    """On a machine whose GPU ``nvidia-smi`` lists (``gpus``), each CUDA backend that cannot use it → why, and
    the exact command that fixes it (empty without a GPU, or when every backend sees it).

    ``facts`` are the backends' probe facts (:func:`probe_backends`); ``installed(dist)`` gives an installed
    distribution's version or None (reads package metadata, imports nothing).
    """
    if not gpus:
        return {}
    driver = gpus[0].get("driver", "")
    cuda = driver_cuda_major(driver)
    out: dict[str, str] = {}
    wanted = [name for name in ("torch", "jax", "tensorflow", "cupy")
              if name in facts and not _has_cuda_device(facts[name])]
    if wanted and cuda is None:
        return {name: f"NVIDIA driver {driver or '(unknown)'} is older than CUDA 12 needs (525 or later): "
                      "update the driver" for name in wanted}
    for name in wanted:
        f = facts[name]
        if name == "torch":
            version = installed("torch")
            index = f"https://download.pytorch.org/whl/cu{'130' if cuda >= 13 else '128'}"
            if version is None:
                out[name] = "not installed: pip install torch (PyPI's Linux wheels are CUDA builds)"
            else:
                base = version.split("+")[0]
                why = "is a CPU build" if "+cpu" in version else f"finds no GPU (a build for another CUDA than {cuda}?)"
                out[name] = f"torch {version} {why}: pip install --force-reinstall torch=={base} --index-url {index}"
        elif name == "jax":
            version = installed("jax")
            extra = f"jax[cuda{cuda}]"
            if version is None:
                out[name] = f"not installed: pip install \"{extra}\""
            else:
                out[name] = f"jax {version} has no CUDA backend: pip install \"{extra}=={version}\""
        elif name == "tensorflow":
            cpu_build, version = installed("tensorflow-cpu"), installed("tensorflow")
            if cpu_build:
                out[name] = (f"tensorflow-cpu {cpu_build} is a CPU build: pip uninstall -y tensorflow-cpu && "
                             f"pip install \"tensorflow[and-cuda]=={cpu_build}\"")
            elif version is None:
                out[name] = "not installed: pip install \"tensorflow[and-cuda]\""
            else:
                out[name] = (f"tensorflow {version} finds no GPU (its CUDA libraries are missing): "
                             f"pip install \"tensorflow[and-cuda]=={version}\"")
        elif name == "cupy":
            dists = [d for d in ("cupy-cuda13x", "cupy-cuda12x", "cupy-cuda11x", "cupy") if installed(d)]
            want = f"cupy-cuda{cuda}x"
            reason = str(f.get("reason", ""))
            if not dists:
                out[name] = f"not installed: pip install \"{want}[ctk]\""
            elif want not in dists and all(d.startswith("cupy-cuda") for d in dists):
                out[name] = (f"{dists[0]} does not match this driver ({driver}, CUDA {cuda}): "
                             f"pip uninstall -y {' '.join(dists)} && pip install \"{want}[ctk]\"")
            elif "pip install" in reason:  # the CuPy probe names the library it could not load and its fix
                out[name] = reason.removeprefix("cupy: ")
    return out


def gpu_fix_lines(facts: dict[str, dict[str, Any]], gpus: list[dict[str, str]], installed=_installed) -> list[str]:
    """:func:`gpu_fixes` as lines to print under ``gpubench list``'s table (none when there is nothing to fix)."""
    fixes = gpu_fixes(facts, gpus, installed)
    if not fixes:
        return []
    names = ", ".join(sorted({g.get("name", "GPU") for g in gpus}))
    lines = [f"nvidia-smi lists {len(gpus)} GPU{'s' if len(gpus) > 1 else ''} ({names}), "
             f"but {len(fixes)} backend{'s' if len(fixes) > 1 else ''} cannot use {'them' if len(gpus) > 1 else 'it'}:"]
    lines += [f"  {name}: {fix}" for name, fix in fixes.items()]
    lines.append(f"  or all of them at once, from the repository: {GPU_EXTRA_COMMAND}")
    return lines
