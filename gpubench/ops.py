"""What a backend hands the harness: a concrete device (:class:`DeviceInfo`) and a ready op (:class:`BoundOp`).

These two types are the meeting point of workloads, backends and the case path, so they live
below all three: a workload may wrap a backend's op (MNIST's training run does) without
importing any backend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gpubench.harness import HostTimer, Timer


@dataclass(frozen=True)
class DeviceInfo:
    """A concrete device: ``id`` as used on the command line (``cpu``, ``cuda:0``, ``opencl:0:1``).

    ``kind`` is how gpubench drives it (``cpu``, ``cuda``, ``opencl``); ``hardware`` what it physically
    is when the kind does not say (``cpu``, ``gpu`` or ``accelerator``): an OpenCL device on a CPU,
    such as PoCL's, is kind ``opencl`` with hardware ``cpu``, so reports show it as a CPU and never
    call it an accelerator. Empty means the kind says it all.
    """

    id: str
    name: str
    kind: str
    memory_bytes: int | None = None
    dtypes: tuple[str, ...] = ("float64", "float32")
    details: dict[str, Any] = field(default_factory=dict)
    hardware: str = ""


def _field(device: Any, key: str) -> Any:
    return device.get(key) if isinstance(device, dict) else getattr(device, key, None)


def device_hardware(device: DeviceInfo | dict[str, Any] | None) -> str:
    """What a device (a :class:`DeviceInfo`, or its dict as a run environment stores it) physically is:
    its declared ``hardware``, else read from an OpenCL device type (``ALL | CPU``), else ``""``."""
    if not device:
        return ""
    if _field(device, "hardware"):
        return str(_field(device, "hardware"))
    kind = str((_field(device, "details") or {}).get("type", "")).upper()
    if "GPU" in kind:
        return "gpu"
    if "CPU" in kind:
        return "cpu"
    if "ACCELERATOR" in kind:
        return "accelerator"
    return ""


def is_cpu_device(device: DeviceInfo | dict[str, Any]) -> bool:
    """Whether a device computes on the host CPU: kind ``cpu``, declared hardware ``cpu``, or (devices recorded
    before ``hardware`` existed) an OpenCL type that is CPU only (PoCL's ``ALL | CPU``)."""
    if _field(device, "kind") == "cpu":
        return True
    if _field(device, "hardware"):
        return _field(device, "hardware") == "cpu"
    kind = str((_field(device, "details") or {}).get("type", "")).upper()
    return "CPU" in kind and "GPU" not in kind and "ACCELERATOR" not in kind


@dataclass
class BoundOp:
    """One case made ready to run: inputs on the device, output buffer allocated.

    ``call`` runs the operation once (it may return before the device finishes); ``timer``
    times it correctly for the device; ``result`` synchronizes and returns the output as a
    host NumPy array; ``close`` frees device memory.
    """

    call: Callable[[], object]
    result: Callable[[], np.ndarray]
    timer: Timer = field(default_factory=HostTimer)
    close: Callable[[], None] | None = None
    sources: dict[str, str] = field(default_factory=dict)
    """Kernel source texts this op runs (hashed into the record so changed kernels are not compared)."""
    metrics: dict[str, Any] = field(default_factory=dict)
    """Extra per-case measurements (for example an MNIST accuracy curve)."""
    device_inputs: dict[str, Any] = field(default_factory=dict)
    """Device arrays the op reads, by input name, that ``include_transfer`` refills from host memory."""
    device_output: Any = None
    """Device array the op writes (or a function returning the latest one, for ops that allocate
    their output), that ``include_transfer`` copies back to host memory."""
    blocks_host: bool = False
    """Each call returns only when its work is done, by nature: a copy from or to pageable host memory
    (the driver stages it through a pinned buffer while the host waits). Its host time per call is its
    device time, so it is never called launch-bound (:func:`gpubench.harness.launch_bound`)."""


@dataclass
class CacheFlusher:
    """Evicts a device's caches before a cold-cache call: each ``flush()`` writes ``nbytes`` (at least
    twice the last-level cache) on the device, on the queue the op runs on, without waiting for it.

    ``cache_bytes`` is the last-level cache it was sized for and ``cache_source`` where that size was
    read (``sysfs L3``, ``torch L2_cache_size``, ...); both go into the record's metrics.
    """

    flush: Callable[[], object]
    nbytes: int
    cache_bytes: int
    cache_source: str
    close: Callable[[], None] | None = None
    buffer: Any = None
    """The buffer it writes (for inspection; backends may leave it out)."""

    def metrics(self) -> dict[str, Any]:
        """What a cold case's record says about its flush."""
        return {"cache_flush_bytes": int(self.nbytes), "llc_bytes": int(self.cache_bytes),
                "llc_source": self.cache_source}
