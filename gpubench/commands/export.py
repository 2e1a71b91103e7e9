"""``gpubench export``: stored results as versioned JSON or CSV."""

from __future__ import annotations

from gpubench.commands import add_store_argument

HELP = "export results as JSON or CSV (one record per case)"


def add_arguments(p) -> None:
    p.add_argument("--format", choices=("json", "csv"), default="json", help="output format (default json)")
    p.add_argument("--run", action="append", metavar="ID",
                   help="run(s) to export (default: latest; 'all' for every run)")
    p.add_argument("-o", "--output", metavar="PATH", help="write to PATH instead of standard output")
    add_store_argument(p)


def run(args) -> int:
    import sys

    from gpubench.atomicfile import write_text
    from gpubench.export import to_csv, to_json
    from gpubench.store import ResultStore
    from gpubench.textout import write_data

    with ResultStore(args.store, readonly=True) as store:
        refs = args.run or ["latest"]
        runs = store.runs() if refs == ["all"] else [store.run(r) for r in refs]
        data = [(r, store.results(r.id)) for r in runs]
        ceilings = {r.id: store.applicable_ceilings(r) for r in runs}
    text = to_json(data, ceilings) if args.format == "json" else to_csv(data, ceilings)
    if not args.output:
        write_data(text)
        return 0
    # Whole or not at all, with the user's umask (gpubench.atomicfile).
    write_text(args.output, text, make_dirs=False)
    print(f"wrote {sum(len(r) for _, r in data)} records to {args.output}", file=sys.stderr)
    return 0
