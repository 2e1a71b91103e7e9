"""The machine card: one screen that opens the report of a tour (``gpubench run --suite tour``).

Three blocks, all from one run's rows (:mod:`gpubench.report.model`) and ceilings:

* **the machine**: CPU (model, logical cores), GPUs (name, driver), and how the run ended (a time
  limit says how many cases ran of how many);
* **ceilings**: the measured peak FLOP/s per device and dtype, memory bandwidth and host↔device
  bandwidth, each with the datasheet share where the GPU is known and how it was measured;
* **headlines**: per problem (workload, dtype, size and modes) the fastest accelerator case
  against the fastest CPU case of the same problem (the speedup, when both ran), and **what
  limited it**: the share of the device's measured ceiling that applies (compute for a product,
  memory for SAXPY and device copies, the host link for host↔device copies; the datasheet's
  where nothing was measured), or the flag that says its number is not the device's work
  (``launch_bound``: launch overhead; ``implausible``; ``noisy``). The lecture's experiment
  gets one line: its naive ratio (way 1, no measurement) beside the honest one (way 3).

:func:`card` builds the card as plain data; :func:`card_text` renders it for the terminal (``gpubench run``
prints it after a tour) and :func:`card_html` for the report, where it is the first section.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from gpubench.report.lecture import times_text
from gpubench.report.model import RunData
from gpubench.store import D2H_BW, H2D_BW, MEM_BW, PEAK_FLOPS
from gpubench.tables import fmt_rate, fmt_time, render

#: The suite whose report opens with the card.
TOUR_SUITE = "tour"
#: Headline lines on the card at most (one screen).
MAX_HEADLINES = 12
#: Ceiling kinds in the order the card lists them, with their names.
KIND_TEXT = {PEAK_FLOPS: "compute", MEM_BW: "memory", H2D_BW: "host→device (pinned)", D2H_BW: "device→host (pinned)"}


@dataclass
class Card:
    """The card's content (plain data)."""

    title: str
    machine: list[str]
    ceilings: list[list[str]] = field(default_factory=list)
    headlines: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def wants_card(run: RunData) -> bool:
    """Whether a run's report opens with the card: a tour's does."""
    return run.info.suite == TOUR_SUITE


def _machine(run: RunData) -> list[str]:
    env = run.env
    cpu = env.get("cpu") or {}
    lines = [f"CPU: {cpu.get('model', '?')}, {cpu.get('logical_cores') or '?'} logical cores"]
    gpus = [g for g in env.get("gpus") or [] if isinstance(g, dict)]
    for g in gpus:
        lines.append(f"GPU: {g.get('name', '?')} · {g.get('memory', '?')} · driver {g.get('driver', '?')}")
    if not gpus:
        lines.append("GPU: none found by nvidia-smi (the accelerator cases were skipped)")
    status = run.info.status + (f" ({run.info.reason})" if run.info.reason else "")
    lines.append(f"run {run.info.id}, {run.info.started_at[:19].replace('T', ' ')}: {status}")
    return lines


def _sheet(device_name: str) -> tuple[str, dict[str, float]] | None:
    from gpubench.datasheet import datasheet_for

    return datasheet_for(device_name or "")


def _ceiling_rows(run: RunData) -> list[list[str]]:
    order = list(KIND_TEXT)
    rows = []
    for c in sorted(run.ceilings, key=lambda c: (str(c["device"]), order.index(c["kind"]) if c["kind"] in order
                                                  else len(order), str(c.get("dtype") or ""))):
        value = float(c["value"])
        text = (f"{value / 1000:.3g} TFLOP/s" if value >= 1000 else f"{value:.3g} GFLOP/s") \
            if c["kind"] == PEAK_FLOPS else f"{value:.3g} GB/s"
        share = ""
        found = _sheet(c.get("device_name") or "")
        if found:
            name, peaks = found
            ref = peaks.get("mem_gbps") if c["kind"] == MEM_BW else (peaks.get(c.get("dtype") or "", 0) * 1000
                                                                     if c["kind"] == PEAK_FLOPS else None)
            if ref:
                share = f"{100 * value / ref:.0f}% of {name}"
        what = KIND_TEXT.get(c["kind"], c["kind"]) + (f" {c['dtype']}" if c.get("dtype") else "")
        quality = "" if (c.get("quality") or "measured") == "measured" else f" ({c['quality']})"
        rows.append([str(c["device"]), what + quality, text, share, str(c.get("method", ""))[:60]])
    return rows


