"""``gpubench compare``: match two runs case by case and flag regressions (exit status 1)."""

from __future__ import annotations

from gpubench.commands import add_store_argument

HELP = "compare two runs case by case: faster, slower, same, inconclusive or not comparable (exit 1 on a regression)"


def add_arguments(p) -> None:
    p.add_argument("base", metavar="BASE", help="the reference run: id, latest or latest~N")
    p.add_argument("new", metavar="NEW", help="the run to judge: id, latest or latest~N")
    p.add_argument("--threshold", type=float, default=5.0, metavar="PCT",
                   help="smallest change in %% that counts as faster or slower (default 5)")
    p.add_argument("--alpha", type=float, default=0.05, metavar="P",
                   help="significance level of the Mann-Whitney U test on the raw samples (default 0.05)")
    p.add_argument("--html", metavar="PATH", help="also write the comparison as a self-contained HTML page")
    add_store_argument(p)


def run(args) -> int:
    import sys

    from gpubench.compare import compare_runs, format_table, render_html
    from gpubench.errors import UsageError
    from gpubench.report.html import write_atomic
    from gpubench.store import ResultStore

    if not args.threshold >= 0:
        raise UsageError(f"--threshold must be a non-negative percentage, got {args.threshold}")
    if not 0 < args.alpha < 1:
        raise UsageError(f"--alpha must be between 0 and 1, got {args.alpha}")
    with ResultStore(args.store, create=False) as store:
        base, new = store.run(args.base), store.run(args.new)
        comparison = compare_runs(base, store.results(base.id), new, store.results(new.id),
                                  threshold_pct=args.threshold, alpha=args.alpha)
    print(format_table(comparison))
    if args.html:
        path = write_atomic(args.html, render_html(comparison))
        print(f"wrote {path}", file=sys.stderr)
    return 1 if comparison.regressions else 0
