"""``gpubench compare``: match two runs case by case and flag regressions (exit status 1)."""

from __future__ import annotations

from gpubench.commands import add_store_argument

HELP = "compare two runs case by case: faster, slower, same, inconclusive or not comparable (exit 1 on a regression)"


def add_arguments(p) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN",
                   help="BASE NEW: the reference run and the run to judge (id, latest or latest~N); "
                        "with --against-last, NEW alone")
    p.add_argument("--against-last", type=int, metavar="N",
                   help="judge NEW against the median of the last N earlier runs of the same machine "
                        "(per case) instead of a BASE run")
    p.add_argument("--threshold", type=float, default=5.0, metavar="PCT",
                   help="smallest change in %% that counts as faster or slower (default 5)")
    p.add_argument("--alpha", type=float, default=0.05, metavar="P",
                   help="significance level of the Mann-Whitney U test on the raw samples (default 0.05)")
    p.add_argument("--html", metavar="PATH", help="also write the comparison as a self-contained HTML page")
    add_store_argument(p)


def run(args) -> int:
    import sys

    from gpubench.atomicfile import write_text
    from gpubench.compare import NoSharedCase, check_options, compare, format_table, render_html
    from gpubench.errors import UsageError

    check_options(args.threshold, args.alpha, args.against_last)
    if args.against_last is not None:
        if len(args.runs) != 1:
            raise UsageError("with --against-last N give only the run to judge: gpubench compare --against-last N NEW")
        base, new = None, args.runs[0]
    elif len(args.runs) != 2:
        raise UsageError("give two runs, BASE and NEW (or --against-last N NEW)")
    else:
        base, new = args.runs
    try:
        comparison = compare(base, new, against_last=args.against_last, threshold=args.threshold, alpha=args.alpha,
                             store=args.store)
    except NoSharedCase as exc:
        print(f"gpubench: warning: {exc}", file=sys.stderr)
        return 2
    if comparison.note:
        print(f"gpubench: {comparison.note}", file=sys.stderr)
        return 0
    print(format_table(comparison))
    if args.html:
        path = write_text(args.html, render_html(comparison))
        print(f"wrote {path}", file=sys.stderr)
    return 1 if comparison.regressions else 0
