"""Whether a case fits in memory, decided before anything of it is allocated.

A case holds memory in two places: the workload's side (its random inputs, the float64 reference
and the check's temporaries: :meth:`~gpubench.workloads.base.Workload.memory_bytes`, always host
memory) and the op's side (the backend's own copies of the inputs and output, scratch buffers,
an unfused kernel's intermediates: :meth:`~gpubench.workloads.base.Workload.device_bytes`) plus,
in cold-cache mode, the flush buffer of twice the device's last-level cache. On a device that
computes from host memory (a CPU, or an OpenCL device on one such as PoCL's) both sides and the
flush buffer are host memory, counted together; on an accelerator the op's side and the flush
buffer count against the device's memory, the workload's side against the host's.

The host memory a case may use is :data:`HEADROOM` of what the machine has available now
(:func:`available_host_bytes`: ``MemAvailable``, bounded by the process's cgroup limit where it
has one, :func:`gpubench.envinfo.cgroup_headroom`), read when the case is prepared, so a case
sized for an idle machine is still checked against the memory that is free when it runs. A case
that does not fit is ``skipped`` with :func:`shortfall`'s reason; :mod:`gpubench.calibrate` sizes
its memory-ceiling cases with :func:`largest_fitting` so that they fit in the first place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Fraction of the available host memory a case may use (the rest for the interpreter, the framework and others).
HEADROOM = 0.9


@dataclass(frozen=True)
class MemoryNeed:
    """Bytes a case needs: ``host`` (the workload's side), ``op`` (the backend's copies, where the op
    runs) and ``flush`` (the cold-cache buffer, where the op runs); ``on_host`` when the op runs from
    host memory, so that all three are host memory."""

    host: int
    op: int
    flush: int
    on_host: bool

    @property
    def host_total(self) -> int:
        """Host memory the case needs."""
        return self.host + (self.op + self.flush if self.on_host else 0)

    @property
    def device_total(self) -> int:
        """Device memory the case needs (0 when its device is host memory)."""
        return 0 if self.on_host else self.op + self.flush


def available_host_bytes() -> int:
    """Host memory available now (``MemAvailable``, bounded by the cgroup's limit); 0 where unknown."""
    from gpubench import envinfo

    return envinfo.available_memory()


def case_need(workload: Any, params: dict[str, Any], dtype: str, device: Any = None,
              flush_bytes: int = 0) -> MemoryNeed:
    """The :class:`MemoryNeed` of a case of ``workload`` on ``device`` (a CPU when None)."""
    from gpubench.ops import is_cpu_device

    on_host = device is None or is_cpu_device(device)
    return MemoryNeed(int(workload.memory_bytes(params, dtype)), int(workload.device_bytes(params, dtype)),
                      int(flush_bytes), on_host)


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def shortfall(need: MemoryNeed, device: Any = None, available: int | None = None) -> str | None:
    """Why a case with ``need`` cannot run now (host or device memory too small), or None when it fits.

    ``available``: host bytes available (default :func:`available_host_bytes`; 0 means unknown,
    and the host is then not checked). The device is checked against its ``memory_bytes`` where known.
    """
    if available is None:
        available = available_host_bytes()
    budget = int(available * HEADROOM)
    host = need.host_total
    if available and host > budget:
        parts = [f"inputs, reference and check {_gib(need.host)}"]
        if need.on_host:
            parts.append(f"the op's copies {_gib(need.op)}")
            if need.flush:
                parts.append(f"cache flush buffer {_gib(need.flush)}")
        return (f"needs about {_gib(host)} of host memory ({', '.join(parts)}); {_gib(available)} available, "
                f"a case may use {HEADROOM:.0%} of it")
    device_memory = getattr(device, "memory_bytes", None) if device is not None else None
    if not need.on_host and device_memory and need.device_total > device_memory:
        return f"needs about {_gib(need.device_total)} on {device.id}, which has {_gib(device_memory)}"
    return None


def largest_fitting(need: Callable[[int], int], preferred: int, minimum: int, budget: int, granule: int = 1) -> int:
    """The largest size in [``minimum``, ``preferred``], a multiple of ``granule``, whose ``need(size)`` is
    within ``budget`` bytes; ``preferred`` when it fits or the budget is unknown (0); ``minimum`` when
    nothing fits (the case path then skips it with the reason)."""
    if budget <= 0 or need(preferred) <= budget:
        return preferred
    lo, hi = -(-max(minimum, granule) // granule), preferred // granule  # in granules
    if lo > hi or need(lo * granule) > budget:
        return minimum
    while lo < hi:  # need is non-decreasing in size: the last granule count that fits
        mid = (lo + hi + 1) // 2
        if need(mid * granule) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo * granule
