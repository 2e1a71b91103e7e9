"""Subcommands of ``gpubench``: one module each, with ``HELP``, ``add_arguments(parser)`` and ``run(args)``.

Command modules import only the standard library at module level (``gpubench --help`` loads
all of them).
"""

COMMANDS = ("run", "list", "env", "show", "export", "report", "history", "compare", "calibrate", "import")


def add_store_argument(parser) -> None:
    """The shared ``--store PATH`` option."""
    parser.add_argument("--store", metavar="PATH",
                        help="results store (default: $GPUBENCH_STORE or results/gpubench.sqlite)")


def split_csv(values: list[str] | None) -> tuple[str, ...]:
    """Flatten repeated and comma-separated option values."""
    out: list[str] = []
    for v in values or []:
        out.extend(x.strip() for x in v.split(",") if x.strip())
    return tuple(dict.fromkeys(out))
