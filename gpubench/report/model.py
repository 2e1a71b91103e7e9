"""The report's data model: runs, their results as flat rows, and what is derived across cases.

Everything here is plain data (no HTML, no Plotly), so sections and tests share one view of a
report: which device kind each case ran on, its problem-size axis, its speedup against the run's
named baseline and against the fastest CPU backend of the run, and the machine ceilings that
apply to it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from gpubench.export import guard_row, workload_unit
from gpubench.latency import latency_columns
from gpubench.ops import device_hardware
from gpubench.records import CaseResult, is_measurement
from gpubench.stats import median_ci95
from gpubench.store import ResultStore, RunInfo
from gpubench.tables import device_text, find_device
from gpubench.workloads import find_workload, size_text
from gpubench.workloads.base import INCLUDE_TRANSFER


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def describe_size(workload: str, params: dict[str, Any]) -> str:
    """The case's size and mode text (see :func:`gpubench.workloads.size_text`)."""
    return size_text(workload, params)


def case_modes(workload: str, params: dict[str, Any], dtype: str) -> dict[str, Any]:
    """How a row's mode parameters, as its workload declares them, shape the report.

    ``modes``: the mode parameters present; ``tags``: their short texts; ``compute_dtype``;
    ``end_to_end``: whether each call includes host↔device copies; ``ref_key``: the problem
    (non-mode parameters, plus modes that a CPU reference must match); ``plain``: whether the
    row can be a CPU reference (its other modes at their defaults). A workload this machine lacks
    has no declared modes: every parameter is part of its problem.
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

    A device whose hardware is a CPU (an OpenCL device through PoCL: ``DeviceInfo.hardware``, or its
    OpenCL type in runs recorded before) is ``cpu``, whatever drives it; otherwise the reported kind, or
    the device id's prefix (``cuda:0`` → ``cuda``).
    """
    match = find_device(env, backend, device)
    if match is None:
        return device.split(":")[0]
    if device_hardware(match) == "cpu":
        return "cpu"
    return str(match.get("kind") or device.split(":")[0])


@dataclass
class RunData:
    """One run with its rows (see :func:`enrich`) and the ceilings that apply to it."""

    info: RunInfo
    rows: list[dict[str, Any]]
    ceilings: list[dict[str, Any]] = field(default_factory=list)
    ceilings_run: int | None = None
    label: str = ""

    @property
    def env(self) -> dict[str, Any]:
        return self.info.environment or {}


def run_label(run: RunInfo) -> str:
    """``run 7 · my label`` (the label only when the run has one)."""
    return f"run {run.id}" + (f" · {run.label}" if run.label else "")


def _ref_key(row: dict[str, Any]) -> tuple:
    return row["workload"], row["dtype"], row["problem"]


def _is_plain(row: dict[str, Any]) -> bool:
    return row["plain"]


def base_rows(run: RunInfo, results: list[CaseResult]) -> list[dict[str, Any]]:
    """The fields of :func:`gpubench.export.result_rows` a report needs, computed once per result.

    Same meaning as the export's rows, but each result's samples are sorted once and only the
    median and its interval are derived (a report of 10,000 cases must take seconds).
    """
    units: dict[str, str] = {}
    baseline = f"{run.baseline}:cpu" if run.baseline else ""
    rows = []
    for r in results:
        s = r.spec
        med = lo = hi = None
        if r.samples:
            xs = sorted(r.samples)
            med = statistics.median(xs)
            lo, hi = median_ci95(xs)
        ok = r.status == "ok" and med
        if s.workload not in units:
            units[s.workload] = workload_unit(s.workload)
        rows.append({
            "run_id": run.id, "suite": run.suite, "workload": s.workload, "backend": s.backend,
            "variant": s.variant, "device": s.device, "device_name": r.device_name, "dtype": s.dtype,
            "params": s.param_dict, "status": r.status, "error": r.error, "flags": list(r.flags),
            "n_samples": len(r.samples),
            "median_s": med, "ci95_low_s": lo, "ci95_high_s": hi, "target_met": r.target_met,
            "flops": r.flops, "bytes": r.bytes,
            "gflops": r.flops / med / 1e9 if ok and r.flops else None,
            "gbps": r.bytes / med / 1e9 if ok and r.bytes else None,
            "baseline": baseline, "spec_hash": r.spec_hash, "unit": units[s.workload],
        })
        rows[-1].update(latency_columns(r.samples if r.status == "ok" else (), r.number, r.metrics))
    return rows


