"""The Plotly JavaScript a page embeds (once, so the page opens from disk with no network).

gpubench ships plotly.js's *basic* partial bundle (``plotly-basic.min.js``, plotly.js v4.1.1 from
the ``plotly.js-basic-dist-min`` npm package, MIT licence in ``plotly-LICENSE.txt``): 1.2 MB instead
of the 4.8 MB full bundle that plotly.py embeds. It holds the trace types ``scatter``, ``bar`` and
``pie``, and every layout feature gpubench uses (log axes, shapes, annotations, error bars). A page
whose figures need another trace type (a plug-in workload's section, say) gets the full bundle from
the ``plotly`` Python package instead, so it still renders.

To update: ``npm pack plotly.js-basic-dist-min@<version>`` and copy ``plotly-basic.min.js`` here;
keep the version equal to the plotly.js that the installed plotly.py embeds, then run the browser
tests (``tests/test_report_browser.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.resources import files
from typing import Any

from gpubench.errors import MissingDependency

#: Trace types of the shipped partial bundle.
BASIC_TRACE_TYPES = frozenset({"scatter", "bar", "pie"})
BASIC_BUNDLE = "plotly-basic.min.js"


def trace_types(figures: Iterable[dict[str, Any]]) -> set[str]:
    """The trace types the figures use (``scatter`` where a trace names none, as Plotly does)."""
    return {str(t.get("type") or "scatter") for f in figures for t in f.get("data") or []}


def plotly_js(figures: Iterable[dict[str, Any]] = ()) -> str:
    """The smallest Plotly bundle that draws ``figures``: the shipped basic bundle when it has every trace
    type they use, else the full bundle of the ``plotly`` package."""
    if trace_types(figures) <= BASIC_TRACE_TYPES:
        resource = files("gpubench.report") / BASIC_BUNDLE
        if resource.is_file():
            return resource.read_text(encoding="utf-8")
    try:
        import plotly.offline
    except ImportError as exc:
        raise MissingDependency("report", "plotly", "report") from exc
    return plotly.offline.get_plotlyjs()
