"""``gpubench history``: each case's median across runs, labelled by commit, with detected changes."""

from __future__ import annotations

from gpubench.commands import add_store_argument

HELP = "one HTML page with each case's median and CI across runs, by commit, with detected change points"


def add_arguments(p) -> None:
    p.add_argument("--suite", metavar="S", help="only runs of this suite (default: every suite but calibrate)")
    p.add_argument("--case", metavar="FILTER",
                   help="only cases whose label holds every word of FILTER, e.g. 'matmul torch:cpu float32'")
    p.add_argument("--min-change", type=float, default=5.0, metavar="PCT",
                   help="smallest step in %% reported as a change (default 5)")
    p.add_argument("-o", "--output", metavar="PATH", default="reports/history.html",
                   help="HTML file to write (default reports/history.html)")
    add_store_argument(p)


def run(args) -> int:
    import sys

    from gpubench.atomicfile import write_text
    from gpubench.errors import UsageError
    from gpubench.history import collect
    from gpubench.report.history_page import change_text, render
    from gpubench.store import open_store
    from gpubench.textout import visible

    if not args.min_change > 0:
        raise UsageError(f"--min-change must be a positive percentage, got {args.min_change}")
    with open_store(args.store, readonly=True) as store:
        if args.suite is not None and args.suite not in {r.suite for r in store.runs()}:
            known = ", ".join(sorted({r.suite for r in store.runs()})) or "none"
            raise UsageError(f"no run of suite {args.suite!r} in {store.location} (suites there: {known})")
        histories = collect(store, args.suite, args.case, args.min_change / 100)
        where = store.location
    if not histories:
        what = f" matching {args.case!r}" if args.case else ""
        raise UsageError(f"no correct result{what} in {where}: nothing to draw")
    text = render(histories, store_path=where, suite=args.suite, case_filter=args.case,
                  min_change=args.min_change / 100)
    path = write_text(args.output, text)
    runs = {p.run_id for h in histories for p in h.points}
    changes = [(h, c) for h in histories for c in h.changes]
    print(f"{len(histories)} cases across {len(runs)} runs; {len(changes)} change(s)")
    for h, c in changes:
        print(visible(f"  {h.title}: {change_text(c)} {c.commit_range()}"))
    sys.stdout.flush()
    print(f"wrote {path}", file=sys.stderr)
    return 0
