"""CPU contention: how much of the usable cores *other* work took while a case was measured.

:func:`read_cpu` (psutil) reads the busy CPU time of the cores this process may use and this
process's own CPU time (with its waited-for children's, and the live descendants it started since a
case began: a case's loader workers and ranks are its own work); over a window, their difference is
what other work took (:func:`cpu_window`). :func:`wait_idle` waits for quiet; :func:`load_average`,
:func:`cpu_frequency` and :func:`current_cpu_mhz` describe the CPU's state (sysfs, where readable).

psutil is imported lazily: importing this module costs nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpubench.machine import sysfs

#: A case is flagged ``busy`` when other work took more than this many cores, on average, during
#: its measured window. A quarter of a core, whatever the core count: a multi-threaded CPU library
#: runs one thread per core and waits for the slowest, so losing part of a single core to another
#: process already stalls it (a 64×256×128 NumPy matmul went 125× slower on 2 cores with one busy
#: process). Measured on the 2-core development machine: a quiet case reads 0.00–0.07 cores of
#: other work; next to one spinning process it reads 0.56–1.0 (the scheduler shares the 2 cores
#: among the spinner and a 2-thread BLAS call), so the threshold sits well clear of both.
BUSY_CORES = 0.25

#: Contention is judged over at least this many seconds: a shorter measured window is followed by an idle
#: watch until this much time has passed since it opened. /proc/stat counts CPU time in 10 ms ticks, so a
#: 30 ms window alone could be off by more than a core; over 0.3 s the error is under about 0.15 cores.
MIN_WINDOW_S = 0.3

CPUFREQ_ROOT = "/sys/devices/system/cpu"


def psutil_module() -> Any:
    """The psutil module, or None when it is not installed."""
    try:
        import psutil
    except ImportError:
        return None
    return psutil


@dataclass(frozen=True)
class CpuReading:
    """Cumulative CPU times at one moment (seconds), for :func:`cpu_window`."""

    t: float
    """``time.monotonic()`` when read."""
    busy_s: float
    """Non-idle time of the usable cores since boot: user, nice, system, irq, softirq and steal."""
    steal_s: float
    """Of which the hypervisor gave to other guests."""
    own_s: float
    """This process's user and system time, with its waited-for children's and (``read_cpu(since)``) its live
    descendants' that were not there when ``since`` was taken."""
    cores: int
    """Usable cores (this process's CPU affinity)."""


