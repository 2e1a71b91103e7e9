"""The ``gpubench`` command line.

Only :mod:`argparse` and the small command modules are imported at start-up; each command
imports what it needs when it runs, so ``gpubench --help`` never loads a framework. Every error
is one line on stderr and a non-zero exit (``GPUBENCH_DEBUG=1`` shows the traceback of an
unexpected one).
"""

from __future__ import annotations

import argparse
import importlib
import os
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
    """Entry point of the console script; returns the exit status.

    Standard output and error are :class:`gpubench.textout.TerminalStream` while the command runs: text
    from stores, suite files and imports cannot send control sequences to the terminal, and a stream whose
    encoding cannot carry a character (``PYTHONIOENCODING=ascii``) gets an ASCII form of it, not an error.
    """
    from gpubench.textout import terminal_streams

    with terminal_streams():
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    from gpubench.errors import GpubenchError
    from gpubench.textout import visible

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_module", None):
        parser.print_help()
        return 2
    try:
        return int(args._module.run(args) or 0)
    except GpubenchError as exc:
        print(f"gpubench: error: {visible(exc)}", file=sys.stderr)  # one line, whatever the message holds
        return exc.exit_code
    except KeyboardInterrupt:
        print("gpubench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # noqa: BLE001 - a bug or an OS error is still one line, not a traceback
        if os.environ.get("GPUBENCH_DEBUG"):
            raise
        line = (str(exc).strip().splitlines() or [""])[0][:300]
        print(f"gpubench: error: {type(exc).__name__}: {line} (GPUBENCH_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return 1
