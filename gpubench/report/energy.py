"""The report's energy view: joules per call against size, and the energy speedup beside the time speedup.

Energy per call comes from each record's ``energy`` (NVML's total-energy counter for a GPU case,
RAPL for a CPU case, read around the sampling window; see :mod:`gpubench.machine`). Where no case
has it, the section is one line saying why (the most common reasons, with their counts). The
section also says how many cases ran on a busy machine or a throttled GPU (and which reasons held
the clock back), how many ran at the GPU's software power cap (normal under load, not flagged), and
marks the energies read over a window too short for NVML's sensor (``approximate``, shown ≈).

The energy speedup of an accelerator case is the CPU reference's joules per call divided by its
own, with the same CPU reference as its time speedup (the fastest CPU backend of the run at the
same problem). A GPU's energy is its board's alone: the host's share (RAPL, where readable) is
shown beside it, not added.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from gpubench.report import charts
from gpubench.report.html import esc, plot_text, table
from gpubench.report.model import RunData


def joules(row: dict[str, Any]) -> float | None:
    """A row's joules per call (None when it has none or is not ok)."""
    if row.get("status") != "ok":
        return None
    value = (row.get("energy") or {}).get("joules_per_call")
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def host_joules(row: dict[str, Any]) -> float | None:
    """The host CPU's joules per call during an accelerator case (RAPL), when measured."""
    value = ((row.get("energy") or {}).get("host") or {}).get("joules_per_call")
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def approximate(row: dict[str, Any]) -> bool:
    """Whether a row's energy was read over a window too short for its counter (NVML under 2 s)."""
    return bool((row.get("energy") or {}).get("approximate"))


def _fmt_j(value: float | None) -> str:
    if value is None:
        return "-"
    for scale, unit in ((1.0, "J"), (1e-3, "mJ"), (1e-6, "µJ")):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value * 1e9:.3g} nJ"


def energy_figure(rows: list[dict[str, Any]], title: str, colors: charts.Colors) -> dict[str, Any]:
    """Joules per call against problem size, log-log, one line per series and run (styled as the rate charts)."""
    rows = [r for r in rows if joules(r) is not None and r.get("x")]
    cs = charts.ChartSeries(rows, colors)
    traces = []
    for pts in charts._group_series(rows, cs).values():
        name = cs.name(pts[0])
        traces.append({
            "type": "scatter", "mode": "lines+markers", "name": plot_text(name),
            "x": [p["x"] for p in pts], "y": [joules(p) for p in pts],
            "text": [charts.hover(p, name, [f"{_fmt_j(joules(p))} per call ({p['energy'].get('source', '?')}, "
                                            f"{p['energy'].get('watts', 0):.3g} W)"]
                                  + ([f"approximate: {p['energy']['approximate']}"] if approximate(p) else []))
                     for p in pts],
            "hovertemplate": "%{text}<extra></extra>",
            "line": {"color": cs.color(pts[0]), "dash": cs.dash(pts[0]), "width": 2},
            "marker": {"symbol": cs.symbol(pts[0]), "size": 7},
        })
    x_title, x_axis = charts._x_axis(rows, [r["x"] for r in rows])
    layout = charts.base_layout(title, x_title, "joules per call (lower is better)")
    layout["yaxis"].update(charts.log_axis([joules(r) for r in rows], "number"))
    layout["xaxis"].update(x_axis)
    return {"data": traces, "layout": layout}


