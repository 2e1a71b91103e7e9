"""Progress of ``gpubench run`` (redrawn on a terminal, one line per case otherwise).

Each line shows the time since the run started and, when the runner can estimate it
(:meth:`gpubench.runner.Runner.remaining_s`, through :attr:`Progress.eta`), the time left:
``[12/60] ok  matmul ...  341 µs  (1m12s, ~3m40s left)``.

Skipped cases get no line of their own: they are counted per backend and reason, and one line
(``17 cupy cases skipped: no CUDA driver found``) is written when the runner moves on to the next
backend, and at the end. Every line is cut to the terminal's width (``$COLUMNS`` or 160 characters
when the output is not a terminal).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TextIO

from gpubench.records import CaseResult, CaseSpec

#: Line width when the stream is not a terminal and ``$COLUMNS`` is not set.
DEFAULT_WIDTH = 160


def terminal_width(stream: TextIO) -> int:
    """Columns of the terminal behind ``stream`` (``$COLUMNS``, else :data:`DEFAULT_WIDTH`, when there is none)."""
    try:
        if stream.isatty():
            return max(20, os.get_terminal_size(stream.fileno()).columns)
    except (OSError, ValueError, AttributeError):
        pass
    try:
        return max(20, int(os.environ.get("COLUMNS", "")))
    except ValueError:
        return DEFAULT_WIDTH


def cut(line: str, width: int) -> str:
    """``line`` shortened to ``width`` characters, with an ellipsis when cut."""
    return line if len(line) <= width else line[: max(0, width - 1)] + "…"


class Progress:
    """Shows ``[done/total]`` with the current case and the last result; collapses skips."""

    def __init__(self, stream: TextIO, width: int = 24, clock: Callable[[], float] = time.monotonic,
                 start: float | None = None):
        self.stream = stream
        self.tty = stream.isatty()
        self.width = width
        self.clock = clock
        self.start = clock() if start is None else start
        self.skips: dict[tuple[str, str], int] = {}
        self.skip_backend = ""
        self.eta: Callable[[], float | None] | None = None
        """Estimated seconds left (the runner's :meth:`~gpubench.runner.Runner.remaining_s`), when known."""

    def times(self) -> str:
        """``1m12s, ~3m40s left`` (elapsed, and the estimate of what is left when there is one)."""
        from gpubench.estimate import format_duration

        text = format_duration(self.clock() - self.start)
        left = self.eta() if self.eta is not None else None
        if left is not None:
            text += f", ~{format_duration(left)} left"
        return text

    def _line(self, text: str) -> None:
        columns = terminal_width(self.stream)
        if self.tty:
            self.stream.write("\r" + cut(text, columns - 1).ljust(columns - 1) + "\n")
        else:
            self.stream.write(cut(text, columns) + "\n")

    def flush_skips(self) -> None:
        """Write one line per backend and reason for the skips counted so far."""
        from gpubench.tables import skip_line

        for (backend, reason), n in self.skips.items():
            self._line(skip_line(backend, reason, n))
        self.skips.clear()
        self.stream.flush()

    def update(self, done: int, total: int, spec: CaseSpec, result: CaseResult | None) -> None:
        """Called before each case (``result`` None) and after it."""
        from gpubench.tables import fmt_time

        if self.skips and spec.backend != self.skip_backend:
            self.flush_skips()
        if result is not None and result.status == "skipped":
            key = (spec.backend, result.error or "no reason given")
            self.skips[key] = self.skips.get(key, 0) + 1
            self.skip_backend = spec.backend
        if self.tty:
            columns = terminal_width(self.stream)
            filled = int(self.width * done / max(total, 1))
            bar = "#" * filled + "." * (self.width - filled)
            state = "running" if result is None else result.status
            line = f"[{bar}] {done}/{total} ({self.times()})  {state:<9} {spec.label()}"
            self.stream.write("\r" + cut(line, columns - 1).ljust(columns - 1))
            self.stream.flush()
        elif result is not None and result.status != "skipped":
            med = fmt_time(result.median_s) if result.samples else result.error
            self._line(f"[{done}/{total}] {result.status:<9} {spec.label()}  {med}  ({self.times()})")
            self.stream.flush()

    def finish(self) -> None:
        """Write the pending skip lines and end the progress line."""
        if self.tty:
            self.stream.write("\n")
        self.flush_skips()
        self.stream.flush()
