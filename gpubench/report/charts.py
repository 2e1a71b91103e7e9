"""Plotly figures as plain JSON-ready dicts (no plotly Python objects: building them is slow).

Every string that may come from a result, a plug-in or the environment passes through
:func:`gpubench.report.html.plot_text` before it reaches a figure.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from gpubench.report.html import plot_text
from gpubench.tables import fmt_bytes, fmt_time

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#7f7f7f", "#393b79", "#ad494a", "#637939", "#8c6d31", "#7b4173", "#3182bd")
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
SYMBOLS = ("circle", "diamond", "square", "triangle-up", "x", "star")

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"

#: Height in pixels of every chart's plot area (the figure grows around it for its legend).
PLOT_HEIGHT = 300


class Colors:
    """Stable colour per series identity (backend, variant, device, flags) across the whole report."""

    def __init__(self) -> None:
        self._map: dict[str, str] = {}

    def __call__(self, identity: str) -> str:
        if identity not in self._map:
            self._map[identity] = PALETTE[len(self._map) % len(PALETTE)]
        return self._map[identity]


def flags_text(row: dict[str, Any]) -> str:
    """A row's mode tags and its non-numeric problem parameters: ``tf32``, ``+copies``, ``direction=h2d``."""
    modes = row.get("modes") or {}
    out = list(row.get("tags") or [])
    out += [f"{k}={v}" for k, v in sorted(row["params"].items()) if isinstance(v, str) and k not in modes]
    return " ".join(out)


def series_identity(row: dict[str, Any], with_dtype: bool = False) -> str:
    """``torch:cuda:0 tf32`` — what one line on a chart is (without the run)."""
    parts = [row["series"]]
    if with_dtype:
        parts.append(row["dtype"])
    flags = flags_text(row)
    if flags:
        parts.append(flags)
    if row.get("family"):
        parts.append(f"({row['family']})")
    return " ".join(parts)


def run_order(rows: list[dict[str, Any]]) -> dict[int, int]:
    """Local style index of each run present in ``rows`` (a chart with one run draws it solid)."""
    present = sorted({r["run_index"] for r in rows})
    return {run: i for i, run in enumerate(present)}


def log_ticks(values: list[float]) -> dict[str, Any]:
    """One tick per decade when the data spans two decades or more (avoids crowded minor labels)."""
    vals = [v for v in values if v and v > 0]
    if vals and max(vals) / min(vals) >= 100:
        return {"dtick": 1}
    return {"dtick": "D2"}


def base_layout(title: str, x_title: str, y_title: str, log_x: bool = True, log_y: bool = True,
                height: int = 400) -> dict[str, Any]:
    """Shared look: white background, light grid, legend below the plot."""
    axis = {"showline": True, "linecolor": "#888", "gridcolor": "#e8e8e8", "zeroline": False, "ticks": "outside"}
    return {
        "title": {"text": plot_text(title), "font": {"size": 15}, "x": 0.01, "xanchor": "left"},
        "xaxis": {**axis, "type": "log" if log_x else "linear", "title": {"text": plot_text(x_title)}},
        "yaxis": {**axis, "type": "log" if log_y else "linear", "title": {"text": plot_text(y_title)}},
        "height": height, "margin": {"l": 70, "r": 20, "t": 45, "b": 60},
        "paper_bgcolor": "#fff", "plot_bgcolor": "#fff", "font": {"family": FONT, "size": 12},
        "legend": {"orientation": "h", "x": 0, "xanchor": "left", "y": -65 / PLOT_HEIGHT, "yanchor": "top",
                   "font": {"size": 11}},
        "hovermode": "closest",
    }


