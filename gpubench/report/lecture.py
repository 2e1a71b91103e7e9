"""The report's three-ways section: one problem timed as in the lecture, on a synchronized host clock, and by gpubench.

The course notes time a 5000×5000 float32 product with ``timeit`` and no synchronization (NumPy 3.8 s,
TensorFlow 0.02 s on Colab's Tesla K80, "≈ 175×"). The ``lecture`` suite times each case three ways (the
``timing`` mode, :mod:`gpubench.timing`); this section puts them side by side: per backend and device, one bar
per way (FLOP/s at the median time, log axis) with the device's peak drawn as a line, and beside the chart the
lecture's claimed speedup, the naive one measured here (way 1) and the honest one (way 3).

The section is chosen by the data, not by a suite name or a workload: it appears for every problem of a run
that has a case timed a naive way (``timing = "lecture"`` or ``"host_sync"``), so a user's own suite that sets
``timing`` gets it too, and the workload's usual section keeps showing the real measurements.

Speedup rules (:func:`speedups`):

* **naive** (way 1): the baseline's (NumPy's) way-1 time over the best accelerator's way-1 time; on a machine
  where no accelerator ran, over the best other backend's. Shown to be shown wrong: it is no measurement.
* **same pair, honest** (way 3): the same two series, timed by gpubench.
* **honest** (way 3): the fastest CPU backend's time over the best accelerator's; None where no accelerator ran.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gpubench.datasheet import datasheet_for, gemm_peak
from gpubench.records import FLAGS
from gpubench.report import analysis, charts
from gpubench.report.html import esc, plot_text, table
from gpubench.report.model import RunData
from gpubench.rows import ceilings_by_device, match_device, speedup_halfwidth
from gpubench.tables import fmt_time
from gpubench.timing import HOST_SYNC, LECTURE, NAIVE_TIMINGS
from gpubench.workloads.base import TIMING, TIMING_DEFAULT

SECTION_ID = "three-ways"
SECTION_TITLE = "The lecture's experiment: three ways to time it"

#: The ways, in order: (timing mode, legend text, colour).
WAYS = (
    (LECTURE, "1 · as in the lecture: timeit, no synchronization (not a measurement)", "#cf222e"),
    (HOST_SYNC, "2 · host clock, device synchronized around each call", "#bf8700"),
    (TIMING_DEFAULT, "3 · gpubench: device events, warm-up, adaptive stopping", "#1a7f37"),
)
WAY_NAMES = {LECTURE: "way 1 (as in the lecture)", HOST_SYNC: "way 2 (synchronized host clock)",
             TIMING_DEFAULT: "way 3 (gpubench)"}
#: Fraction of a group's width the bars take (the rest is the gap between backends).
BAR_FILL = 0.78


@dataclass(frozen=True)
class LectureClaim:
    """The course notes' figures: NumPy's and TensorFlow's ``timeit`` times of a float32 ``n³`` product."""

    n: int = 5000
    numpy_s: float = 3.8
    tensorflow_s: float = 0.02
    speedup: float = 175.0
    where: str = "Colab, Tesla K80"
    peak_tflops: float = 4.37
    """fp32 peak of one GK210 (half a K80: 2,496 CUDA cores × 2 FLOP × 875 MHz boost), the GPU Colab lent."""

    @property
    def flops(self) -> float:
        return 2.0 * self.n ** 3

    @property
    def tensorflow_tflops(self) -> float:
        """The rate the TensorFlow time implies: 12.5 TFLOP/s."""
        return self.flops / self.tensorflow_s / 1e12

    @property
    def times_peak(self) -> float:
        """How many times the GPU's peak that rate is (2.9×)."""
        return self.tensorflow_tflops / self.peak_tflops


CLAIM = LectureClaim()


def timing_of(row: dict[str, Any]) -> str:
    """A row's timing mode (``gpubench`` where its spec does not set one)."""
    return str(row["params"].get(TIMING, TIMING_DEFAULT))


def _problem(row: dict[str, Any]) -> tuple:
    """What the ways of one experiment share: workload, dtype and every parameter but the timing."""
    params = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in row["params"].items()
                          if k != TIMING))
    return row["workload"], row["dtype"], params


@dataclass
class Series:
    """One implementation on one device, with its row per timing mode."""

    name: str
    backend: str
    kind: str
    ways: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def accelerator(self) -> bool:
        return self.kind != "cpu"


@dataclass
class Experiment:
    """One problem of one run timed several ways: its series (ok rows only) and the rows that did not run."""

    run: RunData
    workload: str
    dtype: str
    size: str
    flops: float | None
    series: list[Series]
    not_ok: list[dict[str, Any]]

    @property
    def title(self) -> str:
        return f"{self.workload} {self.size} {self.dtype}"


