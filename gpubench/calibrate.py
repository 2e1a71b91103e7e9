"""Measure a machine's ceilings: peak FLOP/s per dtype, memory bandwidth, host-device bandwidth.

Calibration is an ordinary run (suite ``calibrate``) through the same runner, workers and
validated workloads as any benchmark, so every number behind a ceiling is a stored, checked
case: a large matmul per backend, device and dtype for the compute peak (the best backend wins;
on CUDA also an FP8 matmul, ``matmul_fp8``, where the GPU has FP8 tensor cores),
a large SAXPY for the memory bandwidth (three arrays of ``n`` elements: two read, one written,
far larger than any cache) and, on an accelerator, a large device-to-device copy (bytes read
plus written; the better of the two is the memory ceiling), and pinned host↔device copies.
The best value per device and kind is stored with
:meth:`ResultStore.add_ceiling`; ``gpubench report`` draws the roofline from it.
"""

from __future__ import annotations

import os
from typing import Any

from gpubench.errors import UsageError
from gpubench.records import CaseResult, CaseSpec
from gpubench.store import CALIBRATE_SUITE, D2H_BW, H2D_BW, MEM_BW, PEAK_FLOPS, ResultStore

#: Matmul dtypes tried per device kind (``tf32`` means float32 with tensor cores allowed).
MATMUL_DTYPES = {"cpu": ("float32", "float64"), "cuda": ("float32", "tf32", "bfloat16", "float16", "float64"),
                 "opencl": ("float32",)}
#: FP8 matmul dtypes tried per device kind (``matmul_fp8`` workload): GPUs only, a CPU has no FP8 units.
FP8_DTYPES = {"cuda": ("float8_e4m3fn",)}


def matmul_size(kind: str, quick: bool) -> int:
    """Matrix size for the compute peak: large enough to saturate, small enough to finish."""
    if kind == "cpu":
        if quick:
            return 256
        return 4096 if (os.cpu_count() or 1) >= 16 else 2048
    return 1024 if quick else 8192


def saxpy_n(kind: str, quick: bool) -> int:
    """SAXPY length for the memory bandwidth: 3 arrays far larger than the last-level cache."""
    if quick:
        return 1 << 20
    return 1 << 28 if kind == "cuda" else 1 << 25


def plan(backends: tuple[str, ...] = (), devices: tuple[str, ...] = (), quick: bool = False) -> list[CaseSpec]:
    """The calibration cases for the selected backends and device kinds (default: all of them)."""
    from gpubench.backends import backend_names, get_backend
    from gpubench.workloads import get_workload, is_workload

    names = list(backends) or backend_names()
    specs: list[CaseSpec] = []
    for name in names:
        backend = get_backend(name)
        implemented = backend.workloads()
        for kind in backend.device_kinds:
            if devices and kind not in devices:
                continue
            if "matmul" in implemented:
                size = matmul_size(kind, quick)
                for dtype in MATMUL_DTYPES.get(kind, ("float32",)):
                    params: dict[str, Any] = {"size": size}
                    if dtype == "tf32":
                        dtype, params["tf32"] = "float32", True
                    specs.append(CaseSpec.make("matmul", name, kind, dtype, params, suite=CALIBRATE_SUITE))
            if "matmul_fp8" in implemented:
                # FP8 tensor cores (capability >= 8.9; skipped with the reason on older GPUs).
                for dtype in FP8_DTYPES.get(kind, ()):
                    specs.append(CaseSpec.make("matmul_fp8", name, kind, dtype, {"size": matmul_size(kind, quick)},
                                               suite=CALIBRATE_SUITE))
            if "saxpy" in implemented:
                specs.append(CaseSpec.make("saxpy", name, kind, "float32", {"n": saxpy_n(kind, quick)},
                                           suite=CALIBRATE_SUITE))
            if kind != "cpu" and is_workload("transfer") and "transfer" in implemented:
                workload = get_workload("transfer")
                nbytes = (16 if quick else 256) << 20
                for direction in ("h2d", "d2h", "d2d"):
                    params = {"bytes": nbytes * (4 if direction == "d2d" else 1), "direction": direction}
                    if direction != "d2d":
                        params["memory"] = "pinned"
                    try:
                        workload.normalize_params(params)
                    except UsageError:
                        continue  # a transfer workload with other parameters: no host-device ceiling
                    specs.append(CaseSpec.make("transfer", name, kind, "float32", params, suite=CALIBRATE_SUITE))
    if not specs:
        raise UsageError("nothing to calibrate: no selected backend implements matmul or saxpy on those devices")
    return specs


