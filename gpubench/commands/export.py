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
    from gpubench.rows import read_runs, select_runs
    from gpubench.store import open_store
    from gpubench.textout import write_data

    with open_store(args.store, readonly=True) as store:
        data = read_runs(store, select_runs(store, args.run))
    text = to_json(data) if args.format == "json" else to_csv(data)
    if not args.output:
        write_data(text)
        return 0
    # Whole or not at all, with the user's umask (gpubench.atomicfile).
    write_text(args.output, text, make_dirs=False)
    print(f"wrote {sum(len(r.rows) for r in data)} records to {args.output}", file=sys.stderr)
    return 0
