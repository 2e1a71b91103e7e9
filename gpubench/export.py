"""JSON and CSV export of stored results: one record per case, the fields of :data:`FIELDS`.

The values are the rows of :mod:`gpubench.rows` (every figure is defined there, once; this module only
selects and writes them). Export JSON schema history (``EXPORT_SCHEMA_VERSION``; documented in
``docs/results-schema.md``):

* 1 — ``{"schema": "gpubench-results", "schema_version": 1, "runs": [...], "results": [...]}``.
* 2 — each result adds ``implementation`` (``cupy[tiled]``), ``flags``, ``host_median_s``,
  ``size`` and ``metrics`` (the workload's own measurements, such as MNIST's
  ``final_accuracy`` and ``curve``). CSV flattens every scalar metric into a ``metric.<name>``
  column and keeps the whole ``metrics`` object as a JSON cell.
* 3 — each result adds the machine while it was measured and the energy: ``joules_per_call``,
  ``gflop_per_joule``, ``gb_per_joule``, ``energy_reason`` (why there is no energy per call), and the
  whole ``energy`` and ``machine`` objects (JSON cells in CSV).
* 4 — each result adds ``measurement``, ``rate`` and ``rate_unit``, ``speedup_ci``, ``speedup_cpu``,
  ``speedup_cpu_ci`` and ``fastest_cpu`` (over the fastest CPU backend of the run), ``attainable_gflops``
  and ``roofline_pct``, ``scaling_efficiency`` (data-parallel training: ``t₁ / (N · t_N)``), and the per-call
  latency columns of :data:`gpubench.latency.COLUMNS` (``latency_p50_s``, ``latency_p90_s``, ``latency_p99_s``,
  ``latency_calls``, ``throughput_samples_per_s``: records measured one call per sample, the ``inference``
  workload; null for every other record). ``speedup`` of a
  mode case (``tf32``, ``include_transfer``) is now against the same
  problem's plain CPU baseline (it was null), as the report has it; ``noisy`` is set wherever the
  confidence target was not met and never on a one-sample case.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from gpubench.latency import COLUMNS as LATENCY_COLUMNS
from gpubench.rows import RunRows
from gpubench.store import RunInfo
from gpubench.textout import csv_cell, json_text

EXPORT_SCHEMA_VERSION = 4

#: Columns of one exported case, in order.
FIELDS = (
    "run_id", "started_at", "suite", "workload", "backend", "variant", "implementation", "device",
    "device_name", "dtype", "params", "size", "status", "error", "flags", "samples", "n_samples",
    "calls_per_sample", "clock", "min_s", "median_s", "mean_s", "stdev_s", "iqr_s", "ci95_low_s", "ci95_high_s",
    "host_median_s", "target_met", "flops", "bytes", "gflops", "gbps", "speedup", "baseline", "rel_error",
    "tolerance", "spec_hash", "unit", "metrics", "joules_per_call", "gflop_per_joule", "gb_per_joule",
    "energy_reason", "energy", "machine", "measurement", "rate", "rate_unit", "speedup_ci", "speedup_cpu",
    "speedup_cpu_ci", "fastest_cpu", "attainable_gflops", "roofline_pct", "scaling_efficiency",
    # Per-call latency: percentiles and throughput of records measured one call per sample (inference).
    *LATENCY_COLUMNS,
)

#: Fields of :data:`FIELDS` that CSV writes as JSON cells.
JSON_CELLS = ("params", "samples", "flags", "metrics", "energy", "machine")


def run_header(run: RunInfo) -> dict[str, Any]:
    """JSON-ready run header with its environment."""
    return {"run_id": run.id, "started_at": run.started_at, "finished_at": run.finished_at,
            "status": run.status, "suite": run.suite, "label": run.label, "baseline": run.baseline,
            "command": run.command, "settings": run.settings, "environment": run.environment}


def records(runs: list[RunRows]) -> list[dict[str, Any]]:
    """The exported records of ``runs``: the :data:`FIELDS` of each row, in order."""
    return [{k: row[k] for k in FIELDS} for run in runs for row in run.rows]


def to_json(runs: list[RunRows]) -> str:
    """The versioned JSON export document of ``runs`` (:func:`gpubench.rows.read_runs`)."""
    doc = {"schema": "gpubench-results", "schema_version": EXPORT_SCHEMA_VERSION,
           "runs": [run_header(run.info) for run in runs],
           "results": records(runs)}
    return json_text(doc, indent=2) + "\n"


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def to_csv(runs: list[RunRows]) -> str:
    """CSV with one row per case: :data:`FIELDS` (``params``, ``samples``, ``flags`` and ``metrics`` as JSON
    cells), then one ``metric.<name>`` column per scalar metric any case has (MNIST's ``final_accuracy``...).

    Text cells are quoted and numbers are not (``QUOTE_NONNUMERIC``); a text cell that a spreadsheet would
    run as a formula gets a leading ``'`` (:func:`gpubench.textout.csv_cell`, OWASP's rule)."""
    rows = records(runs)
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
