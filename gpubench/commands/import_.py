"""``gpubench import``: a pytest-benchmark JSON file into the store as a run (module ``import_``: a keyword)."""

from __future__ import annotations

from gpubench.commands import add_store_argument

HELP = "import a pytest-benchmark JSON file (pytest --benchmark-json) into the store as a run"


def add_arguments(p) -> None:
    p.add_argument("path", metavar="PATH", help="JSON written by pytest --benchmark-json=PATH")
    p.add_argument("--label", default=None, help="label of the run (default: branch@commit from the file)")
    p.add_argument("--baseline", default="numpy", metavar="BACKEND",
                   help="backend whose CPU cases speedups are computed against (default numpy)")
    add_store_argument(p)


def run(args) -> int:
    import shlex
    import sys

    from gpubench.importer import parse, store_run
    from gpubench.store import open_store

    command = "gpubench " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    from gpubench.backends import backend_names
    from gpubench.errors import UsageError

    if args.baseline not in backend_names():
        raise UsageError(f"unknown baseline backend {args.baseline!r} (known: {', '.join(backend_names())})")
    imported = parse(args.path, args.label)  # every check before the store is opened: a bad file writes nothing
    with open_store(args.store) as store:
        run_id = store_run(store, imported, baseline=args.baseline, command=command)
        where = store.location
    n = len(imported.results)
    # The run id alone on stdout, for scripts: NEW=$(gpubench import bench.json)
    print(run_id)
    print(f"imported {n} case(s) from {args.path} as run {run_id} in {where}", file=sys.stderr)
    return 0
