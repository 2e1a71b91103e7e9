"""``gpubench history`` as one self-contained HTML page: each case's median across runs, with its changes."""

from __future__ import annotations

import math
import time
from typing import Any

from gpubench import __version__
from gpubench.history import CaseHistory, Change
from gpubench.report.charts import FONT
from gpubench.report.html import esc, plot_text, table
from gpubench.report.page import assemble
from gpubench.tables import fmt_rate, fmt_speedup, fmt_time

#: At most this many commit labels under a chart (every k-th run is labelled beyond it).
MAX_TICKS = 8

_KIND_COLOR = {"step": "#cf222e", "unconfirmed": "#bf8700", "benchmark changed": "#6e7781"}


def _unit(values: list[float]) -> tuple[str, float]:
    top = max(values)
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if top >= scale:
            return unit, scale
    return "ns", 1e-9


def change_text(c: Change) -> str:
    """``+23.1 % slower`` / ``-12.0 % faster`` / ``benchmark changed``."""
    if c.kind == "benchmark changed":
        return f"benchmark changed ({c.change_pct:+.1f} %)"
    word = "slower" if c.change_pct > 0 else "faster"
    return f"{c.change_pct:+.1f} % ({word})" + (", newest run only" if c.kind == "unconfirmed" else "")


def history_figure(hist: CaseHistory, multi_machine: bool) -> dict[str, Any]:
    """Median (with its 95 % CI) per run, the fitted levels, and a line at each change."""
    pts = hist.points
    unit, scale = _unit([p.ci_high_s for p in pts])
    xs = list(range(len(pts)))

    def hover(i: int) -> str:
        p = pts[i]
        ci = "1 run" if p.n_samples < 2 else f"95% CI {fmt_time(p.ci_low_s)}–{fmt_time(p.ci_high_s)}"
        lines = [f"run {p.run_id} · {p.started_at}", f"commit {p.commit[:12] or '-'}"
                 + (f" ({p.branch})" if p.branch else "") + (" · uncommitted changes" if p.dirty else ""),
                 f"median {fmt_time(p.median_s)} ({ci})"]
        if p.rate:
            lines.append(fmt_rate({"rate": p.rate, "rate_unit": p.rate_unit})
                         + (f" · {fmt_speedup(p.speedup)} vs baseline {p.baseline}" if p.speedup is not None else ""))
        if p.outlier:
            lines.append("outlier: left out of the change detection")
        if p.flags:
            lines.append("flags: " + ", ".join(p.flags))
        return "<br>".join(plot_text(x) for x in lines)

    normal = [i for i in xs if not pts[i].outlier]
    odd = [i for i in xs if pts[i].outlier]
    traces = []
    for idx, name, symbol, color in ((normal, "median (95% CI)", "circle", "#1f77b4"),
                                     (odd, "outlier (not fitted)", "x", "#8c564b")):
        if not idx:
            continue
        traces.append({
            "type": "scatter", "mode": "markers", "name": name, "x": idx,
            "y": [pts[i].median_s / scale for i in idx],
            "error_y": {"type": "data", "symmetric": False, "color": color, "thickness": 1.2, "width": 3,
                        "array": [(pts[i].ci_high_s - pts[i].median_s) / scale for i in idx],
                        "arrayminus": [(pts[i].median_s - pts[i].ci_low_s) / scale for i in idx]},
            "marker": {"color": color, "symbol": symbol, "size": 7},
            "text": [hover(i) for i in idx], "hovertemplate": "%{text}<extra></extra>",
        })
    lx: list[float | None] = []
    ly: list[float | None] = []
    for a, b, level in hist.segments:
        lx += [a - 0.3, b - 1 + 0.3, None]
        ly += [level / scale, level / scale, None]
    traces.append({"type": "scatter", "mode": "lines", "name": "fitted level", "x": lx, "y": ly,
                   "line": {"color": "#555", "width": 1.5, "dash": "dash"}, "hoverinfo": "skip"})
    shapes, notes = [], []
    for c in hist.changes:
        color = _KIND_COLOR.get(c.kind, "#cf222e")
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": c.index - 0.5, "x1": c.index - 0.5,
                       "y0": 0, "y1": 1, "line": {"color": color, "width": 1.5, "dash": "dot"}})
        notes.append({"xref": "x", "yref": "paper", "x": c.index - 0.5, "y": 1, "yanchor": "bottom",
                      "showarrow": False, "font": {"size": 10, "color": color}, "text": plot_text(change_text(c))})
    step = max(1, math.ceil(len(pts) / MAX_TICKS))
    ticks = xs[::step]
    title = hist.title + (f" · {hist.machine}" if multi_machine else "")
    layout = {
        "title": {"text": plot_text(title), "font": {"size": 13}, "x": 0.01, "xanchor": "left"},
        "height": 330, "margin": {"l": 70, "r": 20, "t": 60, "b": 80},
        "paper_bgcolor": "#fff", "plot_bgcolor": "#fff", "font": {"family": FONT, "size": 11},
        "showlegend": False, "hovermode": "closest", "shapes": shapes, "annotations": notes,
        "xaxis": {"title": {"text": "run (oldest first), labelled by commit"}, "tickvals": ticks,
                  "ticktext": [plot_text(pts[i].label) + f"<br>run {pts[i].run_id}" for i in ticks],
                  "range": [-0.6, len(pts) - 0.4], "tickangle": 0, "showline": True, "linecolor": "#888",
                  "gridcolor": "#eee", "zeroline": False},
        "yaxis": {"title": {"text": f"median time per call ({unit})"}, "rangemode": "tozero", "showline": True,
                  "linecolor": "#888", "gridcolor": "#e8e8e8", "zeroline": False},
    }
    return {"data": traces, "layout": layout}


