"""The report from Python, shown inline in a notebook: :func:`report` (also ``gpubench.report(...)``).

:func:`report` writes the very file ``gpubench report`` writes (:func:`gpubench.report.build.build_report`) and
returns a :class:`Report`. Displayed in Jupyter, JupyterLab, Colab or VS Code, a :class:`Report` is the page
itself in an ``<iframe srcdoc>`` (:func:`gpubench.report.html.iframe`): its charts drawn by the Plotly bundled
in the page, offline, sandboxed from the notebook.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpubench.errors import UsageError

__all__ = ["Report", "report", "run_refs"]

#: Height in pixels of a report shown inline (it scrolls inside).
INLINE_HEIGHT = 760


@dataclass
class Report:
    """A written HTML report: where it is (``path``), its text (``html``), the runs it shows and how many cases.

    In a notebook it displays itself inline (``_repr_html_``); :meth:`inline_html` is that HTML.
    """

    path: Path
    html: str = field(repr=False)
    runs: list[int] = field(default_factory=list)
    cases: int = 0

    def inline_html(self, height: int = INLINE_HEIGHT) -> str:
        """The report as a notebook shows it: an ``<iframe>`` whose ``srcdoc`` is the whole page."""
        from gpubench.report.html import iframe

        title = "gpubench report of run" + ("s " if len(self.runs) != 1 else " ") + ", ".join(map(str, self.runs))
        return iframe(self.html, height=height, title=title)

    def _repr_html_(self) -> str:
        return self.inline_html()

    def __str__(self) -> str:
        return str(self.path)


def run_refs(runs: Any, option: str = "runs") -> list[str | int] | None:
    """Run references as the stores take them (ids, ``latest``, ``latest~N``; a list of them), None for none;
    anything else is a :class:`UsageError` naming ``option``."""
    if runs is None:
        return None
    items = [runs] if isinstance(runs, (str, int)) else runs
    try:
        items = list(items)
    except TypeError:
        raise UsageError(f"{option}: a run id, 'latest', 'latest~N' or a list of them, got {runs!r}") from None
    for ref in items:
        if isinstance(ref, bool) or not isinstance(ref, (str, int)):
            raise UsageError(f"{option}: a run id, 'latest', 'latest~N' or a list of them, got {ref!r}")
    return items or None


def report(runs: Any = None, path: str | os.PathLike[str] | None = None, *,
           store: str | os.PathLike[str] | None = None) -> Report:
    """Write the HTML report of ``runs`` and return it, as ``gpubench report`` does.

    ``runs``: a run id, ``"latest"`` (default), ``"latest~N"``, or a list of them (several runs overlay);
    ``path``: the file to write (default ``reports/run-<id>.html``); ``store``: the results store (default
    ``$GPUBENCH_STORE`` or ``results/gpubench.sqlite``), opened read-only. Bad input (an unknown run, a missing
    store) is a :class:`~gpubench.errors.UsageError`.
    """
    from gpubench.report.build import build_report
    from gpubench.store import open_store

    refs = run_refs(runs)
    with open_store(os.fspath(store) if store is not None else None, readonly=True) as opened:
        written, data = build_report(opened, refs, path)
    written = Path(written)
    return Report(written, written.read_text(encoding="utf-8"), [r.info.id for r in data],
                  sum(len(r.rows) for r in data))