def _ceiling_value(run: RunData, row: dict[str, Any], kind: str, dtype: str) -> tuple[float | None, str]:
    """The measured ceiling of ``kind`` for a row's device (its own, else its kind's), or the datasheet's."""
    device = row["device"]
    prefix = device.split(":")[0]
    candidates = [c for c in run.ceilings if c["kind"] == kind and (c.get("dtype") or "") == dtype
                  and str(c["device"]) in (device, prefix, f"{prefix}:0", "cpu" if row["kind"] == "cpu" else "-")]
    if candidates:
        return max(float(c["value"]) for c in candidates), "measured"
    found = _sheet(row.get("device_name") or "")
    if found and row["kind"] != "cpu":
        name, peaks = found
        if kind == PEAK_FLOPS and peaks.get(dtype):
            return peaks[dtype] * 1000.0, f"{name} datasheet"
        if kind == MEM_BW and peaks.get("mem_gbps"):
            return float(peaks["mem_gbps"]), f"{name} datasheet"
    return None, ""


def limited_by(run: RunData, row: dict[str, Any]) -> str:
    """What limited a case: a flag that says its number is not the device's work, else the share of its ceiling."""
    from gpubench.workloads import find_workload

    flags = set(row.get("flags") or ())
    if "implausible" in flags:
        return "implausible: above a physical ceiling (a measurement error)"
    if "launch_bound" in flags:
        return "launch overhead: the host took as long per call as the device"
    w = find_workload(row["workload"])
    try:
        bound = w.bound(row["params"]) if w is not None else None
    except Exception:  # noqa: BLE001 - an odd stored case keeps its line, without a bound
        bound = None
    rate = row.get("rate")
    if bound is None or not rate:
        return "no physical bound applies" + (" (noisy)" if "noisy" in flags else "")
    kind = {"compute": PEAK_FLOPS, "memory": MEM_BW, "h2d": H2D_BW, "d2h": D2H_BW}[bound]
    dtype = (row.get("compute_dtype") or row["dtype"]) if kind == PEAK_FLOPS else ""
    value, source = _ceiling_value(run, row, kind, dtype)
    what = {"compute": f"compute ({dtype})", "memory": "memory bandwidth", "h2d": "host link",
            "d2h": "host link"}[bound]
    noisy = "; noisy" if "noisy" in flags else ""
    if value is None:
        return f"{what}: no ceiling measured{noisy}"
    ceiling = fmt_rate({"rate": value, "rate_unit": "gflops" if kind == PEAK_FLOPS else "gbps"})
    share = 100 * rate / value
    low = " (that ceiling is low: calibrate again)" if share > 105 and source == "measured" else ""
    return f"{what}: {share:.0f}% of {source} {ceiling}{low}{noisy}"