def experiments(runs: list[RunData]) -> list[Experiment]:
    """Every problem of every run that has a case timed a naive way, with all its ways (rows grouped by series:
    the CPU ones first, the run's baseline first among them)."""
    out = []
    for run in runs:
        baseline = run.info.baseline or "numpy"
        groups: dict[tuple, list[dict[str, Any]]] = {}
        for r in run.rows:
            groups.setdefault(_problem(r), []).append(r)
        for (workload, dtype, _), rows in groups.items():
            if not any(timing_of(r) in NAIVE_TIMINGS for r in rows):
                continue
            series: dict[str, Series] = {}
            for r in rows:
                if r["status"] != "ok" or not r.get("median_s"):
                    continue
                s = series.setdefault(r["series"], Series(r["series"], r["backend"], r["kind"]))
                s.ways[timing_of(r)] = r
            first = next((r for r in rows if timing_of(r) == TIMING_DEFAULT), rows[0])
            size = " ".join(t for t in first["size"].split() if not t.startswith(f"{TIMING}="))
            out.append(Experiment(run, workload, dtype, size, first.get("flops"),
                                  sorted(series.values(), key=lambda s: (s.accelerator, s.backend != baseline,
                                                                         s.name)),
                                  [r for r in rows if r["status"] != "ok"]))
    return out


# --- speedups -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ratio:
    """``numerator`` time over ``denominator`` time: how many times faster the denominator's series is."""

    value: float
    numerator: dict[str, Any]
    denominator: dict[str, Any]
    basis: str
    halfwidth: float | None = None
    """Relative half-width of its 95 % interval (from both medians' intervals); None for way 1."""


@dataclass(frozen=True)
class Speedups:
    """The section's three numbers (each None where its rows are missing), with why one is missing."""

    naive: Ratio | None
    same_pair: Ratio | None
    honest: Ratio | None
    fastest_cpu_vs_baseline: Ratio | None
    why_no_honest: str = ""