def fit_legend(fig: dict[str, Any], per_row: int = 2) -> dict[str, Any]:
    """Grow a figure so its legend (below the plot) never squeezes or overlaps the plot area."""
    layout = fig["layout"]
    if layout.get("yaxis", {}).get("type") == "category":
        return fig
    shown = [t for t in fig["data"] if t.get("showlegend", True)]
    rows = -(-len(shown) // per_row) if shown else 0
    legend_px = 22 * rows
    layout["margin"]["b"] = 70 + legend_px
    layout["height"] = layout["margin"]["t"] + PLOT_HEIGHT + layout["margin"]["b"]
    return fig


def hover(row: dict[str, Any], name: str, extra: list[str] | None = None) -> str:
    """Hover text of one point: series, size, median with its CI, rate, speedups (cached per row and name)."""
    if extra is None:
        cached = row.get("_hover")
        if cached is not None and cached[0] == name:
            return cached[1]
    lines = [f"<b>{plot_text(name)}</b>", plot_text(f"{row['workload']} {row['size']} {row['dtype']}")]
    if row.get("median_s"):
        lines.append(plot_text(f"median {fmt_time(row['median_s'])} "
                               f"(95% CI {fmt_time(row['ci95_low_s'])}–{fmt_time(row['ci95_high_s'])})"))
    if row.get("rate"):
        unit = "GB/s" if row["x_unit"] == "bytes" or row["unit"] == "gbps" else "GFLOP/s"
        lines.append(plot_text(f"{row['rate']:.4g} {unit}"))
    if row.get("speedup_cpu") is not None and row.get("fastest_cpu"):
        lines.append(plot_text(f"{row['speedup_cpu']:.3g}× vs fastest CPU ({row['fastest_cpu']})"))
    if row.get("speedup_baseline") is not None and row.get("baseline"):
        lines.append(plot_text(f"{row['speedup_baseline']:.3g}× vs baseline {row['baseline']}"))
    lines.extend(plot_text(e) for e in extra or [])
    text = "<br>".join(lines)
    if extra is None:
        row["_hover"] = (name, text)
    return text


def _group_series(rows: list[dict[str, Any]], with_dtype: bool = False) -> dict[tuple, list]:
    order = run_order(rows)
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(order[r["run_index"]], series_identity(r, with_dtype))].append(r)
    for pts in groups.values():
        pts.sort(key=lambda r: r["x"] or 0)
    return groups


def series_name(run_label: str, identity: str, multi_run: bool) -> str:
    """Legend text: the identity, prefixed with the run when several runs overlay."""
    return f"{run_label}: {identity}" if multi_run else identity


def throughput_figure(rows: list[dict[str, Any]], title: str, colors: Colors, multi_run: bool) -> dict[str, Any]:
    """Rate (GFLOP/s or GB/s) against problem size, log-log, one line per series and run."""
    rows = [r for r in rows if r["status"] == "ok" and r.get("rate") and r.get("x")]
    multi_run = len(run_order(rows)) > 1
    unit = "GB/s" if rows and (rows[0]["unit"] == "gbps" or rows[0]["x_unit"] == "bytes") else "GFLOP/s"
    x_title = "bytes moved per call" if rows and rows[0]["x_unit"] == "bytes" else "problem size: FLOPs per call"
    traces = []
    for (run_index, identity), pts in _group_series(rows).items():
        name = series_name(pts[0]["run_label"], identity, multi_run)
        traces.append({
            "type": "scatter", "mode": "lines+markers", "name": plot_text(name),
            "x": [p["x"] for p in pts], "y": [p["rate"] for p in pts],
            "text": [hover(p, name) for p in pts], "hovertemplate": "%{text}<extra></extra>",
            "line": {"color": colors(identity), "dash": DASHES[run_index % len(DASHES)], "width": 2},
            "marker": {"symbol": SYMBOLS[run_index % len(SYMBOLS)], "size": 7},
        })
    layout = base_layout(title, x_title, unit)
    layout["yaxis"].update(log_ticks([r["rate"] for r in rows]))
    layout["xaxis"].update(log_ticks([r["x"] for r in rows]))
    return {"data": traces, "layout": layout}


