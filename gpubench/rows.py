"""One definition of every figure a user reads: the rows behind ``show``, ``export``, ``report``, ``compare``,
``history`` and :func:`gpubench.load`.

A row is one case of one run as a flat dict: its spec, its statistics, and everything derived from it. Each
figure is decided here, once, and every surface reads it from the row (none derives it again):

* **measurement** (``row["measurement"]``, :func:`is_a_measurement`): the case is ``ok``, has samples and is
  not flagged ``not_a_measurement`` (the lecture's unsynchronized timing). Only a measurement has a speedup or
  a % of peak, is a reference for another case, is compared by ``compare``, drawn by ``history`` or quoted as
  a headline. (A ``not_a_measurement`` row keeps the rate its clock implies, flagged: the lecture's section
  shows it above the device's peak, to show it wrong.)
* **flags**: the record's, plus ``noisy`` wherever the confidence target was not met, minus ``noisy`` on a
  one-sample case (one sample has no spread), plus ``implausible`` and ``above_ceiling`` when the rate is held
  against its ceilings (:func:`guard_row`). Sorted by name.
* **rate** (``rate`` in ``rate_unit``): GB/s for a bandwidth workload (or one that counts only bytes), else
  GFLOP/s, at the median time of an ``ok`` case. ``gflops`` and ``gbps`` are both kept.
* **speedup** (over the run's named CPU baseline, ``baseline = "numpy"`` in the suite) and **speedup_cpu**
  (over the fastest CPU case of the run), each the reference's median over this case's median, each with the
  relative half-width of its 95 % interval (``speedup_ci``, ``speedup_cpu_ci``). The reference is a CPU case
  (a device whose hardware is the CPU, PoCL's OpenCL too) of the same workload, dtype and *problem*: the
  non-mode parameters, plus the mode parameters declared ``match_reference`` (``cache``, ``layout``,
  ``timing``), which must be equal; every other mode (``tf32``, ``include_transfer``) is at its default on the
  reference. So a TF32 or ``+copies`` case is compared with the same problem's plain CPU case, and its size
  text names its mode (``4096³ tf32 +copies``); a cold-cache case with a cold-cache CPU case.
* **scaling efficiency** (``scaling_efficiency``, data-parallel training only): ``t₁ / (N · t_N)`` against the
  1-rank case of the same problem in the run (:func:`gpubench.workloads.ddp.scaling_efficiency`).
* **latency percentiles and throughput** (``latency_p50_s`` … ``throughput_samples_per_s``, records measured
  one call per sample: ``inference``), :func:`gpubench.latency.latency_columns`.
* **% of peak** (``roofline_pct``): the rate over the attainable rate at the case's arithmetic intensity (the
  lower of the compute roof of its compute dtype and memory bandwidth × intensity), from the machine's
  measured ceilings (``gpubench calibrate``); not for end-to-end cases (``include_transfer``).

Text rendering (tables, HTML, CSV cells) is not done here: the surfaces format these values.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

from gpubench.latency import latency_columns
from gpubench.ops import device_hardware
from gpubench.records import CaseResult, is_measurement
from gpubench.store import D2H_BW, H2D_BW, MEM_BW, PEAK_FLOPS, ResultStore, RunInfo
from gpubench.tables import device_text, find_device
from gpubench.workloads import find_workload, size_text
from gpubench.workloads.base import INCLUDE_TRANSFER

#: Flags a row adds to its record's when it is held against its ceilings (:func:`guard_row`).
CEILING_FLAGS = ("implausible", "above_ceiling")


def is_a_measurement(result: CaseResult) -> bool:
    """Whether a record is a number a user may read: ``ok``, with samples whose median is a positive finite
    time (a store may hold anything an older version accepted), and not ``not_a_measurement``."""
    if result.status != "ok" or not result.samples or not is_measurement(result.flags):
        return False
    median = result.median_s
    return median is not None and math.isfinite(median) and median > 0


def workload_unit(name: str) -> str:
    """The headline unit of a workload (``gflops`` or ``gbps``); ``gflops`` for one this gpubench lacks."""
    workload = find_workload(name)
    return workload.unit if workload is not None else "gflops"


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def case_modes(workload: str, params: dict[str, Any], dtype: str) -> dict[str, Any]:
    """How a case's mode parameters, as its workload declares them, shape its row.

    ``modes``: the mode parameters present; ``tags``: their short texts; ``compute_dtype``;
    ``end_to_end``: whether each call includes host↔device copies; ``problem``: what a reference must share
    (the non-mode parameters, plus modes declared ``match_reference``); ``plain``: whether the case can be a
    CPU reference (its other modes at their defaults). A workload this machine lacks declares no modes:
    every parameter is part of its problem.
    """
    w = find_workload(workload)
    declared = w.mode_params() if w is not None else {}
    modes = {k: v for k, v in params.items() if k in declared}
    matched = {k for k, p in declared.items() if p.match_reference}
    problem = tuple(sorted((k, _freeze(v)) for k, v in params.items() if k not in declared or k in matched))
    plain = all(modes.get(k, p.default) in (p.default, None, False) for k, p in declared.items() if k not in matched)
    return {
        "modes": modes, "tags": w.mode_tags(params) if w is not None else [],
        "compute_dtype": w.compute_dtype(params, dtype) if w is not None else dtype, "problem": problem,
        "plain": plain, "end_to_end": bool(params.get(INCLUDE_TRANSFER)),
    }


def device_kind(env: dict[str, Any], backend: str, device: str) -> str:
    """``cpu`` or the accelerator kind of ``device``, from the backend's reported devices when known.

    A device whose hardware is a CPU (an OpenCL device through PoCL) is ``cpu``, whatever drives it; otherwise
    the reported kind, or the device id's prefix (``cuda:0`` → ``cuda``).
    """
    match = find_device(env, backend, device)
    if match is None:
        return device.split(":")[0]
    if device_hardware(match) == "cpu":
        return "cpu"
    return str(match.get("kind") or device.split(":")[0])


def run_label(run: RunInfo) -> str:
    """``run 7 · my label`` (the label only when the run has one)."""
    return f"run {run.id}" + (f" · {run.label}" if run.label else "")


# --- ceilings ------------------------------------------------------------------------------------------


@dataclass
class DeviceCeilings:
    """Measured ceilings of one device: peak GFLOP/s per dtype, memory and host-link GB/s."""

    device: str
    peaks: dict[str, float] = field(default_factory=dict)
    mem_gbps: float | None = None
    links: dict[str, float] = field(default_factory=dict)
    """``h2d_bw`` and ``d2h_bw``, GB/s."""
    methods: dict[str, str] = field(default_factory=dict)
    quality: dict[str, str] = field(default_factory=dict)
    """Source of each ceiling (keys: dtypes, ``memory``, ``h2d_bw``, ``d2h_bw``): ``measured`` or ``provisional``."""
    units: dict[str, str] = field(default_factory=dict)

    def value(self, kind: str, dtype: str = "") -> tuple[float | None, str]:
        """The ceiling of ``kind`` (:data:`gpubench.store.CEILING_KINDS`; ``dtype`` for a compute peak) and its
        key in :attr:`methods`/:attr:`quality`, or ``(None, key)``."""
        if kind == PEAK_FLOPS:
            return self.peaks.get(dtype), dtype
        if kind == MEM_BW:
            return self.mem_gbps, "memory"
        return self.links.get(kind), kind


def ceilings_by_device(ceilings: list[dict[str, Any]]) -> dict[str, DeviceCeilings]:
    """Group stored ceiling rows by device (the best value wins when a kind repeats)."""
    out: dict[str, DeviceCeilings] = {}
    for c in ceilings:
        d = out.setdefault(c["device"], DeviceCeilings(c["device"]))
        if c["kind"] == PEAK_FLOPS:
            if not c.get("dtype"):
                continue
            key, old = c["dtype"], d.peaks.get(c["dtype"])
        elif c["kind"] == MEM_BW:
            key, old = "memory", d.mem_gbps
        elif c["kind"] in (H2D_BW, D2H_BW):
            key, old = c["kind"], d.links.get(c["kind"])
        else:
            continue
        if old is not None and c["value"] <= old:
            continue
        if c["kind"] == PEAK_FLOPS:
            d.peaks[key] = c["value"]
        elif c["kind"] == MEM_BW:
            d.mem_gbps = c["value"]
        else:
            d.links[key] = c["value"]
        d.methods[key] = c.get("method", "")
        d.quality[key] = c.get("quality", "measured")
        d.units[key] = c.get("unit", "")
    return out


def match_device(by_device: dict[str, DeviceCeilings], row: dict[str, Any]) -> DeviceCeilings | None:
    """The ceilings of the device a row ran on: its own; for a CPU case (PoCL's OpenCL too) the ``cpu``
    ones; else its kind's (``cuda`` matches ``cuda:0``, and ``cuda`` ``cuda:0``'s)."""
    dev = row["device"]
    if dev in by_device:
        return by_device[dev]
    if row.get("kind") == "cpu" and "cpu" in by_device:
        return by_device["cpu"]
    prefix = dev.split(":")[0]
    if prefix in by_device:  # calibrated as the kind's default device ("cuda")
        return by_device[prefix]
    if dev == prefix and f"{prefix}:0" in by_device:
        return by_device[f"{prefix}:0"]
    return None


def _rate_at(row: dict[str, Any], bound: str, seconds: float | None) -> float | None:
    work = row.get("flops") if bound == "compute" else row.get("bytes")
    return work / seconds / 1e9 if work and seconds else None


@functools.lru_cache(maxsize=256)
def _on_datasheet(device_name: str) -> bool:
    from gpubench.datasheet import datasheet_for

    return datasheet_for(device_name) is not None


def guard_row(row: dict[str, Any], by_device: dict[str, DeviceCeilings] | None = None,
              ceilings_run: int | None = None) -> None:
    """Hold an ``ok`` row against its ceilings, in place: ``implausible`` and ``above_ceiling`` join its
    ``flags``, and what was broken its ``metrics`` (a copy; the record's own metrics are untouched).

    * physical: the ceiling recorded when the case was measured (``metrics["physical_ceiling"]``), or
      for a record without one the datasheet of its GPU, by name. A CPU's clock-based ceiling is only
      judged where the case ran, never on the machine that reads it.
    * measured: the machine's ceilings of the same kind (compute peak of its compute dtype, memory,
      h2d or d2h bandwidth; :func:`match_device`), flagged only when the rate at the slow end of the
      median's 95 % interval is still above them.
    """
    from gpubench.plausibility import Ceiling, judge, memory_bound_applies, physical_ceiling

    if row.get("status") != "ok" or not row.get("median_s"):
        return
    workload = find_workload(row["workload"])
    if workload is None:
        return
    params = row.get("params") or {}
    try:
        bound = workload.bound(params)
        compute_dtype = workload.compute_dtype(params, row["dtype"])
    except Exception:  # noqa: BLE001 - an odd stored parameter set is left unchecked
        return
    if bound is None:
        return
    metrics = dict(row.get("metrics") or {})
    flags = set(row.get("flags") or ())
    rate = _rate_at(row, bound, row["median_s"])
    recorded = metrics.get("physical_ceiling")
    if isinstance(recorded, dict) and {"name", "value", "unit", "source"} <= recorded.keys():
        ceiling = Ceiling(recorded["name"], float(recorded["value"]), recorded["unit"], recorded["source"])
    elif _on_datasheet(row.get("device_name") or ""):
        ceiling = physical_ceiling(bound, device_name=row["device_name"], is_cpu=False, compute_dtype=compute_dtype,
                                   params=params, bytes_moved=row.get("bytes"), llc_bytes=metrics.get("llc_bytes"))
    else:
        ceiling = None
    verdict = judge(rate, ceiling)
    if verdict is not None:
        flags.add("implausible")
        metrics.setdefault("implausible", verdict)
    kind = {"compute": PEAK_FLOPS, "memory": MEM_BW, "h2d": H2D_BW, "d2h": D2H_BW}.get(bound)
    applies = bound != "memory" or memory_bound_applies(params, row.get("bytes"), metrics.get("llc_bytes"))
    dc = match_device(by_device or {}, row) if kind and applies else None
    value, key = dc.value(kind, compute_dtype if bound == "compute" else "") if dc is not None else (None, "")
    slow = _rate_at(row, bound, row.get("ci95_high_s") or row["median_s"])
    if value is not None and slow is not None and slow > value:
        flags.add("above_ceiling")
        source = f"measured, calibration run {ceilings_run}" if ceilings_run is not None else "measured"
        metrics["above_ceiling"] = {"name": kind, "value": value, "unit": dc.units.get(key, ""),
                                    "source": f"{source}: {dc.methods.get(key, '')}".rstrip(": "), "rate": rate}
    row["flags"] = sorted(flags)
    row["metrics"] = metrics


def roofline(row: dict[str, Any], by_device: dict[str, DeviceCeilings]) -> tuple[float | None, float | None]:
    """``(attainable GFLOP/s, % of it reached)`` of a measured row with FLOPs and bytes, from its device's
    measured ceilings; ``(None, None)`` where they are missing or the case includes host↔device copies."""
    if not row["measurement"] or not row.get("gflops") or not row.get("flops") or not row.get("bytes"):
        return None, None
    if row["end_to_end"]:
        return None, None  # host-device copies are outside the device roofline
    dc = match_device(by_device, row)
    if dc is None:
        return None, None
    peak = dc.peaks.get(row["compute_dtype"]) or dc.peaks.get(row["dtype"])
    ai = row["flops"] / row["bytes"]
    bounds = [b for b in (peak, dc.mem_gbps * ai if dc.mem_gbps else None) if b]
    if not bounds:
        return None, None
    attainable = min(bounds)
    return attainable, 100.0 * row["gflops"] / attainable


# --- rows ----------------------------------------------------------------------------------------------


def _flags(result: CaseResult, n_samples: int) -> list[str]:
    flags = set(result.flags)
    if result.target_met is False:
        flags.add("noisy")
    if n_samples < 2:
        flags.discard("noisy")  # one sample has no interval to miss
    return sorted(flags)


def _row(run: RunInfo, r: CaseResult, env: dict[str, Any], units: dict[str, str],
         devices: dict[tuple[str, str], tuple[str, str]]) -> dict[str, Any]:
    spec = r.spec
    s = r.summary
    params = spec.param_dict
    measured = is_a_measurement(r)
    if spec.workload not in units:
        units[spec.workload] = workload_unit(spec.workload)
    unit = units[spec.workload]
    where = (spec.backend, spec.device)
    if where not in devices:
        devices[where] = (device_kind(env, *where), device_text(env, *where))
    med = s.median if s else None
    ok = r.status == "ok" and bool(med)
    gflops = r.flops / med / 1e9 if ok and r.flops else None
    gbps = r.bytes / med / 1e9 if ok and r.bytes else None
    by_bytes = unit == "gbps" or bool(not r.flops and r.bytes)
    row: dict[str, Any] = {
        "run_id": run.id, "started_at": run.started_at, "suite": run.suite,
        "workload": spec.workload, "backend": spec.backend, "variant": spec.variant,
        "implementation": spec.implementation, "device": spec.device, "device_name": r.device_name,
        "dtype": spec.dtype, "params": params, "size": size_text(spec.workload, params),
        "status": r.status, "error": r.error, "flags": _flags(r, len(r.samples)), "measurement": measured,
        "samples": list(r.samples), "n_samples": len(r.samples), "calls_per_sample": r.number, "clock": r.clock,
        "min_s": s.min if s else None, "median_s": med, "mean_s": s.mean if s else None,
        "stdev_s": s.stdev if s else None, "iqr_s": s.iqr if s else None,
        "ci95_low_s": s.ci95_low if s else None, "ci95_high_s": s.ci95_high if s else None,
        "host_median_s": r.host_median_s, "target_met": r.target_met, "flops": r.flops, "bytes": r.bytes,
        "gflops": gflops, "gbps": gbps,
        "rate": gbps if by_bytes else gflops, "rate_unit": "gbps" if by_bytes else "gflops",
        "speedup": None, "speedup_ci": None, "speedup_cpu": None, "speedup_cpu_ci": None, "fastest_cpu": "",
        "baseline": f"{run.baseline}:cpu" if run.baseline else "",
        "attainable_gflops": None, "roofline_pct": None,
        "rel_error": r.rel_error, "tolerance": r.tolerance, "spec_hash": r.spec_hash, "unit": unit,
        "metrics": {k: v for k, v in (r.metrics or {}).items() if k != "traceback"},
        "joules_per_call": r.joules_per_call, "gflop_per_joule": r.gflop_per_joule,
        "gb_per_joule": r.gb_per_joule, "energy_reason": r.energy_reason, "energy": r.energy or {},
        "machine": r.machine,
        # Where the case sits in the report: its device kind and text, its series and label, its x axis.
        "kind": devices[where][0], "device_text": devices[where][1],
        "label": spec.label(), "series": spec.series, "run_label": run_label(run),
    }
    row.update(case_modes(spec.workload, params, spec.dtype))
    # Per-call latency (inference): percentiles and throughput of records measured one call per sample.
    row.update(latency_columns(r.samples if r.status == "ok" else (), r.number, r.metrics))
    if by_bytes:
        row["x"], row["x_unit"] = r.bytes, "bytes"
    else:
        row["x"], row["x_unit"] = r.flops, "flops"
    if row["x"] is None and isinstance(params.get("bytes"), (int, float)):
        row["x"], row["x_unit"] = float(params["bytes"]), "bytes"
    return row


def speedup_halfwidth(ref: dict[str, Any], row: dict[str, Any]) -> float | None:
    """Relative half-width of the speedup ``ref / row`` from both medians' 95 % intervals (the ratio of the
    interval ends, so conservative); None when either side has fewer than two samples."""
    if ref is row:
        return 0.0
    if min(ref["n_samples"], row["n_samples"]) < 2 or not row["ci95_low_s"]:
        return None
    lo = ref["ci95_low_s"] / row["ci95_high_s"]
    hi = ref["ci95_high_s"] / row["ci95_low_s"]
    return (hi - lo) / 2 / (ref["median_s"] / row["median_s"])


def _reference_key(row: dict[str, Any]) -> tuple:
    return row["workload"], row["dtype"], row["problem"]


def _speedups(rows: list[dict[str, Any]], baseline_backend: str) -> None:
    """Set ``speedup``/``speedup_ci`` (named baseline) and ``speedup_cpu``/``speedup_cpu_ci``/``fastest_cpu``."""
    fastest: dict[tuple, dict[str, Any]] = {}
    baseline: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        if not row["measurement"] or row["kind"] != "cpu" or not row["plain"]:
            continue
        key = _reference_key(row)
        if key not in fastest or row["median_s"] < fastest[key]["median_s"]:
            fastest[key] = row
        if row["backend"] == baseline_backend and (key not in baseline or row["variant"] == "default"):
            baseline[key] = row
    for row in rows:
        if not row["measurement"]:
            continue  # never a speedup: not ok, or the lecture's unsynchronized timing
        key = _reference_key(row)
        if key in fastest:
            ref = fastest[key]
            row["speedup_cpu"] = ref["median_s"] / row["median_s"]
            row["speedup_cpu_ci"] = speedup_halfwidth(ref, row)
            row["fastest_cpu"] = ref["series"]
        if key in baseline:
            row["speedup"] = baseline[key]["median_s"] / row["median_s"]
            row["speedup_ci"] = speedup_halfwidth(baseline[key], row)


def _scaling(rows: list[dict[str, Any]]) -> None:
    """Set ``scaling_efficiency`` of each data-parallel row against its 1-rank twin of the run (else None)."""
    from gpubench.workloads.ddp import scaling_efficiency

    for row, eff in zip(rows, scaling_efficiency(rows)):
        row["scaling_efficiency"] = eff


def build_rows(run: RunInfo, results: list[CaseResult], ceilings: list[dict[str, Any]] | None = None,
               ceilings_run: int | None = None) -> list[dict[str, Any]]:
    """One row per result of ``run``, in order, with every figure (see the module docstring) held against
    ``ceilings`` (the run's applicable ones, :meth:`ResultStore.applicable_ceilings`; ``ceilings_run`` is the
    calibration run they come from)."""
    env = run.environment or {}
    units: dict[str, str] = {}
    devices: dict[tuple[str, str], tuple[str, str]] = {}
    rows = [_row(run, r, env, units, devices) for r in results]
    _speedups(rows, run.baseline)
    _scaling(rows)
    by_device = ceilings_by_device(ceilings or [])
    for row in rows:
        guard_row(row, by_device, ceilings_run)
        row["attainable_gflops"], row["roofline_pct"] = roofline(row, by_device)
    return rows


@dataclass
class RunRows:
    """One run read from a store: its header, its records, their rows and the ceilings they were held against."""

    info: RunInfo
    results: list[CaseResult]
    rows: list[dict[str, Any]]
    ceilings: list[dict[str, Any]] = field(default_factory=list)
    ceilings_run: int | None = None


def read_runs(store: ResultStore, runs: list[RunInfo]) -> list[RunRows]:
    """The rows of ``runs``, read together: each run is held against the ceilings that apply to it when
    these runs are read together (:meth:`ResultStore.applicable_ceilings` with ``runs``: a calibration run
    among them comes first). Every surface reads runs through here, so they agree on every figure."""
    out = []
    for info in runs:
        results = store.results(info.id)
        ceilings, cal = store.applicable_ceilings(info, runs)
        out.append(RunRows(info, results, build_rows(info, results, ceilings, cal), ceilings, cal))
    return out


def select_runs(store: ResultStore, refs: list[str | int] | None, default: str = "latest") -> list[RunInfo]:
    """The runs ``refs`` name (ids, ``latest``, ``latest~N``; ``all`` alone for every run), each once, in order."""
    refs = list(refs or [default])
    if refs == ["all"]:
        return store.runs()
    out: list[RunInfo] = []
    for ref in refs:
        info = store.run(ref)
        if info.id not in {i.id for i in out}:
            out.append(info)
    return out
