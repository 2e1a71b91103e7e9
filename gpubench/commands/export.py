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
    import os
    import sys
    import tempfile

    from gpubench.export import to_csv, to_json
    from gpubench.rows import read_runs, select_runs
    from gpubench.store import open_store

    with open_store(args.store, readonly=True) as store:
        data = read_runs(store, select_runs(store, args.run))
    text = to_json(data) if args.format == "json" else to_csv(data)
    if not args.output:
        sys.stdout.write(text)
        return 0
    # Write beside the target and rename, so a failed export never leaves half a file.
    target = os.path.abspath(args.output)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".gpubench-export-")
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    os.replace(tmp, target)
    print(f"wrote {sum(len(r.rows) for r in data)} records to {args.output}", file=sys.stderr)
    return 0