def speedup_figure(rows: list[dict[str, Any]], title: str, baseline: str, colors: Colors,
                   multi_run: bool) -> dict[str, Any]:
    """Speedup against problem size: solid over the fastest CPU backend, dotted over the named baseline."""
    rows = [r for r in rows if r["status"] == "ok" and r.get("x")
            and (r.get("speedup_cpu") is not None or r.get("speedup_baseline") is not None)]
    multi_run = len(run_order(rows)) > 1
    traces = []
    for (run_index, identity), pts in _group_series(rows).items():
        name = series_name(pts[0]["run_label"], identity, multi_run)
        color = colors(identity)
        fast = [p for p in pts if p.get("speedup_cpu") is not None]
        base = [p for p in pts if p.get("speedup_baseline") is not None]
        if fast:
            traces.append({
                "type": "scatter", "mode": "lines+markers", "name": plot_text(name), "legendgroup": plot_text(name),
                "x": [p["x"] for p in fast], "y": [p["speedup_cpu"] for p in fast],
                "text": [hover(p, name) for p in fast], "hovertemplate": "%{text}<extra></extra>",
                "line": {"color": color, "width": 2, "dash": DASHES[run_index % len(DASHES)]},
                "marker": {"symbol": SYMBOLS[run_index % len(SYMBOLS)], "size": 7},
            })
        if base and any(p["backend"] != p["baseline"].split(":")[0] for p in base):
            traces.append({
                "type": "scatter", "mode": "lines", "name": plot_text(f"{name} vs {baseline}"),
                "legendgroup": plot_text(name), "showlegend": False,
                "x": [p["x"] for p in base], "y": [p["speedup_baseline"] for p in base],
                "text": [hover(p, name) for p in base], "hovertemplate": "%{text}<extra></extra>",
                "line": {"color": color, "width": 1.5, "dash": "dot"}, "opacity": 0.7,
            })
    x_title = "bytes moved per call" if rows and rows[0]["x_unit"] == "bytes" else "problem size: FLOPs per call"
    layout = base_layout(title, x_title, "speedup (×, higher is faster)")
    layout["yaxis"].update(log_ticks([v for r in rows for v in (r.get("speedup_cpu"), r.get("speedup_baseline")) if v]))
    layout["xaxis"].update(log_ticks([r["x"] for r in rows]))
    layout["shapes"] = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": 1, "y1": 1,
                         "line": {"color": "#444", "width": 1, "dash": "dash"}}]
    layout["annotations"] = [{
        "xref": "paper", "yref": "paper", "x": 1, "y": 1.02, "xanchor": "right", "yanchor": "bottom",
        "showarrow": False, "font": {"size": 10, "color": "#555"},
        "text": plot_text(f"solid: vs fastest CPU backend · dotted: vs baseline {baseline}"),
    }]
    return {"data": traces, "layout": layout}


def transfer_figure(rows: list[dict[str, Any]], title: str, colors: Colors, multi_run: bool) -> dict[str, Any]:
    """Host↔device bandwidth against transfer size: pinned solid, pageable dashed."""
    rows = [r for r in rows if r["status"] == "ok" and r.get("gbps") and r.get("x")]
    for r in rows:  # the size of one copy (a device-to-device copy moves it twice)
        r["copy_bytes"] = r["params"]["bytes"] if isinstance(r["params"].get("bytes"), int) else r["x"]
    order = run_order(rows)
    multi_run = len(order) > 1
    groups: dict[tuple, list] = defaultdict(list)
    for r in rows:
        p = r["params"]
        memory = str(p.get("memory", ""))
        ident_params = {k: v for k, v in p.items() if k != "memory"}
        identity = series_identity({**r, "params": ident_params}, with_dtype=False)
        groups[(order[r["run_index"]], identity, memory)].append(r)
    traces = []
    for (run_index, identity, memory), pts in groups.items():
        pts.sort(key=lambda r: r["copy_bytes"])
        name = series_name(pts[0]["run_label"], f"{identity} {memory}".strip(), multi_run)
        traces.append({
            "type": "scatter", "mode": "lines+markers", "name": plot_text(name),
            "x": [p["copy_bytes"] for p in pts], "y": [p["gbps"] for p in pts],
            "text": [hover(p, name, [f"{fmt_bytes(p['copy_bytes'])} per copy"]) for p in pts],
            "hovertemplate": "%{text}<extra></extra>",
            "line": {"color": colors(identity), "width": 2, "dash": "dash" if memory == "pageable" else "solid"},
            "marker": {"symbol": SYMBOLS[run_index % len(SYMBOLS)], "size": 7},
        })
    layout = base_layout(title, "bytes per transfer", "GB/s")
    layout["yaxis"].update(log_ticks([r["gbps"] for r in rows]))
    layout["xaxis"].update(log_ticks([r["copy_bytes"] for r in rows]))
    layout["annotations"] = [{"xref": "paper", "yref": "paper", "x": 1, "y": 1.02, "xanchor": "right",
                              "yanchor": "bottom", "showarrow": False, "font": {"size": 10, "color": "#555"},
                              "text": "solid: pinned host memory · dashed: pageable"}]
    return {"data": traces, "layout": layout}


