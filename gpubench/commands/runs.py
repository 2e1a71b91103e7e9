"""``gpubench runs``: the stored runs, one line each."""

from __future__ import annotations

from gpubench.commands import add_store_argument

HELP = "list stored runs: id, start, suite, label, status, result counts and machine"


def add_arguments(p) -> None:
    p.add_argument("--json", action="store_true", help="print JSON (one object per run)")
    add_store_argument(p)


def machine(environment: dict) -> dict:
    """CPU model and GPU names from a run's environment."""
    cpu = environment.get("cpu") if isinstance(environment.get("cpu"), dict) else {}
    gpus = [str(g.get("name", "?")) for g in environment.get("gpus") or [] if isinstance(g, dict)]
    return {"cpu": str(cpu.get("model") or ""), "gpus": gpus, "hostname": str(environment.get("hostname") or "")}


def summaries(store) -> list[dict]:
    """One JSON-ready summary per run, oldest first (``abandoned`` for a run whose process is gone)."""
    counts = store.status_counts()
    return [{"id": r.id, "started_at": r.started_at, "finished_at": r.finished_at, "suite": r.suite,
             "label": r.label, "status": r.status, "reason": r.reason, "results": counts.get(r.id, {}),
             "machine": machine(r.environment or {}), "pid": r.pid, "host": r.host}
            for r in store.runs()]


def run(args) -> int:
    import json

    from gpubench import refcache
    from gpubench.store import open_store
    from gpubench.tables import render

    with open_store(args.store, readonly=True) as store:
        runs = summaries(store)
    cache = refcache.describe(refcache.resolve(None, args.store))
    if args.json:
        print(json.dumps(runs, indent=2))
        return 0
    rows = []
    for r in runs:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(r["results"].items())) or "none"
        m = r["machine"]
        where = m["cpu"] + (f"; GPU: {', '.join(m['gpus'])}" if m["gpus"] else "")
        rows.append([r["id"], r["started_at"][:19].replace("T", " "), r["suite"], r["label"], r["status"],
                     counts, where or "?", r["reason"][:100]])
    if not rows:
        print("no runs")
    else:
        print(render(["run", "started", "suite", "label", "status", "results", "machine", "note"], rows, right=(0,)))
    print(f"reference cache: {refcache.describe_line(cache)}")
    return 0
