"""The report's data model: runs with their rows (:mod:`gpubench.rows`), and what is derived across runs.

Everything here is plain data (no HTML, no Plotly), so sections and tests share one view of a report. A
row's figures (rate, speedups, % of peak, flags, whether it is a measurement) are those of
:func:`gpubench.rows.build_rows`, the same every other surface shows; the report adds only how rows are
grouped on its charts (:func:`assign_families`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gpubench.rows import read_runs, run_label, select_runs
from gpubench.store import ResultStore, RunInfo
from gpubench.workloads import find_workload


@dataclass
class RunData:
    """One run with its rows (:func:`gpubench.rows.build_rows`) and the ceilings that apply to it."""

    info: RunInfo
    rows: list[dict[str, Any]]
    ceilings: list[dict[str, Any]] = field(default_factory=list)
    ceilings_run: int | None = None
    label: str = ""

    @property
    def env(self) -> dict[str, Any]:
        return self.info.environment or {}


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
    """Load the referenced runs (default: the latest) with their rows, held against the ceilings that apply."""
    out = [RunData(r.info, r.rows, r.ceilings, r.ceilings_run, run_label(r.info))
           for r in read_runs(store, select_runs(store, refs))]
    assign_families([r for run in out for r in run.rows])
    return out
