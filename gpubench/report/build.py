"""Assemble the self-contained HTML report from stored runs.

One file: the page, its data as JSON, Plotly's JavaScript embedded once, and a small script
that draws the figures and the sortable table. Nothing is fetched when it opens. Every section
appears as soon as its data exists (a transfer section once transfer cases were measured, an
MNIST section once a case carries an accuracy curve, a roofline once cases have FLOPs and bytes).
"""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from gpubench import __version__, tables
from gpubench.atomicfile import write_text
from gpubench.datasheet import PEAK_TEXT, datasheet_for
from gpubench.envinfo import machine_key
from gpubench.report import analysis, attention, charts, ddp, energy, inference, input_pipeline, lecture
from gpubench.report.html import esc, table
from gpubench.report.model import RunData, load_runs
from gpubench.report.page import assemble
from gpubench.rows import DeviceCeilings, ceilings_by_device, match_device
from gpubench.store import CALIBRATE_SUITE, ResultStore
from gpubench.tables import fmt_bytes


class Page:
    """Collects sections, figures and navigation links while the report is built."""

    def __init__(self) -> None:
        self.sections: list[str] = []
        self.nav: list[tuple[str, str]] = []
        self.figures: list[dict[str, Any]] = []

    def figure(self, fig: dict[str, Any] | None, wide: bool = False) -> str:
        """Register a figure (``wide``: it spans the page, not a grid column); return its placeholder div."""
        if fig is None or not fig.get("data"):
            return ""
        fid = f"fig{len(self.figures)}"
        charts.fit_legend(fig, charts.WIDE_LEGEND_WIDTH if wide else charts.LEGEND_WIDTH)
        self.figures.append({"id": fid, **fig})
        return f'<div class="plot" id="{fid}"></div>'

    def section(self, anchor: str, title: str, body: str) -> None:
        """Add a section with a navigation link."""
        self.nav.append((anchor, title))
        self.sections.append(f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{body}</section>')


# --- sections ------------------------------------------------------------------------------------


def banners(runs: list[RunData]) -> list[str]:
    """Warnings a reader must see before any number: most cases noisy or busy, with the machine's load.
    (A machine without a GPU is said once among the headlines.)"""
    out = []
    for run in runs:
        prefix = f"{run.label}: " if len(runs) > 1 else ""
        note = tables.noise_note(run.env, run.rows)
        if note:
            out.append(prefix + note)
    return out


def _card(page: Page, runs: list[RunData]) -> None:
    """The machine card (:mod:`gpubench.report.card`) of each tour run, first."""
    from gpubench.report import card

    for run in runs:
        if card.wants_card(run):
            title = "The machine at a glance" + (f" ({run.label})" if len(runs) > 1 else "")
            page.section("card" if len(runs) == 1 else f"card-{run.info.id}", title, card.card_html(card.card(run)))


def _glance(page: Page, runs: list[RunData]) -> None:
    lines = analysis.headlines(runs) + lecture.headlines(runs)
    if not lines:
        lines = ["No case produced a measurement yet."]
    warn = "".join(f'<div class="banner" role="note">⚠ {esc(b)}</div>' for b in banners(runs))
    items = "".join(f"<li>{esc(s)}</li>" for s in lines)
    baselines = sorted({r.info.baseline for r in runs if r.info.baseline})
    named = esc(", ".join(b + ":cpu" for b in baselines) or "none")
    note = ("Speedup is the CPU case's median time divided by this case's median time, at the same workload, "
            "dtype and size. The headline compares with the <b>fastest CPU backend of the run</b>; the "
            f"named baseline ({named}) is shown too. A TF32 or +copies case is compared with the same size's "
            "plain CPU case; a cold-cache case with a cold-cache one. These are the figures "
            "<code>gpubench show</code>, <code>export</code> and <code>compare</code> give too.")
    page.section("glance", "At a glance", f'{warn}<ul class="headlines">{items}</ul><p class="note">{note}</p>')


def _flatten(prefix: str, value: Any, out: list[list[str]]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for i, v in enumerate(value):
            _flatten(f"{prefix}[{i}]", v, out)
    elif isinstance(value, list):
        out.append([prefix, ", ".join(str(v) for v in value)])
    else:
        out.append([prefix, "" if value is None else str(value)])


def _machine_table(env: dict[str, Any], ceilings: list[dict[str, Any]]) -> str:
    cpu = env.get("cpu") or {}
    rows: list[list[Any]] = [
        ["CPU", cpu.get("model", "?")],
        ["cores", f"{cpu.get('physical_cores') or '?'} physical, {cpu.get('logical_cores') or '?'} logical"
                  + (f", {cpu['affinity']} usable" if cpu.get("affinity") else "")],
        ["vector ISA", ", ".join(cpu.get("isa") or []) or "?"],
        ["memory", fmt_bytes(env.get("memory_bytes")) if env.get("memory_bytes") else "?"],
        ["OS", env.get("os", "?")],
        ["Python", env.get("python", "?")],
    ]
    for g in env.get("gpus") or []:
        if isinstance(g, dict):
            rows.append(["GPU", f"{g.get('name', '?')} · {g.get('memory', '?')} · driver {g.get('driver', '?')}"])
    if not env.get("gpus"):
        rows.append(["GPU", "none found by nvidia-smi"])
    for lib in env.get("blas") or []:
        if isinstance(lib, dict):
            rows.append(["BLAS / threads", f"{lib.get('internal_api', '?')} {lib.get('version', '')} · "
                         f"{lib.get('num_threads', '?')} threads · {lib.get('architecture', '')}".strip(" ·")])
    for name, info in sorted((env.get("backends") or {}).items()):
        if not isinstance(info, dict):
            continue
        if not info.get("available", True):
            rows.append([f"backend {name}", f"unavailable: {info.get('reason', '?')}"])
            continue
        facts: list[list[str]] = []
        _flatten("", {k: v for k, v in info.items() if k not in ("available", "devices", "blas")}, facts)
        devs = [f"{d.get('id')} ({d.get('name')})" for d in info.get("devices") or [] if isinstance(d, dict)]
        text = "; ".join(f"{k} {v}" for k, v in facts)
        dev_text = "devices: " + ", ".join(devs) if devs else ""
        rows.append([f"backend {name}", "; ".join(x for x in (text, dev_text) if x)])
    git = env.get("git") if isinstance(env.get("git"), dict) else {}
    for who, facts in (("project code", git.get("project")), ("gpubench", git.get("gpubench"))):
        if isinstance(facts, dict) and (facts.get("commit") or facts.get("version")):
            short = str(facts.get("short") or "")
            text = f"{facts['branch']}@{short}" if facts.get("branch") and short else short
            text += " (uncommitted changes)" if facts.get("dirty") and short else ""
            text = ", ".join(x for x in (f"version {facts['version']}" if facts.get("version") else "", text) if x)
            rows.append([who, text])
    libs = env.get("libraries") or {}
    if libs:
        rows.append(["libraries", ", ".join(f"{k} {v}" for k, v in sorted(libs.items()))])
    if env.get("env_vars"):
        rows.append(["environment", ", ".join(f"{k}={v}" for k, v in sorted(env["env_vars"].items()))])
    html_out = table(["", ""], rows)
    if ceilings:
        crow = [[c["device"], c["kind"], c.get("dtype") or "", f"{c['value']:.4g} {c['unit']}",
                 charts.QUALITY_TEXT.get(c.get("quality", "measured"), str(c.get("quality"))), c.get("method", "")]
                for c in ceilings]
        html_out += "<h3>Measured ceilings (gpubench calibrate)</h3>" + table(
            ["device", "ceiling", "dtype", "value", "source", "how"], crow, cls="cases")
    names = [str(g.get("name", "")) for g in env.get("gpus") or [] if isinstance(g, dict)]
    sheet_rows = []
    for n in dict.fromkeys(names):
        found = datasheet_for(n)
        if found:
            disp, peaks = found
            sheet_rows.append([disp] + [f"{peaks[k]:g}" if k in peaks else "-"
                                        for k in ("float64", "float64_tensor", "float32", "tf32", "bfloat16",
                                                  "float16")]
                              + [f"{peaks.get('mem_gbps', 0):g}"])
    if sheet_rows:
        html_out += ("<h3>Datasheet peaks (vendor, dense; no program reaches them)</h3>" + table(
            ["GPU", "FP64 vector TFLOP/s", "FP64 tensor", "FP32", "TF32", "BF16", "FP16", "memory GB/s"], sheet_rows,
            cls="cases"))
    return html_out


def _machines(page: Page, runs: list[RunData]) -> None:
    groups: dict[tuple, list[RunData]] = defaultdict(list)
    for r in runs:
        groups[machine_key(r.env)].append(r)
    blocks = []
    for members in groups.values():
        first = members[0]
        who = ", ".join(m.label for m in members)
        host = first.env.get("hostname", "")
        blocks.append(f"<div><h3>{esc(host or 'machine')} <span class='muted'>({esc(who)})</span></h3>"
                      f"{_machine_table(first.env, first.ceilings)}</div>")
    page.section("machine", "The machine" if len(groups) == 1 else "The machines",
                 f'<div class="machines">{"".join(blocks)}</div>')


def _num(value: Any, missing: str = "-") -> str:
    """A metric for a table: 4 significant digits, or ``missing``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return missing
    return f"{value:.4g}"


def _thousands(value: Any) -> str:
    """``12,345`` (``-`` for a missing value)."""
    return f"{value:,.0f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def _section_of(workload: str, rows: list[dict[str, Any]]) -> str:
    """The report section a workload asks for (its ``report_section``); guessed from the data for a workload
    this machine does not have installed."""
    from gpubench.workloads import find_workload

    w = find_workload(workload)
    if w is not None:
        return w.report_section
    if any("direction" in r["params"] for r in rows):
        return "transfer"
    if any(k in r["metrics"] for r in rows for k in ("curve", "epoch_curve", "time_to_target_s")):
        return "training"
    return "throughput"


def _throughput_parts(page: Page, workload: str, ok: list[dict[str, Any]], colors: charts.Colors) -> list[str]:
    parts = []
    baselines = ", ".join(sorted({r["baseline"] for r in ok if r["baseline"]})) or "none"
    for dtype in dict.fromkeys(r["dtype"] for r in ok if r.get("rate")):
        drows = [r for r in ok if r["dtype"] == dtype]
        unit = "GB/s" if drows[0]["unit"] == "gbps" else "GFLOP/s"
        figs = [charts.throughput_figure(drows, f"{workload} {dtype}: {unit} against size", colors),
                charts.speedup_figure(drows, f"{workload} {dtype}: speedup", baselines, colors)]
        parts.append(f"<h3>{esc(workload)} · {esc(dtype)}</h3>"
                     + '<div class="grid">' + "".join(page.figure(f) for f in figs) + "</div>")
    return parts


def _transfer_parts(page: Page, workload: str, ok: list[dict[str, Any]], colors: charts.Colors) -> list[str]:
    return [page.figure(charts.transfer_figure(ok, f"{workload}: host↔device bandwidth", colors), wide=True)]


def _training_parts(page: Page, workload: str, ok: list[dict[str, Any]], colors: charts.Colors) -> list[str]:
    figs = [charts.accuracy_figure(ok, f"{workload}: test accuracy against training time", colors),
            charts.time_to_accuracy_figure(ok, f"{workload}: time to target accuracy", colors)]
    parts = ["".join(page.figure(f, wide=True) for f in figs)]
    finals = [[r["run_label"], r["series"], r["size"], _num(r["metrics"].get("final_accuracy")),
               _num(r["metrics"].get("time_to_target_s"), "not reached"),
               _thousands(r["metrics"].get("samples_per_s")), tables.ci_text(r) or "-"]
              for r in ok if r["metrics"]]
    if finals:
        parts.append(table(["run", "case", "size", "final accuracy", "time to target (s)", "samples/s",
                            "95% CI of the epoch time"], finals, "cases"))
    return parts


def _attention_parts(page: Page, workload: str, ok: list[dict[str, Any]], colors: charts.Colors) -> list[str]:
    return [attention.body(ok, page.figure, colors, workload)]


def _input_pipeline_parts(page: Page, workload: str, ok: list[dict[str, Any]],
                          colors: charts.Colors) -> list[str]:
    return [input_pipeline.body(ok, page.figure, colors, workload)]


def _inference_parts(page: Page, workload: str, ok: list[dict[str, Any]], colors: charts.Colors) -> list[str]:
    return [inference.body(ok, page.figure, colors, workload)]


def _ddp_parts(page: Page, workload: str, ok: list[dict[str, Any]], colors: charts.Colors) -> list[str]:
    return [ddp.body(ok, page.figure, colors, workload)]


#: Report section renderers by the ``report_section`` a workload declares, each called with the page, the
#: workload's name, its measured rows and the report's colours. A workload with a section of its own adds it
#: here; an unknown name falls back to ``throughput``.
SECTION_RENDERERS = {"throughput": _throughput_parts, "transfer": _transfer_parts, "training": _training_parts,
                     attention.SECTION: _attention_parts, input_pipeline.SECTION: _input_pipeline_parts,
                     ddp.SECTION: _ddp_parts, inference.SECTION: _inference_parts}


def _workloads(page: Page, runs: list[RunData], colors: charts.Colors) -> None:
    rows = [r for run in runs for r in run.rows]
    by_workload: dict[str, list] = defaultdict(list)
    for r in rows:
        by_workload[r["workload"]].append(r)
    for workload, wrows in by_workload.items():
        # The lecture's unsynchronized timings are drawn only beside the real ones (the three-ways section).
        ok = [r for r in wrows if r["measurement"]]
        suites = sorted({r["suite"] for r in wrows})
        shown_only = sum(1 for r in wrows if r["status"] == "ok") - len(ok)
        beside = (f" ({shown_only} timed as in the lecture: shown only in the three-ways section)"
                  if shown_only else "")
        parts = [f'<p class="note">suite {esc(", ".join(suites))} · {len(wrows)} cases, {len(ok) + shown_only} ok'
                 f"{beside} · hover a point for its median, 95% CI and speedups</p>"]
        render_parts = SECTION_RENDERERS.get(_section_of(workload, wrows), _throughput_parts)
        parts += [p for p in render_parts(page, workload, ok, colors) if p]
        if len(parts) == 1:
            parts.append('<p class="note">No case of this workload produced a measurement; see Problems below.</p>')
        page.section(f"w-{re.sub(r'[^a-zA-Z0-9_-]', '_', workload)}", f"{workload}", "".join(parts))


def _three_ways(page: Page, runs: list[RunData]) -> None:
    """The lecture's experiment, where a run has cases timed the naive ways (:mod:`gpubench.report.lecture`):
    chosen by the cases' ``timing`` mode, not by the suite, and shown before the workloads' own sections."""
    body = lecture.section_body(runs, page.figure)
    if body:
        page.section(lecture.SECTION_ID, lecture.SECTION_TITLE, body)


def _break_even(page: Page, runs: list[RunData]) -> None:
    items = analysis.break_even(runs)
    if not items:
        compute = any(r["unit"] == "gflops" and r["status"] == "ok" for run in runs for r in run.rows)
        if compute:
            page.section("break-even", "Break-even size",
                         '<p class="note">The break-even size is where a GPU case starts beating the fastest CPU '
                         "backend. No accelerator case with a CPU reference was measured in these runs.</p>")
        return
    multi = len(runs) > 1
    headers = (["run"] if multi else []) + ["workload", "dtype", "accelerator", "options",
                                            "without host↔device copies", "with copies counted"]
    rows = [([b.run_label] if multi else []) + [b.workload, b.dtype, b.series, b.flags or "-", b.text,
                                                b.with_copies or "not measured"] for b in items]
    page.section("break-even", "Break-even size",
                 '<p class="note">The smallest measured size from which the accelerator beats the fastest CPU '
                 "backend of the run at every larger size (interpolated between the two sizes around the crossing). "
                 "With copies counted, each call also moves its inputs to the device and the result back "
                 "(<code>include_transfer = true</code>).</p>" + table(headers, rows, "cases"))


def _ceiling_rows(dc: DeviceCeilings, sheet: tuple | None) -> list[list[str]]:
    rows = []
    for dtype, peak in sorted(dc.peaks.items(), key=lambda kv: -kv[1]):
        rows.append([dc.device, f"peak {dtype}", f"{peak:.4g} GFLOP/s",
                     charts.QUALITY_TEXT.get(dc.quality.get(dtype, "measured"), "measured"), dc.methods.get(dtype, "")])
    if dc.mem_gbps:
        rows.append([dc.device, "memory bandwidth", f"{dc.mem_gbps:.4g} GB/s",
                     charts.QUALITY_TEXT.get(dc.quality.get("memory", "measured"), "measured"),
                     dc.methods.get("memory", "")])
    if sheet:
        name, peaks = sheet
        for dtype in ("float64", "float64_tensor", "float32", "tf32", "bfloat16", "float16"):
            if dtype in peaks:
                what = PEAK_TEXT.get(dtype, dtype)
                rows.append([name, f"peak {what}", f"{peaks[dtype]:g} TFLOP/s", "datasheet", "vendor, dense"])
        if peaks.get("mem_gbps"):
            rows.append([name, "memory bandwidth", f"{peaks['mem_gbps']:g} GB/s", "datasheet", "vendor"])
    return rows


def _roofline(page: Page, runs: list[RunData], colors: charts.Colors) -> None:
    points_all = [r for run in runs for r in run.rows
                  if r["measurement"] and r.get("gflops") and r.get("flops") and r.get("bytes") and not r["end_to_end"]]
    if not points_all:
        return
    # One chart per machine calibration and device kind.
    groups: dict[tuple, list] = defaultdict(list)
    ceil_of: dict[tuple, tuple] = {}
    wanted = {id(r) for r in points_all}
    for run in runs:
        by_device = ceilings_by_device(run.ceilings)
        for r in run.rows:
            if id(r) not in wanted:
                continue
            dc = match_device(by_device, r)
            key = (run.ceilings_run, dc.device if dc else None, r["kind"] if dc is None else "")
            groups[key].append(r)
            ceil_of[key] = (dc, run)
    parts: list[str] = []
    any_roof = any(dc is not None and (dc.peaks or dc.mem_gbps) for dc, _ in ceil_of.values())
    if any_roof:
        parts.append('<p class="note">Each case sits at its arithmetic intensity (FLOPs per byte it must move). '
                     "Under the sloped line (memory bandwidth × intensity) a case is limited by memory; under a flat "
                     "line, by compute. Percentages are of the attainable: the lower roof at that intensity. Each "
                     "roof says where it came from: measured by <code>gpubench calibrate</code>, provisional from "
                     "<code>calibrate --quick</code> (small sizes: real cases may sit above it), or a vendor "
                     "datasheet.</p>")
    sheet_rows: list[list[str]] = []
    for key, pts in groups.items():
        dc, run = ceil_of[key]
        names = [p["device_name"] for p in pts if p["device_name"]]
        sheet = next((datasheet_for(n) for n in names if datasheet_for(n)), None)
        if dc is None:
            title = f"roofline: {pts[0]['kind']} cases (no ceilings: no roof drawn)"
            parts.append(f'<p class="note">No ceilings for the {esc(pts[0]["kind"])} cases below, so no roof is '
                         "drawn: the points show each case's rate at its arithmetic intensity only. Run "
                         "<code>gpubench calibrate</code> on this machine (or <code>gpubench calibrate --quick</code>"
                         " for a provisional one in seconds), then make the report again.</p>")
        else:
            title = f"roofline: {dc.device} ({names[0] if names else ''}) · ceilings from run {key[0]}"
            sheet_rows += _ceiling_rows(dc, sheet)
        parts.append(page.figure(charts.roofline_figure(
            title, pts, dc.peaks if dc else {}, dc.mem_gbps if dc else None, colors,
            datasheet=sheet[1] if sheet else None, datasheet_name=sheet[0] if sheet else "",
            quality=dc.quality if dc else None), wide=True))
    flagged = [r for r in points_all if {"above_ceiling", "implausible"} & set(r.get("flags") or [])]
    if flagged:
        examples = ", ".join(r["label"] for r in flagged[:3]) + (" …" if len(flagged) > 3 else "")
        parts.append(f'<p class="warn">⚠ {len(flagged)} case{"s are" if len(flagged) != 1 else " is"} above a '
                     f"ceiling (ringed in red): {esc(examples)}. A rate above a measured ceiling means the ceiling "
                     "is provisional (calibrate again without --quick); above a physical one, a measurement error."
                     "</p>")
    if sheet_rows:
        parts.append("<h3>Ceilings</h3>" + table(["device", "ceiling", "value", "source", "how"], sheet_rows,
                                                 "cases"))
    page.section("roofline", "Roofline: how close to what the hardware can do", "".join(parts))


#: Columns of the case table: (name, kind). The page formats each kind (times, rates, ×, %).
TABLE_COLUMNS = (
    ("run", "text"), ("workload", "text"), ("size", "text"), ("backend", "text"), ("device", "text"),
    ("dtype", "text"), ("status", "text"), ("median", "time"), ("95% CI of the median", "ci"), ("rate", "rate"),
    ("× fastest CPU", "times"), ("× baseline", "times"), ("% of roof", "pct"), ("samples", "int"), ("note", "text"),
)


def _table_rows(runs: list[RunData]) -> list[list[Any]]:
    """Raw cell values (the page formats and sorts them); text cells are shown with textContent."""
    out = []
    for run in runs:
        for r in run.rows:
            ci = [r["ci95_low_s"], r["ci95_high_s"], r["n_samples"]] if r["median_s"] else None
            note = r["error"][:300] if r["status"] != "ok" else tables.flag_note(r, detail=True)
            rate = [r["rate"], "GB/s" if r["rate_unit"] == "gbps" else "GFLOP/s"] if r.get("rate") else None
            out.append([run.label, r["workload"], r["size"], r["implementation"],
                        r.get("device_text") or r["device"], r["dtype"], r["status"], r["median_s"], ci, rate,
                        r["speedup_cpu"], r["speedup"], r["roofline_pct"], r["n_samples"], note])
    return out


def _cases(page: Page, runs: list[RunData]) -> dict[str, Any]:
    rows = _table_rows(runs)
    skipped = sum(1 for r in rows if r[6] == "skipped")
    toggle = (f'<label class="muted"><input type="checkbox" id="cases-skipped"> show the {skipped} skipped '
              f"case{'s' if skipped != 1 else ''}</label>" if skipped else "")
    page.section("cases", "Every case",
                 '<p class="note">Click a column to sort; type to filter. Median of the per-call times, its '
                 'distribution-free 95% confidence interval, and the rate at the median. Skipped cases are hidden '
                 "(one line per reason under Problems).</p>"
                 '<input class="filter" id="cases-filter" placeholder="filter, e.g. float32 or cuda" '
                 f'aria-label="filter cases"> {toggle} <span class="muted" id="cases-count"></span>'
                 '<div class="tablewrap"><table class="cases" id="cases"><thead><tr></tr></thead>'
                 "<tbody></tbody></table></div>")
    return {"columns": [{"name": n, "kind": kind} for n, kind in TABLE_COLUMNS], "rows": rows}


def _problems(page: Page, runs: list[RunData]) -> None:
    bad = [(run, r) for run in runs for r in run.rows if r["status"] != "ok"]
    if not bad:
        page.section("problems", "Problems", '<p class="note">Every case ran and passed its correctness check.</p>')
        return
    failed = [(run, r) for run, r in bad if r["status"] != "skipped"]
    parts = []
    if failed:
        groups: dict[tuple, list] = defaultdict(list)
        for run, r in failed:
            groups[(r["status"], r["error"] or "(no reason given)")].append((run, r))
        order = {"incorrect": 0, "error": 1, "timeout": 2}
        rows = []
        for (status, reason), members in sorted(groups.items(),
                                                key=lambda kv: (order.get(kv[0][0], 9), -len(kv[1]))):
            examples = "; ".join(f"{r['label']}" + (f" ({run.label})" if len(runs) > 1 else "")
                                 for run, r in members[:3])
            more = f" … and {len(members) - 3} more" if len(members) > 3 else ""
            rows.append([status, len(members), reason[:500], examples + more])
        parts.append('<p class="note">An incorrect case failed its check against the float64 reference and is never '
                     "shown as a speedup.</p>" + table(["status", "cases", "reason", "examples"], rows, "cases"))
    skipped = [(run, r) for run, r in bad if r["status"] == "skipped"]
    if skipped:
        lines = []
        for run in runs:
            mine = [r for rr, r in skipped if rr is run]
            for backend, reason, n in tables.skip_groups(mine):
                lines.append([run.label] * (len(runs) > 1) + [backend, n, tables.reason_text(backend, reason)])
        headers = ["run"] * (len(runs) > 1) + ["backend", "cases", "reason"]
        parts.append(f'<details class="skips"><summary>{len(skipped)} skipped case{"s" if len(skipped) != 1 else ""}'
                     f", {len(lines)} reason{'s' if len(lines) != 1 else ''} (click to show)</summary>"
                     + table(headers, lines, "cases") + "</details>")
    counts = Counter(r["status"] for _, r in bad)
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    page.section("problems", "Problems: skipped, failed and incorrect cases",
                 f'<p class="note">{esc(summary)}.</p>' + "".join(parts))


# --- assembly ------------------------------------------------------------------------------------


def render(runs: list[RunData]) -> str:
    """The complete HTML document for ``runs``."""
    for i, run in enumerate(runs):
        for r in run.rows:
            r["run_index"] = i
    page = Page()
    colors = charts.Colors()
    _card(page, runs)
    _glance(page, runs)
    _machines(page, runs)
    measured = [r for r in runs if r.info.suite != CALIBRATE_SUITE] or runs
    _three_ways(page, measured)
    _workloads(page, measured, colors)
    _break_even(page, measured)
    _roofline(page, measured, colors)
    energy.energy_section(page, measured, colors)
    table_data = _cases(page, runs)
    _problems(page, runs)

    labels = ", ".join(f"{r.label} ({r.info.suite})" for r in runs)
    first = runs[0]
    subtitle = (f"{len(runs)} run{'s' if len(runs) > 1 else ''} · " +
                " · ".join(f"{r.label}: suite {r.info.suite}, {r.info.started_at}, {r.info.status}" for r in runs))
    footer = (f"made by gpubench {__version__} on {time.strftime('%Y-%m-%d %H:%M:%S')} · "
              f"command of {first.label}: {first.info.command or '-'}")
    return assemble(title=f"gpubench report: {labels}", subtitle=subtitle, nav=page.nav,
                    body="\n".join(page.sections), footer=footer, figures=page.figures, table=table_data)


def default_output(runs: list[RunData]) -> Path:
    """``reports/run-<id>.html`` (``reports/runs-<id>-<id>….html`` for several runs)."""
    ids = "-".join(str(r.info.id) for r in runs)
    return Path("reports") / (f"run-{ids}.html" if len(runs) == 1 else f"runs-{ids}.html")


def build_report(store: ResultStore, refs: list[str] | None,
                 output: str | Path | None = None) -> tuple[Path, list[RunData]]:
    """Load ``refs`` (default: latest run) from ``store``, render, and write the report atomically."""
    runs = load_runs(store, refs)
    text = render(runs)
    path = Path(output or default_output(runs))
    write_text(path, text)
    return path, runs
