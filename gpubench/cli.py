"""The ``gpubench`` command line.

Only :mod:`argparse` and the small command modules are imported at start-up; each command
imports what it needs when it runs, so ``gpubench --help`` never loads a framework.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from gpubench import __version__
from gpubench.commands import COMMANDS


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="gpubench",
        description="Honest GPU-vs-CPU benchmarks: run a suite, store validated results, report and compare.",
        epilog="Main job: gpubench run --suite matmul, then gpubench report.",
    )
    parser.add_argument("--version", action="version", version=f"gpubench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        # "import" is a Python keyword: its module is import_.
        module = importlib.import_module(f"gpubench.commands.{name.replace('-', '_')}{'_' * (name == 'import')}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    from gpubench.errors import GpubenchError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_module", None):
        parser.print_help()
        return 2
    try:
        return int(args._module.run(args) or 0)
    except GpubenchError as exc:
        print(f"gpubench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("gpubench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
