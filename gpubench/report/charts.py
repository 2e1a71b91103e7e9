"""Plotly figures as plain JSON-ready dicts (no plotly Python objects: building them is slow).

Every string that may come from a result, a plug-in or the environment passes through
:func:`gpubench.report.html.plot_text` before it reaches a figure.
"""

from __future__ import annotations

import html
import math
from collections import defaultdict
from typing import Any

from gpubench.report.html import plot_text
from gpubench.tables import fmt_bytes, fmt_time

#: One hue per backend, the built-in ones fixed so a backend keeps its colour in every report.
BACKEND_HUES = {"numpy": "#1f77b4", "torch": "#d62728", "tensorflow": "#ff7f0e", "cupy": "#2ca02c",
                "opencl": "#9467bd", "pytest": "#7f7f7f"}
PALETTE = ("#8c564b", "#e377c2", "#17becf", "#bcbd22", "#393b79", "#637939", "#8c6d31", "#7b4173", "#3182bd")
#: A dash per variant, device, mode or run of one backend (lines); a marker per shape family.
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
SYMBOLS = ("circle", "diamond", "square", "triangle-up", "x", "star", "cross", "triangle-down")

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"

#: Height in pixels of every chart's plot area (the figure grows around it for its legend).
PLOT_HEIGHT = 300
#: Width the legend is laid out in when estimating its rows: the narrowest chart column of the page
#: (figures that span the page are at least ``WIDE_LEGEND_WIDTH`` wide on a laptop screen).
LEGEND_WIDTH = 500
WIDE_LEGEND_WIDTH = 800
#: Space between the plot area's bottom and the legend: tick labels and the axis title.
AXIS_SPACE = 78


class Colors:
    """One hue per backend across the whole report (built-in backends always get the same one)."""

    def __init__(self) -> None:
        self._map: dict[str, str] = {}

    def __call__(self, backend: str) -> str:
        if backend in BACKEND_HUES:
            return BACKEND_HUES[backend]
        if backend not in self._map:
            self._map[backend] = PALETTE[len(self._map) % len(PALETTE)]
        return self._map[backend]


def flags_text(row: dict[str, Any], varying: set[str] | None = None) -> str:
    """A row's mode tags (``tf32``, ``+copies``, ``layout=NHWC``) and the values of its other text parameters
    (``h2d``, ``mlp sgd``); with ``varying``, only the text parameters whose value changes within the chart."""
    modes = row.get("modes") or {}
    out = list(row.get("tags") or [])
    out += [str(v) for k, v in sorted(row["params"].items())
            if isinstance(v, str) and k not in modes and (varying is None or k in varying)]
    return " ".join(out)


def series_identity(row: dict[str, Any], with_dtype: bool = False, varying: set[str] | None = None,
                    with_device: bool = True, with_family: bool = True) -> str:
    """``torch:cuda:0 tf32`` — what one line on a chart is (without the run)."""
    parts = [row["series"] if with_device else row["implementation"]]
    if with_dtype:
        parts.append(row["dtype"])
    flags = flags_text(row, varying)
    if flags:
        parts.append(flags)
    if row.get("family") and with_family:
        parts.append(f"({row['family']})")
    return " ".join(parts)