def curve_points(metrics: dict[str, Any]) -> list[tuple[float, float]]:
    """(cumulative training time in s, accuracy) pairs from a case's per-epoch curve.

    Accepts the shapes a training workload may store: ``curve`` or ``epoch_curve`` as a list of
    per-epoch dicts (with a cumulative time such as ``time_s``, or a per-epoch duration
    ``epoch_s`` that is summed), a dict of lists, or ``[time, accuracy]`` pairs.
    """
    curve = metrics.get("curve", metrics.get("epoch_curve"))
    time_keys = ("time_s", "elapsed_s", "wall_s", "train_time_s", "seconds", "time", "t")
    acc_keys = ("eval_accuracy", "accuracy", "test_accuracy", "val_accuracy", "acc", "test_acc")

    def pick(d: dict, keys: tuple) -> Any:
        return next((d[k] for k in keys if k in d), None)

    pts: list[tuple[Any, Any]] = []
    if isinstance(curve, dict):
        ts, accs = pick(curve, time_keys), pick(curve, acc_keys)
        if isinstance(ts, list) and isinstance(accs, list):
            pts = list(zip(ts, accs))
    elif isinstance(curve, list):
        elapsed = 0.0
        for item in curve:
            if isinstance(item, dict):
                t = pick(item, time_keys)
                if t is None and isinstance(item.get("epoch_s"), (int, float)):
                    elapsed += item["epoch_s"]
                    t = elapsed
                pts.append((t, pick(item, acc_keys)))
            elif isinstance(item, (list, tuple)) and len(item) in (2, 3):
                pts.append((item[-2], item[-1]))
    good = []
    for t, a in pts:
        if isinstance(t, (int, float)) and isinstance(a, (int, float)) and math.isfinite(t) and math.isfinite(a):
            good.append((float(t), float(a)))
    return good


def accuracy_figure(rows: list[dict[str, Any]], title: str, colors: Colors, multi_run: bool) -> dict[str, Any] | None:
    """Test accuracy against training time, one curve per case (None when no case has a curve)."""
    traces = []
    order = run_order(rows)
    multi_run = len(order) > 1
    for r in rows:
        pts = curve_points(r["metrics"])
        if not pts:
            continue
        identity = series_identity(r, with_dtype=True)
        name = series_name(r["run_label"], identity, multi_run)
        traces.append({
            "type": "scatter", "mode": "lines+markers", "name": plot_text(name),
            "x": [p[0] for p in pts], "y": [p[1] for p in pts],
            "text": [plot_text(f"{name}: epoch {i + 1}, {t:.3g} s, accuracy {a:.4g}") for i, (t, a) in enumerate(pts)],
            "hovertemplate": "%{text}<extra></extra>",
            "line": {"color": colors(identity), "width": 2, "dash": DASHES[order[r["run_index"]] % len(DASHES)]},
        })
    if not traces:
        return None
    layout = base_layout(title, "training time (s)", "test accuracy", log_x=False, log_y=False)
    return {"data": traces, "layout": layout}


def time_to_accuracy_figure(rows: list[dict[str, Any]], title: str, colors: Colors,
                            multi_run: bool) -> dict[str, Any] | None:
    """Horizontal bars: seconds to reach the target accuracy (None when no case reports it)."""
    bars = []
    multi_run = len(run_order(rows)) > 1
    for r in rows:
        t = r["metrics"].get("time_to_target_s")
        if isinstance(t, (int, float)) and math.isfinite(t) and t > 0:
            identity = series_identity(r, with_dtype=True)
            bars.append((t, series_name(r["run_label"], identity, multi_run), colors(identity), r))
    if not bars:
        return None
    bars.sort(key=lambda b: -b[0])
    targets = [b[3]["metrics"].get("target_accuracy") for b in bars]
    target = next((t for t in targets if t), None)
    trace = {
        "type": "bar", "orientation": "h", "x": [b[0] for b in bars], "y": [plot_text(b[1]) for b in bars],
        "marker": {"color": [b[2] for b in bars]}, "text": [f"{b[0]:.3g} s" for b in bars],
        "textposition": "outside", "cliponaxis": False,
        "hovertemplate": "%{y}: %{x:.3g} s<extra></extra>", "showlegend": False,
    }
    sub = f" (target accuracy {target})" if target is not None else ""
    layout = base_layout(title + sub, "seconds to target accuracy (lower is better)", "", log_x=False, log_y=False,
                         height=max(250, 60 + 32 * len(bars)))
    layout["yaxis"]["type"] = "category"
    layout["yaxis"]["automargin"] = True
    layout["margin"]["l"] = 20
    return {"data": [trace], "layout": layout}