def render(histories: list[CaseHistory], *, store_path: str = "", suite: str | None = None,
           case_filter: str | None = None, min_change: float = 0.05) -> str:
    """The history page of ``histories`` (from :func:`gpubench.history.collect`)."""
    machines = {h.machine for h in histories}
    multi = len(machines) > 1
    runs = {p.run_id for h in histories for p in h.points}
    figures: list[dict[str, Any]] = []
    ordered = sorted(histories, key=lambda h: (not h.changes, h.spec.workload, h.title))
    change_rows = []
    for h in ordered:
        for c in h.changes:
            change_rows.append([h.title + (f" · {h.machine}" if multi else ""), change_text(c), c.commit_range(),
                                f"{fmt_time(c.level_before_s)} → {fmt_time(c.level_after_s)}"])
    what = " ".join(x for x in (f"suite {suite}" if suite else "", f"cases matching '{case_filter}'"
                                if case_filter else "") if x) or "every suite"
    sections = []
    rule = (f"Changes are steps of at least {min_change * 100:g} % in a piecewise-constant fit of the log medians, "
            "each run weighted by its own 95 % interval and by the run-to-run noise of the series. A lone odd run "
            "between agreeing neighbours is an outlier, not a change; a change seen only in the newest run is "
            "marked unconfirmed until another run agrees.")
    if change_rows:
        body = (f'<p class="note">{esc(rule)}</p>'
                + table(["case", "change", "where", "level before → after"], change_rows, "cases"))
    else:
        body = f'<p class="note">No change found. {esc(rule)}</p>'
    sections.append(f'<section id="changes"><h2>Changes ({len(change_rows)})</h2>{body}</section>')
    plots = []
    for h in ordered:
        fid = f"fig{len(figures)}"
        figures.append({"id": fid, **history_figure(h, multi)})
        plots.append(f'<div class="plot" id="{fid}"></div>')
    if plots:
        sections.append('<section id="cases-history"><h2>Cases</h2><p class="note">Each point is one run\'s median '
                        "with its 95 % confidence interval; the dashed line is the fitted level; dotted verticals "
                        "mark the changes. Hover a point for its run, commit and branch.</p>"
                        f'<div class="grid">{"".join(plots)}</div></section>')
    else:
        sections.append('<section id="cases-history"><h2>Cases</h2><p class="note">No correct result matches; '
                        "run a suite first (gpubench run --suite matmul), or widen --suite/--case.</p></section>")
    subtitle = (f"{len(histories)} case{'s' if len(histories) != 1 else ''} across {len(runs)} "
                f"run{'s' if len(runs) != 1 else ''} · {what} · {len(machines)} machine{'s' if multi else ''}"
                + (f" · {store_path}" if store_path else ""))
    return assemble(title=f"gpubench history: {what}", heading="gpubench history", subtitle=subtitle,
                    nav=[("changes", "Changes"), ("cases-history", "Cases")], body="\n".join(sections),
                    footer=f"made by gpubench {__version__} on {time.strftime('%Y-%m-%d %H:%M:%S')}",
                    figures=figures)
