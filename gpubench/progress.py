"""Progress of a run: a bar with the time since the start and the estimated time left, or one line per case.

:func:`make_progress` picks the display (:func:`progress_kind`):

* ``lines`` — one line per finished case, where output is not a terminal or in CI (``$CI`` set):
  ``[12/60] ok  matmul ...  341 µs  (1m12s, ~3m40s left)``;
* ``tqdm`` — a `tqdm <https://tqdm.github.io>`_ bar on a terminal (``pip install 'gpubench[notebook]'``), and in a
  notebook whose front end has no widgets;
* ``notebook`` — tqdm's notebook widget, in Jupyter, JupyterLab or Colab with ``ipywidgets``;
* ``bar`` — gpubench's own bar, redrawn in place, on a terminal without tqdm.

Each shows the time since the run started and, when the runner can estimate it
(:meth:`gpubench.runner.Runner.remaining_s`, through :attr:`Progress.eta`), the time left.

Skipped cases get no line of their own: they are counted per backend and reason, and one line
(``17 cupy cases skipped: no CUDA driver found``) is written when the runner moves on to the next
backend, and at the end. A bar also writes a line for each case that failed (error, timeout,
incorrect). Every line is cut to the terminal's width (``$COLUMNS`` or 160 characters when the
output is not a terminal).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from gpubench.records import CaseResult, CaseSpec
from gpubench.textout import isatty, raw_stream

#: Line width when the stream is not a terminal and ``$COLUMNS`` is not set.
DEFAULT_WIDTH = 160

#: The displays :func:`progress_kind` chooses from.
KINDS = ("lines", "bar", "tqdm", "notebook")


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
                 start: float | None = None, tty: bool | None = None):
        self.stream = stream
        self.tty = isatty(stream) if tty is None else tty
        """Redraw one bar in place (a terminal) rather than write a line per case."""
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

    def _count(self, spec: CaseSpec, result: CaseResult | None) -> None:
        """Write the skips counted so far when the runner moves to another backend; count a new skip."""
        if self.skips and spec.backend != self.skip_backend:
            self.flush_skips()
        if result is not None and result.status == "skipped":
            key = (spec.backend, result.error or "no reason given")
            self.skips[key] = self.skips.get(key, 0) + 1
            self.skip_backend = spec.backend

    def update(self, done: int, total: int, spec: CaseSpec, result: CaseResult | None) -> None:
        """Called before each case (``result`` None) and after it."""
        from gpubench.tables import fmt_time

        self._count(spec, result)
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

    def finish(self, cut_short: bool = False) -> None:
        """Write the pending skip lines and end the progress line (``cut_short``: the run was interrupted or
        failed; a bar keeps the point it reached)."""
        if self.tty:
            self.stream.write("\n")
        self.flush_skips()
        self.stream.flush()


def _bar_class(base: type) -> type:
    """``base`` (tqdm's text bar or its notebook widget) with two more fields for its format: ``times`` and
    ``case``."""

    class GpubenchBar(base):  # type: ignore[misc, valid-type]
        times_text = ""
        case_text = ""

        @property
        def format_dict(self) -> dict[str, Any]:
            d = super().format_dict
            d.update(times=self.times_text, case=self.case_text)
            return d

    return GpubenchBar


#: The bar's layout: ``12/60 |█████     | 1m12s, ~3m40s left  ok  matmul numpy:cpu ...``.
BAR_FORMAT = "{n_fmt}/{total_fmt} |{bar}| {times}  {case}"


class TqdmProgress(Progress):
    """The same progress drawn as a tqdm bar (``notebook``: tqdm's Jupyter widget); the skip lines and failed
    cases are written above it with ``tqdm.write``."""

    #: Room the bar itself and its counts keep on a terminal line, and the elapsed and left times; the case's
    #: label gets the rest.
    BAR_ROOM = 34
    TIMES_ROOM = 20

    def __init__(self, stream: TextIO, notebook: bool = False, clock: Callable[[], float] = time.monotonic,
                 start: float | None = None):
        super().__init__(stream, clock=clock, start=start, tty=False)
        # tqdm redraws with carriage returns and clears its line before a write: it gets the stream itself, and
        # every text it is given is made safe here (visible, and in the stream's encoding).
        self.out = raw_stream(stream)
        self.notebook = notebook
        if notebook:
            from tqdm.notebook import tqdm as base
        else:
            from tqdm import tqdm as base
        self._bar_type = _bar_class(base)
        self.bar: Any = None

    def _safe(self, text: str) -> str:
        from gpubench.textout import for_encoding, visible

        return for_encoding(visible(text), getattr(self.out, "encoding", None))

    def _line(self, text: str) -> None:
        line = self._safe(cut(text, terminal_width(self.out)))
        if self.bar is not None:
            self.bar.write(line, file=self.out)
        else:
            self.out.write(line + "\n")

    def flush_skips(self) -> None:
        """Write one line per backend and reason for the skips counted so far, above the bar."""
        from gpubench.tables import skip_line

        for (backend, reason), n in self.skips.items():
            self._line(skip_line(backend, reason, n))
        self.skips.clear()

    def update(self, done: int, total: int, spec: CaseSpec, result: CaseResult | None) -> None:
        """Move the bar to ``done`` of ``total``, with the current case (``result`` None) or the last result."""
        self._count(spec, result)
        state = "running" if result is None else result.status
        times, case = self._safe(self.times()), self._safe(f"{state:<8} {spec.label()}")
        if not self.notebook:  # fixed widths on a terminal, so that the bar keeps its length
            room = max(10, terminal_width(self.out) - self.BAR_ROOM - self.TIMES_ROOM)
            times, case = times.ljust(self.TIMES_ROOM), cut(case, room).ljust(room)
        bar = self.bar
        if bar is None:
            self._bar_type.times_text, self._bar_type.case_text = times, case  # what the first drawing shows
            bar = self.bar = self._bar_type(total=total, file=self.out, bar_format=BAR_FORMAT, dynamic_ncols=True,
                                            mininterval=0, leave=True)
            # tqdm counts from when the bar was made, on its own clock: the run started earlier.
            bar.start_t -= max(0.0, self.clock() - self.start)
        bar.times_text, bar.case_text = times, case
        bar.total = total
        bar.n = done
        bar.refresh()
        if result is not None and result.status not in ("ok", "skipped"):
            self._line(f"{result.status:<9} {spec.label()}  {result.error}")

    def finish(self, cut_short: bool = False) -> None:
        """Write the pending skip lines and close the bar. A run that ended by itself fills the bar (a time
        limit's left-out cases are said by the run's last lines); one ``cut_short`` keeps the point it reached."""
        self.flush_skips()
        if self.bar is not None:
            if not cut_short and self.bar.total and self.bar.n < self.bar.total:
                self.bar.total = self.bar.n
            self.bar.refresh()
            self.bar.close()
            self.bar = None
        try:
            self.out.flush()
        except (OSError, ValueError):
            pass


def _found(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def in_notebook() -> bool:
    """Whether this is a Jupyter kernel (Jupyter, JupyterLab, Colab, VS Code's notebooks): an IPython shell
    with a kernel, not IPython in a terminal."""
    if "IPython" not in sys.modules:
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def is_ci(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``$CI`` says this runs in continuous integration (set, and not ``0``, ``false``, ``no`` or ``off``)."""
    value = (os.environ if environ is None else environ).get("CI", "")
    return value.strip().lower() not in ("", "0", "false", "no", "off")


def progress_kind(stream: TextIO, *, environ: Mapping[str, str] | None = None, notebook: bool | None = None,
                  tqdm: bool | None = None, widgets: bool | None = None) -> str:
    """Which display a run's progress gets on ``stream`` (one of :data:`KINDS`).

    ``lines`` in CI (``$CI``) and wherever ``stream`` is neither a terminal nor a notebook's output; in a notebook
    the widget (``notebook``) when tqdm and ipywidgets are installed, tqdm's text bar when only tqdm is; on a
    terminal ``tqdm`` when installed, else ``bar``. ``notebook``, ``tqdm`` and ``widgets`` default to what this
    process has (:func:`in_notebook`, whether ``tqdm`` and ``ipywidgets`` can be imported).
    """
    if is_ci(environ):
        return "lines"
    has_tqdm = _found("tqdm") if tqdm is None else tqdm
    if in_notebook() if notebook is None else notebook:
        if not has_tqdm:
            return "lines"
        return "notebook" if (_found("ipywidgets") if widgets is None else widgets) else "tqdm"
    if not isatty(raw_stream(stream)):
        return "lines"
    return "tqdm" if has_tqdm else "bar"


def make_progress(stream: TextIO, *, start: float | None = None, kind: str | None = None,
                  clock: Callable[[], float] = time.monotonic) -> Progress:
    """The progress display of a run on ``stream`` (``kind``: one of :data:`KINDS`, default
    :func:`progress_kind`), its elapsed time counted from ``start`` (a ``clock`` reading)."""
    kind = progress_kind(stream) if kind is None else kind
    if kind not in KINDS:
        raise ValueError(f"unknown progress display {kind!r} (known: {', '.join(KINDS)})")
    if kind in ("tqdm", "notebook"):
        try:
            return TqdmProgress(stream, notebook=kind == "notebook", clock=clock, start=start)
        except ImportError:  # a broken tqdm or widget install: the plain display still works
            kind = "bar" if isatty(raw_stream(stream)) else "lines"
    return Progress(stream, clock=clock, start=start, tty=kind == "bar")
