"""Last-level cache sizes and the host-memory cache flusher of the cold-cache mode.

Cold-cache mode (as nvbench's and Triton's ``do_bench``) writes a buffer at least twice the
last-level cache before every timed call, outside the timed region, so a small case is measured
from memory, not from cache. This module reads the cache sizes that need no framework: a CPU's
from sysfs (``/sys/devices/system/cpu/cpu*/cache/index*/{level,type,size,shared_cpu_list}``), a
CUDA GPU's L2 from the driver (``cuDeviceGetAttribute``, for backends whose framework does not
expose it), and builds the flusher of host memory that every CPU device uses. Device flushers
live in their backends (:meth:`gpubench.backends.base.Backend.cache_flusher`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

import numpy as np

from gpubench.ops import CacheFlusher

#: sysfs directory of the CPUs.
SYSFS_CPU = Path("/sys/devices/system/cpu")
#: Cache size assumed where none can be read (stated as the record's ``llc_source``).
ASSUMED_CACHE_BYTES = 64 << 20
#: ``CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE`` of the CUDA driver API.
CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE = 38


def parse_size(text: str) -> int:
    """``32768K`` / ``1M`` / ``512`` (sysfs cache sizes) in bytes."""
    text = text.strip().upper()
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    digits = text[:-1] if text[-1:] in "KMG" else text
    return int(digits) * scale


def cpu_last_level_cache(root: Path = SYSFS_CPU) -> tuple[int, str] | None:
    """The CPU's last-level cache as ``(bytes, source)``: the highest level's data or unified caches, one
    per distinct set of sharing CPUs (a package with two L3 slices counts both). None when sysfs has none."""
    instances: dict[tuple[int, str], int] = {}
    for index in sorted(root.glob("cpu[0-9]*/cache/index[0-9]*")):
        try:
            kind = (index / "type").read_text().strip()
            if kind not in ("Data", "Unified"):
                continue
            level = int((index / "level").read_text())
            size = parse_size((index / "size").read_text())
            shared = (index / "shared_cpu_list").read_text().strip() if (index / "shared_cpu_list").exists() \
                else index.parent.parent.name
        except (OSError, ValueError):
            continue
        instances[(level, shared)] = size
    if not instances:
        return None
    top = max(level for level, _ in instances)
    sizes = [size for (level, _), size in instances.items() if level == top]
    total = sum(sizes)
    each = f"{sizes[0] >> 20} MiB" if all(s == sizes[0] for s in sizes) and sizes[0] >= 1 << 20 else f"{total} B"
    return total, f"sysfs L{top} {each} × {len(sizes)}"


def host_cache_bytes() -> tuple[int, str]:
    """The CPU's last-level cache: sysfs, else ``sysconf``, else :data:`ASSUMED_CACHE_BYTES` (said so)."""
    found = cpu_last_level_cache()
    if found:
        return found
    for name, level in (("SC_LEVEL3_CACHE_SIZE", 3), ("SC_LEVEL2_CACHE_SIZE", 2)):
        try:
            size = os.sysconf(name)
        except (ValueError, OSError, AttributeError):
            continue
        if size and size > 0:
            return int(size), f"sysconf L{level}"
    return ASSUMED_CACHE_BYTES, "assumed (no cache size readable)"


def flush_bytes(cache_bytes: int) -> int:
    """Size of the flush buffer: twice the cache, in whole 4 KiB pages."""
    return max(4096, -(-2 * int(cache_bytes) // 4096) * 4096)


def host_flusher(cache: tuple[int, str] | None = None) -> CacheFlusher:
    """A flusher of host memory: each flush inverts every word of a buffer twice the last-level cache.

    A read-modify-write pass with ordinary stores, not ``fill``: a large ``memset`` may use
    non-temporal stores that bypass the cache and leave the case's data in it.
    """
    cache_bytes, source = cache or host_cache_bytes()
    nbytes = flush_bytes(cache_bytes)
    buffer = np.zeros(nbytes // 8, dtype=np.uint64)
    invert = np.invert

    def flush() -> None:
        invert(buffer, out=buffer)

    return CacheFlusher(flush, nbytes, cache_bytes, source, buffer=buffer)


def cuda_l2_bytes(ordinal: int, lib: object | None = None) -> int | None:
    """L2 cache of CUDA device ``ordinal`` from the driver API (``libcuda``), or None without a driver.

    For backends whose framework does not report it (TensorFlow); ``lib`` is for tests.
    """
    if lib is None:
        name = ctypes.util.find_library("cuda") or "libcuda.so.1"
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            return None
    try:
        if lib.cuInit(0) != 0:
            return None
        device = ctypes.c_int()
        if lib.cuDeviceGet(ctypes.byref(device), int(ordinal)) != 0:
            return None
        value = ctypes.c_int()
        if lib.cuDeviceGetAttribute(ctypes.byref(value), CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE, device) != 0:
            return None
    except (AttributeError, OSError):
        return None
    return int(value.value) or None


def gpu_l2_cache(ordinal: int, device_name: str = "", lib: object | None = None) -> tuple[int, str] | None:
    """A CUDA GPU's L2 as ``(bytes, source)``: from the driver (:func:`cuda_l2_bytes`), else from the datasheet of
    a known GPU by name; None when neither knows it. For backends whose framework does not report it."""
    size = cuda_l2_bytes(ordinal, lib)
    if size:
        return size, "CUDA driver L2 attribute"
    from gpubench.datasheet import device_facts

    facts = device_facts(device_name)
    if facts and facts[1].get("l2_mb"):
        return int(facts[1]["l2_mb"]) * 10**6, f"datasheet {facts[0]} L2"
    return None
