"""Flat result rows (statistics and speedups derived from raw samples) and JSON/CSV export.

Export JSON schema history (``EXPORT_SCHEMA_VERSION``; documented in ``docs/results-schema.md``):

* 1 — ``{"schema": "gpubench-results", "schema_version": 1, "runs": [...], "results": [...]}``.
* 2 — each result adds ``implementation`` (``cupy[tiled]``), ``flags``, ``host_median_s``,
  ``size`` and ``metrics`` (the workload's own measurements, such as MNIST's
  ``final_accuracy`` and ``curve``). CSV flattens every scalar metric into a ``metric.<name>``
  column and keeps the whole ``metrics`` object as a JSON cell.
* 3 — each result adds the machine while it was measured and the energy: ``joules_per_call``,
  ``gflop_per_joule``, ``gb_per_joule``, ``energy_reason`` (why there is no energy per call), and the
  whole ``energy`` and ``machine`` objects (JSON cells in CSV).

Rows are held against ceilings when they are read (:func:`guard_row`): ``implausible`` above a
physical ceiling (the one recorded when the case was measured, else its GPU's datasheet),
``above_ceiling`` above the machine's measured ceiling (``gpubench calibrate``, never a ``--quick``
one), each with its details in ``metrics["implausible"]`` / ``metrics["above_ceiling"]``.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from gpubench.records import CaseResult, is_measurement
from gpubench.store import D2H_BW, H2D_BW, MEM_BW, PEAK_FLOPS, RunInfo
from gpubench.textout import csv_cell, json_text

EXPORT_SCHEMA_VERSION = 3

#: Columns of one exported case, in order.
FIELDS = (
    "run_id", "started_at", "suite", "workload", "backend", "variant", "implementation", "device",
    "device_name", "dtype", "params", "size", "status", "error", "flags", "samples", "n_samples",
    "calls_per_sample", "clock", "min_s", "median_s", "mean_s", "stdev_s", "iqr_s", "ci95_low_s", "ci95_high_s",
    "host_median_s", "target_met", "flops", "bytes", "gflops", "gbps", "speedup", "baseline", "rel_error",
    "tolerance", "spec_hash", "unit", "metrics", "joules_per_call", "gflop_per_joule", "gb_per_joule",
    "energy_reason", "energy", "machine",
)

#: Fields of :data:`FIELDS` that CSV writes as JSON cells.
JSON_CELLS = ("params", "samples", "flags", "metrics", "energy", "machine")


def workload_unit(name: str) -> str:
    """The headline unit of a workload (``gflops`` or ``gbps``); ``gflops`` for one this gpubench lacks."""
    from gpubench.workloads import find_workload

    workload = find_workload(name)
    return workload.unit if workload is not None else "gflops"


def _params_key(result: CaseResult) -> tuple:
    spec = result.spec
    return spec.workload, spec.dtype, spec.params


def baseline_medians(results: list[CaseResult], baseline: str) -> dict[tuple, float]:
    """Median time of each correct baseline-backend CPU case, keyed by (workload, dtype, params); never a case
    flagged ``not_a_measurement``."""
    out: dict[tuple, float] = {}
    for r in results:
        if (r.spec.backend == baseline and r.spec.device.split(":")[0] == "cpu" and r.status == "ok"
                and is_measurement(r.flags)):
            key = _params_key(r)
            if key not in out or r.spec.variant == "default":
                out[key] = r.median_s
    return out


def speedup(result: CaseResult, base: dict[tuple, float]) -> float | None:
    """Baseline median over this case's median; None unless both are correct measurements and present."""
    if result.status != "ok" or not result.median_s or not is_measurement(result.flags):
        return None
    ref = base.get(_params_key(result))
    return ref / result.median_s if ref else None


def _rate(row: dict[str, Any], bound: str, seconds: float | None) -> float | None:
    work = row.get("flops") if bound == "compute" else row.get("bytes")
    return work / seconds / 1e9 if work and seconds else None


def _measured(ceilings: list[dict[str, Any]], device: str, kind: str, dtype: str) -> dict[str, Any] | None:
    """The best measured ceiling of ``kind`` (and ``dtype``) for ``device``: its own, else its kind's (``cuda``)."""
    prefix = device.split(":")[0]
    for wanted in (device, prefix, f"{prefix}:0"):
        found = [c for c in ceilings if c["device"] == wanted and c["kind"] == kind and (c.get("dtype") or "") == dtype]
        if found:
            return max(found, key=lambda c: c["value"])
    return None


