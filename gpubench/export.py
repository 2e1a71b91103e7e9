"""Flat result rows (statistics and speedups derived from raw samples) and JSON/CSV export.

Export JSON schema history (``EXPORT_SCHEMA_VERSION``; documented in ``docs/results-schema.md``):

* 1 — ``{"schema": "gpubench-results", "schema_version": 1, "runs": [...], "results": [...]}``.
* 2 — each result adds ``implementation`` (``cupy[tiled]``), ``flags``, ``host_median_s``,
  ``size`` and ``metrics`` (the workload's own measurements, such as MNIST's
  ``final_accuracy`` and ``curve``). CSV flattens every scalar metric into a ``metric.<name>``
  column and keeps the whole ``metrics`` object as a JSON cell.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from gpubench.records import CaseResult
from gpubench.store import RunInfo

EXPORT_SCHEMA_VERSION = 2

#: Columns of one exported case, in order.
FIELDS = (
    "run_id", "started_at", "suite", "workload", "backend", "variant", "implementation", "device",
    "device_name", "dtype", "params", "size", "status", "error", "flags", "samples", "n_samples",
    "calls_per_sample", "clock", "min_s", "median_s", "mean_s", "stdev_s", "iqr_s", "ci95_low_s", "ci95_high_s",
    "host_median_s", "target_met", "flops", "bytes", "gflops", "gbps", "speedup", "baseline", "rel_error",
    "tolerance", "spec_hash", "unit", "metrics",
)

#: Fields of :data:`FIELDS` that CSV writes as JSON cells.
JSON_CELLS = ("params", "samples", "flags", "metrics")


def workload_unit(name: str) -> str:
    """The headline unit of a workload (``gflops`` or ``gbps``); ``gflops`` for one this gpubench lacks."""
    from gpubench.workloads import find_workload

    workload = find_workload(name)
    return workload.unit if workload is not None else "gflops"


def _params_key(result: CaseResult) -> tuple:
    spec = result.spec
    return spec.workload, spec.dtype, spec.params


def baseline_medians(results: list[CaseResult], baseline: str) -> dict[tuple, float]:
    """Median time of each correct baseline-backend CPU case, keyed by (workload, dtype, params)."""
    out: dict[tuple, float] = {}
    for r in results:
        if r.spec.backend == baseline and r.spec.device.split(":")[0] == "cpu" and r.status == "ok":
            key = _params_key(r)
            if key not in out or r.spec.variant == "default":
                out[key] = r.median_s
    return out


def speedup(result: CaseResult, base: dict[tuple, float]) -> float | None:
    """Baseline median over this case's median; None unless both are correct and present."""
    if result.status != "ok" or not result.median_s:
        return None
    ref = base.get(_params_key(result))
    return ref / result.median_s if ref else None


def result_rows(run: RunInfo, results: list[CaseResult]) -> list[dict[str, Any]]:
    """One flat dict per case with every field in :data:`FIELDS`."""
    from gpubench.workloads import size_text

    base = baseline_medians(results, run.baseline)
    rows = []
    for r in results:
        s = r.summary
        unit = workload_unit(r.spec.workload)
        metrics = {k: v for k, v in (r.metrics or {}).items() if k != "traceback"}
        rows.append({
            "run_id": run.id, "started_at": run.started_at, "suite": run.suite,
            "workload": r.spec.workload, "backend": r.spec.backend, "variant": r.spec.variant,
            "implementation": r.spec.implementation,
            "device": r.spec.device, "device_name": r.device_name, "dtype": r.spec.dtype,
            "params": r.spec.param_dict, "size": size_text(r.spec.workload, r.spec.param_dict),
            "status": r.status, "error": r.error, "flags": list(r.flags),
            "samples": list(r.samples), "n_samples": len(r.samples), "calls_per_sample": r.number,
            "clock": r.clock,
            "min_s": s.min if s else None, "median_s": s.median if s else None,
            "mean_s": s.mean if s else None, "stdev_s": s.stdev if s else None,
            "iqr_s": s.iqr if s else None,
            "ci95_low_s": s.ci95_low if s else None, "ci95_high_s": s.ci95_high if s else None,
            "host_median_s": r.host_median_s,
            "target_met": r.target_met, "flops": r.flops, "bytes": r.bytes,
            "gflops": r.gflops, "gbps": r.gbps, "speedup": speedup(r, base),
            "baseline": f"{run.baseline}:cpu" if run.baseline else "",
            "rel_error": r.rel_error, "tolerance": r.tolerance, "spec_hash": r.spec_hash, "unit": unit,
            "metrics": metrics,
        })
    return rows


def run_header(run: RunInfo) -> dict[str, Any]:
    """JSON-ready run header with its environment."""
    return {"run_id": run.id, "started_at": run.started_at, "finished_at": run.finished_at,
            "status": run.status, "suite": run.suite, "label": run.label, "baseline": run.baseline,
            "command": run.command, "settings": run.settings, "environment": run.environment}


def to_json(runs: list[tuple[RunInfo, list[CaseResult]]]) -> str:
    """The versioned JSON export document."""
    doc = {"schema": "gpubench-results", "schema_version": EXPORT_SCHEMA_VERSION,
           "runs": [run_header(run) for run, _ in runs],
           "results": [row for run, results in runs for row in result_rows(run, results)]}
    return json.dumps(doc, indent=2, default=str) + "\n"


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def to_csv(runs: list[tuple[RunInfo, list[CaseResult]]]) -> str:
    """CSV with one row per case: :data:`FIELDS` (``params``, ``samples``, ``flags`` and ``metrics`` as JSON
    cells), then one ``metric.<name>`` column per scalar metric any case has (MNIST's ``final_accuracy``...)."""
    rows = [row for run, results in runs for row in result_rows(run, results)]
    metric_names = sorted({k for row in rows for k, v in row["metrics"].items() if _scalar(v)})
    columns = [*FIELDS, *(f"metric.{k}" for k in metric_names)]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        out = {k: row[k] for k in FIELDS}
        for k in JSON_CELLS:
            out[k] = json.dumps(row[k], sort_keys=True, default=str)
        for k in metric_names:
            value = row["metrics"].get(k)
            out[f"metric.{k}"] = value if _scalar(value) else ""
        writer.writerow({k: "" if v is None else v for k, v in out.items()})
    return buf.getvalue()