class ChartSeries:
    """Names and styles of the series of one chart: legends without what every series shares.

    A text parameter with one value across the chart (``data=offline``) is left out of the names, and
    so is the dtype when it is constant; a device is named where the backend ran on several in the
    chart, or on an accelerator. Hue: the backend; dash (or marker, for marker-only charts): the
    variant, device, modes and run within the backend; marker: the shape family.
    """

    def __init__(self, rows: list[dict[str, Any]], colors: Colors, with_dtype: bool = False):
        self.colors = colors
        self.runs = run_order(rows)
        self.multi_run = len(self.runs) > 1
        values: dict[str, set] = defaultdict(set)
        for r in rows:
            for k, v in r["params"].items():
                if isinstance(v, str):
                    values[k].add(v)
        self.varying = {k for k, vs in values.items() if len(vs) > 1}
        self.with_dtype = with_dtype and len({r["dtype"] for r in rows}) > 1
        devices: dict[str, set] = defaultdict(set)
        for r in rows:
            devices[r["backend"]].add(r["device"])
        self.device_shown = {b: len(ds) > 1 for b, ds in devices.items()}
        self.with_family = len({r.get("family") or "" for r in rows}) > 1
        self._styles: dict[str, dict[str, int]] = defaultdict(dict)
        self._families: dict[str, int] = {}

    def identity(self, row: dict[str, Any]) -> str:
        """The series name of ``row`` within this chart (without the run)."""
        show_device = self.device_shown.get(row["backend"], False) or row.get("kind", "cpu") != "cpu"
        return series_identity(row, self.with_dtype, self.varying, with_device=show_device,
                               with_family=self.with_family)

    def key(self, row: dict[str, Any]) -> tuple:
        """What makes a series: its run and its identity."""
        return (self.runs[row["run_index"]], self.identity(row))

    def name(self, row: dict[str, Any]) -> str:
        """Legend text: the identity, prefixed with the run when several runs overlay."""
        return series_name(row["run_label"], self.identity(row), self.multi_run)

    def color(self, row: dict[str, Any]) -> str:
        return self.colors(row["backend"])

    def style_index(self, row: dict[str, Any]) -> int:
        """Index of the row's series among its backend's series in this chart (its dash)."""
        styles = self._styles[row["backend"]]
        key = f"{self.runs[row['run_index']]}|{self.identity(row)}"
        return styles.setdefault(key, len(styles))

    def dash(self, row: dict[str, Any]) -> str:
        return DASHES[self.style_index(row) % len(DASHES)]

    def symbol(self, row: dict[str, Any]) -> str:
        """Marker of the row's shape family (circle when a workload has one sweep)."""
        fam = row.get("family") or ""
        return SYMBOLS[self._families.setdefault(fam, len(self._families)) % len(SYMBOLS)]

    def marker_symbol(self, row: dict[str, Any]) -> str:
        """For marker-only charts, where no dash shows: a symbol per series of the backend."""
        return SYMBOLS[self.style_index(row) % len(SYMBOLS)]


def run_order(rows: list[dict[str, Any]]) -> dict[int, int]:
    """Local style index of each run present in ``rows`` (a chart with one run draws it solid)."""
    present = sorted({r["run_index"] for r in rows})
    return {run: i for i, run in enumerate(present)}


# --- axes ---------------------------------------------------------------------------------------------