def enrich(run: RunInfo, results: list[CaseResult]) -> list[dict[str, Any]]:
    """Flat rows with derived fields used by every section.

    Added fields: ``kind`` (device kind), ``size`` (the workload's size text), ``x`` and
    ``x_unit`` (problem-size axis: FLOPs per call for compute workloads, bytes for bandwidth
    ones), ``rate`` (GFLOP/s or GB/s by the workload's unit), ``metrics``,
    ``speedup_baseline`` (over the run's named baseline on the CPU), ``speedup_cpu`` and
    ``fastest_cpu`` (over the fastest CPU backend of the run at the same problem), ``label``, and the
    record's ``energy`` and ``flags``.
    """
    env = run.environment or {}
    rows = base_rows(run, results)
    for row, res in zip(rows, results):
        row["kind"] = device_kind(env, row["backend"], row["device"])
        row["device_text"] = device_text(env, row["backend"], row["device"])
        row["size"] = describe_size(row["workload"], row["params"])
        row.update(case_modes(row["workload"], row["params"], row["dtype"]))
        row["metrics"] = res.metrics or {}
        row["energy"] = res.energy or {}
        row["label"] = res.spec.label()
        row["implementation"] = res.spec.implementation
        row["series"] = res.spec.series
        unit = row["unit"]
        if unit == "gbps" or (not res.flops and res.bytes):
            row["x"], row["x_unit"], row["rate"] = res.bytes, "bytes", row["gbps"]
        else:
            row["x"], row["x_unit"], row["rate"] = res.flops, "flops", row["gflops"]
        if row["x"] is None and isinstance(row["params"].get("bytes"), (int, float)):
            row["x"], row["x_unit"] = float(row["params"]["bytes"]), "bytes"
        row["run_label"] = run_label(run)
    # Fastest CPU case and baseline case per problem (mode parameters ignored, as a CPU has none).
    fastest: dict[tuple, dict[str, Any]] = {}
    baseline: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        if (row["status"] != "ok" or row["kind"] != "cpu" or not row["median_s"] or not _is_plain(row)
                or not is_measurement(row["flags"])):
            continue
        key = _ref_key(row)
        if key not in fastest or row["median_s"] < fastest[key]["median_s"]:
            fastest[key] = row
        if row["backend"] == run.baseline and (key not in baseline or row["variant"] == "default"):
            baseline[key] = row
    for row in rows:
        row["speedup_cpu"] = row["speedup_baseline"] = None
        row["speedup_cpu_ci"] = row["speedup_baseline_ci"] = None
        row["fastest_cpu"] = ""
        if row["status"] != "ok" or not row["median_s"] or not is_measurement(row["flags"]):
            continue  # the lecture's unsynchronized timing is never a speedup
        key = _ref_key(row)
        if key in fastest:
            ref = fastest[key]
            row["speedup_cpu"] = ref["median_s"] / row["median_s"]
            row["speedup_cpu_ci"] = speedup_halfwidth(ref, row)
            row["fastest_cpu"] = _series_text(ref)
        if key in baseline:
            row["speedup_baseline"] = baseline[key]["median_s"] / row["median_s"]
            row["speedup_baseline_ci"] = speedup_halfwidth(baseline[key], row)
    return rows


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


def _series_text(row: dict[str, Any]) -> str:
    return row["series"]


def find_ceilings(store: ResultStore, run: RunInfo,
                  extra_runs: list[RunInfo]) -> tuple[list[dict[str, Any]], int | None]:
    """Ceilings that apply to ``run``, each with its ``quality`` (:meth:`ResultStore.applicable_ceilings`:
    measured ones first; a ``--quick`` calibration's, provisional, only where the machine has none)."""
    return store.applicable_ceilings(run, extra_runs)


def _int_params(row: dict[str, Any]) -> dict[str, int]:
    return {k: v for k, v in row["params"].items() if isinstance(v, int) and not isinstance(v, bool)}


def _declared_order(workload: str, names: dict[str, Any]) -> list[str]:
    w = find_workload(workload)
    declared = list(w.params) if w is not None else []
    return sorted(names, key=lambda n: (declared.index(n) if n in declared else len(declared), n))


def assign_families(rows: list[dict[str, Any]]) -> None:
    """Set ``family`` on each row: which sweep of its workload it belongs to.

    A workload may sweep several shapes (square matmuls and, separately, a rectangular layer
    shape). Rows whose integer parameters are all equal form the ``m=n=k`` family; the others
    are grouped by the integer parameters that stay constant among them (``n=4096 k=1024``).
    A workload with a single sweep gets the family ``""``, so nothing is added to its labels.
    """
    by_workload: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_workload.setdefault(r["workload"], []).append(r)
    for wrows in by_workload.values():
        square, other = [], []
        for r in wrows:
            ints = _int_params(r)
            (square if len(ints) < 2 or len(set(ints.values())) == 1 else other).append(r)
        constant: dict[str, Any] = {}
        if other:
            first = _int_params(other[0])
            constant = {k: v for k, v in first.items() if all(_int_params(r).get(k) == v for r in other)}
        other_name = " ".join(f"{k}={v}" for k, v in sorted(constant.items())) or "other shapes"
        several = bool(square) and bool(other)
        for r in square:
            names = _declared_order(r["workload"], _int_params(r))
            r["family"] = "=".join(names) if several and len(names) > 1 else ""
        for r in other:
            r["family"] = other_name if several else ""


def load_runs(store: ResultStore, refs: list[str] | None) -> list[RunData]:
    """Load the referenced runs (default: the latest) with enriched rows and applicable ceilings."""
    infos: list[RunInfo] = []
    for ref in refs or ["latest"]:
        info = store.run(ref)
        if info.id not in {i.id for i in infos}:
            infos.append(info)
    out = []
    for info in infos:
        rows = enrich(info, store.results(info.id))
        ceilings, cal_id = find_ceilings(store, info, infos)
        for row in rows:
            guard_row(row, ceilings, cal_id)  # implausible / above_ceiling, as the export flags them
        out.append(RunData(info, rows, ceilings, cal_id, run_label(info)))
    assign_families([r for run in out for r in run.rows])
    return out
