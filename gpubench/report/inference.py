"""The report's inference section: latency and throughput against batch size, per model, and where the GPU wins.

A workload that declares ``report_section = "inference"`` (parameters ``model`` and ``batch``,
measured one call per sample, :mod:`gpubench.latency`) is drawn here. Per model and dtype:

* **latency** against batch (log-log): the p50 of each backend[variant] on its device as a line,
  its p99 as a shaded band above it (a single call's wait, launch included);
* **throughput** against batch: samples per second served one request after another;
* the **crossover batch**, marked on both charts: the smallest measured batch from which the best
  GPU case serves more samples per second than the best CPU engine at that batch and at every larger
  batch measured on both. The best CPU engine is the fastest CPU case at each batch, whichever engine
  it is (ONNX Runtime, torch, JAX, TensorFlow, NumPy), never only the run's baseline;
* a **verdict** in one line: who answers a batch-1 request first at the 99th percentile, and from
  which batch the GPU overtakes (``batch 1: CPU (onnxruntime) 1.8 ms p99 vs GPU (torch[graph]) 2.4 ms
  p99 · the GPU overtakes from batch 8``), and a table of the best CPU and GPU case per batch.

Hue: one per backend and device kind (a backend's GPU lines a darker shade of its CPU hue); dash:
the variant within them. Figures are plain dicts, like :mod:`gpubench.report.charts`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gpubench.report import charts
from gpubench.report.html import esc, plot_text, table
from gpubench.tables import fmt_bytes, fmt_time

SECTION = "inference"

#: Models in the order the section shows them (others after, by name).
MODEL_ORDER = ("mlp", "cnn", "resnet18", "gpt")
MODEL_TITLES = {"mlp": "MLP (784 → 128 → 10)", "cnn": "LeNet-style CNN (28×28)",
                "resnet18": "ResNet-18 (224×224)", "gpt": "GPT decoder (6 layers, width 512, sequence 128)"}


def _batch(row: dict[str, Any]) -> int | None:
    value = (row.get("params") or {}).get("batch")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def usable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ok rows measured per call, with a model and a batch (the section's points)."""
    return [r for r in rows if r.get("status") == "ok" and r.get("latency_p50_s") and _batch(r)
            and isinstance((r.get("params") or {}).get("model"), str)]


def is_cpu(row: dict[str, Any]) -> bool:
    """Whether a row ran on the CPU (its device's hardware, as the report model judged it)."""
    return row.get("kind", row["device"].split(":")[0]) == "cpu"


def side(row: dict[str, Any]) -> str:
    """``CPU`` or ``GPU`` (any accelerator)."""
    return "CPU" if is_cpu(row) else "GPU"


def throughput(row: dict[str, Any]) -> float | None:
    """Samples per second of a row (requests one after another)."""
    value = row.get("throughput_samples_per_s")
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def _shade(hex_color: str, factor: float) -> str:
    """``hex_color`` darkened (factor < 1) or lightened (> 1)."""
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    if factor <= 1:
        r, g, b = (int(c * factor) for c in (r, g, b))
    else:
        r, g, b = (int(c + (255 - c) * (factor - 1)) for c in (r, g, b))
    return f"#{r:02x}{g:02x}{b:02x}"


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


class _Styles:
    """Hue per backend and device kind, dash per variant (and run) within them."""

    def __init__(self, colors: charts.Colors):
        self.colors = colors
        self.dashes: dict[str, dict[str, int]] = defaultdict(dict)

    def color(self, row: dict[str, Any]) -> str:
        base = self.colors(row["backend"])
        return base if is_cpu(row) else _shade(base, 0.6)

    def dash(self, row: dict[str, Any], key: str) -> str:
        group = self.dashes[f"{row['backend']}|{side(row)}"]
        return charts.DASHES[group.setdefault(key, len(group)) % len(charts.DASHES)]


