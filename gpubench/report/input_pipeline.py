"""The report's input-pipeline section: end-to-end samples/s against the loader's workers, under the step's ceiling.

For each problem (data set, model, batch) one chart per device: end-to-end samples/s against
``num_workers`` (solid, one line per backend and loader option set), and the same cases'
consume-only rate — what the training step runs at with its data already on the device — as a dotted
line of the same colour: the ceiling a loader can at best reach. A table lists every case's three
rates, its device idle fraction, its host data-wait fraction and its verdict.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from gpubench.report import charts
from gpubench.report.html import esc, plot_text, table

SECTION = "input_pipeline"
OPTIONS = ("pin_memory", "non_blocking", "prefetch_factor")


def _m(row: dict[str, Any], key: str) -> float | None:
    value = (row.get("metrics") or {}).get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def problem(row: dict[str, Any]) -> str:
    """What is trained on what, and where, without the loader's options: ``jpeg 256→224 small bs=32 · cpu``."""
    p = row["params"]
    if p.get("dataset") == "mnist":
        data = "mnist"
    else:
        data = f"{p.get('format', 'jpeg')} {p.get('image_size')}→{p.get('crop')}"
    return f"{data} {p.get('model')} bs={p.get('batch_size')} · {row['kind']}"


def options(row: dict[str, Any]) -> str:
    """The loader options of a line apart from the worker count: ``pinned non_blocking prefetch=4``."""
    p = row["params"]
    parts = []
    if p.get("pin_memory"):
        parts.append("pinned")
    if p.get("non_blocking"):
        parts.append("non_blocking")
    if p.get("prefetch_factor", 2) != 2:
        parts.append(f"prefetch={p['prefetch_factor']}")
    if not parts and row["kind"] != "cpu":
        return "pageable"  # a GPU's copies come from pageable memory unless pinned
    return " ".join(parts)