_SI = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def number_text(value: float) -> str:
    """A tick label in full: ``0.5``, ``20``, ``200``, ``5k``, ``2M``, ``1G`` (never a bare mantissa)."""
    for scale, suffix in _SI:
        if abs(value) >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def bytes_text(value: float) -> str:
    """A byte tick label: ``4 KiB``, ``1 MiB``, ``512 B``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:g} {unit}"
        value /= 1024
    return f"{value:g}"  # pragma: no cover


def log_axis(values: list[float], kind: str = "number", suffix: str = "") -> dict[str, Any]:
    """A log axis over ``values`` with explicit, fully written tick labels.

    ``kind``: ``number`` (1-2-5 steps, SI suffixes), ``bytes`` (powers of two, KiB/MiB/GiB) or
    ``times`` (speedups: ``0.5×``, ``1×``, ``2×``). A single value, or values within a few percent,
    get a range of a decade around them, so an axis always has several ticks.
    """
    vals = [float(v) for v in values if isinstance(v, (int, float)) and v > 0 and math.isfinite(v)]
    if not vals:
        return {"type": "log"}
    # In decades, within the floats' range (a stored 1e308 or 5e-324 must not overflow a tick).
    llo, lhi = max(-300.0, math.log10(min(vals))), min(300.0, math.log10(max(vals)))
    if lhi - llo < math.log10(3):  # one point, or points close together: a decade around them
        mid = (llo + lhi) / 2
        llo, lhi = min(llo, mid - 0.5), max(lhi, mid + 0.5)
    pad = 0.06 * (lhi - llo)
    rlo, rhi = llo - pad, lhi + pad
    ticks: list[float] = []
    if kind == "bytes":
        e0, e1 = math.ceil(llo * math.log2(10) - 1e-9), math.floor(lhi * math.log2(10) + 1e-9)
        step = next((k for k in (1, 2, 3, 5, 10, 20) if (e1 - e0) // k + 1 <= 8), 30)
        ticks = sorted(2.0 ** e for e in range(e1, e0 - 1, -step))  # from the largest down: it is labelled
        labels = [bytes_text(t) for t in ticks]
    else:
        span = rhi - rlo
        mantissas = (1, 2, 5) if span <= 2.2 else (1, 3) if span <= 3.5 else (1,)
        every = max(1, math.ceil(span / 7)) if mantissas == (1,) else 1
        for e in range(math.floor(rlo) - 1, math.ceil(rhi) + 1):
            if mantissas == (1,) and e % every:
                continue
            for m in mantissas:
                t = m * 10.0 ** e
                if rlo <= math.log10(t) <= rhi:
                    ticks.append(t)
        if kind == "times":
            labels = [f"{number_text(t)}×" for t in ticks]
        else:
            labels = [number_text(t) + suffix for t in ticks]
    return {"type": "log", "range": [rlo, rhi], "tickvals": ticks, "ticktext": labels, "tickmode": "array"}


def linear_range(values: list[float], floor_zero: bool = True) -> dict[str, Any]:
    """A linear axis over ``values`` that never collapses to one tick (a single value gets room around it)."""
    vals = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not vals:
        return {}
    lo, hi = min(vals), max(vals)
    if floor_zero and lo >= 0:
        lo = 0.0
    if hi - lo < 1e-12:
        lo, hi = (lo - 1, hi + 1) if hi == 0 else (lo - abs(lo) * 0.5, hi + abs(hi) * 0.5)
    pad = 0.06 * (hi - lo)
    return {"range": [lo - (pad if lo != 0 or not floor_zero else 0), hi + pad]}


def base_layout(title: str, x_title: str, y_title: str, log_x: bool = True, log_y: bool = True,
                height: int = 400) -> dict[str, Any]:
    """Shared look: white background, light grid, legend below the plot."""
    axis = {"showline": True, "linecolor": "#888", "gridcolor": "#e8e8e8", "zeroline": False, "ticks": "outside",
            "automargin": True}
    return {
        "title": {"text": plot_text(title), "font": {"size": 15}, "x": 0.01, "xanchor": "left"},
        "xaxis": {**axis, "type": "log" if log_x else "linear", "title": {"text": plot_text(x_title)}},
        "yaxis": {**axis, "type": "log" if log_y else "linear", "title": {"text": plot_text(y_title)}},
        "height": height, "margin": {"l": 70, "r": 20, "t": 45, "b": 60},
        "paper_bgcolor": "#fff", "plot_bgcolor": "#fff", "font": {"family": FONT, "size": 12},
        "legend": {"orientation": "h", "x": 0, "xanchor": "left", "y": -AXIS_SPACE / PLOT_HEIGHT,
                   "yanchor": "top", "font": {"size": 11}},
        "hovermode": "closest",
    }


def legend_rows(names: list[str], width: int = LEGEND_WIDTH) -> int:
    """Rows a horizontal legend of ``names`` takes when wrapped at ``width`` pixels (estimated generously:
    about 7 pixels a character at the legend's 11 px font, 45 for the symbol and the gap)."""
    rows, used = 0, width
    for name in names:
        w = 45 + 7 * len(html.unescape(name))
        if used + w > width:
            rows, used = rows + 1, 0
        used += w
    return rows


def fit_legend(fig: dict[str, Any], width: int = LEGEND_WIDTH) -> dict[str, Any]:
    """Grow a figure so its legend (below the plot and its axis) never squeezes, covers or leaves the plot.

    ``width``: the narrowest the figure is drawn at (its rows are estimated for that width)."""
    layout = fig["layout"]
    if layout.get("yaxis", {}).get("type") == "category" or layout.get("showlegend") is False:
        return fig
    names = [str(t.get("name", "")) for t in fig["data"] if t.get("showlegend", True)]
    legend_px = 26 * legend_rows(names, width) + 8 if names else 0
    layout["margin"]["b"] = AXIS_SPACE + 10 + legend_px
    layout["legend"]["y"] = -AXIS_SPACE / PLOT_HEIGHT
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
        unit = "GB/s" if row["rate_unit"] == "gbps" else "GFLOP/s"
        lines.append(plot_text(f"{row['rate']:.4g} {unit}"))
    if row.get("speedup_cpu") is not None and row.get("fastest_cpu"):
        lines.append(plot_text(f"{row['speedup_cpu']:.3g}× vs fastest CPU ({row['fastest_cpu']})"))
    if row.get("speedup") is not None and row.get("baseline"):
        lines.append(plot_text(f"{row['speedup']:.3g}× vs baseline {row['baseline']}"))
    lines.extend(plot_text(e) for e in extra or [])
    text = "<br>".join(lines)
    if extra is None:
        row["_hover"] = (name, text)
    return text


def _group_series(rows: list[dict[str, Any]], cs: ChartSeries) -> dict[tuple, list]:
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[cs.key(r)].append(r)
    for pts in groups.values():
        pts.sort(key=lambda r: r["x"] or 0)
    return groups


def series_name(run_label: str, identity: str, multi_run: bool) -> str:
    """Legend text: the identity, prefixed with the run when several runs overlay."""
    return f"{run_label}: {identity}" if multi_run else identity


def _x_axis(rows: list[dict[str, Any]], values: list[float]) -> tuple[str, dict[str, Any]]:
    if rows and rows[0]["x_unit"] == "bytes":
        return "bytes moved per call", log_axis(values, "bytes")
    return "problem size: FLOPs per call", log_axis(values, "number")


def _flag_marks(flags: list[str]) -> list[str]:
    """Hover lines for a row's warnings (``above_ceiling``, ``implausible``, ``noisy``) from its flags."""
    from gpubench.records import FLAGS

    return [f"⚠ {f}: {FLAGS.get(f, f)}" for f in flags]


def flagged_trace(rows: list[dict[str, Any]], x: Any, y: Any, flags: tuple[str, ...] = ("above_ceiling",
                  "implausible")) -> dict[str, Any] | None:
    """A ring around every point whose row carries one of ``flags``: a result to doubt, marked on the chart."""
    marked = [r for r in rows if any(f in (r.get("flags") or []) for f in flags)]
    if not marked:
        return None
    return {
        "type": "scatter", "mode": "markers", "name": "⚠ above a ceiling (see hover)", "x": [x(r) for r in marked],
        "y": [y(r) for r in marked], "hovertemplate": "%{text}<extra></extra>",
        "text": [plot_text(f"{r['label']}: " + ", ".join(f for f in r.get("flags") or [] if f in flags))
                 for r in marked],
        "marker": {"symbol": "circle-open", "size": 16, "color": "#cf222e", "line": {"width": 2}},
    }


def throughput_figure(rows: list[dict[str, Any]], title: str, colors: Colors) -> dict[str, Any]:
    """Rate (GFLOP/s or GB/s) against problem size, log-log, one line per series and run."""
    rows = [r for r in rows if r["status"] == "ok" and r.get("rate") and r.get("x")]
    cs = ChartSeries(rows, colors)
    unit = "GB/s" if rows and rows[0]["rate_unit"] == "gbps" else "GFLOP/s"
    traces = []
    for pts in _group_series(rows, cs).values():
        name = cs.name(pts[0])
        traces.append({
            "type": "scatter", "mode": "lines+markers", "name": plot_text(name),
            "x": [p["x"] for p in pts], "y": [p["rate"] for p in pts],
            "text": [hover(p, name, _flag_marks(p.get("flags") or []) or None) for p in pts],
            "hovertemplate": "%{text}<extra></extra>",
            "line": {"color": cs.color(pts[0]), "dash": cs.dash(pts[0]), "width": 2},
            "marker": {"symbol": cs.symbol(pts[0]), "size": 7},
        })
    ring = flagged_trace(rows, lambda r: r["x"], lambda r: r["rate"])
    if ring:
        traces.append(ring)
    x_title, x_axis = _x_axis(rows, [r["x"] for r in rows])
    layout = base_layout(title, x_title, unit)
    layout["yaxis"].update(log_axis([r["rate"] for r in rows], "number"))
    layout["xaxis"].update(x_axis)
    return {"data": traces, "layout": layout}


def speedup_figure(rows: list[dict[str, Any]], title: str, baseline: str, colors: Colors) -> dict[str, Any]:
    """Speedup against problem size: solid over the fastest CPU backend, dotted over the named baseline."""
    rows = [r for r in rows if r["status"] == "ok" and r.get("x")
            and (r.get("speedup_cpu") is not None or r.get("speedup") is not None)]
    cs = ChartSeries(rows, colors)
    traces = []
    for pts in _group_series(rows, cs).values():
        name = cs.name(pts[0])
        color = cs.color(pts[0])
        fast = [p for p in pts if p.get("speedup_cpu") is not None]
        base = [p for p in pts if p.get("speedup") is not None]
        if fast:
            traces.append({
                "type": "scatter", "mode": "lines+markers", "name": plot_text(name), "legendgroup": plot_text(name),
                "x": [p["x"] for p in fast], "y": [p["speedup_cpu"] for p in fast],
                "text": [hover(p, name) for p in fast], "hovertemplate": "%{text}<extra></extra>",
                "line": {"color": color, "width": 2, "dash": cs.dash(pts[0])},
                "marker": {"symbol": cs.symbol(pts[0]), "size": 7},
            })
        if base and any(p["backend"] != p["baseline"].split(":")[0] for p in base):
            traces.append({
                "type": "scatter", "mode": "lines", "name": plot_text(f"{name} vs {baseline}"),
                "legendgroup": plot_text(name), "showlegend": False,
                "x": [p["x"] for p in base], "y": [p["speedup"] for p in base],
                "text": [hover(p, name) for p in base], "hovertemplate": "%{text}<extra></extra>",
                "line": {"color": color, "width": 1.5, "dash": "dot"}, "opacity": 0.7,
            })
    x_title, x_axis = _x_axis(rows, [r["x"] for r in rows])
    layout = base_layout(title, x_title, "speedup (×, higher is faster)")
    layout["yaxis"].update(log_axis([1.0] + [v for r in rows for v in (r.get("speedup_cpu"), r.get("speedup")) if v],
                                    "times"))
    layout["xaxis"].update(x_axis)
    layout["shapes"] = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": 1, "y1": 1,
                         "line": {"color": "#444", "width": 1, "dash": "dash"}}]
    layout["annotations"] = [{
        "xref": "paper", "yref": "paper", "x": 1, "y": 1.02, "xanchor": "right", "yanchor": "bottom",
        "showarrow": False, "font": {"size": 10, "color": "#555"},
        "text": plot_text(f"solid: vs fastest CPU backend · dotted: vs baseline {baseline}"),
    }]
    return {"data": traces, "layout": layout}


