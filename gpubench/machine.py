"""Know the machine while it is measured: CPU contention, clocks, throttling and energy, per case.

Three small readers, each best effort: a reading that cannot be taken says why, it never guesses.

* :func:`read_cpu` (psutil): busy CPU time of the cores this process may use, and this process's
  own CPU time (with its waited-for children). Over a window, their difference is what *other*
  work took: :func:`cpu_window`. Plus load average, CPU frequency and governor (sysfs, where readable).
* :class:`Nvml` (nvidia-ml-py): SM and memory clocks, temperature, power draw and limit, the
  clock-event ("throttle") reasons, other processes on the GPU, the total-energy counter, and the
  static facts ``gpubench env`` shows (max clocks, ECC, persistence, MIG, PCIe link).
* :class:`Rapl` (Linux powercap sysfs, ``/sys/class/powercap/*rapl*``, Intel and AMD): the CPU
  packages' energy counters, wrap-around corrected.

:class:`CaseWatch` puts them around one case: a reading before it, the measured window (opened and
closed by the harness through its observer hook, with a sample every :data:`SAMPLE_INTERVAL_S` from
a background thread in between) and one after. :meth:`CaseWatch.state` turns that into the record's
``machine`` state, its ``energy`` (joules per call, or ``"not available: <reason>"``, never 0) and
its flags (``busy``, ``throttled``).

Why not Zeus (``zeus`` 0.16 on PyPI, which wraps NVML, AMD SMI and RAPL)? Evaluated and not
chosen, on dependency weight and correctness:

* weight: ``pip install zeus`` pulls 30 distributions (scikit-learn, SciPy, pandas, pydantic,
  amdsmi, httpx, rich, tyro, ...), for what here is one module over two small libraries
  (psutil, nvidia-ml-py) that gpubench needs anyway;
* RAPL: it looks only under ``/sys/class/powercap/intel-rapl`` and tracks wrap-around in a
  separate spawned *process* per counter that polls every 0.1–1 s, a process that would itself
  compete for the cores of the machine being measured; and it adds the poller's wrap count to
  each raw read, so a read that falls between a wrap and the poller noticing it comes out one
  full counter range low. Here the case's own sampler thread reads the counters every 0.5 s
  while measuring (far below the shortest wrap period, minutes at full power) and corrects each
  step's delta on its own;
* NVML: equivalent (the same ``nvmlDeviceGetTotalEnergyConsumption`` counter, 64-bit mJ).

Heavy imports (psutil, pynvml) are lazy: importing this module costs nothing.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: A case is flagged ``busy`` when other work took more than this many cores, on average, during
#: its measured window. A quarter of a core, whatever the core count: a multi-threaded CPU library
#: runs one thread per core and waits for the slowest, so losing part of a single core to another
#: process already stalls it (a 64×256×128 NumPy matmul went 125× slower on 2 cores with one busy
#: process). Measured on the 2-core development machine: a quiet case reads 0.00–0.07 cores of
#: other work; next to one spinning process it reads 0.56–1.0 (the scheduler shares the 2 cores
#: among the spinner and a 2-thread BLAS call), so the threshold sits well clear of both.
BUSY_CORES = 0.25

#: Seconds between the periodic samples taken while a case is measured (a cheap background thread).
SAMPLE_INTERVAL_S = 0.5

#: At most this many periodic samples are kept per case (longer cases keep every other one, and so on).
MAX_SERIES = 240

#: Contention is judged over at least this many seconds: a shorter measured window is followed by an idle
#: watch until this much time has passed since it opened. /proc/stat counts CPU time in 10 ms ticks, so a
#: 30 ms window alone could be off by more than a core; over 0.3 s the error is under about 0.15 cores.
MIN_WINDOW_S = 0.3

#: NVML clock-event ("throttle") reason bits, by name (nvmlClocksEventReason* / nvmlClocksThrottleReason*).
THROTTLE_REASONS = {
    0x1: "gpu_idle", 0x2: "applications_clocks_setting", 0x4: "sw_power_cap", 0x8: "hw_slowdown",
    0x10: "sync_boost", 0x20: "sw_thermal_slowdown", 0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown", 0x100: "display_clock_setting", 0x200: "board_limit", 0x400: "reliability",
}

#: Reasons that do not slow a running kernel: an idle GPU, clocks set by the user or the display.
NOT_THROTTLING = 0x1 | 0x2 | 0x100

#: Average power above which an energy reading is a measurement error, not a result (W).
#: A GPU board: twice its power limit when known (the largest boards draw about 1.2 kW);
#: a CPU package: 1 kW each.
GPU_CEILING_W = 2500.0
CPU_PACKAGE_CEILING_W = 1000.0

POWERCAP_ROOT = "/sys/class/powercap"
CPUFREQ_ROOT = "/sys/devices/system/cpu"


def _psutil():
    try:
        import psutil
    except ImportError:
        return None
    return psutil


def throttle_names(mask: int | None) -> list[str]:
    """Names of the reasons set in an NVML clock-event bitmask (unknown bits as hex)."""
    if not mask:
        return []
    out = [name for bit, name in THROTTLE_REASONS.items() if mask & bit]
    rest = mask & ~sum(THROTTLE_REASONS)
    if rest:
        out.append(hex(rest))
    return out


def is_throttling(mask: int | None) -> bool:
    """Whether a clock-event bitmask holds a reason that slows the GPU (anything but idle or user/display clocks)."""
    return bool(mask and mask & ~NOT_THROTTLING)


# --- CPU ---------------------------------------------------------------------------------------------


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
    """This process's user and system time, with its waited-for children's."""
    cores: int
    """Usable cores (this process's CPU affinity)."""


def usable_cpus() -> list[int]:
    """The CPU numbers this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


_PROCESS: dict[int, Any] = {}


def _own_process():
    psutil = _psutil()
    pid = os.getpid()
    if pid not in _PROCESS:
        _PROCESS.clear()
        _PROCESS[pid] = psutil.Process(pid)
    return _PROCESS[pid]


def read_cpu() -> CpuReading | None:
    """Read the CPU times now (None without psutil)."""
    psutil = _psutil()
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
    return CpuReading(t, busy, steal, own_s, len(cpus))


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


def _read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace").strip()


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
        out["governor"] = _read_text(first / "scaling_governor") or None
        out["driver"] = _read_text(first / "scaling_driver") or None
    except FileNotFoundError:
        out["governor_reason"] = f"no cpufreq in sysfs ({first} absent: a VM, or no frequency driver)"
    except OSError as exc:
        out["governor_reason"] = f"{first}: {exc.strerror or exc}"
    try:
        out["freq_min_mhz"] = int(_read_text(first / "cpuinfo_min_freq")) / 1000
        out["freq_max_mhz"] = int(_read_text(first / "cpuinfo_max_freq")) / 1000
    except (OSError, ValueError):
        pass
    freqs = []
    for i in cpus:
        try:
            freqs.append(int(_read_text(root / f"cpu{i}" / "cpufreq" / "scaling_cur_freq")) / 1000)
        except (OSError, ValueError):
            break
    if freqs and len(freqs) == len(cpus):
        out["freq_mhz"], out["freq_source"] = round(sum(freqs) / len(freqs), 1), "sysfs cpufreq"
    else:
        psutil = _psutil()
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


# --- RAPL (powercap) ---------------------------------------------------------------------------------


class Rapl:
    """The CPU packages' RAPL energy counters in the powercap sysfs (Intel ``intel-rapl``; AMD Zen exposes
    the same driver and zone names).

    Only top-level ``package-N`` zones are summed (their subzones, ``core`` and ``uncore``, are
    inside them; ``psys`` would count the package twice). ``reason`` says why there are none, or
    why they cannot be read (``energy_uj`` is root-only since Linux 5.10's fix for the Platypus
    attack).
    """

    ZONE = re.compile(r"[a-z0-9_-]*rapl:\d+")

    def __init__(self, root: str | Path = POWERCAP_ROOT):
        self.root = Path(root)
        self.zones: dict[str, Path] = {}
        """Zone name (``package-0``) → its ``energy_uj`` file."""
        self.ranges: dict[str, int | None] = {}
        """Zone name → ``max_energy_range_uj`` (the counter wraps to 0 past it; None when unknown)."""
        self.reason = ""
        self._discover()

    def _discover(self) -> None:
        if not self.root.is_dir():
            self.reason = f"no RAPL: {self.root} is absent (no powercap driver: a VM, a container, or not Linux)"
            return
        found: dict[str, Path] = {}
        for d in sorted(self.root.iterdir()):
            if not self.ZONE.fullmatch(d.name) or "mmio" in d.name:  # the MMIO interface repeats a package
                continue
            try:
                name = _read_text(d / "name")
            except OSError:
                continue
            if name.startswith("package") and name not in found:
                found[name] = d
        if not found:
            self.reason = f"no RAPL package zone under {self.root}"
            return
        for name, d in found.items():
            energy = d / "energy_uj"
            try:
                int(_read_text(energy))
            except PermissionError:
                self.reason = (f"{energy} is not readable by this user (root only since Linux 5.10, the Platypus "
                               "fix): run as root or grant read access")
                self.zones.clear()
                return
            except (OSError, ValueError) as exc:
                self.reason = f"{energy}: {getattr(exc, 'strerror', None) or exc}"
                self.zones.clear()
                return
            self.zones[name] = energy
            try:
                self.ranges[name] = int(_read_text(d / "max_energy_range_uj"))
            except (OSError, ValueError):
                self.ranges[name] = None

    @property
    def available(self) -> bool:
        """Whether every package zone can be read."""
        return bool(self.zones) and not self.reason

    def read(self) -> dict[str, int]:
        """Raw counters in µJ by zone (raises OSError when a read fails)."""
        return {name: int(_read_text(path)) for name, path in self.zones.items()}


# --- energy counters ------------------------------------------------------------------------------------


class EnergyMeter:
    """Sums a cumulative energy counter's increments over a window, step by step.

    ``read`` returns raw counter values by name; ``ranges`` gives each one's wrap-around range
    (the value past which it restarts at 0; None: it never wraps, and going backwards is an
    error). Every :meth:`update` adds the increment since the previous read, so a counter that
    wraps between two reads is corrected as long as reads are closer than one wrap period.
    """

    def __init__(self, source: str, read: Callable[[], dict[str, int]], ranges: dict[str, int | None],
                 joules_per_unit: float, ceiling_w: float):
        self.source = source
        self._read = read
        self.ranges = ranges
        self.joules_per_unit = joules_per_unit
        self.ceiling_w = ceiling_w
        self.error = ""
        self.joules = 0.0
        self.wraps = 0
        self._last: dict[str, int] | None = None
        self._done = False
        self._lock = threading.RLock()

    def start(self) -> None:
        """Begin a window at the counter's present value."""
        with self._lock:
            self.joules, self.wraps, self.error, self._done = 0.0, 0, "", False
            try:
                self._last = self._read()
            except Exception as exc:  # noqa: BLE001 - a counter that cannot be read is a reason, not a crash
                self._last, self.error = None, f"reading the {self.source} counter failed: {exc}"

    def finish(self) -> None:
        """The window's last read: add its increment, then ignore further updates until :meth:`start`."""
        with self._lock:
            self.update()
            self._done = True

    def update(self) -> None:
        """Add the increment since the previous read (wrap-around corrected)."""
        with self._lock:
            if self._last is None or self.error or self._done:
                return
            try:
                now = self._read()
            except Exception as exc:  # noqa: BLE001
                self.error = f"reading the {self.source} counter failed: {exc}"
                return
            total = 0
            for name, value in now.items():
                prev = self._last.get(name)
                if prev is None:
                    continue
                delta = value - prev
                if delta < 0:
                    span = self.ranges.get(name)
                    if not span or prev > span:
                        self.error = f"the {self.source} counter {name} went backwards ({prev} → {value}): reset?"
                        return
                    delta = span - prev + value
                    self.wraps += 1
                total += delta
            self.joules += total * self.joules_per_unit
            self._last = now

    def entry(self, window_s: float, calls: int | None, not_per_call: str = "") -> dict[str, Any]:
        """The energy of the window as a record entry: joules per call, or why there is none
        (``calls`` None: ``not_per_call``, by default a self-timed run)."""
        if self.error:
            return {"reason": f"not available: {self.error}"}
        j = self.joules
        if not j > 0:
            return {"reason": f"not available: the {self.source} counter did not advance in the {window_s:.2g} s "
                              "window (it updates more slowly than that)"}
        watts = j / max(window_s, 1e-9)
        if watts > self.ceiling_w:
            return {"reason": f"implausible: {watts:.0f} W average from the {self.source} counter is above the "
                              f"{self.ceiling_w:.0f} W ceiling; not used"}
        out: dict[str, Any] = {"joules": j, "window_s": round(window_s, 6), "watts": round(watts, 3),
                               "source": self.source}
        if self.wraps:
            out["wraps"] = self.wraps
        if calls is None:
            why = not_per_call or "a self-timed run (its own clock)"
            out["reason"] = (f"not per call: {why}; the window used {j:.4g} J in {window_s:.3g} s "
                             f"({watts:.3g} W average)")
            return out
        out["joules_per_call"] = j / calls
        out["calls"] = calls
        return out