def derive_ceilings(results: list[CaseResult]) -> list[dict[str, Any]]:
    """The best correct measurement per (device, kind, dtype) as ceiling rows.

    Each row keeps the structured facts behind it (``device_name``, ``implementation``) beside
    the human ``method`` sentence, so nothing later has to parse the sentence.
    """
    best: dict[tuple, dict[str, Any]] = {}
    for r in results:
        if r.status != "ok":
            continue
        s = r.spec
        p = s.param_dict
        how = f"via {s.implementation}" + (f" on {r.device_name}" if r.device_name else "")
        if s.workload in ("matmul", "matmul_fp8") and r.gflops:
            row = {"kind": PEAK_FLOPS, "dtype": "tf32" if p.get("tf32") else s.dtype, "value": r.gflops,
                   "unit": "GFLOP/s", "method": f"{s.workload} {p.get('size') or p.get('m')}³ {how}"}
        elif s.workload == "saxpy" and r.gbps:
            row = {"kind": MEM_BW, "dtype": "", "value": r.gbps, "unit": "GB/s",
                   "method": f"saxpy n={p.get('n')} (2 arrays read, 1 written) {how}"}
        elif s.workload == "transfer" and r.gbps and p.get("direction") == "d2d":
            row = {"kind": MEM_BW, "dtype": "", "value": r.gbps, "unit": "GB/s",
                   "method": f"device-to-device copy of {p.get('bytes')} bytes (read + written) {how}"}
        elif s.workload == "transfer" and r.gbps and p.get("direction") in ("h2d", "d2h"):
            row = {"kind": H2D_BW if p["direction"] == "h2d" else D2H_BW, "dtype": "", "value": r.gbps,
                   "unit": "GB/s", "method": f"{p['direction']} {p.get('memory', '')} {p.get('bytes')} bytes {how}"}
        else:
            continue
        row.update(device=s.device, device_name=r.device_name, implementation=s.implementation)
        key = (row["device"], row["kind"], row["dtype"])
        if key not in best or row["value"] > best[key]["value"]:
            best[key] = row
    return list(best.values())


def calibrate(store: ResultStore, backends: tuple[str, ...] = (), devices: tuple[str, ...] = (),
              quick: bool = False, timeout_s: float = 600.0, label: str = "",
              command: str = "gpubench calibrate", progress=None) -> tuple[int, list[dict[str, Any]]]:
    """Run the calibration cases into ``store`` and store the derived ceilings; return (run id, ceilings).

    ``progress`` is the runner's progress callback (see :class:`gpubench.runner.Runner`).
    """
    from gpubench.envinfo import capture_host
    from gpubench.profile import resolve_profile
    from gpubench.runner import Runner

    specs = plan(backends, devices, quick)
    settings = resolve_profile(quick, base="calibrate").settings
    runner = Runner(store, settings, timeout_s, progress=progress)
    run_id, _ = runner.run(specs, suite=CALIBRATE_SUITE, label=label, command=command,
                           environment=capture_host())
    ceilings = derive_ceilings(store.results(run_id))
    for c in ceilings:
        store.add_ceiling(run_id, c["device"], c["kind"], c["value"], c["unit"], dtype=c["dtype"], method=c["method"])
    return run_id, ceilings
