"""Know the machine while it is measured: CPU contention, clocks, throttling and energy, per case.

One module per idea, each best effort (a reading that cannot be taken says why, it never guesses):

* :mod:`~gpubench.machine.contention`: CPU time taken by other work (psutil), load, CPU frequency;
* :mod:`~gpubench.machine.energy`: the RAPL counters and :class:`EnergyMeter` over any energy counter;
* :mod:`~gpubench.machine.nvml`: NVML (nvidia-ml-py): clocks, power, clock-event reasons, facts;
* :mod:`~gpubench.machine.watch`: :class:`CaseWatch`, all of them around one case.

The names the rest of gpubench uses are re-exported here. Heavy imports (psutil, pynvml) are lazy:
importing this package costs nothing.
"""

from gpubench.machine.contention import (
    BUSY_CORES,
    MIN_WINDOW_S,
    CpuReading,
    cpu_frequency,
    cpu_window,
    current_cpu_mhz,
    load_average,
    probe_cpu,
    read_cpu,
    usable_cpus,
    wait_idle,
)
from gpubench.machine.energy import (
    CPU_PACKAGE_CEILING_W,
    GPU_CEILING_W,
    NVML_MIN_WINDOW_S,
    EnergyMeter,
    Rapl,
    nvml_meter,
    rapl_meter,
)
from gpubench.machine.nvml import (
    NOT_THROTTLING,
    POWER_CAP,
    THROTTLE_REASONS,
    THROTTLING,
    Nvml,
    NvmlUnavailable,
    default_nvml,
    gpu_environment,
    is_throttling,
    nvml_index,
    throttle_names,
    throttling_names,
)
from gpubench.machine.watch import MAX_SERIES, SAMPLE_INTERVAL_S, CaseWatch

__all__ = [
    "BUSY_CORES", "CPU_PACKAGE_CEILING_W", "GPU_CEILING_W", "MAX_SERIES", "MIN_WINDOW_S", "NOT_THROTTLING",
    "NVML_MIN_WINDOW_S", "POWER_CAP", "SAMPLE_INTERVAL_S", "THROTTLE_REASONS", "THROTTLING", "CaseWatch",
    "CpuReading", "EnergyMeter", "Nvml", "NvmlUnavailable", "Rapl", "cpu_frequency", "cpu_window",
    "current_cpu_mhz", "default_nvml", "gpu_environment", "is_throttling", "load_average", "nvml_index",
    "nvml_meter", "probe_cpu", "rapl_meter", "read_cpu", "throttle_names", "throttling_names", "usable_cpus",
    "wait_idle",
]
