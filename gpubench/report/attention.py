"""The report's attention section: TFLOP/s against sequence length per kernel, and the memory each needed.

A workload that declares ``report_section = "attention"`` (parameters b, h, s, d, causal,
backward) is drawn here instead of in the generic throughput charts: one chart per pass
(forward, forward+backward) and dtype with the sequence length S on the x axis, one line per
backend[kernel] on its device, mask and head shape; then the peak memory each kernel needed
(``metrics["peak_memory_bytes"]``, measured by the backend) against S, and the same numbers as a
table with one column per S. Figures are plain dicts, like :mod:`gpubench.report.charts`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from gpubench.report import charts
from gpubench.report.html import esc, plot_text, table
from gpubench.tables import fmt_bytes

SECTION = "attention"


def _params(row: dict[str, Any]) -> dict[str, Any]:
    p = row["params"]
    return {"b": p.get("b", 1), "h": p.get("h"), "s": p.get("s"), "d": p.get("d"),
            "causal": bool(p.get("causal")), "backward": bool(p.get("backward"))}


def pass_name(row: dict[str, Any]) -> str:
    """``forward`` or ``forward+backward``."""
    return "forward+backward" if _params(row)["backward"] else "forward"


def head_shape(row: dict[str, Any]) -> str:
    """The problem apart from S: ``12 heads × 64`` (with the batch when it is not 1)."""
    p = _params(row)
    text = f"{p['h']} heads × {p['d']}"
    return text if p["b"] == 1 else f"batch {p['b']}, {text}"


def line_identity(row: dict[str, Any], with_dtype: bool = False) -> str:
    """What one line is: ``torch[flash]:cuda:0 causal 12 heads × 64`` (the kernel, its device, mask, shape)."""
    p = _params(row)
    parts = [row["series"]]
    if with_dtype:
        parts.append(row["dtype"])
    parts += ["causal" if p["causal"] else "full", head_shape(row)]
    return " ".join(parts)


def usable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ok rows with a sequence length (the section's x axis)."""
    return [r for r in rows if r["status"] == "ok" and isinstance(_params(r)["s"], int)]


