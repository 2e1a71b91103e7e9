"""Derived answers across a run's rows: break-even sizes and the headline sentences."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from gpubench.report.model import RunData
from gpubench.workloads.base import INCLUDE_TRANSFER, TIMING, TIMING_DEFAULT


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
                                 if isinstance(v, (bool, str)) and k != INCLUDE_TRANSFER))
            key = (r["workload"], r["dtype"], r["series"], other)
            groups[key][r["end_to_end"]].append((r["x"], r["speedup_cpu"], r["size"]))
        for (workload, dtype, series, other), by_copy in groups.items():
            flags = " ".join(k if isinstance(v, bool) else f"{k}={v}" for k, v in other if v)
            plain = sorted(by_copy[False])
            copies = sorted(by_copy[True])
            out.append(BreakEven(run.label, workload, dtype, series, flags,
                                 _crossing(plain) if plain else "not measured",
                                 _crossing(copies) if copies else None))
    return out


#: A speedup whose 95 % interval is wider than this (±20 %) is not quoted as a headline.
HEADLINE_MAX_CI = 0.20


def _tight(row: dict[str, Any], key: str) -> bool:
    half = row.get(key)
    return half is not None and half <= HEADLINE_MAX_CI


def headlines(runs: list[RunData]) -> list[str]:
    """Plain sentences answering "how much faster is the GPU, for what, at which size".

    A speedup is quoted only when its 95 % interval is within ±20 % (:data:`HEADLINE_MAX_CI`); a noisier
    one is said to be too noisy. Only gpubench's own measurements are headlines: never a case timed as in the
    lecture (``not_a_measurement``) or on a synchronized host clock (``timing = "host_sync"``). On a machine
    without a GPU the reason no accelerator ran is that, never a missing package.
    """
    from gpubench.envinfo import machine_key
    from gpubench.tables import has_gpu

    out = []
    no_gpu: dict[tuple, list[str]] = {}
    for run in runs:
        prefix = f"{run.label}: " if len(runs) > 1 else ""
        ok = [r for r in run.rows if r["status"] == "ok" and headline_candidate(r)]
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
                     and not r["end_to_end"]]
            if accel:
                quotable = [r for r in accel if _tight(r, "speedup_cpu_ci")]
                noisy = len(accel) - len(quotable)
                if not quotable:
                    out.append(f"{prefix}{workload} {dtype} at {size}: accelerator speedups are too noisy to quote "
                               f"(95% interval wider than ±{HEADLINE_MAX_CI:.0%}); see the table.")
                    continue
                a = max(quotable, key=lambda r: r["speedup_cpu"])
                base = (f" and {a['speedup']:.3g}× the baseline {a['baseline']}"
                        if a.get("speedup") is not None and _tight(a, "speedup_ci") else "")
                more = f" ({noisy} noisier result{'s' if noisy > 1 else ''} not quoted)" if noisy else ""
                out.append(f"{prefix}{workload} {dtype} at {size}: {_name(a)} reaches {a['rate']:.4g} {u}, "
                           f"{a['speedup_cpu']:.3g}× the fastest CPU backend ({a['fastest_cpu']}){base}{more}.")
            else:
                cpu_note = ""
                if (best.get("speedup") is not None and best["backend"] != run.info.baseline
                        and _tight(best, "speedup_ci")):
                    cpu_note = f", {best['speedup']:.3g}× the baseline {best['baseline']}"
                noise = ""
                if best["median_s"] and best["n_samples"] >= 2:
                    half = (best["ci95_high_s"] - best["ci95_low_s"]) / 2 / best["median_s"]
                    if half > HEADLINE_MAX_CI:
                        noise = f" (noisy: ±{half:.0%})"
                out.append(f"{prefix}{workload} {dtype} at {size}: fastest is {_name(best)} with "
                           f"{best['rate']:.4g} {u}{noise}{cpu_note}.")
        if not accel_any:
            if not has_gpu(run.env):
                no_gpu.setdefault(machine_key(run.env), []).append(run.label)
                continue
            reasons = sorted({r["error"] for r in run.rows if r["status"] == "skipped" and r["kind"] != "cpu"})
            why = f" (skipped: {reasons[0]}{' …' if len(reasons) > 1 else ''})" if reasons else ""
            out.append(f"{prefix}no accelerator case ran in this run{why}; speedups compare CPU backends only.")
    for labels in no_gpu.values():  # once per machine
        who = f"{', '.join(labels)}: " if len(runs) > 1 else ""
        out.append(f"{who}this machine has no GPU (nvidia-smi lists none and no backend found one), so no "
                   "accelerator case ran; speedups compare CPU backends only. Run with --device cpu to skip "
                   "the GPU cases.")
    return out


def headline_candidate(row: dict[str, Any]) -> bool:
    """Whether a row may be a headline: a measurement (not ``not_a_measurement``) taken by gpubench's own timing."""
    return row["measurement"] and (row.get("modes") or {}).get(TIMING, TIMING_DEFAULT) == TIMING_DEFAULT


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
    return text + " (one training run each)."


def _name(row: dict[str, Any]) -> str:
    tags = row.get("tags") or []
    return row["series"] + (f" ({', '.join(tags)})" if tags else "")
