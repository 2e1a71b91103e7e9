"""Derived answers: % of the attainable roofline, break-even sizes, and the headline sentences."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from gpubench.report.model import MODE_PARAMS, RunData

# The ceiling vocabulary belongs to the store; re-exported here for older imports.
from gpubench.store import D2H_BW, H2D_BW, MEM_BW, PEAK_FLOPS  # noqa: F401


@dataclass
class DeviceCeilings:
    """Measured ceilings of one device: peak GFLOP/s per dtype and memory GB/s."""

    device: str
    peaks: dict[str, float] = field(default_factory=dict)
    mem_gbps: float | None = None
    methods: dict[str, str] = field(default_factory=dict)


def ceilings_by_device(ceilings: list[dict[str, Any]]) -> dict[str, DeviceCeilings]:
    """Group stored ceiling rows by device (the best value wins when a kind repeats)."""
    out: dict[str, DeviceCeilings] = {}
    for c in ceilings:
        d = out.setdefault(c["device"], DeviceCeilings(c["device"]))
        if c["kind"] == PEAK_FLOPS and c.get("dtype"):
            if c["value"] > d.peaks.get(c["dtype"], 0):
                d.peaks[c["dtype"]] = c["value"]
                d.methods[c["dtype"]] = c.get("method", "")
        elif c["kind"] == MEM_BW and c["value"] > (d.mem_gbps or 0):
            d.mem_gbps = c["value"]
            d.methods["memory"] = c.get("method", "")
    return out


def match_device(by_device: dict[str, DeviceCeilings], row: dict[str, Any]) -> DeviceCeilings | None:
    """The ceilings of the device a row ran on (``cuda`` matches ``cuda:0``; every CPU case matches ``cpu``)."""
    dev = row["device"]
    if dev in by_device:
        return by_device[dev]
    if row["kind"] == "cpu" and "cpu" in by_device:
        return by_device["cpu"]
    prefix = dev.split(":")[0]
    if prefix in by_device:  # calibrated as the kind's default device ("cuda")
        return by_device[prefix]
    if dev == prefix and f"{prefix}:0" in by_device:
        return by_device[f"{prefix}:0"]
    return None


def apply_ceilings(run: RunData) -> None:
    """Set ``attainable`` (GFLOP/s) and ``roofline_pct`` on every ok row with FLOPs, bytes and ceilings."""
    by_device = ceilings_by_device(run.ceilings)
    for row in run.rows:
        row["attainable"] = row["roofline_pct"] = None
        if row["status"] != "ok" or not row.get("gflops") or not row.get("flops") or not row.get("bytes"):
            continue
        if row["params"].get("include_transfer"):
            continue  # host-device copies are outside the device roofline
        dc = match_device(by_device, row)
        if dc is None:
            continue
        peak = dc.peaks.get("tf32") if row["params"].get("tf32") and "tf32" in dc.peaks else dc.peaks.get(row["dtype"])
        ai = row["flops"] / row["bytes"]
        bounds = [b for b in (peak, dc.mem_gbps * ai if dc.mem_gbps else None) if b]
        if not bounds:
            continue
        row["attainable"] = min(bounds)
        row["roofline_pct"] = 100.0 * row["gflops"] / row["attainable"]


@dataclass
class BreakEven:
    """Where one accelerator series starts beating the fastest CPU backend."""

    run_label: str
    workload: str
    dtype: str
    series: str
    flags: str
    text: str
    with_copies: str | None = None


def _crossing(points: list[tuple[float, float, str]]) -> str:
    """Text for the break-even of (x, speedup, size label) points sorted by x."""
    if not points:
        return "no CPU reference at the same sizes"
    first = None
    for i in range(len(points)):
        if all(s >= 1.0 for _, s, _ in points[i:]):
            first = i
            break
    if first is None:
        return f"not faster up to {points[-1][2]} ({points[-1][1]:.2g}×)"
    if first == 0:
        return f"faster at every measured size, from {points[0][2]} ({points[0][1]:.2g}×)"
    (x0, s0, l0), (x1, s1, l1) = points[first - 1], points[first]
    est = ""
    if s0 > 0 and s1 > 0 and s1 != s0:
        lx = math.log(x0) + (0 - math.log(s0)) * (math.log(x1) - math.log(x0)) / (math.log(s1) - math.log(s0))
        est = f" (≈ {math.exp(lx):.3g} FLOPs per call)"
    return f"between {l0} ({s0:.2g}×) and {l1} ({s1:.2g}×){est}"


def break_even(runs: list[RunData]) -> list[BreakEven]:
    """Break-even size per compute workload and accelerator series, without and with host-device copies."""
    out = []
    for run in runs:
        groups: dict[tuple, dict[bool, list]] = defaultdict(lambda: {False: [], True: []})
        for r in run.rows:
            if (r["status"] != "ok" or r["kind"] == "cpu" or r["unit"] != "gflops" or not r.get("x")
                    or r.get("speedup_cpu") is None or "curve" in r["metrics"] or "epoch_curve" in r["metrics"]):
                continue
            other = tuple(sorted((k, v) for k, v in r["params"].items()
                                 if isinstance(v, (bool, str)) and k not in ("include_transfer",)))
            key = (r["workload"], r["dtype"], r["backend"], r["variant"], r["device"], other)
            groups[key][bool(r["params"].get("include_transfer"))].append((r["x"], r["speedup_cpu"], r["size"]))
        for (workload, dtype, backend, variant, device, other), by_copy in groups.items():
            series = f"{backend}{'' if variant == 'default' else f'[{variant}]'}:{device}"
            flags = " ".join(k if isinstance(v, bool) else f"{k}={v}" for k, v in other if v)
            plain = sorted(by_copy[False])
            copies = sorted(by_copy[True])
            out.append(BreakEven(run.label, workload, dtype, series, flags,
                                 _crossing(plain) if plain else "not measured",
                                 _crossing(copies) if copies else None))
    return out


def headlines(runs: list[RunData]) -> list[str]:
    """Plain sentences answering "how much faster is the GPU, for what, at which size"."""
    out = []
    for run in runs:
        prefix = f"{run.label}: " if len(runs) > 1 else ""
        ok = [r for r in run.rows if r["status"] == "ok"]
        by_problem: dict[tuple, list] = defaultdict(list)
        for r in ok:
            by_problem[(r["workload"], r["dtype"], r["unit"])].append(r)
        accel_any = any(r["kind"] != "cpu" for r in ok)
        for (workload, dtype, unit), rows in by_problem.items():
            trained = [r for r in rows if isinstance(r["metrics"].get("time_to_target_s"), (int, float))]
            if trained:
                out.append(prefix + _training_headline(workload, dtype, trained))
                continue
            if any("curve" in r["metrics"] or "epoch_curve" in r["metrics"] for r in rows):
                continue
            rated = [r for r in rows if r.get("rate") and r.get("x")]
            if not rated:
                continue
            largest = max(r["x"] for r in rated)
            at = [r for r in rated if r["x"] == largest]
            best = max(at, key=lambda r: r["rate"])
            u = "GB/s" if unit == "gbps" else "GFLOP/s"
            size = best["size"]
            accel = [r for r in at if r["kind"] != "cpu" and r.get("speedup_cpu") is not None
                     and not r["params"].get("include_transfer")]
            if accel:
                a = max(accel, key=lambda r: r["speedup_cpu"])
                base = (f" and {a['speedup_baseline']:.3g}× the baseline {a['baseline']}"
                        if a.get("speedup_baseline") is not None else "")
                out.append(f"{prefix}{workload} {dtype} at {size}: {_name(a)} reaches {a['rate']:.4g} {u}, "
                           f"{a['speedup_cpu']:.3g}× the fastest CPU backend ({a['fastest_cpu']}){base}.")
            else:
                cpu_note = ""
                if best.get("speedup_baseline") is not None and best["backend"] != run.info.baseline:
                    cpu_note = f", {best['speedup_baseline']:.3g}× the baseline {best['baseline']}"
                out.append(f"{prefix}{workload} {dtype} at {size}: fastest is {_name(best)} with "
                           f"{best['rate']:.4g} {u}{cpu_note}.")
        if not accel_any:
            reasons = sorted({r["error"] for r in run.rows if r["status"] == "skipped" and r["kind"] != "cpu"})
            why = f" (skipped: {reasons[0]}{' …' if len(reasons) > 1 else ''})" if reasons else ""
            out.append(f"{prefix}no accelerator case ran in this run{why}; speedups compare CPU backends only.")
    return out


def _training_headline(workload: str, dtype: str, rows: list[dict[str, Any]]) -> str:
    rows = sorted(rows, key=lambda r: r["metrics"]["time_to_target_s"])
    best, slowest_cpu = rows[0], None
    cpus = [r for r in rows if r["kind"] == "cpu"]
    if cpus:
        slowest_cpu = cpus[0]  # the fastest CPU case
    target = best["metrics"].get("target_accuracy")
    text = (f"{workload} {dtype}: {_name(best)} reaches {'accuracy ' + str(target) if target else 'the target'} "
            f"in {best['metrics']['time_to_target_s']:.3g} s of training")
    if slowest_cpu is not None and slowest_cpu is not best:
        ratio = slowest_cpu["metrics"]["time_to_target_s"] / best["metrics"]["time_to_target_s"]
        text += f", {ratio:.3g}× sooner than the fastest CPU backend ({_name(slowest_cpu)})"
    return text + "."


def _name(row: dict[str, Any]) -> str:
    variant = "" if row["variant"] == "default" else f"[{row['variant']}]"
    flags = [k for k in MODE_PARAMS if row["params"].get(k)]
    return f"{row['backend']}{variant}:{row['device']}" + (f" ({', '.join(flags)})" if flags else "")