def _lines(rows: list[dict[str, Any]], with_dtype: bool) -> dict[tuple[int, str], list[dict[str, Any]]]:
    order = charts.run_order(rows)
    groups: dict[tuple[int, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(order[r["run_index"]], line_identity(r, with_dtype))].append(r)
    for pts in groups.values():
        pts.sort(key=lambda r: _params(r)["s"])
    return groups


def _seq_axis(layout: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    values = sorted({_params(r)["s"] for r in rows})
    layout["xaxis"].update({"tickvals": values, "ticktext": [str(v) for v in values]})


class _Styles:
    """One hue per backend (the report's :class:`~gpubench.report.charts.Colors`), a marker per kernel, head
    shape and run within it; the mask is the dash (solid full, dashed causal)."""

    def __init__(self, colors: charts.Colors):
        self.colors = colors
        self.symbols: dict[str, dict[str, int]] = defaultdict(dict)

    def trace(self, name: str, pts: list[dict[str, Any]], ys: list[float], text: list[str],
              run_index: int) -> dict[str, Any]:
        first = pts[0]
        kinds = self.symbols[first["backend"]]
        index = kinds.setdefault(f"{run_index}|{first['series']}|{first['dtype']}|{head_shape(first)}", len(kinds))
        return {"type": "scatter", "mode": "lines+markers", "name": plot_text(name),
                "x": [_params(p)["s"] for p in pts], "y": ys, "text": text, "hovertemplate": "%{text}<extra></extra>",
                "line": {"color": self.colors(first["backend"]), "width": 2,
                         "dash": "dash" if _params(first)["causal"] else "solid"},
                "marker": {"symbol": charts.SYMBOLS[index % len(charts.SYMBOLS)], "size": 7}}


def rate_figure(rows: list[dict[str, Any]], title: str, colors: charts.Colors) -> dict[str, Any]:
    """TFLOP/s against S, log-log, one line per kernel, device, mask and head shape (and run)."""
    rows = [r for r in usable(rows) if r.get("gflops")]
    multi = len(charts.run_order(rows)) > 1
    styles = _Styles(colors)
    traces = []
    for (run_index, identity), pts in _lines(rows, with_dtype=False).items():
        name = charts.series_name(pts[0]["run_label"], identity, multi)
        text = [charts.hover(p, name, [f"{p['gflops'] / 1000:.4g} TFLOP/s"]) for p in pts]
        traces.append(styles.trace(name, pts, [p["gflops"] / 1000 for p in pts], text, run_index))
    layout = charts.base_layout(title, "sequence length S", "TFLOP/s")
    _seq_axis(layout, rows)
    layout["yaxis"].update(charts.log_axis([r["gflops"] / 1000 for r in rows], "number"))
    layout["annotations"] = [{"xref": "paper", "yref": "paper", "x": 1, "y": 1.02, "xanchor": "right",
                              "yanchor": "bottom", "showarrow": False, "font": {"size": 10, "color": "#555"},
                              "text": "solid: full attention · dashed: causal"}]
    return {"data": traces, "layout": layout}


def peak_memory(row: dict[str, Any]) -> float | None:
    """The peak memory a case needed, as its backend measured it (None when not measured)."""
    value = (row.get("metrics") or {}).get("peak_memory_bytes")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else None


def memory_figure(rows: list[dict[str, Any]], title: str, colors: charts.Colors) -> dict[str, Any] | None:
    """Peak memory against S, log-log, one line per kernel, dtype, mask and head shape (None: nothing measured)."""
    rows = [r for r in usable(rows) if peak_memory(r)]
    if not rows:
        return None
    multi = len(charts.run_order(rows)) > 1
    styles = _Styles(colors)
    traces = []
    for (run_index, identity), pts in _lines(rows, with_dtype=True).items():
        name = charts.series_name(pts[0]["run_label"], identity, multi)
        text = [charts.hover(p, name, [f"peak memory {fmt_bytes(peak_memory(p))}",
                                       str(p["metrics"].get("memory_method", ""))]) for p in pts]
        traces.append(styles.trace(name, pts, [peak_memory(p) for p in pts], text, run_index))
    layout = charts.base_layout(title, "sequence length S", "peak memory")
    _seq_axis(layout, rows)
    layout["yaxis"].update(charts.log_axis([peak_memory(r) for r in rows], "bytes"))
    return {"data": traces, "layout": layout}


def memory_table(rows: list[dict[str, Any]], multi_run: bool) -> str:
    """Peak memory per kernel, dtype, mask, pass and head shape, one column per S; '' when nothing was measured."""
    rows = [r for r in usable(rows) if peak_memory(r) or r["metrics"].get("peak_memory_note")]
    if not rows:
        return ""
    lengths = sorted({_params(r)["s"] for r in rows})
    cells: dict[tuple, dict[int, str]] = defaultdict(dict)
    methods: dict[str, str] = {}
    for r in rows:
        key = ((r["run_label"],) if multi_run else ()) + (
            r["series"], r["dtype"], "causal" if _params(r)["causal"] else "full", pass_name(r), head_shape(r))
        value = peak_memory(r)
        cells[key][_params(r)["s"]] = fmt_bytes(value) if value else "n/a"
        note = r["metrics"].get("memory_method") or r["metrics"].get("peak_memory_note")
        if note:
            methods[r["implementation"] + ":" + r["kind"]] = str(note)
    headers = ((["run"] if multi_run else []) + ["kernel", "dtype", "mask", "pass", "heads"]
               + [f"S={s}" for s in lengths])
    body = [list(key) + [cells[key].get(s, "-") for s in lengths] for key in sorted(cells)]
    how = "".join(f"<li><b>{esc(k)}</b>: {esc(v)}</li>" for k, v in sorted(methods.items()))
    return table(headers, body, "cases") + f'<ul class="note">{how}</ul>'


def body(rows: list[dict[str, Any]], figure: Callable[[dict[str, Any] | None], str], colors: charts.Colors,
         workload: str = SECTION) -> str:
    """The section's HTML: rate charts per pass and dtype, memory charts per pass, the memory table.

    ``figure`` registers a figure dict with the page and returns its placeholder (``Page.figure``).
    """
    ok = usable(rows)
    if not ok:
        return ""
    multi = len(charts.run_order(ok)) > 1
    parts = ['<p class="note">FLOPs: 4·B·H·S²·D for the forward pass, halved with a causal mask; forward+backward '
             "counts 3.5× the forward (FlashAttention's convention), whatever a kernel actually recomputes, so rates "
             "of one problem compare as inverse times.</p>"]
    for pass_ in ("forward", "forward+backward"):
        prow = [r for r in ok if pass_name(r) == pass_]
        if not prow:
            continue
        figs = [rate_figure([r for r in prow if r["dtype"] == dtype],
                            f"{pass_} · {dtype}: TFLOP/s against S", colors)
                for dtype in dict.fromkeys(r["dtype"] for r in prow)]
        figs.append(memory_figure(prow, f"{pass_}: peak memory per kernel", colors))
        parts.append(f"<h3>{esc(workload)} · {esc(pass_)}</h3>"
                     + '<div class="grid">' + "".join(figure(f) for f in figs) + "</div>")
    mem = memory_table(ok, multi)
    if mem:
        parts.append(f"<h3>{esc(workload)} · memory each kernel needed</h3>"
                     '<p class="note">Peak memory of one call beyond its inputs (outputs, saved activations, '
                     "workspace), as each backend measures it:</p>" + mem)
    return "".join(parts)
