"""Environment capture: what machine and software a run measured.

Host facts are read without importing any framework (``/proc``, ``platform``, package
metadata, ``nvidia-smi``, NVML, cpufreq sysfs, ``git``); each backend adds its own facts (CUDA,
cuDNN, device names) from inside its worker through :meth:`Backend.environment`.

``git`` records which code was measured: the commit, branch and dirty state of the project the
run was started from (the working directory) and of gpubench itself (where it is a git checkout;
its version otherwise). ``gpubench history`` labels runs with them.
"""

from __future__ import annotations

import functools
import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

#: Distributions whose versions are recorded when installed.
PACKAGES = ("gpubench", "numpy", "scipy", "torch", "tensorflow", "tensorflow-cpu", "keras", "cupy-cuda12x",
            "cupy-cuda13x", "cupy", "pyopencl", "pocl-binary-distribution", "pandas", "plotly",
            "pytest-benchmark", "threadpoolctl")

#: CPU flags worth showing next to a benchmark (vector width and matrix extensions).
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni",
             "amx_tile", "amx_bf16", "amx_fp16", "asimd", "sve", "sve2")


def _cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if ":" in line:
                    key, _, value = line.partition(":")
                    info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return info


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """CPU model name (``platform.processor()`` where ``/proc/cpuinfo`` is absent)."""
    info = _cpuinfo()
    return info.get("model name") or info.get("Model") or platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The interesting ISA flags this CPU reports."""
    info = _cpuinfo()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    return [f for f in ISA_FLAGS if f in flags]


def physical_cores() -> int | None:
    """Physical core count from ``/proc/cpuinfo`` (None where unknown)."""
    cores = set()
    phys = core = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "physical id":
                    phys = value.strip()
                elif key == "core id":
                    core = value.strip()
                elif not line.strip():
                    if core is not None:
                        cores.add((phys, core))
                    phys = core = None
    except OSError:
        return None
    return len(cores) or None


#: Where the cgroup file systems are mounted.
CGROUP_ROOT = Path("/sys/fs/cgroup")
#: A cgroup v1 limit at or above this is "no limit" (the kernel writes ``PAGE_COUNTER_MAX`` pages).
_V1_UNLIMITED = 1 << 62


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _stat(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _candidates(base: Path, rel: str) -> list[Path]:
    """The process's cgroup directory and its ancestors below ``base`` (a namespaced mount shows only ``base``)."""
    rel = rel.strip("/")
    out = []
    if rel:
        d = base / rel
        while True:
            if d.is_dir():
                out.append(d)
            if d == base:
                break
            d = d.parent
    if base not in out and base.is_dir():
        out.append(base)
    return out