def _series(rows: list[dict[str, Any]]) -> dict[tuple[int, str], list[dict[str, Any]]]:
    order = charts.run_order(rows)
    groups: dict[tuple[int, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(order[r["run_index"]], r["series"])].append(r)
    for pts in groups.values():
        pts.sort(key=_batch)
    return dict(sorted(groups.items(), key=lambda kv: (is_cpu(kv[1][0]) is False, kv[0])))


def _batch_axis(layout: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    values = sorted({_batch(r) for r in rows})
    layout["xaxis"].update({"type": "log", "tickvals": values, "ticktext": [str(v) for v in values]})


def _hover(row: dict[str, Any], name: str) -> str:
    lines = [f"<b>{plot_text(name)}</b>", plot_text(f"{row['size']} {row['dtype']}"),
             plot_text(f"p50 {fmt_time(row['latency_p50_s'])} · p90 {fmt_time(row.get('latency_p90_s'))} · "
                       f"p99 {fmt_time(row.get('latency_p99_s'))} ({row.get('latency_calls')} calls)")]
    if throughput(row):
        lines.append(plot_text(f"{rate_text(throughput(row))} samples/s"))
    metrics = row.get("metrics") or {}
    if metrics.get("device_latency_p50_s"):
        lines.append(plot_text(f"device time p50 {fmt_time(metrics['device_latency_p50_s'])} "
                               f"({metrics.get('device_clock', 'device events')})"))
    if metrics.get("peak_memory_bytes"):
        lines.append(plot_text(f"peak memory {fmt_bytes(metrics['peak_memory_bytes'])}"))
    if row.get("flags"):
        lines.append(plot_text("flags: " + ", ".join(row["flags"])))
    return "<br>".join(lines)


@dataclass(frozen=True)
class Crossover:
    """Where the best GPU case overtakes the best CPU engine, by throughput at equal batch."""

    batch: int | None
    """The crossover batch (None: the GPU never overtakes in the batches measured on both)."""
    batches: tuple[int, ...]
    """The batches measured on both sides."""


def best_by_batch(rows: list[dict[str, Any]], cpu: bool, key: Callable[[dict[str, Any]], float | None],
                  highest: bool) -> dict[int, dict[str, Any]]:
    """The best row of one side (CPU or not) at each batch by ``key`` (highest or lowest value)."""
    best: dict[int, dict[str, Any]] = {}
    for r in rows:
        value = key(r)
        if is_cpu(r) != cpu or value is None:
            continue
        b = _batch(r)
        current = best.get(b)
        if current is None or (value > key(current) if highest else value < key(current)):
            best[b] = r
    return best


def crossover(rows: list[dict[str, Any]]) -> Crossover:
    """The smallest batch from which the best GPU throughput beats the best CPU throughput at every larger batch."""
    cpu = best_by_batch(rows, True, throughput, highest=True)
    gpu = best_by_batch(rows, False, throughput, highest=True)
    both = tuple(sorted(set(cpu) & set(gpu)))
    found = None
    for b in reversed(both):
        if throughput(gpu[b]) > throughput(cpu[b]):
            found = b
        else:
            break
    return Crossover(found, both)


def _p99(row: dict[str, Any]) -> float | None:
    return row.get("latency_p99_s") or row.get("latency_p50_s")


def verdict(rows: list[dict[str, Any]]) -> str:
    """One line: who answers the smallest batch first at the 99th percentile, and the crossover."""
    cpu = best_by_batch(rows, True, _p99, highest=False)
    gpu = best_by_batch(rows, False, _p99, highest=False)
    cross = crossover(rows)
    if not cpu and not gpu:
        return ""
    if not gpu:
        b = min(cpu)
        return (f"batch {b}: CPU ({cpu[b]['implementation']}) {fmt_time(_p99(cpu[b]))} p99; "
                "no GPU case was measured")
    if not cpu:
        b = min(gpu)
        return (f"batch {b}: GPU ({gpu[b]['implementation']}) {fmt_time(_p99(gpu[b]))} p99; "
                "no CPU case was measured")
    both = sorted(set(cpu) & set(gpu))
    if not both:
        return "the CPU and GPU cases share no batch size"
    b = both[0]
    c, g = cpu[b], gpu[b]
    first = "CPU" if _p99(c) <= _p99(g) else "GPU"
    text = (f"batch {b}: CPU ({c['implementation']}) {fmt_time(_p99(c))} p99 vs GPU ({g['implementation']}) "
            f"{fmt_time(_p99(g))} p99 — the {first} answers first")
    if cross.batch is None:
        text += f"; the best CPU engine keeps up to batch {cross.batches[-1]} (no crossover)"
    elif cross.batch == cross.batches[0]:
        text += "; the GPU serves more samples/s at every batch measured"
    else:
        text += f"; the GPU overtakes the best CPU engine from batch {cross.batch}"
    return text


def _crossover_shape(layout: dict[str, Any], cross: Crossover) -> None:
    if cross.batch is None or len(cross.batches) < 2 or cross.batch == cross.batches[0]:
        return
    layout["shapes"] = [{"type": "line", "xref": "x", "yref": "paper", "x0": cross.batch, "x1": cross.batch,
                         "y0": 0, "y1": 1, "line": {"color": "#444", "width": 1.5, "dash": "dot"}}]
    layout["annotations"] = [{"xref": "x", "yref": "paper", "x": math.log10(cross.batch), "y": 1.0, "yanchor": "bottom",
                              "showarrow": False, "font": {"size": 10, "color": "#444"},
                              "text": plot_text(f"GPU overtakes from batch {cross.batch}")}]


def latency_figure(rows: list[dict[str, Any]], title: str, colors: charts.Colors) -> dict[str, Any]:
    """p50 latency against batch, one line per backend[variant] and device, the p99 shaded above it."""
    styles = _Styles(colors)
    multi = len(charts.run_order(rows)) > 1
    traces = []
    values = []
    for (run, series), pts in _series(rows).items():
        first = pts[0]
        name = charts.series_name(first["run_label"], series, multi)
        color = styles.color(first)
        xs = [_batch(p) for p in pts]
        p50 = [p["latency_p50_s"] * 1e3 for p in pts]
        p99 = [(p.get("latency_p99_s") or p["latency_p50_s"]) * 1e3 for p in pts]
        values += p50 + p99
        group = f"{run}|{series}"
        traces.append({"type": "scatter", "mode": "lines+markers", "name": plot_text(name), "legendgroup": group,
                       "x": xs, "y": p50, "text": [_hover(p, name) for p in pts],
                       "hovertemplate": "%{text}<extra></extra>",
                       "line": {"color": color, "width": 2, "dash": styles.dash(first, group)},
                       "marker": {"symbol": "circle" if is_cpu(first) else "diamond", "size": 7}})
        traces.append({"type": "scatter", "mode": "lines", "name": plot_text(f"{name} p99"), "legendgroup": group,
                       "showlegend": False, "x": xs, "y": p99, "fill": "tonexty", "fillcolor": _rgba(color, 0.15),
                       "line": {"color": _rgba(color, 0.5), "width": 0.5}, "hoverinfo": "skip"})
    layout = charts.base_layout(title, "batch size", "latency per request (ms): p50, p99 shaded")
    _batch_axis(layout, rows)
    layout["yaxis"].update(charts.log_axis(values, "number"))
    _crossover_shape(layout, crossover(rows))
    return {"data": traces, "layout": layout}


def throughput_figure(rows: list[dict[str, Any]], title: str, colors: charts.Colors) -> dict[str, Any]:
    """Samples per second against batch, one line per backend[variant] and device."""
    styles = _Styles(colors)
    multi = len(charts.run_order(rows)) > 1
    traces = []
    pts_all = [r for r in rows if throughput(r)]
    for (run, series), pts in _series(pts_all).items():
        first = pts[0]
        name = charts.series_name(first["run_label"], series, multi)
        traces.append({"type": "scatter", "mode": "lines+markers", "name": plot_text(name),
                       "x": [_batch(p) for p in pts], "y": [throughput(p) for p in pts],
                       "text": [_hover(p, name) for p in pts], "hovertemplate": "%{text}<extra></extra>",
                       "line": {"color": styles.color(first), "width": 2,
                                "dash": styles.dash(first, f"{run}|{series}")},
                       "marker": {"symbol": "circle" if is_cpu(first) else "diamond", "size": 7}})
    layout = charts.base_layout(title, "batch size", "throughput (samples/s)")
    _batch_axis(layout, pts_all or rows)
    layout["yaxis"].update(charts.log_axis([throughput(r) for r in pts_all], "number"))
    _crossover_shape(layout, crossover(rows))
    return {"data": traces, "layout": layout}


def rate_text(value: float | None) -> str:
    """Samples per second as a person reads them: ``16,250``, ``492.6``, ``-``."""
    if not value:
        return "-"
    return f"{value:,.0f}" if value >= 1000 else f"{value:.4g}"


def best_table(rows: list[dict[str, Any]]) -> str:
    """Per batch: the best CPU engine and the best GPU case by p99, their p50/p99 and throughput."""
    cpu = best_by_batch(rows, True, _p99, highest=False)
    gpu = best_by_batch(rows, False, _p99, highest=False)
    body = []
    for b in sorted(set(cpu) | set(gpu)):
        line = [str(b)]
        for best in (cpu.get(b), gpu.get(b)):
            if best is None:
                line += ["-", "-", "-", "-"]
                continue
            line += [best["series"], fmt_time(best["latency_p50_s"]), fmt_time(_p99(best)), rate_text(throughput(best))]
        body.append(line)
    headers = ["batch", "best CPU engine", "p50", "p99", "samples/s", "best GPU case", "p50", "p99", "samples/s"]
    return table(headers, body, "cases")


def body(rows: list[dict[str, Any]], figure: Callable[[dict[str, Any] | None], str], colors: charts.Colors,
         workload: str = SECTION) -> str:
    """The section's HTML: per model and dtype, the verdict, latency and throughput charts, the best-case table."""
    ok = usable(rows)
    if not ok:
        return ""
    few = sorted({r["series"] for r in ok if (r.get("latency_calls") or 0) < 100})
    parts = ['<p class="note">One call is one request: the forward pass of a batch, timed alone on the host clock '
             "from a synchronized device to its answer (launch included). p50 and p99 are nearest-rank percentiles "
             "of those calls; throughput is the batch times the calls over their total time (requests one after "
             "another). The crossover is the smallest batch from which the best GPU case serves more samples/s "
             "than the best CPU engine at every larger batch measured on both.</p>"]
    if few:
        parts.append('<p class="note">Some cases took fewer than 100 calls (slow calls, time budget spent): their '
                     "p99 is the slowest call, not a tail.</p>")
    models = sorted({r["params"]["model"] for r in ok},
                    key=lambda m: (MODEL_ORDER.index(m) if m in MODEL_ORDER else len(MODEL_ORDER), m))
    for model in models:
        mrows = [r for r in ok if r["params"]["model"] == model]
        title = MODEL_TITLES.get(model, model)
        for dtype in dict.fromkeys(r["dtype"] for r in mrows):
            drows = [r for r in mrows if r["dtype"] == dtype]
            line = verdict(drows)
            figs = [latency_figure(drows, f"{model} · {dtype}: latency against batch", colors),
                    throughput_figure(drows, f"{model} · {dtype}: throughput against batch", colors)]
            parts.append(f"<h3>{esc(title)} · {esc(dtype)}</h3>"
                         + (f'<p class="verdict"><b>{esc(line)}</b></p>' if line else "")
                         + '<div class="grid">' + "".join(figure(f) for f in figs) + "</div>"
                         + best_table(drows))
    return "".join(parts)