def roofline_figure(title: str, points: list[dict[str, Any]], roofs: dict[str, float], mem_gbps: float | None,
                    colors: Colors, multi_run: bool, datasheet: dict[str, float] | None = None,
                    datasheet_name: str = "") -> dict[str, Any]:
    """Cases at their arithmetic intensity (FLOP/byte) under the compute roofs and the memory slope."""
    traces = []
    order = run_order(points)
    multi_run = len(order) > 1
    groups: dict[tuple, list] = defaultdict(list)
    for p in points:
        groups[(order[p["run_index"]], series_identity(p, with_dtype=True))].append(p)
    ais = [p["flops"] / p["bytes"] for p in points] or [0.1, 100.0]
    lo = min(ais) / 3
    hi = max(ais) * 3
    for (run_index, identity), pts in groups.items():
        name = series_name(pts[0]["run_label"], identity, multi_run)
        extra = []
        for p in pts:
            e = [f"arithmetic intensity {p['flops'] / p['bytes']:.3g} FLOP/byte"]
            if p.get("roofline_pct") is not None:
                e.append(f"{p['roofline_pct']:.0f}% of attainable ({p['attainable']:.4g} GFLOP/s)")
                if p["roofline_pct"] > 105:
                    e.append("above the measured roof: calibrate again (without --quick)")
            extra.append(hover(p, name, e))
        traces.append({
            "type": "scatter", "mode": "markers", "name": plot_text(name),
            "x": [p["flops"] / p["bytes"] for p in pts], "y": [p["gflops"] for p in pts],
            "text": extra, "hovertemplate": "%{text}<extra></extra>",
            "marker": {"color": colors(identity),
                       "symbol": SYMBOLS[run_index % len(SYMBOLS)], "size": 9,
                       "line": {"width": 1, "color": "#333"}},
        })

    def roof_trace(label: str, peak: float, bw: float | None, dash: str, color: str) -> dict[str, Any]:
        if bw:
            ridge = peak / bw
            xs = [lo, min(max(ridge, lo), hi), hi] if ridge < hi else [lo, hi]
            ys = [min(peak, bw * x) for x in xs]
        else:
            xs, ys = [lo, hi], [peak, peak]
        return {"type": "scatter", "mode": "lines", "name": plot_text(label), "x": xs, "y": ys,
                "line": {"color": color, "width": 2, "dash": dash},
                "hovertemplate": plot_text(label) + "<extra></extra>"}

    grays = ("#222", "#555", "#777", "#999", "#aaa")
    for i, (dtype, peak) in enumerate(sorted(roofs.items(), key=lambda kv: -kv[1])):
        bw_text = f", memory {mem_gbps:.4g} GB/s" if mem_gbps else ""
        traces.append(roof_trace(f"measured roof {dtype}: {peak:.4g} GFLOP/s{bw_text}", peak, mem_gbps,
                                 "solid", grays[i % len(grays)]))
    if datasheet:
        bw = datasheet.get("mem_gbps")
        shown = {p["compute_dtype"] for p in points}
        for dtype, tflops in sorted(datasheet.items(), key=lambda kv: -kv[1]):
            if dtype == "mem_gbps" or dtype not in shown:
                continue
            traces.append(roof_trace(f"datasheet {datasheet_name} {dtype}: {tflops:g} TFLOP/s", tflops * 1000, bw,
                                     "dot", "#b0b0b0"))
    layout = base_layout(title, "arithmetic intensity (FLOP per byte moved)", "GFLOP/s", height=460)
    layout["xaxis"].update(log_ticks([lo, hi]))
    layout["yaxis"].update(log_ticks([y for t in traces for y in t["y"]]))
    return {"data": traces, "layout": layout}
