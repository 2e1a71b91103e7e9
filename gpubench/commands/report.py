"""``gpubench report``: one self-contained HTML file from one or more stored runs."""

from __future__ import annotations

from gpubench.commands import add_store_argument

HELP = "write a self-contained HTML report of one or more runs (default: the latest)"


def add_arguments(p) -> None:
    p.add_argument("runs", nargs="*", metavar="RUN",
                   help="run ids, latest or latest~N; several runs overlay, each labelled (default: latest)")
    p.add_argument("-o", "--output", metavar="PATH", help="HTML file to write (default: reports/run-<id>.html)")
    add_store_argument(p)


def run(args) -> int:
    import sys
    import time

    from gpubench.report.inline import report

    t0 = time.perf_counter()
    written = report(args.runs or None, args.output, store=args.store)
    runs = len(written.runs)
    print(f"wrote {written.path} ({written.cases} cases from {runs} run{'s' if runs != 1 else ''}, "
          f"{time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    print(written.path)
    return 0
