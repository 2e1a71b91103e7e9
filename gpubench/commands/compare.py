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
    from gpubench.compare import compare_runs, format_table, history_base, render_html
    from gpubench.errors import UsageError
    from gpubench.rows import read_runs
    from gpubench.store import open_store

    if not args.threshold >= 0:
        raise UsageError(f"--threshold must be a non-negative percentage, got {args.threshold}")
    if not 0 < args.alpha < 1:
        raise UsageError(f"--alpha must be between 0 and 1, got {args.alpha}")
    if args.against_last is not None:
        if args.against_last < 1:
            raise UsageError(f"--against-last must be a positive number of runs, got {args.against_last}")
        if len(args.runs) != 1:
            raise UsageError("with --against-last N give only the run to judge: gpubench compare --against-last N NEW")
    elif len(args.runs) != 2:
        raise UsageError("give two runs, BASE and NEW (or --against-last N NEW)")
    with open_store(args.store, readonly=True) as store:
        if args.against_last is not None:
            (new_read,) = read_runs(store, [store.run(args.runs[0])])
            new, new_results = new_read.info, new_read.results
            hist = history_base(store, new, new_results, args.against_last)
            if not hist.results:
                # The first runs of a machine have no history yet: that is no failure of the new run.
                print(f"gpubench: no earlier run of this machine has any case of run {new.id}: nothing to compare "
                      "yet (the history starts here)", file=sys.stderr)
                return 0
            comparison = compare_runs(hist.runs[-1], hist.results, new, new_results, threshold_pct=args.threshold,
                                      alpha=args.alpha, base_medians=hist.medians,
                                      base_text=hist.describe(args.against_last), new_rows=new_read.rows)
        else:
            base, new = read_runs(store, [store.run(args.runs[0]), store.run(args.runs[1])])
            comparison = compare_runs(base.info, base.results, new.info, new.results, threshold_pct=args.threshold,
                                      alpha=args.alpha, base_rows=base.rows, new_rows=new.rows)
    if comparison.cases and not comparison.shared:
        b, n = comparison.base, comparison.new
        print(f"gpubench: warning: runs {b.id} ({b.suite}) and {n.id} ({n.suite}) share no case: nothing to "
              "compare (list the runs with 'gpubench runs' and pick two of the same suite)", file=sys.stderr)
        return 2
    print(format_table(comparison))
    if args.html:
        path = write_text(args.html, render_html(comparison))
        print(f"wrote {path}", file=sys.stderr)
    return 1 if comparison.regressions else 0
