"""``gpubench show``: a run as a terminal table."""

from __future__ import annotations

from gpubench.commands import add_store_argument

HELP = "show a stored run as a table (default: the latest)"


def add_arguments(p) -> None:
    p.add_argument("run", nargs="?", default=None, help="run id, latest or latest~N (default: latest)")
    add_store_argument(p)


def print_run(store, run_ref) -> None:
    """Print a run's header, its results table and a status count."""
    from collections import Counter

    from gpubench.rows import read_runs
    from gpubench.tables import results_table
    from gpubench.textout import visible

    (read,) = read_runs(store, [store.run(run_ref)])
    run, results, rows = read.info, read.results, read.rows
    cpu = visible((run.environment.get("cpu") or {}).get("model", "?"))
    print(f"run {run.id}  suite {visible(run.suite)}  {visible(run.started_at)}  {run.status}"
          + (f"  label {visible(run.label)}" if run.label else ""))
    if run.reason:
        print(f"reason: {visible(run.reason)}")
    print(f"machine: {cpu}; speedup is against {visible(run.baseline)}:cpu (same dtype and size; a tf32 or +copies "
          "case against the plain CPU case)")
    if rows:
        print(results_table(rows, run.environment))
    counts = Counter(r.status for r in results)
    print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no results")


def run(args) -> int:
    from gpubench.store import open_store

    with open_store(args.store, readonly=True) as store:
        print_run(store, args.run)
    return 0
