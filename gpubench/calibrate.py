"""Measure a machine's ceilings: peak FLOP/s per dtype, memory bandwidth, host-device bandwidth.

Calibration is an ordinary run (suite ``calibrate``) through the same runner, workers and
validated workloads as any benchmark, so every number behind a ceiling is a stored, checked
case: a large matmul per backend, device and dtype for the compute peak (the best backend wins;
on CUDA also an FP8 matmul, ``matmul_fp8``, where the GPU has FP8 tensor cores),
a large SAXPY for the memory bandwidth (three arrays of ``n`` elements: two read, one written,
each at least four times the last-level cache) and, on an accelerator, a large device-to-device
copy (bytes read plus written; the better of the two is the memory ceiling), and pinned
host↔device copies. Each backend runs its default implementation variant. The best value per
device and kind is stored with :meth:`ResultStore.add_ceiling`; ``gpubench report`` draws the
roofline from it and holds cases against it (``above_ceiling``).

A memory ceiling needs a case that moves at least four times the device's last-level cache (read
by the worker and recorded with the case): a smaller one is refused. ``--quick`` calibrations use
small sizes and short budgets; their ceilings are stored, but provisional: no report or export
uses them as a roof (:func:`gpubench.store.provisional`).

With a time limit (``--time-limit``) the cases run most informative first (:func:`ceiling_tiers`):
one case for every ceiling (device, kind, dtype), by the backend most likely to reach it, before the
other backends' cases of the same ceilings; a case whose estimate does not fit in the time left is
not started, and the ceilings come from the cases that finished.

A suite with ``ceilings = true`` (the ``tour``) runs the same cases (:func:`plan`) at the start of its
own run and stores the ceilings with it (:func:`ceilings_for_run`), reusing those of a recent full
calibration of the same machine (:func:`reusable`) for the device kinds it covers.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from typing import Any

from gpubench.errors import UsageError
from gpubench.records import CaseResult, CaseSpec
from gpubench.store import CALIBRATE_SUITE, D2H_BW, H2D_BW, MEM_BW, PEAK_FLOPS, ResultStore

#: Memory-ceiling cases move at least this many times the last-level cache.
CACHE_FACTOR = 4
#: Per-vector bytes of a CUDA memory-ceiling case: four times the largest L2 in the datasheet table (96 MB) and more.
CUDA_VECTOR_BYTES = 1 << 30
#: Statuses of a calibration case that make ``gpubench calibrate`` fail (``skipped`` is fine, with its reason).
FAILED = ("error", "incorrect", "timeout")

#: Matmul dtypes tried per device kind (``tf32`` means float32 with tensor cores allowed).
MATMUL_DTYPES = {"cpu": ("float32", "float64"), "cuda": ("float32", "tf32", "bfloat16", "float16", "float64"),
                 "opencl": ("float32",)}
#: FP8 matmul dtypes tried per device kind (``matmul_fp8`` workload): GPUs only, a CPU has no FP8 units.
FP8_DTYPES = {"cuda": ("float8_e4m3fn",)}
#: Backends most likely to reach a device's peak, first: under a time limit each ceiling is measured by the
#: first of them that has a case for it before any other backend's case of the same ceiling runs.
PREFERRED = ("torch", "cupy", "numpy", "jax", "tensorflow", "opencl")
#: A full calibration of the same machine younger than this is reused by a suite with ``ceilings = true``.
REUSE_MAX_AGE_S = 24 * 3600.0


def matmul_size(kind: str, quick: bool) -> int:
    """Matrix size for the compute peak: large enough to saturate, small enough to finish."""
    if kind == "cpu":
        if quick:
            return 256
        return 4096 if (os.cpu_count() or 1) >= 16 else 2048
    return 1024 if quick else 8192


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, int(n - 1).bit_length())


def vector_bytes(kind: str, quick: bool) -> int:
    """Preferred bytes of each array of a memory-ceiling case: :data:`CACHE_FACTOR` × the last-level cache.

    CPU and OpenCL (PoCL on this CPU, or a GPU whose cache the plan cannot read before its worker
    starts): the CPU's cache from sysfs, at least 128 MiB. CUDA: :data:`CUDA_VECTOR_BYTES`. The
    worker records the device's own cache size with each case; :func:`derive_ceilings` refuses a
    case that moves less than :data:`CACHE_FACTOR` times it. What the case may allocate bounds it
    (:func:`saxpy_n`).
    """
    if quick:
        return 4 << 20
    if kind == "cuda":
        return CUDA_VECTOR_BYTES
    from gpubench.cacheflush import host_cache_bytes

    return max(128 << 20, _pow2_at_least(CACHE_FACTOR * host_cache_bytes()[0]))


def _case_host_need(workload: str, kind: str, dtype: str, params: dict[str, Any]) -> int:
    """Host bytes a calibration case needs (:mod:`gpubench.memfit`; on a CPU with its cold-cache flush buffer)."""
    from gpubench.cacheflush import flush_bytes, host_cache_bytes
    from gpubench.memfit import MemoryNeed
    from gpubench.workloads import get_workload

    w = get_workload(workload)
    p = w.normalize_params(params)
    on_host = kind != "cuda"  # OpenCL: PoCL on this CPU is host memory; a GPU's is unknown until its worker runs
    flush = flush_bytes(host_cache_bytes()[0]) if on_host and p.get("cache") == "cold" else 0
    return MemoryNeed(w.memory_bytes(p, dtype), w.device_bytes(p, dtype), flush, on_host).host_total


def saxpy_n(kind: str, quick: bool, available: int | None = None) -> int:
    """SAXPY length (float32) for the memory bandwidth, bounded by the memory free.

    Each array is :func:`vector_bytes` long (STREAM's rule: four times the cache per array) where
    the case's host memory (inputs, reference, check, and on a CPU the op's copies and the flush
    buffer; :mod:`gpubench.memfit`) fits in :data:`gpubench.memfit.HEADROOM` of ``available``
    (default: what the machine has free now); else the longest that fits, down to the
    length whose three arrays together move :data:`CACHE_FACTOR` × the cache (the least
    :func:`derive_ceilings` accepts). When even that does not fit, that length is planned and the
    case is skipped with the reason before anything is allocated.
    """
    from gpubench.memfit import HEADROOM, available_host_bytes, largest_fitting

    preferred = vector_bytes(kind, quick) // 4
    if quick:
        return preferred
    minimum = 1 << 20
    if kind != "cuda":
        from gpubench.cacheflush import host_cache_bytes

        minimum = max(minimum, -(-CACHE_FACTOR * host_cache_bytes()[0] // 12))  # 3 arrays of 4 bytes
    if available is None:
        available = available_host_bytes()
    return largest_fitting(lambda n: _case_host_need("saxpy", kind, "float32", {"n": n}), preferred,
                           min(minimum, preferred), int(available * HEADROOM), granule=1 << 16)


def d2d_bytes(kind: str, quick: bool, available: int | None = None) -> int:
    """Bytes of the device-to-device copy for the memory ceiling: 1 GiB or :func:`vector_bytes`, whichever is
    larger, bounded (down to 256 MiB) by the host memory its case needs (source, reference, read-back)."""
    from gpubench.memfit import HEADROOM, available_host_bytes, largest_fitting

    if quick:
        return 64 << 20
    preferred = max(1 << 30, vector_bytes(kind, quick))
    if available is None:
        available = available_host_bytes()
    return largest_fitting(lambda b: _case_host_need("transfer", kind, "float32", {"bytes": b, "direction": "d2d"}),
                           preferred, 256 << 20, int(available * HEADROOM), granule=1 << 20)


def plan(backends: tuple[str, ...] = (), devices: tuple[str, ...] = (), quick: bool = False) -> list[CaseSpec]:
    """The calibration cases for the selected backends and device kinds (default: all of them but broken plug-ins)."""
    from gpubench.backends import backend_names, get_backend
    from gpubench.errors import BrokenBackend
    from gpubench.workloads import get_workload, is_workload

    names = list(backends) or backend_names()
    specs: list[CaseSpec] = []
    for name in names:
        try:
            backend = get_backend(name)
        except BrokenBackend:
            if backends:  # named on the command line: say why it cannot be calibrated
                raise
            continue  # a broken plug-in is left out of "every backend"
        implemented = backend.workloads()
        for kind in backend.device_kinds:
            if devices and kind not in devices:
                continue
            if "matmul" in implemented:
                size = matmul_size(kind, quick)
                variant = backend.variants("matmul")[0]
                for dtype in MATMUL_DTYPES.get(kind, ("float32",)):
                    params: dict[str, Any] = {"size": size}
                    if dtype == "tf32":
                        dtype, params["tf32"] = "float32", True
                    specs.append(CaseSpec.make("matmul", name, kind, dtype, params, variant, suite=CALIBRATE_SUITE))
            if "matmul_fp8" in implemented:
                # FP8 tensor cores (capability >= 8.9; skipped with the reason on older GPUs).
                fp8_variant = backend.variants("matmul_fp8")[0]
                for dtype in FP8_DTYPES.get(kind, ()):
                    specs.append(CaseSpec.make("matmul_fp8", name, kind, dtype, {"size": matmul_size(kind, quick)},
                                               fp8_variant, suite=CALIBRATE_SUITE))
            if "saxpy" in implemented:
                specs.append(CaseSpec.make("saxpy", name, kind, "float32", {"n": saxpy_n(kind, quick)},
                                           backend.variants("saxpy")[0], suite=CALIBRATE_SUITE))
            if kind != "cpu" and is_workload("transfer") and "transfer" in implemented:
                workload = get_workload("transfer")
                for direction in ("h2d", "d2h", "d2d"):
                    nbytes = (16 if quick else 256) << 20
                    params = {"bytes": nbytes, "direction": direction}
                    if direction != "d2d":
                        params["memory"] = "pinned"
                    try:
                        workload.normalize_params(params)
                        if direction == "d2d":  # bytes read + written: a memory ceiling, far past the cache
                            params["bytes"] = d2d_bytes(kind, quick)
                    except UsageError:
                        continue  # a transfer workload with other parameters: no host-device ceiling
                    specs.append(CaseSpec.make("transfer", name, kind, "float32", params,
                                               backend.variants("transfer")[0], suite=CALIBRATE_SUITE))
    if not specs:
        raise UsageError("nothing to calibrate: no selected backend implements matmul or saxpy on those devices")
    return specs


def too_small(result: CaseResult, factor: int = CACHE_FACTOR) -> bool:
    """Whether a memory-bandwidth case moved less than ``factor`` × the last-level cache its worker recorded."""
    llc = (result.metrics or {}).get("llc_bytes")
    return bool(llc and result.bytes is not None and result.bytes < factor * llc)


def derive_ceilings(results: list[CaseResult], cache_factor: int = CACHE_FACTOR) -> list[dict[str, Any]]:
    """The best correct measurement per (device, kind, dtype) as ceiling rows.

    Each row keeps the structured facts behind it (``device_name``, ``implementation``) beside
    the human ``method`` sentence, so nothing later has to parse the sentence. A memory case
    that moved less than ``cache_factor`` × its device's last-level cache is no memory ceiling
    (``0`` accepts any size, for ``--quick``'s provisional ceilings). A case flagged
    ``implausible`` is no ceiling either.
    """
    best: dict[tuple, dict[str, Any]] = {}
    for r in results:
        if r.status != "ok" or "implausible" in r.flags:
            continue
        s = r.spec
        p = s.param_dict
        how = f"via {s.implementation}" + (f" on {r.device_name}" if r.device_name else "")
        if s.workload in ("matmul", "matmul_fp8") and r.gflops:
            row = {"kind": PEAK_FLOPS, "dtype": "tf32" if p.get("tf32") else s.dtype, "value": r.gflops,
                   "unit": "GFLOP/s", "method": f"{s.workload} {p.get('size') or p.get('m')}³ {how}"}
        elif s.workload in ("saxpy", "transfer") and p.get("direction", "d2d") == "d2d" and too_small(r, cache_factor):
            continue
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


def failures(results: list[CaseResult]) -> list[CaseResult]:
    """Calibration cases that failed (:data:`FAILED`): ``gpubench calibrate`` exits non-zero when there are any."""
    return [r for r in results if r.status in FAILED]


def ceiling_of(spec: CaseSpec) -> tuple:
    """The ceiling a calibration case measures: (device, kind, dtype) as :func:`derive_ceilings` files it."""
    p = spec.param_dict
    if spec.workload in ("matmul", "matmul_fp8"):
        return spec.device, PEAK_FLOPS, "tf32" if p.get("tf32") else spec.dtype
    if spec.workload == "transfer" and p.get("direction") in ("h2d", "d2h"):
        return spec.device, H2D_BW if p["direction"] == "h2d" else D2H_BW, ""
    return spec.device, MEM_BW, ""


def ceiling_tiers(specs: list[CaseSpec]) -> list[list[CaseSpec]]:
    """Two tiers of calibration cases: one case per ceiling (:func:`ceiling_of`), by the first backend of
    :data:`PREFERRED` that has one; then the other backends' cases of the same ceilings."""
    def rank(spec: CaseSpec) -> int:
        return PREFERRED.index(spec.backend) if spec.backend in PREFERRED else len(PREFERRED)

    first: dict[tuple, CaseSpec] = {}
    for spec in sorted(specs, key=rank):
        first.setdefault(ceiling_of(spec), spec)
    chosen = set(first.values())
    return [[s for s in specs if s in chosen], [s for s in specs if s not in chosen]]


def ceilings_for_run(results: list[CaseResult], quick: bool) -> list[dict[str, Any]]:
    """The ceiling rows of a run's calibration cases (those of suite ``calibrate``), each with its quality."""
    quality = "provisional" if quick else "measured"
    cases = [r for r in results if r.spec.suite == CALIBRATE_SUITE]
    ceilings = derive_ceilings(cases, cache_factor=0 if quick else CACHE_FACTOR)
    for c in ceilings:
        c["quality"] = quality
    return ceilings


def _age_s(started_at: str) -> float:
    try:
        then = datetime.fromisoformat(started_at)
    except (TypeError, ValueError):
        return float("inf")
    if then.tzinfo is None:
        then = then.replace(tzinfo=timezone.utc)
    return (datetime.now(timezone.utc) - then).total_seconds()


def reusable(store: ResultStore | None, environment: dict[str, Any],
             max_age_s: float = REUSE_MAX_AGE_S) -> tuple[int | None, list[dict[str, Any]]]:
    """The newest full calibration of this machine (same :func:`~gpubench.envinfo.machine_key`) younger than
    ``max_age_s`` and its measured ceilings, or ``(None, [])``. A ``--quick`` calibration is never reused."""
    from gpubench.envinfo import machine_key
    from gpubench.store import provisional

    if store is None:
        return None, []
    key = machine_key(environment)
    for run in reversed(store.runs()):
        if run.suite != CALIBRATE_SUITE or run.status not in ("complete", "time_limited"):
            continue
        if machine_key(run.environment or {}) != key or provisional(run) or _age_s(run.started_at) > max_age_s:
            continue
        found = [c for c in store.ceilings(run.id) if (c.get("quality") or "measured") == "measured"]
        if found:
            return run.id, found
    return None, []


def calibrate(store: ResultStore, backends: tuple[str, ...] = (), devices: tuple[str, ...] = (),
              quick: bool = False, timeout_s: float = 600.0, label: str = "",
              command: str = "gpubench calibrate", progress=None, time_limit_s: float | None = None,
              started: float | None = None, runner_hook=None) -> tuple[int, list[dict[str, Any]]]:
    """Run the calibration cases into ``store`` and store the derived ceilings; return (run id, ceilings).

    ``progress`` is the runner's progress callback (see :class:`gpubench.runner.Runner`). The run's
    settings record its profile (``calibrate`` or ``calibrate+quick``): a quick run's ceilings are
    provisional (:func:`gpubench.store.provisional`). ``time_limit_s`` limits the whole calibration,
    counted from ``started`` (a ``time.monotonic()`` reading; default now): the cases run in
    :func:`ceiling_tiers` order and those that would not finish are left out (the run then ends
    ``time_limited``). ``runner_hook`` is called with the runner before it starts (the command shows its estimates).
    """
    from gpubench.envinfo import capture_host
    from gpubench.estimate import CostModel
    from gpubench.profile import resolve_profile
    from gpubench.runner import Runner
    from gpubench.spec import run_order

    specs = plan(backends, devices, quick)
    profile = resolve_profile(quick, base="calibrate")
    environment = capture_host()
    if time_limit_s is not None:
        specs = run_order(ceiling_tiers(specs))
    runner = Runner(store, profile.settings, timeout_s, progress=progress, profile=profile.name, source="calibrate",
                    time_limit_s=time_limit_s, started=started if started is not None else time.monotonic(),
                    cost=CostModel(profile.settings, environment))
    if runner_hook is not None:
        runner_hook(runner)
    run_id, _ = runner.run(specs, suite=CALIBRATE_SUITE, label=label, command=command, environment=environment)
    ceilings = ceilings_for_run(store.results(run_id), quick)
    runner.recorder.add_ceilings(ceilings)
    return run_id, ceilings
