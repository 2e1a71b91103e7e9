"""Physical ceilings of a device, and the guard that calls a rate above one ``implausible``.

A figure above a physical ceiling is a measurement error (a copy that never happened, a timer
that missed the work, TF32 where float32 was asked), never a result. The case path holds every
``ok`` case against the ceiling its workload names (:meth:`Workload.bound
<gpubench.workloads.base.Workload.bound>`) when it is measured, and ``gpubench export``, ``show``
and ``report`` hold stored rows against the same physical ceilings when they are read (plus the
machine's measured ones, for ``above_ceiling``). Where each ceiling comes from, best first:

* **compute** (``GFLOP/s`` of the case's compute dtype): a GPU's datasheet peak for GEMMs
  (:func:`gpubench.datasheet.gemm_peak`: float64 on FP64 tensor cores where the GPU has them, since
  only dense matmul-shaped workloads name this bound); a CPU's cores × vector FLOP per cycle of its ISA (AVX-512,
  AVX2, AMX, NEON/SVE) × its highest clock from sysfs (where sysfs gives no clock, as in most
  virtual machines, the highest clock any CPU runs at: a looser bound, but still a bound).
* **memory** (``GB/s``, read + written): a GPU's datasheet memory bandwidth. Held only against
  cold-cache cases and cases that move at least four times the last-level cache: a hot, small
  case legitimately runs from cache, faster than memory.
* **host link** (``GB/s`` per direction) for h2d/d2h copies: a non-PCIe link from the datasheet
  (NVLink-C2C); else the PCIe generation × width the device reports (NVML's maximum link, or
  sysfs ``max_link_speed``/``max_link_width`` of its PCI address); else the datasheet's slot.
"""

from __future__ import annotations

import functools
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gpubench.datasheet import PEAK_TEXT, datasheet_for, device_facts, gemm_peak, pcie_gbps

#: Bounds a workload may name (see ``Workload.bound``).
BOUND_COMPUTE, BOUND_MEMORY, BOUND_H2D, BOUND_D2H = "compute", "memory", "h2d", "d2h"
#: A hot case is held against the memory ceiling when it moves at least this many times the last-level cache.
LARGE_CASE_FACTOR = 4
#: PCIe transfer rate (GT/s) of each generation, as sysfs ``max_link_speed`` writes it.
PCIE_GTS = {2.5: 1, 5.0: 2, 8.0: 3, 16.0: 4, 32.0: 5, 64.0: 6}
SYSFS_PCI = Path("/sys/bus/pci/devices")
SYSFS_CPU = Path("/sys/devices/system/cpu")


@dataclass(frozen=True)
class Ceiling:
    """A physical ceiling: what it bounds (``compute float32``, ``memory``, ``host link``), its value and source."""

    name: str
    value: float
    unit: str
    source: str


@dataclass(frozen=True)
class HostLink:
    """A device's link to host memory: bandwidth per direction, and the PCIe generation and width behind it."""

    gbps: float
    source: str
    generation: int | None = None
    lanes: int | None = None


# --- host link ---------------------------------------------------------------------------------------
def nvml_host_link(uuid: str | None = None, pci_bus_id: str | None = None, nvml: Any = None) -> HostLink | None:
    """The PCIe link NVML reports for a GPU (by UUID or PCI bus id; the only GPU when neither is known).

    Uses the *maximum* generation and width possible with this device and system: an idle GPU
    drops its current link to generation 1, which is no ceiling. ``nvml`` is for tests.
    """
    if nvml is None:
        try:
            import pynvml as nvml
        except ImportError:
            return None
    try:
        nvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no driver: no link facts
        return None
    try:
        if uuid:
            handle = nvml.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}")
        elif pci_bus_id:
            handle = nvml.nvmlDeviceGetHandleByPciBusId(pci_bus_id)
        elif nvml.nvmlDeviceGetCount() == 1:
            handle = nvml.nvmlDeviceGetHandleByIndex(0)
        else:
            return None
        gen = int(nvml.nvmlDeviceGetMaxPcieLinkGeneration(handle))
        lanes = int(nvml.nvmlDeviceGetMaxPcieLinkWidth(handle))
        try:
            now = f", now gen{int(nvml.nvmlDeviceGetCurrPcieLinkGeneration(handle))} " \
                  f"x{int(nvml.nvmlDeviceGetCurrPcieLinkWidth(handle))}"
        except Exception:  # noqa: BLE001 - the current link is only informative
            now = ""
    except Exception:  # noqa: BLE001 - an NVML without these calls: no link facts
        return None
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass
    gbps = pcie_gbps(gen, lanes)
    if gbps is None:
        return None
    return HostLink(gbps, f"PCIe gen{gen} x{lanes} (NVML maximum link{now})", gen, lanes)


