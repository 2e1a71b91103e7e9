"""One self-contained HTML page: the template, the page's data as JSON, Plotly and the page script, each once.

Shared by the run report (:mod:`gpubench.report.build`) and the history page
(:mod:`gpubench.report.history_page`).
"""

from __future__ import annotations

import re
from importlib.resources import files
from typing import Any

from gpubench.report import bundle
from gpubench.report.html import csp_meta, esc, script_json


def resource(name: str) -> str:
    """A text file shipped in ``gpubench.report``."""
    return (files("gpubench.report") / name).read_text(encoding="utf-8")


def assemble(*, title: str, subtitle: str, nav: list[tuple[str, str]], body: str, footer: str,
             figures: list[dict[str, Any]], table: dict[str, Any] | None = None,
             heading: str = "gpubench report") -> str:
    """The complete HTML document. ``body`` is trusted HTML (built with :func:`esc`); every other text
    argument is escaped here."""
    errjs, appjs = resource("errors.js"), resource("app.js")
    plotlyjs = bundle.plotly_js(figures)
    parts = {
        "TITLE": esc(title), "HEADING": esc(heading), "SUBTITLE": esc(subtitle),
        "NAV": "".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t in nav),
        "BODY": body, "FOOTER": esc(footer),
        "DATA": script_json({"figures": figures, "table": table}),
        "ERRJS": errjs, "PLOTLYJS": plotlyjs, "APPJS": appjs, "CSP": csp_meta([errjs, plotlyjs, appjs]),
    }
    return re.sub(r"\$([A-Z]+)", lambda m: parts[m.group(1)], resource("template.html"))