def transfer_figure(rows: list[dict[str, Any]], title: str, colors: Colors) -> dict[str, Any]:
    """Host↔device bandwidth against transfer size: pinned solid, pageable dashed."""
    rows = [r for r in rows if r["status"] == "ok" and r.get("gbps") and r.get("x")]
    for r in rows:  # the size of one copy (a device-to-device copy moves it twice)
        r["copy_bytes"] = r["params"]["bytes"] if isinstance(r["params"].get("bytes"), int) else r["x"]
    plain = [{**r, "params": {k: v for k, v in r["params"].items() if k != "memory"}} for r in rows]
    cs = ChartSeries(plain, colors)
    groups: dict[tuple, list] = defaultdict(list)
    for r, p in zip(rows, plain):
        groups[(*cs.key(p), str(r["params"].get("memory", "")))].append((r, p))
    traces = []
    for (_, identity, memory), members in groups.items():
        members.sort(key=lambda m: m[0]["copy_bytes"])
        pts = [m[0] for m in members]
        name = series_name(pts[0]["run_label"], f"{identity} {memory}".strip(), cs.multi_run)
        traces.append({
            "type": "scatter", "mode": "lines+markers", "name": plot_text(name),
            "x": [p["copy_bytes"] for p in pts], "y": [p["gbps"] for p in pts],
            "text": [hover(p, name, [f"{fmt_bytes(p['copy_bytes'])} per copy"]) for p in pts],
            "hovertemplate": "%{text}<extra></extra>",
            "line": {"color": cs.color(pts[0]), "width": 2, "dash": "dash" if memory == "pageable" else "solid"},
            "marker": {"symbol": cs.marker_symbol(members[0][1]), "size": 7},
        })
    layout = base_layout(title, "bytes per transfer", "GB/s")
    layout["yaxis"].update(log_axis([r["gbps"] for r in rows], "number"))
    layout["xaxis"].update(log_axis([r["copy_bytes"] for r in rows], "bytes"))
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


