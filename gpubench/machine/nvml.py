"""NVML (nvidia-ml-py): a best-effort view of the NVIDIA GPUs, and what their clock-event reasons mean.

:class:`Nvml` reads SM and memory clocks, temperature, power draw and limit, the clock-event
("throttle") reasons, other processes on the GPU, the total-energy counter, and the static facts
``gpubench env`` shows (max clocks, ECC, persistence, MIG, PCIe link). :func:`nvml_index` maps a
CUDA device id to NVML's numbering through ``CUDA_VISIBLE_DEVICES``.

pynvml is imported lazily: importing this module costs nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

#: NVML clock-event ("throttle") reason bits, by name (nvmlClocksEventReason* / nvmlClocksThrottleReason*).
THROTTLE_REASONS = {
    0x1: "gpu_idle", 0x2: "applications_clocks_setting", 0x4: "sw_power_cap", 0x8: "hw_slowdown",
    0x10: "sync_boost", 0x20: "sw_thermal_slowdown", 0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown", 0x100: "display_clock_setting", 0x200: "board_limit", 0x400: "reliability",
}

#: Reasons that do not slow a running kernel: an idle GPU, clocks set by the user or the display.
NOT_THROTTLING = 0x1 | 0x2 | 0x100

#: The software power cap: the driver holds the board at its power limit. The steady state of a large
#: GPU under heavy work (an H100 under a large GEMM sits at its 700 W cap), so it is kept in the record
#: (``throttle``) but does not make a case ``throttled``: its clock is what the board delivers under load.
POWER_CAP = 0x4

#: Reasons that lower the clock below what the board delivers under load: thermal (software or hardware),
#: hardware slowdown, power brake, sync boost, and any bit this table does not know. These flag a case.
THROTTLING = ~(NOT_THROTTLING | POWER_CAP)


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
    """Whether a clock-event bitmask holds a reason that slows the GPU below its loaded clock: anything but an
    idle GPU, user or display clock settings and the software power cap (:data:`THROTTLING`)."""
    return bool(mask and mask & THROTTLING)


def throttling_names(mask: int | None) -> list[str]:
    """The names of the reasons in ``mask`` that make a case ``throttled`` (:func:`is_throttling`)."""
    return throttle_names((mask or 0) & THROTTLING)


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

    def name(self, h: Any) -> str | None:
        """The GPU's product name (None when NVML will not say)."""
        return _text(_ok(self.nv.nvmlDeviceGetName, h))

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

