"""Vendor datasheet peaks of well-known GPUs, shown beside the measured ceilings.

Dense (no sparsity) figures from NVIDIA's product datasheets; H100 and H200 as in docs/measurement.md §5.
A datasheet peak is a ceiling no program reaches: good cuBLAS reaches 75–85 % of the tensor
peak and a large copy 85–90 % of the memory peak. Values: TFLOP/s per dtype (``tf32`` is
float32 on tensor cores; ``float8_e4m3fn``/``float8_e5m2`` are FP8 tensor-core products, given
for the GPUs that have them: Hopper and Ada) and memory (HBM/GDDR) bandwidth in GB/s.

:data:`DEVICE_FACTS` adds, per GPU, its L2 cache in MB (used where a backend cannot read it from
the device) and its host link: ``pcie`` as ``(generation, lanes)``, or ``host_link_gbps`` per
direction for a link that is not PCIe (NVLink-C2C). :data:`PCIE_LANE_GBPS` turns a PCIe generation
and width into the link's bandwidth per direction; the plausibility guard
(:mod:`gpubench.plausibility`) holds host↔device copies against it.
"""

from __future__ import annotations

import re
from typing import Any


def _fp8(tflops: float) -> dict[str, float]:
    """The dense FP8 tensor-core peak, the same for both operand formats (E4M3 and E5M2)."""
    return {"float8_e4m3fn": tflops, "float8_e5m2": tflops}


#: (pattern on the lower-cased device name, display name, peaks). First match wins.
DATASHEETS: tuple[tuple[str, str, dict[str, float]], ...] = (
    (r"h100.*(pcie)", "H100 PCIe",
     {"float64": 26, "float32": 51, "tf32": 378, "bfloat16": 756, "float16": 756, **_fp8(1513), "mem_gbps": 2000}),
    (r"h100.*nvl", "H100 NVL",
     {"float64": 30, "float32": 60, "tf32": 418, "bfloat16": 835, "float16": 835, **_fp8(1670.5), "mem_gbps": 3900}),
    (r"gh200", "GH200",
     {"float64": 34, "float32": 67, "tf32": 494, "bfloat16": 990, "float16": 990, **_fp8(1979), "mem_gbps": 4900}),
    (r"h100", "H100 SXM",
     {"float64": 34, "float32": 67, "tf32": 495, "bfloat16": 989, "float16": 989, **_fp8(1979), "mem_gbps": 3350}),
    (r"h200", "H200",
     {"float64": 34, "float32": 67, "tf32": 495, "bfloat16": 989, "float16": 989, **_fp8(1979), "mem_gbps": 4800}),
    (r"a100.*80\s*gb.*pcie|a100.*pcie.*80", "A100 80GB PCIe",
     {"float64": 9.7, "float32": 19.5, "tf32": 156, "bfloat16": 312, "float16": 312, "mem_gbps": 1935}),
    (r"a100.*(pcie|40\s*gb)", "A100 40GB",
     {"float64": 9.7, "float32": 19.5, "tf32": 156, "bfloat16": 312, "float16": 312, "mem_gbps": 1555}),
    (r"a100", "A100 80GB SXM",
     {"float64": 9.7, "float32": 19.5, "tf32": 156, "bfloat16": 312, "float16": 312, "mem_gbps": 2039}),
    (r"\bl40s\b", "L40S",
     {"float32": 91.6, "tf32": 183, "bfloat16": 362, "float16": 362, **_fp8(733), "mem_gbps": 864}),
    (r"\bl4\b", "L4",
     {"float32": 30.3, "tf32": 60, "bfloat16": 121, "float16": 121, **_fp8(242.5), "mem_gbps": 300}),
    (r"\ba10\b", "A10",
     {"float32": 31.2, "tf32": 62.5, "bfloat16": 125, "float16": 125, "mem_gbps": 600}),
    (r"rtx 4090", "GeForce RTX 4090",
     {"float32": 82.6, "tf32": 82.6, "bfloat16": 165, "float16": 165, "mem_gbps": 1008}),
    (r"\bt4\b", "T4",
     {"float32": 8.1, "float16": 65, "mem_gbps": 320}),
    (r"v100", "V100",
     {"float64": 7.8, "float32": 15.7, "float16": 125, "mem_gbps": 900}),
)

#: L2 cache (MB) and host link of the GPUs in :data:`DATASHEETS`, by display name.
DEVICE_FACTS: dict[str, dict[str, object]] = {
    "H100 PCIe": {"l2_mb": 50, "pcie": (5, 16)},
    "H100 NVL": {"l2_mb": 50, "pcie": (5, 16)},
    "GH200": {"l2_mb": 60, "host_link_gbps": 450},  # NVLink-C2C, 900 GB/s both ways
    "H100 SXM": {"l2_mb": 50, "pcie": (5, 16)},
    "H200": {"l2_mb": 60, "pcie": (5, 16)},
    "A100 80GB PCIe": {"l2_mb": 40, "pcie": (4, 16)},
    "A100 40GB": {"l2_mb": 40, "pcie": (4, 16)},
    "A100 80GB SXM": {"l2_mb": 40, "pcie": (4, 16)},
    "L40S": {"l2_mb": 96, "pcie": (4, 16)},
    "L4": {"l2_mb": 48, "pcie": (4, 16)},
    "A10": {"l2_mb": 6, "pcie": (4, 16)},
    "GeForce RTX 4090": {"l2_mb": 72, "pcie": (4, 16)},
    "T4": {"l2_mb": 4, "pcie": (3, 16)},
    "V100": {"l2_mb": 6, "pcie": (3, 16)},
}

#: Bandwidth of one PCIe lane per direction in GB/s after line encoding: 2.5 and 5 GT/s with
#: 8b/10b (generations 1–2), 8, 16 and 32 GT/s with 128b/130b (3–5), 64 GT/s with 242/256 FLIT (6).
#: A link's ceiling is lanes × this; packet headers keep real copies at 80–90 % of it.
PCIE_LANE_GBPS = {1: 0.25, 2: 0.5, 3: 8 * 128 / 130 / 8, 4: 16 * 128 / 130 / 8, 5: 32 * 128 / 130 / 8,
                  6: 64 * 242 / 256 / 8}


def pcie_gbps(generation: int, lanes: int) -> float | None:
    """A PCIe link's bandwidth per direction in GB/s (None for a generation this table lacks)."""
    per_lane = PCIE_LANE_GBPS.get(int(generation))
    if per_lane is None or int(lanes) < 1:
        return None
    return per_lane * int(lanes)


def device_facts(device_name: str) -> tuple[str, dict[str, object]] | None:
    """``(display name, facts)``: the L2 cache and host link of a known GPU, else None."""
    found = datasheet_for(device_name)
    if found is None or found[0] not in DEVICE_FACTS:
        return None
    return found[0], dict(DEVICE_FACTS[found[0]])


def datasheet_for(device_name: str) -> tuple[str, dict[str, float]] | None:
    """``(display name, peaks)`` for a known GPU name (as the driver reports it), else None."""
    name = (device_name or "").lower()
    for pattern, display, peaks in DATASHEETS:
        if re.search(pattern, name):
            return display, dict(peaks)
    return None


def datasheet_rows(device_names: list[str]) -> list[dict[str, Any]]:
    """One row per known GPU among ``device_names``: its datasheet name and peaks."""
    out = []
    seen = set()
    for n in device_names:
        found = datasheet_for(n)
        if found and found[0] not in seen:
            seen.add(found[0])
            out.append({"device_name": n, "datasheet": found[0], "peaks": found[1]})
    return out