def _headline_rows(run: RunData) -> tuple[list[list[str]], list[str]]:
    from gpubench.report.lecture import experiments, speedups
    from gpubench.timing import NAIVE_TIMINGS
    from gpubench.workloads.base import TIMING, TIMING_DEFAULT

    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in run.rows:
        # gpubench's own measurements only (the lecture's other two ways have their own note below)
        if not r["measurement"] or r["params"].get(TIMING, TIMING_DEFAULT) in NAIVE_TIMINGS:
            continue
        groups[(r["workload"], r["dtype"], r["size"])].append(r)
    scored = []
    for (workload, dtype, size), rows in groups.items():
        accel = [r for r in rows if r["kind"] != "cpu"]
        cpu = [r for r in rows if r["kind"] == "cpu"]
        best = min(accel or cpu, key=lambda r: r["median_s"])
        if not accel:
            versus = "no accelerator case"
        elif best["speedup_cpu"] is not None:  # the one definition of the speedup (gpubench.rows)
            versus = f"{times_text(best['speedup_cpu'])} {best['fastest_cpu']}"
        else:
            versus = "no CPU case at this size"
        rate = fmt_rate(best) if best.get("rate") else fmt_time(best["median_s"]) + " a call"
        metrics = best.get("metrics") or {}
        if "time_to_target_s" in metrics:  # a training run: its time to the target accuracy, or its epochs
            reached = metrics["time_to_target_s"]
            rate = (f"{reached:.3g} s to target" if isinstance(reached, (int, float))
                    else f"{fmt_time(best['median_s'])} an epoch (target not reached)")
        line = [f"{workload} {dtype} {size}", f"{best['series']} {rate}", versus, limited_by(run, best)]
        scored.append((0 if accel and cpu else 1, len(scored), line))
    lines = [line for _, _, line in sorted(scored)[:MAX_HEADLINES]]
    notes = []
    if len(scored) > MAX_HEADLINES:
        notes.append(f"{len(scored) - MAX_HEADLINES} more problems in the report's sections below")
    for exp in experiments([run]):
        sp = speedups(exp, run.info.baseline or "numpy")
        parts = []
        if sp.naive is not None:
            parts.append(f"timed as in the lecture {times_text(sp.naive.value)} (a launch, not a measurement)")
        if sp.honest is not None:
            parts.append(f"timed by gpubench {times_text(sp.honest.value)} ({sp.honest.denominator['series']} against "
                         f"{sp.honest.numerator['series']})")
        elif sp.why_no_honest:
            parts.append(f"no honest speedup: {sp.why_no_honest}")
        if parts:
            notes.append(f"the lecture's {exp.title}: " + "; ".join(parts))
    return lines, notes


def card(run: RunData) -> Card:
    """The card of one run (its rows enriched and its ceilings applied, as :func:`gpubench.report.model.load_runs`
    gives them)."""
    headlines, notes = _headline_rows(run)
    return Card(f"{run.info.suite}: the machine at a glance", _machine(run), _ceiling_rows(run), headlines, notes)


def card_text(c: Card) -> str:
    """The card as terminal text (one screen)."""
    out = [f"== {c.title} ==", *c.machine, ""]
    if c.ceilings:
        out += [render(["device", "ceiling", "measured", "datasheet", "how"], c.ceilings), ""]
    else:
        out += ["no ceiling was measured (run gpubench calibrate)", ""]
    if c.headlines:
        out += [render(["problem", "fastest", "speedup vs fastest CPU", "limited by"], c.headlines)]
    out += [f"note: {n}" for n in c.notes]
    return "\n".join(out)


def card_html(c: Card) -> str:
    """The card as the body of the report's first section."""
    from gpubench.report.html import esc, table

    parts = ['<div class="card">', "<ul>" + "".join(f"<li>{esc(m)}</li>" for m in c.machine) + "</ul>"]
    if c.ceilings:
        parts.append("<h3>Ceilings</h3>" + table(["device", "ceiling", "measured", "datasheet", "how"], c.ceilings,
                                                 cls="cases"))
    if c.headlines:
        parts.append("<h3>Headlines, and what limited each</h3>"
                     + table(["problem", "fastest", "speedup vs fastest CPU", "limited by"], c.headlines, cls="cases"))
    if c.notes:
        parts.append("<ul>" + "".join(f"<li>{esc(n)}</li>" for n in c.notes) + "</ul>")
    parts.append("</div>")
    return "".join(parts)


def print_card(store, run_id: int) -> None:
    """Print the card of a stored run (``gpubench run`` does after a tour); its rows are held against their
    ceilings as they are read (:func:`gpubench.rows.read_runs`)."""
    from gpubench.report.model import load_runs

    (run,) = load_runs(store, [str(run_id)])
    print()
    print(card_text(card(run)))
