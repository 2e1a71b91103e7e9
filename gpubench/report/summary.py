"""A run's summary as HTML, for a notebook (:class:`gpubench.Run` displayed in Jupyter).

The same content as ``gpubench show`` — the run's header, its results table, one line per backend and reason
for the skipped cases, the notes — opened by the report's headlines (*At a glance*) and, for a tour, its
machine card. Every figure comes from the run's rows (:mod:`gpubench.rows`) through the functions the terminal
and the report use; every text is escaped. No script, no style sheet: the notebook's own table style applies.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from gpubench.report.html import esc
from gpubench.store import ResultStore

__all__ = ["run_summary_html"]


def _table(headers: list[str], rows: list[list[str]], right: tuple[int, ...]) -> str:
    def cell(tag: str, i: int, value: Any) -> str:
        align = ' style="text-align:right"' if i in right else ' style="text-align:left"'
        return f"<{tag}{align}>{esc(value)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def run_summary_html(store: ResultStore, run_ref: str | int) -> str:
    """The summary of run ``run_ref`` of ``store`` as an HTML fragment (see the module's docstring)."""
    from gpubench.report import analysis, card, lecture
    from gpubench.report.build import banners
    from gpubench.report.model import load_runs
    from gpubench.tables import results_parts

    (run,) = load_runs(store, [run_ref])
    info, rows, env = run.info, run.rows, run.env
    counts = Counter(r["status"] for r in rows)
    head = (f"<b>run {esc(info.id)}</b> · suite {esc(info.suite)} · {esc(info.started_at)} · "
            f"<b>{esc(info.status)}</b>" + (f" · label {esc(info.label)}" if info.label else "")
            + " · " + esc(", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no results"))
    parts = [f"<p>{head}</p>"]
    if info.reason:
        parts.append(f"<p>reason: {esc(info.reason)}</p>")
    for b in banners([run]):
        parts.append(f'<p style="background:#fff8c5;padding:4px 8px">⚠ {esc(b)}</p>')
    lines = analysis.headlines([run]) + lecture.headlines([run])
    if lines:
        parts.append("<ul>" + "".join(f"<li>{esc(s)}</li>" for s in lines) + "</ul>")
    if card.wants_card(run):
        parts.append(card.card_html(card.card(run)))
    cpu = (env.get("cpu") or {}).get("model", "?")
    parts.append(f"<p>machine: {esc(cpu)}; speedup is against {esc(info.baseline)}:cpu (same dtype and size; a "
                 "tf32 or +copies case against the plain CPU case)</p>")
    tables, skips, notes = results_parts(rows, env)
    parts += [_table(headers, cells, right) for headers, cells, right in tables]
    if skips:
        parts.append("<p>" + "<br>".join(esc(s) for s in skips) + "</p>")
    parts += [f"<p>note: {esc(n)}</p>" for n in notes]
    return '<div class="gpubench-run">' + "".join(parts) + "</div>"