def usable_cpus() -> list[int]:
    """The CPU numbers this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


_PROCESS: dict[int, Any] = {}


def _own_process():
    psutil = psutil_module()
    pid = os.getpid()
    if pid not in _PROCESS:
        _PROCESS.clear()
        _PROCESS[pid] = psutil.Process(pid)
    return _PROCESS[pid]


def read_cpu(since: frozenset[int] | None = None) -> CpuReading | None:
    """Read the CPU times now (None without psutil). ``since`` (the pids of this process's descendants when a case
    began, :func:`descendant_pids`): also count as this process's own the live descendants that are not among
    them (the case's children: not the work of other processes)."""
    psutil = psutil_module()
    if psutil is None:
        return None
    cpus = usable_cpus()
    per_cpu = psutil.cpu_times(percpu=True)
    own = _own_process().cpu_times()
    t = time.monotonic()
    busy = steal = 0.0
    for i in cpus:
        if i >= len(per_cpu):
            continue
        c = per_cpu[i]
        s = getattr(c, "steal", 0.0)
        # On Linux "user" and "nice" already include guest time: guest fields are not added again.
        busy += c.user + c.nice + c.system + getattr(c, "irq", 0.0) + getattr(c, "softirq", 0.0) + s
        steal += s
    own_s = own.user + own.system + getattr(own, "children_user", 0.0) + getattr(own, "children_system", 0.0)
    if since is not None:
        own_s += _descendants_s(psutil, since)
    return CpuReading(t, busy, steal, own_s, len(cpus))


def descendant_pids() -> frozenset[int]:
    """The pids of this process's live descendants now (empty without psutil)."""
    psutil = psutil_module()
    if psutil is None:
        return frozenset()
    try:
        return frozenset(p.pid for p in _own_process().children(recursive=True))
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return frozenset()


def _descendants_s(psutil: Any, since: frozenset[int]) -> float:
    """CPU seconds of this process's live descendants not in ``since`` (started after it was taken: a case's loader
    workers, its ranks), with what each has waited for. Once reaped, a child's time is in ``children_*``."""
    total = 0.0
    try:
        children = _own_process().children(recursive=True)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0
    for child in children:
        if child.pid in since:  # there before the case began: not the case's work
            continue
        try:
            ct = child.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue  # gone between the listing and the reading
        total += ct.user + ct.system + getattr(ct, "children_user", 0.0) + getattr(ct, "children_system", 0.0)
    return total


def cpu_window(a: CpuReading, b: CpuReading) -> dict[str, float]:
    """What other work took between two readings: ``other_cores`` (average cores), ``other_share`` (of the
    usable cores), ``steal_cores`` and ``own_cores``, over ``window_s`` seconds."""
    dt = max(b.t - a.t, 1e-9)
    own = max(b.own_s - a.own_s, 0.0)
    cores = max(a.cores, 1)
    # Tick rounding at the two ends can make a saturated window read a little above its capacity.
    other = min(max((b.busy_s - a.busy_s) - own, 0.0), cores * dt)
    return {"window_s": round(dt, 4), "other_cores": round(other / dt, 4), "other_share": round(other / dt / cores, 4),
            "steal_cores": round(max(b.steal_s - a.steal_s, 0.0) / dt, 4), "own_cores": round(own / dt, 4)}


def probe_cpu(seconds: float = 0.5, sleep: Callable[[float], None] = time.sleep) -> dict[str, float] | None:
    """Other work's CPU use over the next ``seconds`` (this process idles meanwhile); None without psutil."""
    a = read_cpu()
    if a is None:
        return None
    sleep(seconds)
    return {**cpu_window(a, read_cpu()), "cores": a.cores}


def wait_idle(timeout_s: float, probe_s: float = 0.5, threshold: float = BUSY_CORES,
              sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Wait up to ``timeout_s`` seconds for other work to take at most ``threshold`` cores.

    Probes in ``probe_s`` steps; returns ``{"waited_s", "quiet", "other_cores"}`` (the last probe's
    figure). Without psutil it returns at once with ``quiet`` None.
    """
    start = time.monotonic()
    last: dict[str, float] | None = None
    while True:
        last = probe_cpu(probe_s, sleep)
        if last is None:
            return {"waited_s": 0.0, "quiet": None, "other_cores": None}
        quiet = last["other_cores"] <= threshold
        waited = time.monotonic() - start
        if quiet or waited + probe_s > timeout_s:
            return {"waited_s": round(waited, 3), "quiet": quiet, "other_cores": last["other_cores"]}


def load_average() -> list[float] | None:
    """1-, 5- and 15-minute load averages (None where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def cpu_frequency(root: str | Path = CPUFREQ_ROOT) -> dict[str, Any]:
    """CPU frequency (MHz: current average, min, max) and the cpufreq governor, with where each came from.

    The governor and the limits come from sysfs cpufreq; without it (most VMs) ``governor`` is
    None with ``governor_reason``, and the current frequency is psutil's (``/proc/cpuinfo``).
    """
    root = Path(root)
    out: dict[str, Any] = {"governor": None, "freq_mhz": None, "freq_min_mhz": None, "freq_max_mhz": None}
    cpus = usable_cpus()
    first = root / f"cpu{cpus[0] if cpus else 0}" / "cpufreq"
    try:
        out["governor"] = sysfs.read_text(first / "scaling_governor") or None
        out["driver"] = sysfs.read_text(first / "scaling_driver") or None
    except FileNotFoundError:
        out["governor_reason"] = f"no cpufreq in sysfs ({first} absent: a VM, or no frequency driver)"
    except OSError as exc:
        out["governor_reason"] = f"{first}: {exc.strerror or exc}"
    try:
        out["freq_min_mhz"] = int(sysfs.read_text(first / "cpuinfo_min_freq")) / 1000
        out["freq_max_mhz"] = int(sysfs.read_text(first / "cpuinfo_max_freq")) / 1000
    except (OSError, ValueError):
        pass
    freqs = []
    for i in cpus:
        try:
            freqs.append(int(sysfs.read_text(root / f"cpu{i}" / "cpufreq" / "scaling_cur_freq")) / 1000)
        except (OSError, ValueError):
            break
    if freqs and len(freqs) == len(cpus):
        out["freq_mhz"], out["freq_source"] = round(sum(freqs) / len(freqs), 1), "sysfs cpufreq"
    else:
        psutil = psutil_module()
        f = psutil.cpu_freq() if psutil is not None else None
        if f is not None and f.current:
            out["freq_mhz"], out["freq_source"] = round(float(f.current), 1), "psutil (/proc/cpuinfo)"
            if f.max and out["freq_max_mhz"] is None:
                out["freq_max_mhz"] = float(f.max)
            if f.min and out["freq_min_mhz"] is None:
                out["freq_min_mhz"] = float(f.min)
    return out


def current_cpu_mhz() -> float | None:
    """The average current CPU frequency in MHz (cheap; None where unknown)."""
    try:
        return cpu_frequency()["freq_mhz"]
    except Exception:  # noqa: BLE001 - a frequency is a nicety, never a failure
        return None