def sysfs_host_link(pci_bus_id: str, root: Path = SYSFS_PCI) -> HostLink | None:
    """The PCIe link of a PCI device from sysfs (``max_link_speed`` such as ``32.0 GT/s PCIe``, ``max_link_width``)."""
    if not pci_bus_id:
        return None
    bus = pci_bus_id.lower()
    if bus.count(":") == 1:
        bus = "0000:" + bus
    if len(bus.split(":")[0]) == 8:  # NVML writes an 8-digit domain
        bus = bus[4:]
    path = root / bus
    try:
        speed = float((path / "max_link_speed").read_text().split()[0])
        lanes = int((path / "max_link_width").read_text().strip())
    except (OSError, ValueError, IndexError):
        return None
    gen = PCIE_GTS.get(speed)
    gbps = pcie_gbps(gen, lanes) if gen else None
    if gbps is None:
        return None
    return HostLink(gbps, f"PCIe gen{gen} x{lanes} (sysfs max link of {bus})", gen, lanes)


def datasheet_host_link(device_name: str) -> HostLink | None:
    """The host link a known GPU is built for (its PCIe slot, or NVLink-C2C)."""
    found = device_facts(device_name)
    if found is None:
        return None
    name, facts = found
    if facts.get("host_link_gbps"):
        return HostLink(float(facts["host_link_gbps"]), f"datasheet {name} host link")
    if facts.get("pcie"):
        gen, lanes = facts["pcie"]
        return HostLink(pcie_gbps(gen, lanes), f"PCIe gen{gen} x{lanes} (datasheet {name})", gen, lanes)
    return None


@functools.lru_cache(maxsize=32)
def host_link(device_name: str, uuid: str | None = None, pci_bus_id: str | None = None) -> HostLink | None:
    """The best-known host link of a GPU: a non-PCIe datasheet link, else NVML, sysfs, the datasheet's slot."""
    sheet = datasheet_host_link(device_name)
    if sheet is not None and sheet.generation is None:
        return sheet  # NVLink-C2C: PCIe facts would understate it
    return (nvml_host_link(uuid, pci_bus_id) or (sysfs_host_link(pci_bus_id) if pci_bus_id else None)
            or sheet)


# --- CPU compute -------------------------------------------------------------------------------------
def cpu_flop_per_cycle(dtype: str, flags: set[str] | list[str]) -> int:
    """An upper bound of one CPU core's FLOP per cycle for ``dtype`` (two FMA pipes at the widest vector)."""
    flags = set(flags)
    if "avx512f" in flags or "sve" in flags:
        fp32 = 64
    elif "avx2" in flags or "fma" in flags or "asimd" in flags:
        fp32 = 32
    else:
        fp32 = 16
    if dtype == "float64":
        return fp32 // 2
    if dtype in ("bfloat16", "float16"):
        return 2048 if flags & {"amx_bf16", "amx_fp16", "amx_tile"} else 2 * fp32
    return fp32  # float32, tf32


def cpu_max_mhz(root: Path = SYSFS_CPU) -> float | None:
    """The highest clock any CPU may run at (sysfs ``cpuinfo_max_freq``), None where sysfs has none (VMs)."""
    best = 0.0
    for path in root.glob("cpu[0-9]*/cpufreq/cpuinfo_max_freq"):
        try:
            best = max(best, int(path.read_text()) / 1000.0)
        except (OSError, ValueError):
            continue
    return best or None