def cgroup_headroom(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> int | None:
    """Bytes this process's cgroup (or an ancestor) can still take before its memory limit, None without a limit.

    cgroup v2 (``memory.max`` − ``memory.current``) and v1 (``memory.limit_in_bytes`` −
    ``memory.usage_in_bytes``); the inactive file cache the kernel reclaims before it kills
    (``inactive_file`` of ``memory.stat``) counts as free, as container runtimes count it.
    """
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    best: int | None = None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, rel = parts
        if controllers == "":  # cgroup v2
            base, limit_f, usage_f, stat_key = root, "memory.max", "memory.current", "inactive_file"
            if not (base / "cgroup.controllers").exists():
                base = root / "unified"
        elif "memory" in controllers.split(","):
            base, limit_f, usage_f, stat_key = root / "memory", "memory.limit_in_bytes", "memory.usage_in_bytes", \
                "total_inactive_file"
        else:
            continue
        for d in _candidates(base, rel):
            limit = _read_int(d / limit_f)
            usage = _read_int(d / usage_f)
            if limit is None or usage is None or limit >= _V1_UNLIMITED:
                continue
            free = max(0, limit - usage + _stat(d / "memory.stat", stat_key))
            best = free if best is None else min(best, free)
    return best


def memory_info() -> dict[str, int]:
    """Total and available host memory in bytes (from ``/proc/meminfo``)."""
    out: dict[str, int] = {}
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("MemTotal", "MemAvailable"):
                    out[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    if "MemTotal" not in out:
        try:
            out["MemTotal"] = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            pass
    return {"total_bytes": out.get("MemTotal", 0), "available_bytes": out.get("MemAvailable", out.get("MemTotal", 0))}


def available_memory() -> int:
    """Bytes of host memory available now (0 where unknown): ``MemAvailable``, bounded by the process's cgroup
    memory limit where it has one (:func:`cgroup_headroom`: a container's limit, not the host's)."""
    available = memory_info()["available_bytes"]
    headroom = cgroup_headroom()
    if headroom is not None:
        available = min(available, headroom) if available else headroom
    return available


def library_versions() -> dict[str, str]:
    """Versions of the installed packages gpubench cares about (read from metadata, nothing imported)."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def blas_info() -> list[dict[str, Any]]:
    """BLAS/OpenMP libraries loaded by NumPy: vendor, version, threads, kernel (via threadpoolctl)."""
    try:
        import numpy  # noqa: F401  (loads its BLAS so threadpoolctl can see it)
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keep = ("internal_api", "version", "num_threads", "architecture", "threading_layer", "prefix")
    return [{k: lib.get(k) for k in keep if lib.get(k) is not None} for lib in threadpool_info()]


def nvidia_smi() -> list[dict[str, str]]:
    """GPUs as ``nvidia-smi`` reports them (empty without the tool or a driver)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=name,memory.total,driver_version,pci.bus_id",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    gpus = []
    for line in out.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 4:
            gpus.append(dict(zip(("name", "memory", "driver", "bus_id"), parts)))
    return gpus


def git_facts(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Commit, branch and dirty state of the git work tree holding ``path`` (None outside one or without git).

    ``dirty`` is true when tracked files differ from the commit (untracked files do not count).
    """
    exe = shutil.which("git")
    if not exe:
        return None

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run([exe, "-C", str(path), *args], capture_output=True, text=True, timeout=10,
                                 env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"})
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "--verify", "HEAD")
    if not commit:
        return None
    branch = git("rev-parse", "--abbrev-ref", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "short": commit[:10], "branch": "" if branch in (None, "HEAD") else branch,
            "dirty": bool(status) if status is not None else None, "root": git("rev-parse", "--show-toplevel") or ""}


def code_versions(cwd: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Which code a run measured: ``project`` (the git facts of ``cwd``, None outside a work tree) and
    ``gpubench`` (its git facts where it runs from a checkout, always with its ``version``)."""
    from gpubench import __version__

    package_dir = os.path.dirname(os.path.abspath(__file__))
    own = git_facts(package_dir) or {}
    return {"project": git_facts(cwd or os.getcwd()), "gpubench": {**own, "version": __version__}}


def machine_key(env: dict[str, Any]) -> tuple:
    """What identifies a machine across runs: host name, CPU model and GPU names."""
    cpu = (env.get("cpu") or {}).get("model", "")
    gpus = tuple(str(g.get("name", "")) for g in env.get("gpus") or [] if isinstance(g, dict))
    return (str(env.get("hostname", "")), str(cpu), gpus)


def _load_average() -> list[float] | None:
    from gpubench.machine import load_average

    return load_average()


def cpu_clock_facts() -> dict[str, Any]:
    """CPU governor and frequency (MHz) with where they came from, and the load average (:mod:`gpubench.machine`)."""
    from gpubench.machine import cpu_frequency, load_average

    try:
        out = cpu_frequency()
    except Exception as exc:  # noqa: BLE001 - facts are best effort
        out = {"governor": None, "freq_mhz": None, "governor_reason": f"{type(exc).__name__}: {exc}"}
    out["load_average"] = load_average()
    return out


def gpu_state() -> dict[str, Any]:
    """NVML's facts per GPU: clocks (current and max), power limit, ECC, persistence, MIG, PCIe link
    generation and width (current and max); or why there are none."""
    from gpubench.machine import gpu_environment

    try:
        return gpu_environment()
    except Exception as exc:  # noqa: BLE001
        return {"available": False, "reason": f"{type(exc).__name__}: {exc}"}


def capture_host() -> dict[str, Any]:
    """Everything about the host that needs no framework import."""
    mem = memory_info()
    return {
        "hostname": platform.node(),
        "cpu": {
            "model": cpu_model(),
            "logical_cores": os.cpu_count(),
            "physical_cores": physical_cores(),
            "isa": cpu_flags(),
            "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            **cpu_clock_facts(),
        },
        "memory_bytes": mem["total_bytes"],
        "os": f"{platform.system()} {platform.release()}",
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "python_impl": platform.python_implementation(),
        "libraries": library_versions(),
        "blas": blas_info(),
        "gpus": nvidia_smi(),
        "load_avg": _load_average(),
        "git": code_versions(),
        "gpu_state": gpu_state(),
        "env_vars": {k: v for k, v in os.environ.items()
                     if k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                              "CUDA_VISIBLE_DEVICES", "TF_ENABLE_ONEDNN_OPTS")},
    }