def accuracy_figure(rows: list[dict[str, Any]], title: str, colors: Colors) -> dict[str, Any] | None:
    """Test accuracy against training time, one curve per case (None when no case has a curve).

    The time axis is logarithmic when the runs differ by more than 10× (a one-epoch CNN beside
    two-epoch MLPs), so no curve is squeezed into a corner.
    """
    curved = [(r, curve_points(r["metrics"])) for r in rows]
    curved = [(r, pts) for r, pts in curved if pts]
    if not curved:
        return None
    cs = ChartSeries([r for r, _ in curved], colors, with_dtype=True)
    traces = []
    for r, pts in curved:
        name = cs.name(r)
        traces.append({
            "type": "scatter", "mode": "lines+markers", "name": plot_text(name),
            "x": [p[0] for p in pts], "y": [p[1] for p in pts],
            "text": [plot_text(f"{name}: epoch {i + 1}, {t:.3g} s, accuracy {a:.4g}") for i, (t, a) in enumerate(pts)],
            "hovertemplate": "%{text}<extra></extra>",
            "line": {"color": cs.color(r), "width": 2, "dash": cs.dash(r)},
            "marker": {"symbol": cs.marker_symbol(r), "size": 8},
        })
    times = [p[0] for _, pts in curved for p in pts if p[0] > 0]
    log_x = bool(times) and max(times) / min(times) > 10
    layout = base_layout(title, "training time (s)", "test accuracy", log_x=log_x, log_y=False)
    layout["xaxis"].update(log_axis(times, "number", " s") if log_x else linear_range(times))
    layout["yaxis"].update(linear_range([p[1] for _, pts in curved for p in pts], floor_zero=False))
    return {"data": traces, "layout": layout}


