"""A progress line for ``gpubench run`` (redrawn on a terminal, one line per case otherwise)."""

from __future__ import annotations

import time
from typing import TextIO

from gpubench.records import CaseResult, CaseSpec


class Progress:
    """Shows ``[done/total]`` with the current case and the last result."""

    def __init__(self, stream: TextIO, width: int = 24):
        self.stream = stream
        self.tty = stream.isatty()
        self.width = width
        self.start = time.monotonic()

    def update(self, done: int, total: int, spec: CaseSpec, result: CaseResult | None) -> None:
        """Called before each case (``result`` None) and after it."""
        from gpubench.tables import fmt_time

        elapsed = time.monotonic() - self.start
        if self.tty:
            filled = int(self.width * done / max(total, 1))
            bar = "#" * filled + "." * (self.width - filled)
            state = "running" if result is None else result.status
            line = f"\r[{bar}] {done}/{total} {elapsed:5.0f}s  {state:<9} {spec.label()}"
            self.stream.write(line[:160].ljust(160))
            self.stream.flush()
        elif result is not None:
            med = fmt_time(result.median_s) if result.samples else result.error[:80]
            self.stream.write(f"[{done}/{total}] {result.status:<9} {spec.label()}  {med}\n")
            self.stream.flush()

    def finish(self) -> None:
        """End the progress line."""
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