def _best(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    return min(rows, key=lambda r: r["median_s"]) if rows else None


def _ratio(num: dict[str, Any] | None, den: dict[str, Any] | None, basis: str, interval: bool) -> Ratio | None:
    if num is None or den is None:
        return None
    half = speedup_halfwidth(num, den) if interval else None
    return Ratio(num["median_s"] / den["median_s"], num, den, basis, half)


def speedups(exp: Experiment, baseline: str = "numpy") -> Speedups:
    """The naive, same-pair and honest speedups of one experiment (see the module's rules).

    ``baseline`` is the run's baseline backend (the lecture's NumPy); its CPU series is the naive numerator.
    """
    def way(series: list[Series], timing: str) -> list[dict[str, Any]]:
        return [s.ways[timing] for s in series if timing in s.ways]

    base = next((s for s in exp.series if s.kind == "cpu" and s.backend == baseline), None)
    accel = [s for s in exp.series if s.accelerator]
    others = accel or [s for s in exp.series if s is not base and not s.accelerator]
    basis = "the best accelerator" if accel else "the best other CPU backend (no accelerator ran)"
    naive = same = None
    if base is not None and LECTURE in base.ways:
        den = _best(way(others, LECTURE))
        naive = _ratio(base.ways[LECTURE], den, basis, interval=False)
        if den is not None:
            pair = next(s for s in exp.series if s.name == den["series"])
            if TIMING_DEFAULT in base.ways and TIMING_DEFAULT in pair.ways:
                same = _ratio(base.ways[TIMING_DEFAULT], pair.ways[TIMING_DEFAULT], "the same two series",
                              interval=True)
    cpu3 = [r for r in way([s for s in exp.series if not s.accelerator], TIMING_DEFAULT) if r["measurement"]]
    fastest_cpu = _best(cpu3)
    honest = _ratio(fastest_cpu, _best(way(accel, TIMING_DEFAULT)), "the fastest CPU backend", interval=True)
    why = ""
    if honest is None:
        why = ("no accelerator case ran in this run" if not accel or not way(accel, TIMING_DEFAULT)
               else "no CPU case was measured by gpubench")
    base3 = base.ways.get(TIMING_DEFAULT) if base is not None else None
    vs_base = _ratio(base3, fastest_cpu, f"the baseline {baseline}", interval=True) if fastest_cpu else None
    return Speedups(naive, same, honest, vs_base, why)


# --- the device's peak ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Peak:
    """A device's compute peak in GFLOP/s and where it comes from."""

    gflops: float
    source: str
    measured: bool


def peaks(exp: Experiment, series: Series) -> list[Peak]:
    """The peaks a series is drawn against: the physical ceiling its cases were held against (recorded when
    measured: a GPU's datasheet, a CPU's ISA × clock) or its GPU's datasheet by name, and the machine's measured
    ceiling (``gpubench calibrate``) where there is one."""
    rows = list(series.ways.values())
    out: list[Peak] = []
    recorded = next((r["metrics"].get("physical_ceiling") for r in rows
                     if isinstance(r["metrics"].get("physical_ceiling"), dict)), None)
    if recorded and isinstance(recorded.get("value"), (int, float)):
        out.append(Peak(float(recorded["value"]), f"{recorded.get('name', 'compute')}: {recorded.get('source', '')}",
                        False))
    else:
        found = datasheet_for(rows[0].get("device_name") or "") if series.accelerator else None
        dtype = rows[0].get("compute_dtype") or exp.dtype
        peak = gemm_peak(found[1], dtype) if found else None  # the lecture's experiment is a matmul
        if peak:
            out.append(Peak(peak[0] * 1000.0, f"compute {dtype}: datasheet {found[0]}", False))
    dc = match_device(ceilings_by_device(exp.run.ceilings), rows[0])
    if dc is not None:
        dtype = rows[0].get("compute_dtype") or exp.dtype
        value = dc.peaks.get(dtype) or dc.peaks.get(exp.dtype)
        if value:
            quality = charts.QUALITY_TEXT.get(dc.quality.get(dtype, "measured"), "measured")
            run = f", calibration run {exp.run.ceilings_run}" if exp.run.ceilings_run is not None else ""
            out.append(Peak(float(value), f"peak {dtype}: gpubench calibrate ({quality}{run})", True))
    return out


# --- the chart --------------------------------------------------------------------------------------------


def _rate(row: dict[str, Any]) -> float | None:
    return row["gflops"] * 1e9 if row.get("gflops") else None


def figure(exp: Experiment, title: str) -> dict[str, Any] | None:
    """Grouped bars (one group per series, one bar per way: FLOP/s at the median, log axis) and each device's
    peak as a line over its group; bars above a peak are ringed. None when nothing has a rate."""
    series = [s for s in exp.series if any(_rate(r) for r in s.ways.values())]
    if not series:
        return None
    width = BAR_FILL / len(WAYS)
    traces: list[dict[str, Any]] = []
    position: dict[int, float] = {}
    values: list[float] = []
    for w, (timing, label, color) in enumerate(WAYS):
        xs, ys, text = [], [], []
        for i, s in enumerate(series):
            r = s.ways.get(timing)
            if r is None or not _rate(r):
                continue
            xs.append(i)
            ys.append(_rate(r))
            values.append(_rate(r))
            position[id(r)] = i + (w - (len(WAYS) - 1) / 2) * width
            notes = [f"{WAY_NAMES[timing]}: median {fmt_time(r['median_s'])} of {r['n_samples']} "
                     f"sample{'s' if r['n_samples'] != 1 else ''}"]
            notes += [f"⚠ {f}: {FLAGS.get(f, f)}" for f in r.get("flags") or []]
            text.append(charts.hover(r, s.name, notes))
        if not xs:
            continue
        traces.append({"type": "bar", "name": plot_text(label), "x": xs, "y": ys, "width": width,
                       "offsetgroup": timing, "text": text, "hovertemplate": "%{text}<extra></extra>",
                       "textposition": "none",
                       "marker": {"color": color}})
    for measured in (False, True):
        xs: list[float | None] = []
        ys: list[float | None] = []
        text: list[str] = []
        for i, s in enumerate(series):
            for p in peaks(exp, s):
                if p.measured != measured:
                    continue
                label = plot_text(f"{s.name}: {p.gflops * 1e9:.3g} FLOP/s peak ({p.source})")
                xs += [i - BAR_FILL / 2 - 0.04, i + BAR_FILL / 2 + 0.04, None]
                ys += [p.gflops * 1e9, p.gflops * 1e9, None]
                text += [label, label, ""]
                values.append(p.gflops * 1e9)
        if xs:
            name = ("peak: gpubench calibrate (measured)" if measured
                    else "peak: physical ceiling (datasheet, ISA × clock)")
            traces.append({"type": "scatter", "mode": "lines", "name": name, "x": xs, "y": ys, "text": text,
                           "hovertemplate": "%{text}<extra></extra>",
                           "line": {"color": "#57606a" if measured else "#111", "width": 2,
                                    "dash": "dot" if measured else "solid"}})
    rows = [r for s in series for r in s.ways.values() if id(r) in position]
    ring = charts.flagged_trace(rows, lambda r: position[id(r)], _rate)
    if ring:
        ring["name"] = "⚠ above the device's peak (see hover)"
        traces.append(ring)
    layout = charts.base_layout(title, "backend on its device", "FLOP/s at the median time", log_x=False)
    # Two-line labels (implementation / device), never rotated: the page is laid out for straight ones.
    ticks = [plot_text(s.name.split(":", 1)[0]) + "<br>" + plot_text(s.name.split(":", 1)[-1]) for s in series]
    layout["xaxis"].update({"type": "linear", "tickmode": "array", "tickvals": list(range(len(series))),
                            "ticktext": ticks, "tickangle": 0, "range": [-0.6, len(series) - 0.4],
                            "showgrid": False})
    layout["yaxis"].update(charts.log_axis(values, "number"))
    layout.update({"barmode": "group", "bargap": 1 - BAR_FILL})
    return {"data": traces, "layout": layout}


# --- the text beside it ----------------------------------------------------------------------------------------


def rate_text(gflops: float) -> str:
    """``81.6 GFLOP/s``, ``45 TFLOP/s``, ``16.5 PFLOP/s``."""
    for scale, unit in ((1e6, "PFLOP/s"), (1e3, "TFLOP/s")):
        if gflops >= scale:
            return f"{gflops / scale:.3g} {unit}"
    return f"{gflops:.3g} GFLOP/s"


def times_text(value: float) -> str:
    """A speedup as a person reads it: ``1.56×``, ``190×``, ``2,943×``."""
    return f"{value:,.0f}×" if value >= 100 else f"{value:.3g}×"


def _pm(ratio: Ratio) -> str:
    if ratio.halfwidth is None:
        return ""
    return f" (±{ratio.halfwidth:.0%})" if ratio.halfwidth >= 0.01 else " (±<1%)"


def _pair(ratio: Ratio) -> str:
    n, d = ratio.numerator, ratio.denominator
    return f"{n['series']} {fmt_time(n['median_s'])} / {d['series']} {fmt_time(d['median_s'])}"


def speedup_rows(exp: Experiment, sp: Speedups) -> list[list[str]]:
    """The speedups beside the chart: the lecture's claim, the naive one, the same pair honestly, the honest one."""
    c = CLAIM
    same_size = exp.flops == c.flops
    claim = (f"≈ {c.speedup:g}×: NumPy {c.numpy_s:g} s, TensorFlow {c.tensorflow_s:g} s ({c.where}). 2·{c.n}³ FLOP "
             f"in {c.tensorflow_s:g} s is {c.tensorflow_tflops:.3g} TFLOP/s, {c.times_peak:.2g}× the "
             f"{c.peak_tflops:g} TFLOP/s fp32 peak of the K80's GPU: the clock measured the launch")
    if not same_size:
        claim += f" (the lecture's size is {c.n}³; this run measured {exp.size})"
    rows = [["the lecture's claim", claim]]
    if sp.naive is not None:
        rows.append(["naive speedup here (way 1)",
                     f"{times_text(sp.naive.value)}: {_pair(sp.naive)}, over {sp.naive.basis}. Not a measurement: "
                     "no synchronization, so an asynchronous call is timed at its launch"])
    else:
        rows.append(["naive speedup here (way 1)", "not measured (needs the baseline's and another series' way 1)"])
    if sp.same_pair is not None:
        rows.append(["the same two, timed by gpubench (way 3)", f"{times_text(sp.same_pair.value)}{_pm(sp.same_pair)}: "
                     f"{_pair(sp.same_pair)}"])
    if sp.honest is not None:
        rows.append(["honest speedup (way 3)", f"{times_text(sp.honest.value)}{_pm(sp.honest)}: "
                     f"{_pair(sp.honest)}, the best accelerator over the fastest CPU backend"])
    else:
        rows.append(["honest speedup (way 3)", f"none: {sp.why_no_honest}"])
    if sp.fastest_cpu_vs_baseline is not None and sp.fastest_cpu_vs_baseline.value != 1.0:
        r = sp.fastest_cpu_vs_baseline
        rows.append(["fastest CPU backend vs the baseline (way 3)", f"{times_text(r.value)}{_pm(r)}: {_pair(r)}. "
                     "A speedup over a slow CPU baseline is not the headline"])
    return rows


def _cell(r: dict[str, Any] | None) -> str:
    if r is None:
        return "-"
    rate = f" · {rate_text(r['gflops'])}" if r.get("gflops") else ""
    flags = [f for f in r.get("flags") or [] if f in ("implausible", "above_ceiling", "not_a_measurement")]
    return f"{fmt_time(r['median_s'])}{rate}" + (f" ({', '.join(flags)})" if flags else "")


def ways_table(exp: Experiment) -> str:
    """One row per series: its median time and rate by each way, with the flags that matter here."""
    rows = [[s.name] + [_cell(s.ways.get(t)) for t, _, _ in WAYS] for s in exp.series]
    return table(["backend on its device"] + [WAY_NAMES[t] for t, _, _ in WAYS], rows, "kv")


def section_body(runs: list[RunData], figure_of: Callable[..., str]) -> str:
    """The section's HTML for every experiment ('' when no run has a case timed a naive way).

    ``figure_of(fig, wide)`` registers a figure with the page and returns its placeholder (``Page.figure``).
    """
    found = experiments(runs)
    if not found:
        return ""
    parts = ['<p class="note">The course notes time a 5000×5000 float32 product with <code>timeit</code> and report '
             "NumPy 3.8 s, TensorFlow 0.02 s, “≈ 175×” (Colab, Tesla K80). Each case below is timed three ways on "
             "the same inputs, already on the device and after one verified call: <b>1</b> as in the lecture "
             "(<code>timeit</code>, one call per repeat, 10 repeats, no synchronization), <b>2</b> on the host clock "
             "with the device synchronized before and after each of 10 calls, <b>3</b> by gpubench (device events "
             "where the backend has them, warm-up, calls batched per sample, adaptive stopping). A way-1 bar above "
             "its device's peak is not a fast library: the call returned before the work was done. Way 1 is never a "
             "speedup, a headline or a comparison.</p>"]
    multi = len(runs) > 1
    for exp in found:
        title = (f"{exp.run.label}: " if multi else "") + f"{exp.title}: three ways, FLOP/s and the device's peak"
        sp = speedups(exp, exp.run.info.baseline or "numpy")
        fig = figure_of(figure(exp, title), True)
        side = "<div><h4>Speedups</h4>" + table(["", ""], speedup_rows(exp, sp)) + "</div>"
        times = "<div><h4>Median time and rate, each way</h4>" + ways_table(exp) + "</div>"
        parts.append(f"<h3>{esc(title.split(': three ways')[0])}</h3>{fig}"
                     f'<div class="grid">{side}{times}</div>')
        missing = [r for r in exp.not_ok if r["status"] == "skipped"]
        if missing:
            series = sorted({r["series"] for r in missing})
            parts.append(f'<p class="note">Not run here ({len(missing)} cases, see Problems): '
                         f"{esc(', '.join(series))}.</p>")
        if not any(p for s in exp.series for p in peaks(exp, s)):
            parts.append('<p class="note">No peak is known for these devices (a CPU whose clock the system hides, a '
                         "GPU without a datasheet entry): run <code>gpubench calibrate</code> for a measured one.</p>")
    return "".join(parts)


def compared(ratio: Ratio, what: str, against: str) -> str:
    """``X is 438× Y``, or both times where the interval is too wide to quote a ratio (the headline rule,
    :data:`gpubench.report.analysis.HEADLINE_MAX_CI`)."""
    fast, slow = ratio.denominator, ratio.numerator
    if ratio.halfwidth is not None and ratio.halfwidth <= analysis.HEADLINE_MAX_CI:
        return f"{what}, {fast['series']}, is {times_text(ratio.value)} {against} ({slow['series']})"
    return (f"{what}, {fast['series']} ({fmt_time(fast['median_s'])}), against {against}, {slow['series']} "
            f"({fmt_time(slow['median_s'])}): too noisy to quote a ratio (±{ratio.halfwidth or 0:.0%})")


def headlines(runs: list[RunData]) -> list[str]:
    """One line per experiment for *At a glance*: the honest speedup (way 3) beside the lecture's claim, never way 1."""
    out = []
    for exp in experiments(runs):
        prefix = f"{exp.run.label}: " if len(runs) > 1 else ""
        sp = speedups(exp, exp.run.info.baseline or "numpy")
        if sp.honest is not None:
            text = compared(sp.honest, "the best accelerator", "the fastest CPU backend")
        elif sp.fastest_cpu_vs_baseline is not None:
            text = "no accelerator ran; " + compared(sp.fastest_cpu_vs_baseline, "the fastest CPU backend",
                                                      "the baseline")
        else:
            continue
        out.append(f"{prefix}The lecture's experiment ({exp.title}), timed by gpubench: {text} (the lecture "
                   f"claimed ≈ {CLAIM.speedup:g}×; see “{SECTION_TITLE}” for what its clock measured).")
    return out