def _cpu_reference(rows: list[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    """CPU rows by (run, workload, dtype, problem, series): where an accelerator row's time speedup came from."""
    return {(r["run_index"], r["workload"], r["dtype"], r["problem"], r["series"]): r
            for r in rows if r["kind"] == "cpu" and r["status"] == "ok"}


def speedup_rows(runs: list[RunData]) -> list[list[str]]:
    """One table row per accelerator case whose CPU reference has energy too: time and energy speedups."""
    rows = [r for run in runs for r in run.rows]
    ref = _cpu_reference(rows)
    multi = len(runs) > 1
    out = []
    for r in rows:
        if r["kind"] == "cpu" or joules(r) is None or not r.get("fastest_cpu"):
            continue
        cpu = ref.get((r["run_index"], r["workload"], r["dtype"], r["problem"], r["fastest_cpu"]))
        if cpu is None or joules(cpu) is None:
            continue
        energy_speedup = joules(cpu) / joules(r)
        rate = ""
        if r.get("flops"):
            rate = f"{r['flops'] / 1e9 / joules(r):.3g} GFLOP/J"
        elif r.get("bytes"):
            rate = f"{r['bytes'] / 1e9 / joules(r):.3g} GB/J"
        out.append(([r["run_label"]] if multi else []) + [
            r["workload"], r["size"], r["dtype"], r["series"], f"{r['speedup_cpu']:.3g}×",
            f"{energy_speedup:.3g}×", ("≈ " if approximate(r) else "") + _fmt_j(joules(r)), _fmt_j(host_joules(r)),
            f"{_fmt_j(joules(cpu))} ({cpu['series']})", rate])
    return out


def _reasons(rows: list[dict[str, Any]]) -> str:
    counts = Counter(str((r.get("energy") or {}).get("reason") or "not measured") for r in rows
                     if r["status"] == "ok" and joules(r) is None)
    return "; ".join(f"{reason} ({n} case{'s' if n > 1 else ''})" for reason, n in counts.most_common(3))


def _gpu_state(row: dict[str, Any]) -> dict[str, Any]:
    gpu = (row.get("machine") or {}).get("gpu")
    return gpu if isinstance(gpu, dict) else {}


def throttle_reasons(rows: list[dict[str, Any]]) -> Counter:
    """How many ``throttled`` rows each clock-lowering reason held back (``hw_thermal_slowdown``: 2, ...)."""
    counts: Counter = Counter()
    for r in rows:
        if "throttled" in (r.get("flags") or ()):
            counts.update(_gpu_state(r).get("throttled_by") or ["reason not recorded"])
    return counts


def _machine_note(rows: list[dict[str, Any]]) -> str:
    ok = [r for r in rows if r["status"] == "ok"]
    busy = sum("busy" in (r.get("flags") or ()) for r in ok)
    throttled = sum("throttled" in (r.get("flags") or ()) for r in ok)
    capped = sum(bool(_gpu_state(r).get("power_capped")) for r in ok)
    if not ok:
        return ""
    text = (f"{busy} of {len(ok)} measured cases ran on a busy machine (other processes took more than a quarter "
            f"of a core while they were timed); {throttled} on a throttled GPU")
    if throttled:
        text += " (" + ", ".join(f"{name}: {n}" for name, n in throttle_reasons(ok).most_common()) + ")"
    text += ". "
    if capped:
        text += (f"{capped} ran at the GPU's software power cap, the normal state of a loaded GPU: recorded, "
                 "not flagged (throttled means thermal or hardware slowdown, power brake or sync boost). ")
    if busy or throttled:
        text += "Their times are not a property of the code alone: gpubench compare calls them inconclusive."
    return f'<p class="note">{esc(text.strip())}</p>'


def energy_section(page: Any, runs: list[RunData], colors: charts.Colors) -> None:
    """Add the "Energy" section to ``page`` (a :class:`gpubench.report.build.Page`)."""
    rows = [r for run in runs for r in run.rows]
    if not any(r["status"] == "ok" for r in rows):
        return
    parts = [_machine_note(rows)]
    measured = [r for r in rows if joules(r) is not None]
    if not measured:
        parts.append(f'<p class="note">No energy was measured: {esc(_reasons(rows))}.</p>')
        page.section("energy", "Energy and machine state", "".join(parts))
        return
    parts.append('<p class="note">Joules per call from NVML\'s total-energy counter (a GPU board) or RAPL '
                 "(the CPU packages), read around each case's sampling window and divided by the calls in it. "
                 "Energy speedup = the CPU reference's joules per call over the accelerator's, with the same "
                 "CPU reference as the time speedup. A GPU's joules are its board's alone; the host's, where "
                 "RAPL is readable, are shown beside them.</p>")
    by_key: dict[tuple, list] = defaultdict(list)
    for r in measured:
        by_key[(r["workload"], r["dtype"])].append(r)
    figs = [page.figure(energy_figure(krows, f"{workload} {dtype}: joules per call against size", colors))
            for (workload, dtype), krows in by_key.items()]
    parts.append('<div class="grid">' + "".join(figs) + "</div>")
    speed = speedup_rows(runs)
    if speed:
        headers = (["run"] if len(runs) > 1 else []) + [
            "workload", "size", "dtype", "accelerator", "time speedup", "energy speedup", "J per call",
            "host J per call", "CPU reference J per call", "work per joule"]
        parts.append(table(headers, speed, "cases"))
    rough = [r for r in measured if approximate(r)]
    if rough:
        parts.append(f'<p class="note">{len(rough)} of {len(measured)} energies (marked ≈) are approximate: '
                     f"{esc(rough[0]['energy']['approximate'])}. A case sampled for 2 s or more reads it reliably "
                     "(e.g. --budget 3 --target 0.001, so sampling runs its whole budget).</p>")
    missing = _reasons(rows)
    if missing:
        parts.append(f'<p class="note">Without energy: {esc(missing)}.</p>')
    page.section("energy", "Energy and machine state", "".join(parts))
