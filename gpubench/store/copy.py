"""Copy runs from one store to another (``gpubench store copy``): a runner's SQLite file into the team's
PostgreSQL database, or back.

A run is the same run in every store by its ``uuid`` (schema 4; runs of older stores have a derived
one, :func:`gpubench.store.base.derived_run_uuids`), so copying is idempotent: a run the target
already holds is left as it is, and copying twice adds nothing. Each run goes over with its results
and ceilings in one transaction of the target, so an interrupted copy leaves no half run. A run
still ``running`` is left out (copy it again when it has finished); one whose process is gone
(``abandoned``) is copied as ``failed``, with that reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from gpubench.store.base import DuplicateRun, ResultStore, RunInfo


@dataclass
class CopyReport:
    """What a copy did: runs copied (source id → target id), already there, and left out as unfinished."""

    copied: dict[int, int] = field(default_factory=dict)
    present: list[int] = field(default_factory=list)
    unfinished: list[RunInfo] = field(default_factory=list)
    results: int = 0


def copy_runs(source: ResultStore, target: ResultStore, refs: Iterable[str | int] | None = None) -> CopyReport:
    """Copy every run of ``source`` (or the runs ``refs`` name) that ``target`` does not hold yet."""
    runs = source.runs()
    if refs:
        wanted = {source.run(ref).id for ref in refs}
        runs = [r for r in runs if r.id in wanted]
    report = CopyReport()
    for run in runs:
        if run.status == "running":
            report.unfinished.append(run)
            continue
        if target.run_by_uuid(run.uuid) is not None:
            report.present.append(run.id)
            continue
        try:
            report.copied[run.id] = target.copy_run(source, run, run.uuid)
        except DuplicateRun:  # another copy of the same run got there first
            report.present.append(run.id)
            continue
        report.results += target.count_results(report.copied[run.id])
    return report
