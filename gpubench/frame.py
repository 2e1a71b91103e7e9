"""Stored results as a pandas DataFrame (``gpubench.load``): one row per case, for notebooks.

Columns: every field of the export (:data:`gpubench.export.FIELDS`: ``run_id``, ``workload``,
``implementation``, ``device``, ``dtype``, ``status``, ``median_s``, ``ci95_low_s``, ``rate``, ``gflops``,
``speedup``, ``flags`` ..., the values of :mod:`gpubench.rows`, as ``export`` writes them), then the run's
``label``, ``machine`` (host name) and the project's git ``commit``/``branch``/``dirty`` when the run
recorded them, then one column per parameter
(``m``, ``n``, ``k``, ``direction``; a parameter whose name a field already has, such as
transfer's ``bytes``, becomes ``param_bytes``), then the workload's metrics flattened
(``final_accuracy``, ``samples_per_s``; nested ones as ``a.b``; a name already taken becomes
``metric_<name>``). ``started_at`` is a timezone-aware timestamp; ``params``, ``samples``,
``flags`` and ``metrics`` keep their whole values as Python objects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gpubench.export import FIELDS
from gpubench.rows import read_runs, select_runs
from gpubench.store import ResultStore, RunInfo, open_store

if TYPE_CHECKING:  # pragma: no cover
    import os

    import pandas

#: Columns added after :data:`FIELDS`.
RUN_COLUMNS = ("label", "machine", "commit", "branch", "dirty")


def _pandas():
    try:
        import pandas
    except ImportError as exc:
        from gpubench.errors import GpubenchError

        raise GpubenchError("gpubench.load needs pandas: pip install 'gpubench[pandas]' "
                            "(or pip install pandas)") from exc
    return pandas


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def _run_columns(run: RunInfo) -> dict[str, Any]:
    from gpubench.history import code_of

    env = run.environment or {}
    code = code_of(run)
    return {"label": run.label, "machine": str(env.get("hostname") or ""), "commit": code["commit"],
            "branch": code["branch"], "dirty": code["dirty"]}


def _select(store: ResultStore, run: Any) -> list[RunInfo]:
    refs = None if run is None else [run] if isinstance(run, (str, int)) else list(run)
    return select_runs(store, refs, default="all")


def records(store: ResultStore, run: Any = "all") -> list[dict[str, Any]]:
    """The rows :func:`load` makes a DataFrame of, as plain dicts (no pandas needed)."""
    taken = set(FIELDS) | set(RUN_COLUMNS)
    rows = []
    for read in read_runs(store, _select(store, run)):
        extra = _run_columns(read.info)
        for row in read.rows:
            out = {**{k: row[k] for k in FIELDS}, **extra}
            for k, v in row["params"].items():
                out[f"param_{k}" if k in taken else k] = v
            flat: dict[str, Any] = {}
            _flatten("", row["metrics"], flat)
            for k, v in flat.items():
                out[f"metric_{k}" if k in taken or k in row["params"] else k] = v
            rows.append(out)
    return rows


def load(store: str | os.PathLike[str] | ResultStore | None = None, run: Any = "all") -> pandas.DataFrame:
    """Stored results as a DataFrame, one row per case (see the module docstring for the columns).

    ``store``: a path or URL such as ``postgresql://…`` (default ``$GPUBENCH_STORE`` or
    ``results/gpubench.sqlite``) or an open
    :class:`ResultStore`; ``run``: ``"all"`` (default), ``"latest"``, ``"latest~N"``, an id, or a list
    of them. Raises :class:`gpubench.errors.GpubenchError` naming the extra when pandas is missing,
    and :class:`gpubench.errors.UsageError` for a missing store or an unknown run.
    """
    pd = _pandas()
    if isinstance(store, ResultStore):
        rows = records(store, run)
    else:
        with open_store(store, readonly=True) as opened:
            rows = records(opened, run)
    columns = list(FIELDS) + list(RUN_COLUMNS)
    columns += [k for k in dict.fromkeys(k for r in rows for k in r) if k not in columns]
    frame = pd.DataFrame.from_records(rows, columns=columns)
    frame["started_at"] = pd.to_datetime(frame["started_at"], utc=True, errors="coerce")
    return frame