#: No CPU has shipped with a clock above this (the fastest boost clocks are about 6.2 GHz). Where the system
#: hides the clock (virtual machines), the CPU's compute ceiling is taken at it: an upper bound, never a peak.
CPU_CLOCK_BOUND_MHZ = 6500.0


def cpu_compute_ceiling(dtype: str, flags: list[str] | None = None, cpus: int | None = None,
                        max_mhz: float | None = None) -> Ceiling | None:
    """Logical CPUs × FLOP per cycle × highest clock: no CPU computes faster.

    The clock is sysfs's highest (``max_mhz`` overrides it); where sysfs has none, :data:`CPU_CLOCK_BOUND_MHZ`, so
    that a rate no CPU of this width could reach (an asynchronous call timed at its launch) is still caught.
    ``max_mhz=0`` means no ceiling.
    """
    from gpubench.envinfo import cpu_flags

    flags = cpu_flags() if flags is None else flags
    cpus = cpus or os.cpu_count() or 1
    mhz = max_mhz if max_mhz is not None else cpu_max_mhz()
    how = "ISA and sysfs"
    if mhz is None:
        mhz, how = CPU_CLOCK_BOUND_MHZ, "ISA; sysfs hides the clock, so the highest any CPU runs at: an upper bound"
    if not mhz:
        return None
    per_cycle = cpu_flop_per_cycle(dtype, flags)
    value = cpus * per_cycle * mhz / 1000.0
    return Ceiling(f"compute {dtype}", value, "GFLOP/s",
                   f"{cpus} CPUs × {per_cycle} FLOP/cycle × {mhz:.0f} MHz ({how})")


# --- the guard ---------------------------------------------------------------------------------------
def memory_bound_applies(params: dict[str, Any], bytes_moved: float | None, llc_bytes: int | None) -> bool:
    """Whether a memory-bound case must stay under memory bandwidth: it ran cold, or it is large."""
    if params.get("cache") == "cold":
        return True
    return bool(bytes_moved and llc_bytes and bytes_moved >= LARGE_CASE_FACTOR * llc_bytes)


def physical_ceiling(bound: str | None, *, device_name: str, is_cpu: bool, compute_dtype: str,
                     params: dict[str, Any] | None = None, bytes_moved: float | None = None,
                     llc_bytes: int | None = None, link: HostLink | None = None,
                     cpu_ceiling=cpu_compute_ceiling) -> Ceiling | None:
    """The physical ceiling a case with this ``bound`` is held against, or None where none applies or is known."""
    params = params or {}
    if bound == BOUND_COMPUTE:
        if is_cpu:
            return cpu_ceiling(compute_dtype)
        # Only dense matmul-shaped workloads are compute-bound (Workload.bound): the GEMM peak applies.
        found = datasheet_for(device_name)
        peak = gemm_peak(found[1], compute_dtype) if found else None
        if peak is None:
            return None
        value, key = peak
        which = f" ({PEAK_TEXT[key]})" if key in PEAK_TEXT else ""
        return Ceiling(f"compute {compute_dtype}", value * 1000.0, "GFLOP/s", f"datasheet {found[0]}{which}")
    if bound == BOUND_MEMORY:
        if is_cpu or not memory_bound_applies(params, bytes_moved, llc_bytes):
            return None
        found = datasheet_for(device_name)
        if found and found[1].get("mem_gbps"):
            return Ceiling("memory", float(found[1]["mem_gbps"]), "GB/s", f"datasheet {found[0]}")
        return None
    if bound in (BOUND_H2D, BOUND_D2H) and link is not None and not is_cpu:
        return Ceiling("host link", link.gbps, "GB/s", link.source)
    return None


def judge(rate: float | None, ceiling: Ceiling | None) -> dict[str, Any] | None:
    """``None`` when ``rate`` is within ``ceiling``; else what a record's ``metrics["implausible"]`` holds."""
    if rate is None or ceiling is None or not rate > ceiling.value:
        return None
    return {**asdict(ceiling), "rate": rate}