def rapl_meter(rapl: Rapl) -> EnergyMeter:
    """An :class:`EnergyMeter` over the RAPL package zones (µJ)."""
    return EnergyMeter("rapl", rapl.read, dict(rapl.ranges), 1e-6, CPU_PACKAGE_CEILING_W * max(len(rapl.zones), 1))


# --- NVML -----------------------------------------------------------------------------------------------


class NvmlUnavailable(Exception):
    """NVML cannot be used here; the message says why."""


def _ok(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, or None when NVML says it is not supported (or anything else fails)."""
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001 - every NVML query is best effort
        return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _pair(value: Any) -> tuple[Any, Any]:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return value[0], value[1]
    return value, None


class Nvml:
    """A best-effort view of NVML through nvidia-ml-py's ``pynvml`` module (or any object with its API).

    Every query that fails (not supported on this GPU, no permission) reads as None.
    """

    def __init__(self, module: Any):
        self.nv = module
        try:
            module.nvmlInit()
        except Exception as exc:  # noqa: BLE001
            name = type(exc).__name__
            if "LibraryNotFound" in name or "DriverNotLoaded" in name:
                raise NvmlUnavailable(f"no NVIDIA driver ({exc})") from exc
            raise NvmlUnavailable(f"NVML: {exc}") from exc
        self.count = _ok(module.nvmlDeviceGetCount) or 0

    @classmethod
    def load(cls, module: Any = None) -> Nvml:
        """Open NVML through ``module`` (default: ``import pynvml``); raises :class:`NvmlUnavailable`."""
        if module is None:
            try:
                import pynvml as module
            except ImportError as exc:
                raise NvmlUnavailable("nvidia-ml-py not installed (pip install nvidia-ml-py)") from exc
        return cls(module)

    def handle(self, index: int | str) -> Any:
        """The device handle of NVML index ``index`` or of a ``GPU-…``/``MIG-…`` UUID (raises NvmlUnavailable)."""
        try:
            if isinstance(index, str):
                return self.nv.nvmlDeviceGetHandleByUUID(index)
            if not 0 <= index < self.count:
                raise NvmlUnavailable(f"NVML sees {self.count} GPU(s), no index {index}")
            return self.nv.nvmlDeviceGetHandleByIndex(index)
        except NvmlUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001
            raise NvmlUnavailable(f"NVML has no device {index!r}: {exc}") from exc

    def throttle_mask(self, h: Any) -> int | None:
        """The current clock-event reasons (the newer name first, the older 'throttle' name otherwise)."""
        nv = self.nv
        for name in ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons"):
            fn = getattr(nv, name, None)
            if fn is not None:
                value = _ok(fn, h)
                if value is not None:
                    return int(value)
        return None

    def sample(self, h: Any) -> dict[str, Any]:
        """Clocks (MHz), temperature (°C), power and its limit (W), throttle reasons bitmask — now."""
        nv = self.nv
        power = _ok(nv.nvmlDeviceGetPowerUsage, h)
        limit = _ok(nv.nvmlDeviceGetEnforcedPowerLimit, h)
        return {
            "sm_mhz": _ok(nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_SM),
            "mem_mhz": _ok(nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_MEM),
            "temp_c": _ok(nv.nvmlDeviceGetTemperature, h, nv.NVML_TEMPERATURE_GPU),
            "power_w": power / 1000 if power is not None else None,
            "power_limit_w": limit / 1000 if limit is not None else None,
            "throttle": self.throttle_mask(h),
        }

    def energy_mj(self, h: Any) -> int:
        """The total-energy counter since the driver loaded, in mJ (raises when unsupported)."""
        return int(self.nv.nvmlDeviceGetTotalEnergyConsumption(h))

    def processes(self, h: Any) -> list[int] | None:
        """PIDs of the compute and graphics processes on the GPU (None when NVML will not say)."""
        pids: set[int] = set()
        answered = False
        for name in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
            fn = getattr(self.nv, name, None)
            procs = _ok(fn, h) if fn is not None else None
            if procs is not None:
                answered = True
                pids.update(int(p.pid) for p in procs)
        return sorted(pids) if answered else None

    def facts(self, h: Any) -> dict[str, Any]:
        """Static and slow-changing facts of one GPU (what ``gpubench env`` shows)."""
        nv = self.nv
        ecc, ecc_pending = _pair(_ok(nv.nvmlDeviceGetEccMode, h))
        mig, mig_pending = _pair(_ok(nv.nvmlDeviceGetMigMode, h))
        persistence = _ok(nv.nvmlDeviceGetPersistenceMode, h)
        limit = _ok(nv.nvmlDeviceGetEnforcedPowerLimit, h)
        default_limit = _ok(nv.nvmlDeviceGetPowerManagementDefaultLimit, h)

        def on_off(value: Any) -> str | None:
            return None if value is None else ("enabled" if value else "disabled")

        return {
            "name": _text(_ok(nv.nvmlDeviceGetName, h)),
            "uuid": _text(_ok(nv.nvmlDeviceGetUUID, h)),
            "sm_mhz": _ok(nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_SM),
            "sm_max_mhz": _ok(nv.nvmlDeviceGetMaxClockInfo, h, nv.NVML_CLOCK_SM),
            "mem_mhz": _ok(nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_MEM),
            "mem_max_mhz": _ok(nv.nvmlDeviceGetMaxClockInfo, h, nv.NVML_CLOCK_MEM),
            "power_limit_w": limit / 1000 if limit is not None else None,
            "power_default_limit_w": default_limit / 1000 if default_limit is not None else None,
            "temp_c": _ok(nv.nvmlDeviceGetTemperature, h, nv.NVML_TEMPERATURE_GPU),
            "ecc": on_off(ecc), "ecc_pending": on_off(ecc_pending),
            "persistence_mode": on_off(persistence),
            "mig": on_off(mig), "mig_pending": on_off(mig_pending),
            "pcie_gen": _ok(nv.nvmlDeviceGetCurrPcieLinkGeneration, h),
            "pcie_gen_max": _ok(nv.nvmlDeviceGetMaxPcieLinkGeneration, h),
            "pcie_width": _ok(nv.nvmlDeviceGetCurrPcieLinkWidth, h),
            "pcie_width_max": _ok(nv.nvmlDeviceGetMaxPcieLinkWidth, h),
            "throttle": throttle_names(self.throttle_mask(h)),
        }

    def driver(self) -> str | None:
        """The driver version."""
        return _text(_ok(self.nv.nvmlSystemGetDriverVersion))


_NVML_CACHE: dict[str, Nvml | str] = {}


def default_nvml() -> Nvml:
    """This process's NVML session (opened once; raises :class:`NvmlUnavailable` with the same reason after)."""
    cached = _NVML_CACHE.get("default")
    if cached is None:
        try:
            cached = Nvml.load()
        except NvmlUnavailable as exc:
            cached = str(exc)
        _NVML_CACHE["default"] = cached
    if isinstance(cached, str):
        raise NvmlUnavailable(cached)
    return cached


def gpu_environment(nvml: Nvml | None = None) -> dict[str, Any]:
    """NVML's facts for every GPU: ``{"available", "driver", "devices": [...]}``, or ``{"available": False,
    "reason"}``."""
    try:
        nvml = nvml or default_nvml()
    except NvmlUnavailable as exc:
        return {"available": False, "reason": str(exc)}
    if not nvml.count:
        return {"available": False, "reason": "NVML sees no NVIDIA GPU"}
    devices = []
    for i in range(nvml.count):
        try:
            devices.append({"index": i, **nvml.facts(nvml.handle(i))})
        except NvmlUnavailable as exc:
            devices.append({"index": i, "reason": str(exc)})
    return {"available": True, "driver": nvml.driver(), "devices": devices}


def nvml_index(device_id: str, visible: str | None = None) -> int | str | None:
    """The NVML index (or UUID) of a CUDA device id (``cuda``, ``cuda:1``), through ``CUDA_VISIBLE_DEVICES``.

    NVML numbers every GPU of the machine; a CUDA program numbers only the visible ones, in the
    order ``CUDA_VISIBLE_DEVICES`` lists them. None when the id is not a CUDA device or the list
    does not name it.
    """
    kind, _, rest = device_id.partition(":")
    if kind not in ("cuda", "gpu"):
        return None
    try:
        ordinal = int(rest or 0)
    except ValueError:
        return None
    if visible is None:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None or not visible.strip():
        return ordinal
    entries = [e.strip() for e in visible.split(",") if e.strip()]
    if ordinal >= len(entries):
        return None
    entry = entries[ordinal]
    if entry.isdigit():
        return int(entry)
    if entry.startswith(("GPU-", "MIG-")):
        return entry
    return None


# --- one case -------------------------------------------------------------------------------------------


class CaseWatch:
    """Samples the machine around one case and turns what it saw into the record's fields.

    Call order: construct (the *before* reading) → :meth:`attach` (the resolved device) →
    optionally :meth:`wait_idle` → :meth:`window_start` / :meth:`window_end` (the harness calls
    them through its observer hook; a sampler thread reads every ``interval_s`` in between) →
    :meth:`state` → :meth:`close`. ``nvml``, ``rapl``, ``clock`` and ``sleep`` are injectable for tests.
    """

    def __init__(self, *, interval_s: float = SAMPLE_INTERVAL_S, nvml: Callable[[], Nvml] | None = None,
                 rapl: Rapl | None = None, busy_cores: float = BUSY_CORES,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self.interval_s = interval_s
        self.clock = clock
        self.sleep = sleep
        self.busy_cores = busy_cores
        self._nvml_factory = nvml or default_nvml
        self._rapl = rapl
        self.errors: list[str] = []
        self.cpu_before = self._safe(read_cpu)
        self.load_before = load_average()
        self.mhz_before = current_cpu_mhz()
        self.is_cpu = True
        self.device_id = ""
        self.nvml: Nvml | None = None
        self.gpu_handle: Any = None
        self.gpu_index: int | str | None = None
        self.gpu_reason = "not a GPU case"
        self.gpu_before: dict[str, Any] | None = None
        self.gpu_name: str | None = None
        self.waited: dict[str, Any] | None = None
        self.device_meter: EnergyMeter | None = None
        self.device_meter_reason = ""
        self.host_meter: EnergyMeter | None = None
        self.host_meter_reason = ""
        self.window: dict[str, Any] | None = None
        self._win_cpu: CpuReading | None = None
        self._win_t0 = 0.0
        self._last_tick: CpuReading | None = None
        self._series: list[dict[str, Any]] = []
        self._gpu_samples: list[dict[str, Any]] = []
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None

    def _safe(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - watching the machine never fails a case
            self.errors.append(f"{getattr(fn, '__name__', 'reading')}: {type(exc).__name__}: {exc}")
            return None

    # --- setup ----------------------------------------------------------------------------------------
    def attach(self, device: Any) -> None:
        """Note the case's resolved device: a CPU case is metered by RAPL, an NVIDIA GPU case by NVML."""
        from gpubench.ops import is_cpu_device

        self.device_id = str(getattr(device, "id", "") or "")
        self.is_cpu = is_cpu_device(device)
        if self._rapl is None:
            self._rapl = self._safe(Rapl) or None
        rapl_reason = (self._rapl.reason if self._rapl is not None else "reading the powercap tree failed") \
            or "no RAPL zone"
        if self.is_cpu:
            self.gpu_reason = "a CPU case"
            if self._rapl is not None and self._rapl.available:
                self.device_meter = rapl_meter(self._rapl)
            else:
                self.device_meter_reason = f"not available: {rapl_reason}"
            return
        if self._rapl is not None and self._rapl.available:
            self.host_meter = rapl_meter(self._rapl)
        else:
            self.host_meter_reason = f"not available: {rapl_reason}"
        index = nvml_index(self.device_id)
        if index is None and "NVIDIA" in str(getattr(device, "name", "")).upper():
            index = 0 if self._nvml_count() == 1 else None
        if index is None:
            self.gpu_reason = f"{self.device_id or 'this device'} is not a CUDA device NVML can name"
            self.device_meter_reason = f"not available: {self.gpu_reason}"
            return
        try:
            self.nvml = self._nvml_factory()
            self.gpu_handle = self.nvml.handle(index)
        except NvmlUnavailable as exc:
            self.nvml, self.gpu_reason = None, str(exc)
            self.device_meter_reason = f"not available: {exc}"
            return
        self.gpu_index = index
        self.gpu_reason = ""
        self.gpu_name = _text(_ok(self.nvml.nv.nvmlDeviceGetName, self.gpu_handle))
        self.gpu_before = self._safe(self.nvml.sample, self.gpu_handle)
        nvml, h = self.nvml, self.gpu_handle
        limit = (self.gpu_before or {}).get("power_limit_w")
        ceiling = max(2.0 * limit, 100.0) if limit else GPU_CEILING_W
        try:
            nvml.energy_mj(h)
        except Exception as exc:  # noqa: BLE001
            self.device_meter_reason = f"not available: NVML's total-energy counter: {exc}"
        else:
            self.device_meter = EnergyMeter(f"nvml:{index}", lambda: {"gpu": nvml.energy_mj(h)}, {"gpu": None},
                                            1e-3, ceiling)

    def _nvml_count(self) -> int:
        try:
            return self._nvml_factory().count
        except NvmlUnavailable:
            return 0

    def wait_idle(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` seconds for other work to leave the cores (recorded in the state)."""
        if timeout_s and timeout_s > 0:
            self.waited = self._safe(wait_idle, timeout_s, min(0.5, timeout_s), self.busy_cores)

    # --- the measured window (the harness's observer hook) ---------------------------------------------
    def window_start(self) -> None:
        """The sampling window opens: read every counter, start the periodic sampler."""
        self._win_cpu = self._last_tick = self._safe(read_cpu)
        self._win_t0 = self.clock()
        for meter in (self.device_meter, self.host_meter):
            if meter is not None:
                meter.start()
        self._gpu_samples = []
        self._sample_gpu()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run_sampler, name="gpubench-machine-sampler", daemon=True)
        self._thread.start()

    def window_end(self, calls: int | None, not_per_call: str = "") -> None:
        """The sampling window closes after ``calls`` calls (None: not counted in calls — a self-timed run,
        or ``not_per_call`` says why).

        Energy is read at once (it divides by exactly these calls); CPU contention is judged over at
        least :data:`MIN_WINDOW_S`, watching on, idle, after a shorter window.
        """
        if self._stop is not None:
            self._stop.set()
        t1 = self.clock()
        for meter in (self.device_meter, self.host_meter):
            if meter is not None:
                meter.finish()  # read now; a sampler step still under way adds nothing after this
        self._stop_sampler()
        self._sample_gpu()
        window_s = t1 - self._win_t0
        if window_s < MIN_WINDOW_S:
            self.sleep(MIN_WINDOW_S - window_s)
        end = self._safe(read_cpu)
        self.window = {"window_s": round(window_s, 4), "calls": calls}
        if self._win_cpu is not None and end is not None:
            self.window["cpu"] = cpu_window(self._win_cpu, end)
        self.window["device_energy"] = (self.device_meter.entry(window_s, calls, not_per_call) if self.device_meter
                                        else {"reason": self.device_meter_reason or "not available"})
        if not self.is_cpu:
            self.window["host_energy"] = (self.host_meter.entry(window_s, calls, not_per_call) if self.host_meter
                                          else {"reason": self.host_meter_reason or "not available"})

    def _run_sampler(self) -> None:
        assert self._stop is not None
        while not self._stop.wait(self.interval_s):
            try:
                self._tick()
            except Exception as exc:  # noqa: BLE001 - the sampler must never take the case down
                self.errors.append(f"sampler: {type(exc).__name__}: {exc}")

    def _tick(self) -> None:
        point: dict[str, Any] = {"t": round(self.clock() - self._win_t0, 3)}
        now = read_cpu()
        if now is not None and self._last_tick is not None:
            point["other_cores"] = cpu_window(self._last_tick, now)["other_cores"]
        self._last_tick = now
        for meter in (self.device_meter, self.host_meter):
            if meter is not None:
                meter.update()
        g = self._sample_gpu()
        if g:
            point.update({k: g[k] for k in ("sm_mhz", "power_w", "temp_c", "throttle") if g.get(k) is not None})
        self._series.append(point)
        if len(self._series) > MAX_SERIES:
            self._series = self._series[::2]  # a long case keeps every other sample

    def _sample_gpu(self) -> dict[str, Any] | None:
        if self.nvml is None:
            return None
        g = self._safe(self.nvml.sample, self.gpu_handle)
        if g is not None:
            self._gpu_samples.append(g)
        return g

    def _stop_sampler(self) -> None:
        if self._stop is not None:
            self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._stop = self._thread = None

    def close(self) -> None:
        """Stop the sampler thread if a window was left open (an exception while timing)."""
        self._stop_sampler()

    # --- the outcome ----------------------------------------------------------------------------------
    def _cpu_state(self) -> dict[str, Any]:
        cpu: dict[str, Any] = {"busy_threshold_cores": self.busy_cores}
        end = self._safe(read_cpu)
        if self.cpu_before is None or end is None:
            cpu["reason"] = "psutil not installed (pip install psutil)" if _psutil() is None else "CPU times unreadable"
            return cpu
        whole = cpu_window(self.cpu_before, end)
        cpu["cores"] = self.cpu_before.cores
        win = (self.window or {}).get("cpu")
        cpu.update(win or whole)
        cpu["span"] = "window" if win else "case"
        cpu["case_other_cores"] = whole["other_cores"]
        peaks = [p["other_cores"] for p in self._series if "other_cores" in p]
        if peaks:
            cpu["other_cores_peak"] = max(peaks)
        cpu["load_before"] = self.load_before
        cpu["load_after"] = load_average()
        cpu["mhz_before"] = self.mhz_before
        cpu["mhz_after"] = current_cpu_mhz()
        return cpu

    def _gpu_state(self) -> dict[str, Any]:
        if self.nvml is None:
            return {"reason": self.gpu_reason}
        samples = self._gpu_samples
        gpu: dict[str, Any] = {"index": self.gpu_index, "name": self.gpu_name, "before": self.gpu_before,
                               "after": self._safe(self.nvml.sample, self.gpu_handle)}

        def values(key: str) -> list[float]:
            return [s[key] for s in samples if s.get(key) is not None]

        for key in ("sm_mhz", "mem_mhz", "power_w", "temp_c"):
            v = values(key)
            if v:
                gpu[f"{key}_min"], gpu[f"{key}_max"] = min(v), max(v)
        limits = values("power_limit_w")
        if limits:
            gpu["power_limit_w"] = min(limits)
        masks = values("throttle")
        if masks:
            mask = 0
            for m in masks:
                mask |= int(m)
            gpu["throttle_mask"] = mask
            gpu["throttle"] = throttle_names(mask)
        pids = self._safe(self.nvml.processes, self.gpu_handle)
        if pids is not None:
            own = os.getpid()
            if own in pids:
                gpu["other_processes"] = [p for p in pids if p != own]
            else:
                # NVML lists PIDs of the host's namespace: inside a container this process is not among them.
                gpu["processes_seen"] = pids
                gpu["other_processes_note"] = "this process is not in NVML's list (another PID namespace?)"
        return gpu

    def state(self, status: str = "ok") -> tuple[dict[str, Any], dict[str, Any], list[str]]:
        """``(machine, energy, flags)`` for the record of this case, ending with ``status``."""
        machine: dict[str, Any] = {"cpu": self._cpu_state(), "gpu": self._gpu_state()}
        if self.window:
            machine["window_s"] = self.window["window_s"]
            if self.window.get("calls") is not None:
                machine["calls"] = self.window["calls"]
        if self._series:
            machine["series"] = list(self._series)
        if self.waited is not None:
            machine["waited"] = self.waited
        if self.errors:
            machine["errors"] = self.errors[:5]
        if self.window is None:
            energy: dict[str, Any] = {"reason": f"not measured: the case ended as {status} before a measured window"
                                      if status != "ok" else "not measured: no measured window"}
        else:
            energy = dict(self.window["device_energy"])
            if "host_energy" in self.window:
                energy["host"] = self.window["host_energy"]
        flags = []
        cpu = machine["cpu"]
        if self.window is not None and cpu.get("other_cores") is not None and cpu["other_cores"] > self.busy_cores:
            flags.append("busy")
        if is_throttling(machine["gpu"].get("throttle_mask")):
            flags.append("throttled")
        return machine, energy, flags


# --- run-level helpers --------------------------------------------------------------------------------


def busy_warning(probe: dict[str, Any] | None, threshold: float = BUSY_CORES) -> str | None:
    """The one-line warning ``gpubench run`` prints when the machine is already busy (None when it is not)."""
    if not probe or probe.get("other_cores") is None or probe["other_cores"] <= threshold:
        return None
    load = load_average()
    load_text = f", load average {load[0]:g}" if load else ""
    return (f"gpubench: warning: the machine is busy: other processes use {probe['other_cores']:.2g} of "
            f"{probe.get('cores', '?')} cores{load_text}; cases measured meanwhile are flagged busy "
            "(--wait-idle S waits for quiet before each case)")


def busy_summary(results: list[Any]) -> str | None:
    """``14 of 39 measured cases ran on a busy machine; 2 throttled`` (None when no case was measured)."""
    measured = [r for r in results if getattr(r, "status", "") == "ok"]
    if not measured:
        return None
    busy = sum("busy" in r.flags for r in measured)
    throttled = sum("throttled" in r.flags for r in measured)
    text = f"{busy} of {len(measured)} measured cases ran on a busy machine (other work above {BUSY_CORES:g} cores)"
    if throttled:
        text += f"; {throttled} ran on a throttled GPU"
    return text