def usable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ok rows that carry the three rates."""
    return [r for r in rows if r["status"] == "ok" and _m(r, "e2e_samples_per_s") and _m(r, "consume_samples_per_s")]


def workers_figure(rows: list[dict[str, Any]], title: str, colors: charts.Colors) -> dict[str, Any]:
    """End-to-end samples/s (solid) and consume-only samples/s (dotted) against ``num_workers``."""
    multi = len(charts.run_order(rows)) > 1
    lines: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        lines[(r["run_label"] if multi else "", r["series"], r["device"], options(r))].append(r)
    traces = []
    for index, ((run_label, series, _device, opts), pts) in enumerate(sorted(lines.items())):
        pts.sort(key=lambda r: r["params"]["num_workers"])
        name = charts.series_name(run_label, " ".join(x for x in (series, opts) if x), multi)
        color = colors(pts[0]["backend"])
        symbol = charts.SYMBOLS[index % len(charts.SYMBOLS)]
        xs = [p["params"]["num_workers"] for p in pts]
        text = [charts.hover(p, name, [f"end to end {_m(p, 'e2e_samples_per_s'):,.0f} samples/s",
                                       f"loader alone {_m(p, 'loader_samples_per_s'):,.0f} samples/s",
                                       f"step alone {_m(p, 'consume_samples_per_s'):,.0f} samples/s",
                                       f"device idle {100 * (_m(p, 'device_idle_fraction') or 0):.0f} %",
                                       str(p['metrics'].get('verdict', ''))]) for p in pts]
        traces.append({"type": "scatter", "mode": "lines+markers", "name": plot_text(f"{name}: end to end"),
                       "x": xs, "y": [_m(p, "e2e_samples_per_s") for p in pts], "text": text,
                       "hovertemplate": "%{text}<extra></extra>",
                       "line": {"color": color, "width": 2}, "marker": {"symbol": symbol, "size": 8}})
        traces.append({"type": "scatter", "mode": "lines", "name": plot_text(f"{name}: step alone (ceiling)"),
                       "x": xs, "y": [_m(p, "consume_samples_per_s") for p in pts],
                       "hovertemplate": "step alone %{y:,.0f} samples/s<extra></extra>",
                       "line": {"color": color, "width": 1.5, "dash": "dot"}})
    layout = charts.base_layout(title, "num_workers (loader worker processes or map threads)", "samples/s",
                                log_x=False, log_y=False)
    values = sorted({r["params"]["num_workers"] for r in rows})
    layout["xaxis"].update({"tickvals": values, "ticktext": [str(v) for v in values]})
    ys = [_m(r, k) for r in rows for k in ("e2e_samples_per_s", "consume_samples_per_s")]
    layout["yaxis"].update(charts.linear_range([y for y in ys if y]))
    return {"data": traces, "layout": layout}


def _pct(value: float | None) -> str:
    return f"{100 * value:.0f} %" if value is not None else "-"


def _rate(value: float | None) -> str:
    return f"{value:,.0f}" if value is not None else "-"


def verdicts(rows: list[dict[str, Any]]) -> str:
    """One line per problem and series: the best setting, and which settings starved the step."""
    out = []
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(problem(r), r["series"], options(r))].append(r)
    for (prob, series, opts), pts in groups.items():
        best = max(pts, key=lambda r: _m(r, "e2e_samples_per_s") or 0)
        starved = sorted(r["params"]["num_workers"] for r in pts if r["metrics"].get("verdict") == "input-bound")
        line = (f"<b>{esc(series)}</b> {esc(opts)} on {esc(prob)}: best end to end with "
                f"{best['params']['num_workers']} workers, {_rate(_m(best, 'e2e_samples_per_s'))} samples/s of "
                f"{_rate(_m(best, 'consume_samples_per_s'))} the step could take")
        if starved:
            line += f"; input-bound with {', '.join(map(str, starved))} workers"
        else:
            line += "; never input-bound"
        out.append(f"<li>{line}</li>")
    return '<ul class="headlines">' + "".join(out) + "</ul>" if out else ""


def cases_table(rows: list[dict[str, Any]], multi_run: bool) -> str:
    """Every case: its loader options, the three rates, the idle and wait fractions and the verdict."""
    body = []
    for r in sorted(rows, key=lambda r: (problem(r), r["series"], options(r), r["params"]["num_workers"])):
        # problem() already names the device kind; the series names the backend
        body.append(([r["run_label"]] if multi_run else []) + [
            r["series"], problem(r), r["params"]["num_workers"], options(r) or "-",
            _rate(_m(r, "loader_samples_per_s")), _rate(_m(r, "consume_samples_per_s")),
            _rate(_m(r, "e2e_samples_per_s")), _pct(_m(r, "device_idle_fraction")),
            _pct(_m(r, "data_wait_fraction")), r["metrics"].get("verdict", "-")])
    headers = ((["run"] if multi_run else []) + ["case", "problem", "workers", "options", "loader alone /s",
               "step alone /s", "end to end /s", "idle", "waiting", "verdict"])
    return table(headers, body, "cases")


def body(rows: list[dict[str, Any]], figure: Callable[[dict[str, Any] | None], str], colors: charts.Colors,
         workload: str = SECTION) -> str:
    """The section's HTML: a chart per problem and device kind, the verdicts, the table of cases."""
    ok = usable(rows)
    if not ok:
        return ""
    multi = len(charts.run_order(ok)) > 1
    parts = ['<p class="note">Each case runs the loader alone, the training step alone on batches already on the '
             "device (its ceiling, dotted), and the loop end to end (solid). Device idle = 1 − end-to-end ÷ "
             "step-alone: the share of the loop's time the step could have run but had no data. A case is "
             "<b>input-bound</b> when that share is 15 % or more. In the table: samples per second; <i>idle</i> is "
             "that share, <i>waiting</i> the share of the loop spent waiting for the next batch and its copy. On a "
             "CPU the loader's workers share the cores with the step, so more workers can also slow the step.</p>",
             verdicts(ok)]
    by_problem: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in ok:
        by_problem[problem(r)].append(r)
    figs = [workers_figure(prows, f"{prob}: samples/s against workers", colors) for prob, prows in by_problem.items()]
    parts.append('<div class="grid">' + "".join(figure(f) for f in figs) + "</div>")
    parts.append(cases_table(ok, multi))
    return "".join(parts)
