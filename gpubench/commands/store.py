"""``gpubench store``: work on whole stores; ``store copy SRC DST`` copies runs from one store to another."""

from __future__ import annotations

from gpubench.commands import STORE_HELP

HELP = "work on whole stores: 'store copy SRC DST' copies runs between stores (SQLite, PostgreSQL), idempotently"


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    copy = sub.add_parser("copy", help="copy the runs of SRC that DST does not hold yet (copying twice adds nothing)",
                          description="Copy runs from one store to another: a runner's SQLite file into the team's "
                                      "PostgreSQL database, or back. A run keeps its identity (uuid) in every store, "
                                      "so a run DST holds already is left as it is. Each store is " + STORE_HELP + ".")
    copy.add_argument("source", metavar="SRC", help="store to copy from (read only)")
    copy.add_argument("target", metavar="DST", help="store to copy into (created when it does not exist)")
    copy.add_argument("--run", action="append", metavar="ID",
                      help="only these runs of SRC (id, latest or latest~N; repeat; default: every run)")


def run(args) -> int:
    import sys

    from gpubench.store import open_store
    from gpubench.store.copy import copy_runs

    with open_store(args.source, readonly=True) as source, open_store(args.target) as target:
        report = copy_runs(source, target, args.run)
        where = f"from {source.location} to {target.location}"
    for r in report.unfinished:
        print(f"gpubench: run {r.id} ({r.suite}) is still running: not copied (copy again when it has finished)",
              file=sys.stderr)
    n = len(report.copied)
    print(f"copied {n} run{'s' if n != 1 else ''} ({report.results} results) {where}; "
          f"{len(report.present)} already there")
    return 0
