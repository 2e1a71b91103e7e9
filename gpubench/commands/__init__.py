"""Subcommands of ``gpubench``: one module each, with ``HELP``, ``add_arguments(parser)`` and ``run(args)``.

Command modules import only the standard library at module level (``gpubench --help`` loads
all of them).
"""

from __future__ import annotations

import math

COMMANDS = ("run", "list", "env", "runs", "show", "export", "report", "history", "compare", "calibrate", "import",
            "store")

#: What ``--store`` and the ``store`` command accept (kept in words here: --help must not import the store).
STORE_HELP = ("a SQLite file (PATH or sqlite:///PATH) or a PostgreSQL database (postgresql://USER@HOST/DB; "
              "the password from PGPASSWORD, ~/.pgpass or a service file)")


def add_store_argument(parser) -> None:
    """The shared ``--store PATH|URL`` option."""
    parser.add_argument("--store", metavar="PATH|URL",
                        help=f"results store: {STORE_HELP} (default: $GPUBENCH_STORE or results/gpubench.sqlite)")


def split_csv(values: list[str] | None, option: str = "option") -> tuple[str, ...]:
    """Flatten repeated and comma-separated option values; an empty value is a :class:`UsageError`.

    ``--backend ''`` or ``--backend numpy,`` is a mistake, not "no filter": leaving the option
    out selects everything.
    """
    from gpubench.errors import UsageError

    out: list[str] = []
    for v in values or []:
        items = [x.strip() for x in v.split(",")]
        if not all(items):
            raise UsageError(f"{option}: empty value in {v!r} (name one, or leave {option} out for all)")
        out.extend(items)
    return tuple(dict.fromkeys(out))


def check_limit(option: str, value: float | None, what: str = "number of seconds",
                allow_inf: bool = False) -> float | None:
    """``value`` if it is a positive number (finite unless ``allow_inf``), else a one-line :class:`UsageError`."""
    from gpubench.errors import UsageError

    if value is None:
        return None
    if not value > 0 or (math.isinf(value) and not allow_inf):
        kind = f"a positive {what}, or inf for no limit" if allow_inf else f"a positive finite {what}"
        raise UsageError(f"{option} must be {kind}, got {value:g}")
    return value