def time_to_accuracy_figure(rows: list[dict[str, Any]], title: str, colors: Colors) -> dict[str, Any] | None:
    """Horizontal bars: seconds to reach the target accuracy (None when no case reports it)."""
    reached = [r for r in rows if isinstance(r["metrics"].get("time_to_target_s"), (int, float))
               and math.isfinite(r["metrics"]["time_to_target_s"]) and r["metrics"]["time_to_target_s"] > 0]
    if not reached:
        return None
    cs = ChartSeries(reached, colors, with_dtype=True)
    bars = sorted(((r["metrics"]["time_to_target_s"], cs.name(r), r) for r in reached), key=lambda b: -b[0])
    targets = {b[2]["metrics"].get("target_accuracy") for b in bars} - {None}
    one_target = len(targets) == 1

    def label(b: tuple) -> str:
        target = b[2]["metrics"].get("target_accuracy")
        return f"{b[0]:.3g} s" + ("" if one_target or target is None else f" to {target:g}")

    trace = {
        "type": "bar", "orientation": "h", "x": [b[0] for b in bars], "y": [plot_text(b[1]) for b in bars],
        "marker": {"color": [cs.color(b[2]) for b in bars]}, "text": [label(b) for b in bars],
        "textposition": "outside", "cliponaxis": False,
        "hovertemplate": "%{y}: %{x:.3g} s<extra></extra>", "showlegend": False,
    }
    sub = f" (target accuracy {next(iter(targets)):g})" if one_target else " (each case's own target)"
    layout = base_layout(title + sub, "seconds to target accuracy (lower is better)", "", log_x=False, log_y=False,
                         height=110 + 30 * len(bars))
    layout["showlegend"] = False
    layout["yaxis"].update({"type": "category", "automargin": True})
    layout["xaxis"].update({"range": [0, max(b[0] for b in bars) * 1.2]})
    layout["margin"]["l"] = 20
    return {"data": [trace], "layout": layout}


#: How a ceiling's source reads in a legend.
QUALITY_TEXT = {"measured": "measured", "provisional": "quick calibration, provisional", "datasheet": "datasheet"}