def guard_row(row: dict[str, Any], ceilings: list[dict[str, Any]] | None = None,
              ceilings_run: int | None = None) -> None:
    """Hold an ``ok`` row against its ceilings, in place: ``implausible`` and ``above_ceiling`` join its
    ``flags``, and what was broken its ``metrics`` (a copy; the record's own metrics are untouched).

    * physical: the ceiling recorded when the case was measured (``metrics["physical_ceiling"]``), or
      for a record without one the datasheet of its GPU, by name. A CPU's clock-based ceiling is only
      judged where the case ran, never on the machine that reads it.
    * measured: the machine's ceilings of the same kind (compute peak of its compute dtype, memory,
      h2d or d2h bandwidth), flagged only when the rate at the slow end of the median's 95 % interval
      is still above them.
    """
    from gpubench.datasheet import datasheet_for
    from gpubench.plausibility import Ceiling, judge, memory_bound_applies, physical_ceiling
    from gpubench.workloads import find_workload

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
    rate = _rate(row, bound, row["median_s"])
    recorded = metrics.get("physical_ceiling")
    if isinstance(recorded, dict) and {"name", "value", "unit", "source"} <= recorded.keys():
        ceiling = Ceiling(recorded["name"], float(recorded["value"]), recorded["unit"], recorded["source"])
    elif datasheet_for(row.get("device_name") or ""):
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
    measured = _measured(ceilings or [], row["device"], kind, compute_dtype if bound == "compute" else "") \
        if kind and applies else None
    slow = _rate(row, bound, row.get("ci95_high_s") or row["median_s"])
    if measured is not None and slow is not None and slow > measured["value"]:
        flags.add("above_ceiling")
        source = f"measured, calibration run {ceilings_run}" if ceilings_run is not None else "measured"
        metrics["above_ceiling"] = {"name": kind, "value": measured["value"], "unit": measured["unit"],
                                    "source": f"{source}: {measured.get('method', '')}".rstrip(": "), "rate": rate}
    row["flags"] = sorted(flags)
    row["metrics"] = metrics


def flag_note(row: dict[str, Any], detail: bool = False) -> str:
    """A row's flags as one note (``noisy, launch_bound``); with ``detail``, what each one means for this row."""
    flags = list(row.get("flags") or ())
    if row.get("target_met") is False and "noisy" not in flags:
        flags.insert(0, "noisy")
    if not detail:
        return ", ".join(flags)
    metrics = row.get("metrics") or {}
    out = []
    for flag in flags:
        broke = metrics.get(flag) if flag in ("implausible", "above_ceiling") else None
        if isinstance(broke, dict) and broke.get("value"):
            out.append(f"{flag}: {broke.get('rate', 0):.4g} > {broke.get('name', '')} {broke['value']:.4g} "
                       f"{broke.get('unit', '')} ({broke.get('source', '')})")
        elif flag == "noisy":
            out.append("noisy: CI target not met")
        elif flag == "launch_bound":
            out.append("launch_bound: host time per call ≥ device time")
        else:
            out.append(flag)
    return "; ".join(out)


def result_rows(run: RunInfo, results: list[CaseResult], ceilings: list[dict[str, Any]] | None = None,
                ceilings_run: int | None = None) -> list[dict[str, Any]]:
    """One flat dict per case with every field in :data:`FIELDS`, held against ``ceilings`` (:func:`guard_row`)."""
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
            "joules_per_call": r.joules_per_call, "gflop_per_joule": r.gflop_per_joule,
            "gb_per_joule": r.gb_per_joule, "energy_reason": r.energy_reason,
            "energy": r.energy, "machine": r.machine,
        })
        guard_row(rows[-1], ceilings, ceilings_run)
    return rows


def run_header(run: RunInfo) -> dict[str, Any]:
    """JSON-ready run header with its environment."""
    return {"run_id": run.id, "started_at": run.started_at, "finished_at": run.finished_at,
            "status": run.status, "suite": run.suite, "label": run.label, "baseline": run.baseline,
            "command": run.command, "settings": run.settings, "environment": run.environment}


Ceilings = dict[int, tuple[list[dict[str, Any]], int | None]]
"""Measured ceilings per run id, with the calibration run they come from (``ResultStore.applicable_ceilings``)."""


def _rows(runs: list[tuple[RunInfo, list[CaseResult]]], ceilings: Ceilings | None) -> list[dict[str, Any]]:
    out = []
    for run, results in runs:
        found, cal = (ceilings or {}).get(run.id, ([], None))
        out += result_rows(run, results, found, cal)
    return out


def to_json(runs: list[tuple[RunInfo, list[CaseResult]]], ceilings: Ceilings | None = None) -> str:
    """The versioned JSON export document."""
    doc = {"schema": "gpubench-results", "schema_version": EXPORT_SCHEMA_VERSION,
           "runs": [run_header(run) for run, _ in runs],
           "results": _rows(runs, ceilings)}
    return json_text(doc, indent=2) + "\n"


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def to_csv(runs: list[tuple[RunInfo, list[CaseResult]]], ceilings: Ceilings | None = None) -> str:
    """CSV with one row per case: :data:`FIELDS` (``params``, ``samples``, ``flags`` and ``metrics`` as JSON
    cells), then one ``metric.<name>`` column per scalar metric any case has (MNIST's ``final_accuracy``...).

    Text cells are quoted and numbers are not (``QUOTE_NONNUMERIC``); a text cell that a spreadsheet would
    run as a formula gets a leading ``'`` (:func:`gpubench.textout.csv_cell`, OWASP's rule)."""
    rows = _rows(runs, ceilings)
    metric_names = sorted({k for row in rows for k, v in row["metrics"].items() if _scalar(v)})
    columns = [*FIELDS, *(f"metric.{k}" for k in metric_names)]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    writer.writeheader()
    for row in rows:
        out = {k: row[k] for k in FIELDS}
        for k in JSON_CELLS:
            out[k] = json_text(row[k], sort_keys=True)
        for k in metric_names:
            value = row["metrics"].get(k)
            out[f"metric.{k}"] = value if _scalar(value) else ""
        writer.writerow({k: "" if v is None else csv_cell(v) for k, v in out.items()})
    return buf.getvalue()
