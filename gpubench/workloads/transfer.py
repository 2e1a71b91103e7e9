"""Host↔device and device↔device copies: what moving the data costs.

``direction``:

* ``h2d`` — host memory to device memory;
* ``d2h`` — device memory to host memory;
* ``d2d`` — one device buffer to another (reported GB/s counts the read *and* the write,
  2·bytes, as CUDA's ``bandwidthTest`` and nvbench do, so it compares with memory bandwidth).

``memory`` (``h2d``/``d2h`` only): ``pageable`` is ordinary host memory (the driver stages it
through a pinned bounce buffer); ``pinned`` is page-locked host memory the device's DMA engine
reads and writes directly — typically 2–5× faster on a PCIe GPU.

``cache`` (``d2d`` only): ``cold`` (the default) writes a buffer twice the device's last-level
cache before every timed copy, outside the timing, and times each copy on its own, so a copy
smaller than the L2 is measured from device memory, not from cache; ``hot`` copies back to back.

Every case is verified: the backend's ``result`` returns the destination of the copy, which
must equal the source bit for bit (tolerance 0). The median per-call time is the latency of a
copy, the figure that matters for small sizes; GB/s is the figure for large ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpubench.errors import UsageError
from gpubench.workloads.base import Param, Workload, cache_param, host_dtype, random_array

DIRECTIONS = ("h2d", "d2h", "d2d")
MEMORY = ("pageable", "pinned")

#: Largest copy the workload accepts (the suite goes up to 1 GiB).
MAX_BYTES = 2**34


def format_bytes(n: int) -> str:
    """``4096`` → ``4 KiB``; ``3 << 30`` → ``3 GiB``; other sizes in bytes."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} B"


class TransferWorkload(Workload):
    """Copy ``bytes`` bytes in one ``direction``; bandwidth in GB/s, verified exactly."""

    name = "transfer"
    unit = "gbps"
    report_section = "transfer"
    description = "host↔device and device↔device copies (GB/s, latency)"
    #: 2: the ``cache`` mode of d2d (cold by default).
    version = 2
    params = {
        "bytes": Param(int),
        "direction": Param(str, default="h2d", minimum=None, choices=DIRECTIONS),
        "memory": Param(str, minimum=None, choices=MEMORY),
        "cache": cache_param(),
    }

    def normalize_params(self, params: dict[str, Any]) -> dict[str, Any]:
        if "bytes" not in params:
            raise UsageError("transfer: missing parameter bytes")
        out = super().normalize_params(params)
        if out["bytes"] % 8:
            raise UsageError(f"transfer: bytes must be a multiple of 8, got {out['bytes']}")
        if out["bytes"] > MAX_BYTES:
            raise UsageError(f"transfer: bytes must be <= {MAX_BYTES} (16 GiB), got {out['bytes']}")
        if out["direction"] == "d2d":
            if "memory" in out:
                raise UsageError("transfer: memory (pageable/pinned) applies to h2d and d2h only, not d2d")
        else:
            out.setdefault("memory", "pageable")
            if "cache" in params:
                raise UsageError("transfer: cache (cold/hot) applies to d2d only, not h2d or d2h")
            out.pop("cache", None)
        return out

    def bound(self, params):
        """d2d: device memory; h2d and d2h: the host link."""
        return "memory" if params.get("direction") == "d2d" else params.get("direction")

    def _elements(self, params: dict[str, Any], dtype: str) -> int:
        if dtype == "bfloat16":
            # Its host values live in float32, so the byte count would not be the one copied.
            raise UsageError("transfer: dtype bfloat16 is not supported (a copy moves bytes; use float32)")
        return params["bytes"] // host_dtype(dtype).itemsize

    def make_inputs(self, params, dtype, rng):
        return {"src": random_array(rng, (self._elements(params, dtype),), dtype)}

    def reference(self, inputs, params):
        # Not a float64 value: the copy must reproduce the source bit for bit.
        return inputs["src"].copy()

    def check(self, out, ref, params, dtype):
        """Relative error 0 when ``out`` is bitwise the source, else the fraction of differing bytes."""
        out = np.asarray(out)
        if out.dtype != ref.dtype or out.shape != ref.shape:
            return float("inf"), 0.0
        differ = np.count_nonzero(out.view(np.uint8) != ref.view(np.uint8))
        return differ / max(ref.nbytes, 1), 0.0

    def tolerance(self, params, dtype):
        return 0.0

    def bytes_moved(self, params, dtype):
        return float(params["bytes"] * (2 if params["direction"] == "d2d" else 1))

    def memory_bytes(self, params, dtype):
        self._elements(params, dtype)  # rejects an unsupported dtype when the suite is expanded
        # host source, reference copy, host destination or read-back, and the check's byte mask.
        return int(4 * params["bytes"] + params["bytes"])

    def device_bytes(self, params, dtype):
        """The device buffer (source and destination for a d2d copy)."""
        return int(params["bytes"] * (2 if params["direction"] == "d2d" else 1))

    def describe(self, params):
        text = f"{params['direction']} {format_bytes(params['bytes'])}"
        return text + (f" {params['memory']}" if "memory" in params else "")