def roofline_figure(title: str, points: list[dict[str, Any]], roofs: dict[str, float], mem_gbps: float | None,
                    colors: Colors, datasheet: dict[str, float] | None = None,
                    datasheet_name: str = "", quality: dict[str, str] | None = None) -> dict[str, Any]:
    """Cases at their arithmetic intensity (FLOP/byte) under the compute roofs and the memory slope.

    ``roofs``: peak GFLOP/s per dtype; ``mem_gbps``: the memory bandwidth (the slope); ``quality``:
    the source of each (``measured``, ``provisional`` or ``datasheet``; keys are dtypes and
    ``memory``). Without either, no roof is drawn. Points flagged ``above_ceiling`` or ``implausible``
    are ringed.
    """
    traces = []
    quality = quality or {}
    cs = ChartSeries(points, colors, with_dtype=True)
    groups: dict[tuple, list] = defaultdict(list)
    for p in points:
        groups[cs.key(p)].append(p)
    ais = [p["flops"] / p["bytes"] for p in points] or [0.1, 100.0]
    lo = min(ais) / 3
    hi = max(ais) * 3
    for pts in groups.values():
        name = cs.name(pts[0])
        extra = []
        for p in pts:
            e = [f"arithmetic intensity {p['flops'] / p['bytes']:.3g} FLOP/byte"]
            if p.get("roofline_pct") is not None:
                e.append(f"{p['roofline_pct']:.0f}% of attainable ({p['attainable_gflops']:.4g} GFLOP/s)")
                if p["roofline_pct"] > 105:
                    e.append("above the roof: calibrate again (without --quick)")
            e += _flag_marks(p.get("flags") or [])
            extra.append(hover(p, name, e))
        traces.append({
            "type": "scatter", "mode": "markers", "name": plot_text(name),
            "x": [p["flops"] / p["bytes"] for p in pts], "y": [p["gflops"] for p in pts],
            "text": extra, "hovertemplate": "%{text}<extra></extra>",
            "marker": {"color": cs.color(pts[0]), "symbol": cs.marker_symbol(pts[0]), "size": 9,
                       "line": {"width": 1, "color": "#333"}},
        })
    ring = flagged_trace(points, lambda r: r["flops"] / r["bytes"], lambda r: r["gflops"])
    if ring:
        traces.append(ring)

    def line(label: str, xs: list[float], ys: list[float], dash: str, color: str) -> dict[str, Any]:
        return {"type": "scatter", "mode": "lines", "name": plot_text(label), "x": xs, "y": ys,
                "line": {"color": color, "width": 2, "dash": dash},
                "hovertemplate": plot_text(label) + "<extra></extra>"}

    def source(key: str) -> str:
        return QUALITY_TEXT.get(quality.get(key, "measured"), quality.get(key, "measured"))

    grays = ("#222", "#555", "#777", "#999", "#aaa")
    top = max(roofs.values()) if roofs else None
    if mem_gbps:
        end = min(hi, top / mem_gbps) if top else hi
        start = min(lo, end / 10)
        traces.append(line(f"memory slope {mem_gbps:.4g} GB/s ({source('memory')})", [start, end],
                           [mem_gbps * start, mem_gbps * end], "solid", "#444"))
    for i, (dtype, peak) in enumerate(sorted(roofs.items(), key=lambda kv: -kv[1])):
        ridge = peak / mem_gbps if mem_gbps else lo
        traces.append(line(f"{dtype} roof {peak:.4g} GFLOP/s ({source(dtype)})",
                           [max(ridge, lo / 10), max(hi, ridge * 3)], [peak, peak], "solid", grays[i % len(grays)]))
    if datasheet:
        bw = datasheet.get("mem_gbps")
        from gpubench.datasheet import PEAK_TEXT, TENSOR_PEAKS

        shown = {p["compute_dtype"] for p in points}
        shown |= {TENSOR_PEAKS[d] for d in shown if d in TENSOR_PEAKS}  # float64: vector and tensor-core roofs
        for dtype, tflops in sorted(datasheet.items(), key=lambda kv: -kv[1]):
            if dtype == "mem_gbps" or dtype not in shown:
                continue
            peak = tflops * 1000
            ridge = peak / bw if bw else lo
            xs = [min(lo, ridge / 10), ridge, max(hi, ridge * 3)] if bw else [lo, hi]
            ys = [bw * xs[0], peak, peak] if bw else [peak, peak]
            traces.append(line(f"{datasheet_name} {PEAK_TEXT.get(dtype, dtype)} {tflops:g} TFLOP/s (datasheet)", xs, ys,
                               "dot", "#b0b0b0"))
    layout = base_layout(title, "arithmetic intensity (FLOP per byte moved)", "GFLOP/s", height=460)
    xs_all = [x for t in traces for x in t["x"]]
    layout["xaxis"].update(log_axis(xs_all, "number"))
    layout["yaxis"].update(log_axis([y for t in traces for y in t["y"]], "number"))
    return {"data": traces, "layout": layout}
