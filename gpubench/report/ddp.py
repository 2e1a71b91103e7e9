"""The report's data-parallel section: samples/s against ranks with perfect scaling beside it, and efficiency.

One chart per problem (model, image size, global batch) and device kind: training samples/s against
the rank count (one line per backend, device and run), with the line perfect scaling would draw from
the 1-rank case (dotted). A table gives each case's time per step, samples/s, per-rank batch, scaling
efficiency ``t₁ / (N · t_N)`` (the row's ``scaling_efficiency``, :mod:`gpubench.rows`) and the loss it
was verified with.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from gpubench.report import charts
from gpubench.report.html import esc, plot_text, table
from gpubench.tables import fmt_time

SECTION = "ddp"


def _problem(row: dict[str, Any]) -> str:
    p = row["params"]
    size = f" {p['image_size']}×{p['image_size']}" if "image_size" in p else ""
    return f"{p['model']}{size}, global batch {p['global_batch']} · {row['kind']}"


def usable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ok rows with a rank count and a median step time."""
    return [r for r in rows if r["status"] == "ok" and r.get("median_s") and isinstance(r["params"].get("ranks"), int)]


def scaling_figure(rows: list[dict[str, Any]], effs: dict[int, float | None], title: str,
                   colors: charts.Colors) -> dict[str, Any]:
    """Samples/s against ranks (solid) and perfect scaling from one rank (dotted)."""
    multi = len(charts.run_order(rows)) > 1
    lines: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        lines[(r["run_label"] if multi else "", r["series"], r["device"])].append(r)
    traces = []
    for index, ((run_label, series, _device), pts) in enumerate(sorted(lines.items())):
        pts.sort(key=lambda r: r["params"]["ranks"])
        name = charts.series_name(run_label, series, multi)  # the series names its device (torch:cuda:0)
        color = colors(pts[0]["backend"])
        rate = [r["params"]["global_batch"] / r["median_s"] for r in pts]
        text = [charts.hover(p, name, [f"{y:,.0f} samples/s", f"{p['params']['ranks']} ranks"]
                             + ([f"scaling efficiency {100 * effs[id(p)]:.0f} %"] if effs.get(id(p)) else []))
                for p, y in zip(pts, rate)]
        xs = [p["params"]["ranks"] for p in pts]
        traces.append({"type": "scatter", "mode": "lines+markers", "name": plot_text(name), "x": xs, "y": rate,
                       "text": text, "hovertemplate": "%{text}<extra></extra>", "line": {"color": color, "width": 2},
                       "marker": {"symbol": charts.SYMBOLS[index % len(charts.SYMBOLS)], "size": 8}})
        one = [y for p, y in zip(pts, rate) if p["params"]["ranks"] == 1]
        if one:
            traces.append({"type": "scatter", "mode": "lines", "name": plot_text(f"{name}: perfect scaling"),
                           "x": xs, "y": [one[0] * x for x in xs], "hoverinfo": "skip",
                           "line": {"color": color, "width": 1.5, "dash": "dot"}})
    layout = charts.base_layout(title, "ranks (processes; one per GPU on CUDA)", "training samples/s",
                                log_x=False, log_y=False)
    ranks = sorted({r["params"]["ranks"] for r in rows})
    layout["xaxis"].update({"tickvals": ranks, "ticktext": [str(v) for v in ranks]})
    ys = [y for t in traces for y in t["y"]]
    layout["yaxis"].update(charts.linear_range(ys))
    return {"data": traces, "layout": layout}


def body(rows: list[dict[str, Any]], figure: Callable[[dict[str, Any] | None], str], colors: charts.Colors,
         workload: str = SECTION) -> str:
    """The section's HTML: a chart per problem, the table of cases with their scaling efficiency."""
    ok = usable(rows)
    if not ok:
        return ""
    effs = {id(r): r.get("scaling_efficiency") for r in ok}
    multi = len(charts.run_order(ok)) > 1
    by_problem: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in ok:
        by_problem[_problem(r)].append(r)
    parts = ['<p class="note">Strong scaling: the global batch stays the same, each of N ranks trains on 1/N of '
             "it and DistributedDataParallel averages the gradients (an all-reduce during the backward pass). "
             "Scaling efficiency = t₁ ÷ (N · t_N): 100 % is N times the samples/s of one rank. On one CPU the "
             "ranks share its cores, so efficiency there measures the communication and the split of threads, "
             "not more hardware.</p>"]
    figs = [scaling_figure(prows, effs, f"{prob}: samples/s against ranks", colors)
            for prob, prows in by_problem.items()]
    parts.append('<div class="grid">' + "".join(figure(f) for f in figs) + "</div>")
    body_rows = []
    for r in sorted(ok, key=lambda r: (_problem(r), r["series"], r["params"]["ranks"])):
        eff = effs.get(id(r))
        losses = r["metrics"].get("verified_losses") or []
        body_rows.append(([r["run_label"]] if multi else []) + [
            r["series"], esc(_problem(r)), r["params"]["ranks"], r["params"]["global_batch"] // r["params"]["ranks"],
            fmt_time(r["median_s"]), f"{r['params']['global_batch'] / r['median_s']:,.0f}",
            f"{100 * eff:.0f} %" if eff else "-", f"{losses[-1]:.4f}" if losses else "-"])
    headers = ((["run"] if multi else []) + ["case", "problem", "ranks", "batch per rank", "time per step",
               "samples/s", "scaling efficiency", "loss after the verified steps"])
    parts.append(table(headers, body_rows, "cases"))
    return "".join(parts)
