"""Each case across runs: its median and 95 % CI per run, ordered by time, labelled by commit, with change points.

A case's history is the sequence of its correct results in every stored run of one machine (runs
of different machines are never mixed), oldest first. Each run is labelled with the commit of the
project it was started from (``git`` in the run's environment, see :func:`gpubench.envinfo.code_versions`;
an imported pytest-benchmark run keeps its ``commit_info``), else with the run's label.

Change points are found by penalized least squares on the log of the medians (a step in speed is a
ratio, so it is a constant offset in log time), the same piecewise-constant model that asv fits:

* each run is weighted by its own noise (the width of its median's 95 % interval) plus the
  run-to-run noise of the whole series (a robust estimate from successive differences), so a
  machine that drifts between runs does not produce steps;
* the optimal segmentation is found exactly by dynamic programming (O(n²), pure Python; a
  series of hundreds of runs takes milliseconds), with a Schwarz-style penalty of
  ``PENALTY_PER_LOG_N · ln n`` per step — twice the BIC's two parameters per step, since the
  steps are looked for at every position;
* an odd run between two agreeing neighbours on each side (more than ``OUTLIER_SIGMAS`` noise
  widths away from them) is an *outlier*: shown, but not fitted; interior segments need at least
  two runs; the newest run may stand alone, reported as *unconfirmed*;
* neighbouring segments whose levels differ by less than ``min_change`` are merged.

No optional package is needed (``ruptures``' PELT solves the same unweighted objective; the
weights from the measured CIs are what make it work on benchmark data).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from gpubench.envinfo import machine_key
from gpubench.records import CaseSpec
from gpubench.rows import read_runs
from gpubench.store import CALIBRATE_SUITE, ResultStore, RunInfo

#: Penalty per step, in units of ln(n) of the weighted squared error (see the module docstring).
PENALTY_PER_LOG_N = 4.0
#: Noise floor per run in log units (0.5 %): no run is trusted to better than this.
NOISE_FLOOR = 0.005
#: How far (in noise widths) an interior run must sit from its agreeing neighbours to be an outlier.
OUTLIER_SIGMAS = 5.0
#: Default smallest change reported (5 %).
DEFAULT_MIN_CHANGE = 0.05


@dataclass
class Point:
    """One run's result of a case."""

    run_id: int
    started_at: str
    label: str
    """Short label of the code measured: ``3309b86`` (``+`` when the tree was dirty), else the run label."""
    commit: str
    branch: str
    dirty: bool | None
    median_s: float
    ci_low_s: float
    ci_high_s: float
    n_samples: int
    spec_hash: str
    flags: tuple[str, ...] = ()
    """The row's flags (:mod:`gpubench.rows`), as every other surface shows them."""
    rate: float | None = None
    rate_unit: str = "gflops"
    speedup: float | None = None
    """Over the run's named CPU baseline (``baseline``), as every other surface shows it."""
    baseline: str = ""
    outlier: bool = False
    """An odd run between agreeing neighbours: drawn, but left out of the fit."""


@dataclass
class Change:
    """A step between ``before`` (last run of the old level) and ``after`` (first run of the new one)."""

    index: int
    before: Point
    after: Point
    level_before_s: float
    level_after_s: float
    kind: str = "step"
    """``step`` (detected), ``unconfirmed`` (only the newest run is at the new level) or
    ``benchmark changed`` (the spec hash changed: the benchmark itself is different)."""

    @property
    def ratio(self) -> float:
        """New level over old level (above 1: slower)."""
        return self.level_after_s / self.level_before_s

    @property
    def change_pct(self) -> float:
        """(new / old − 1) × 100: positive is slower."""
        return (self.ratio - 1.0) * 100.0

    def commit_range(self) -> str:
        """Where the change happened: ``between abc1234 (run 4) and def5678 (run 5)`` plus a git range."""
        b, a = self.before, self.after
        text = f"between {b.label} (run {b.run_id}) and {a.label} (run {a.run_id})"
        if b.commit and a.commit and b.commit != a.commit:
            text += f": git log {b.commit[:10]}..{a.commit[:10]}"
        elif b.commit and b.commit == a.commit:
            text += ": same commit" + (" (uncommitted changes)" if a.dirty or b.dirty else " (machine or environment)")
        return text


@dataclass
class CaseHistory:
    """A case on one machine across runs, with its detected changes and the fitted levels."""

    spec: CaseSpec
    machine: str
    points: list[Point] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    segments: list[tuple[int, int, float]] = field(default_factory=list)
    """(first index, end index exclusive, level in seconds) of each fitted segment."""

    @property
    def title(self) -> str:
        return self.spec.label()


# --- labels ------------------------------------------------------------------------------------


def code_of(run: RunInfo) -> dict[str, Any]:
    """The project's commit facts of a run: ``commit``, ``branch``, ``dirty`` (empty when unknown)."""
    env = run.environment or {}
    git = (env.get("git") or {}).get("project") if isinstance(env.get("git"), dict) else None
    if isinstance(git, dict) and git.get("commit"):
        return {"commit": str(git["commit"]), "branch": str(git.get("branch") or ""), "dirty": git.get("dirty")}
    imported = env.get("commit")  # pytest-benchmark's commit_info, kept by gpubench import
    if isinstance(imported, dict) and imported.get("id"):
        return {"commit": str(imported["id"]), "branch": str(imported.get("branch") or ""),
                "dirty": imported.get("dirty")}
    return {"commit": "", "branch": "", "dirty": None}


def run_point_label(run: RunInfo) -> str:
    """``3309b86`` (``3309b86+`` when dirty), else the run's label, else ``run N``."""
    code = code_of(run)
    if code["commit"]:
        return code["commit"][:7] + ("+" if code["dirty"] else "")
    return run.label or f"run {run.id}"


# --- collecting --------------------------------------------------------------------------------


def matches(spec: CaseSpec, case_filter: str | None) -> bool:
    """Whether every whitespace-separated word of ``case_filter`` is in the case's label (case-insensitive)."""
    if not case_filter:
        return True
    label = spec.label().lower()
    return all(word in label for word in case_filter.lower().split())


def collect(store: ResultStore, suite: str | None = None, case_filter: str | None = None,
            min_change: float = DEFAULT_MIN_CHANGE) -> list[CaseHistory]:
    """Every case's history in ``store`` (runs of ``suite`` only when given), with changes detected.

    Calibration runs are left out unless ``suite`` is ``calibrate``. Only measurements are points
    (``row["measurement"]``, :mod:`gpubench.rows`: correct, and never the lecture's unsynchronized timing),
    with their row's rate, speedup and flags. Histories are ordered by workload, then by the case's label.
    """
    series: dict[tuple, CaseHistory] = {}
    for run in store.runs():
        if suite is not None and run.suite != suite:
            continue
        if suite is None and run.suite == CALIBRATE_SUITE:
            continue
        env = run.environment or {}
        machine = machine_key(env)
        code = code_of(run)
        label = run_point_label(run)
        (read,) = read_runs(store, [run])
        for result, row in zip(read.results, read.rows):
            if not row["measurement"] or not matches(result.spec, case_filter):
                continue
            key = (machine, result.spec.match_key())
            hist = series.get(key)
            if hist is None:
                hist = series[key] = CaseHistory(result.spec, str(env.get("hostname") or machine[1] or "machine"))
            hist.points.append(_point(run, row, label, code))
    out = list(series.values())
    for hist in out:
        hist.points.sort(key=lambda p: (p.started_at, p.run_id))
        analyse(hist, min_change)
    out.sort(key=lambda h: (h.spec.workload, h.machine, h.spec.label()))
    return out


def _point(run: RunInfo, row: dict[str, Any], label: str, code: dict[str, Any]) -> Point:
    return Point(run.id, run.started_at, label, code["commit"], code["branch"], code["dirty"],
                 row["median_s"], row["ci95_low_s"], row["ci95_high_s"], row["n_samples"], row["spec_hash"],
                 tuple(row["flags"]), row["rate"], row["rate_unit"], row["speedup"], row["baseline"])


# --- change detection --------------------------------------------------------------------------


def run_noise(values: list[float]) -> float:
    """Robust run-to-run noise (log units) of a series: the median absolute successive difference, scaled
    to a standard deviation (a step moves one difference, so it barely moves the median)."""
    diffs = [abs(b - a) for a, b in zip(values, values[1:])]
    if not diffs:
        return 0.0
    return statistics.median(diffs) / (0.6745 * math.sqrt(2.0))


def segment(values: list[float], sigmas: list[float], penalty: float | None = None) -> list[tuple[int, int]]:
    """Optimal piecewise-constant segmentation of ``values`` (weights ``1/σ²``) as ``[(start, end), ...]``.

    Minimizes Σ segments (weighted squared error) + ``penalty`` × (number of segments − 1), with every
    segment but the last at least two values long. Exact dynamic programming over prefix sums.
    """
    n = len(values)
    if n < 3:
        return [(0, n)] if n else []
    if penalty is None:
        penalty = PENALTY_PER_LOG_N * math.log(n)
    w = [1.0 / (s * s) for s in sigmas]
    sw, swy, swy2 = [0.0], [0.0], [0.0]
    for wi, yi in zip(w, values):
        sw.append(sw[-1] + wi)
        swy.append(swy[-1] + wi * yi)
        swy2.append(swy2[-1] + wi * yi * yi)

    def cost(a: int, b: int) -> float:
        tw = sw[b] - sw[a]
        ty = swy[b] - swy[a]
        return max(0.0, (swy2[b] - swy2[a]) - ty * ty / tw)

    best = [math.inf] * (n + 1)
    start = [0] * (n + 1)
    best[0] = -penalty  # the first segment pays no step penalty
    for end in range(1, n + 1):
        min_len = 1 if end == n else 2
        for s in range(0, end - min_len + 1):
            if s and best[s] == math.inf:
                continue
            c = best[s] + penalty + cost(s, end)
            if c < best[end]:
                best[end], start[end] = c, s
    bounds = []
    end = n
    while end > 0:
        bounds.append((start[end], end))
        end = start[end]
    return bounds[::-1]


def _level(values: list[float], weights: list[float], a: int, b: int) -> float:
    tw = sum(weights[a:b])
    return sum(w * v for w, v in zip(weights[a:b], values[a:b])) / tw


def outliers(values: list[float], sigmas: list[float]) -> list[bool]:
    """Interior values far (``OUTLIER_SIGMAS`` noise widths) from the median of their two neighbours on each
    side, where those neighbours agree with each other (so a step is never taken for an outlier)."""
    out = [False] * len(values)
    for i in range(2, len(values) - 2):
        around = values[i - 2: i] + values[i + 1: i + 3]
        centre = statistics.median(around)
        dev = abs(values[i] - centre)
        if dev > OUTLIER_SIGMAS * sigmas[i] and max(around) - min(around) < dev / 2:
            out[i] = True
    return out


def detect(values: list[float], ci_halfwidths: list[float], min_change: float = DEFAULT_MIN_CHANGE,
           skip: list[bool] | None = None) -> list[tuple[int, int, float]]:
    """Segments ``(start, end, level)`` of a series of log medians with their CI half-widths (log units).

    Values marked in ``skip`` are left out of the fit (they belong to the segment around them).
    Neighbouring segments whose levels differ by less than ``min_change`` (a fraction) are merged.
    """
    keep = [i for i in range(len(values)) if not (skip and skip[i])]
    if not keep:
        return []
    vals = [values[i] for i in keep]
    noise = run_noise(vals)
    sigmas = [math.sqrt((ci_halfwidths[i] / 1.96) ** 2 + noise ** 2 + NOISE_FLOOR ** 2) for i in keep]
    weights = [1.0 / (s * s) for s in sigmas]
    bounds = segment(vals, sigmas)
    fitted = [(a, b, _level(vals, weights, a, b)) for a, b in bounds]
    segs = _merge(fitted, vals, weights, min_change)
    # Back to positions in ``values``: a skipped value belongs to the segment it sits in.
    out = []
    for k, (a, b, level) in enumerate(segs):
        start = 0 if k == 0 else keep[a]
        end = len(values) if k == len(segs) - 1 else keep[b]
        out.append((start, end, level))
    return out


def _merge(segs: list[tuple[int, int, float]], values: list[float], weights: list[float],
           min_change: float) -> list[tuple[int, int, float]]:
    threshold = math.log1p(min_change)
    segs = list(segs)
    merged = True
    while merged and len(segs) > 1:
        merged = False
        gaps = [abs(segs[i + 1][2] - segs[i][2]) for i in range(len(segs) - 1)]
        i = min(range(len(gaps)), key=gaps.__getitem__)
        if gaps[i] < threshold:
            a, b = segs[i][0], segs[i + 1][1]
            segs[i: i + 2] = [(a, b, _level(values, weights, a, b))]
            merged = True
    return segs


def analyse(hist: CaseHistory, min_change: float = DEFAULT_MIN_CHANGE) -> None:
    """Fill ``segments`` and ``changes`` of ``hist``: steps within each stretch of one spec hash, and a
    ``benchmark changed`` mark where the hash changes."""
    hist.segments, hist.changes = [], []
    pts = hist.points
    stretches: list[tuple[int, int]] = []
    a = 0
    for i in range(1, len(pts) + 1):
        if i == len(pts) or (pts[i].spec_hash and pts[a].spec_hash and pts[i].spec_hash != pts[a].spec_hash):
            stretches.append((a, i))
            a = i
    for k, (a, b) in enumerate(stretches):
        sub = pts[a:b]
        logs = [math.log(p.median_s) for p in sub]
        halves = [(math.log(p.ci_high_s) - math.log(p.ci_low_s)) / 2 if p.ci_low_s > 0 else 0.0 for p in sub]
        noise = run_noise(logs)
        odd = outliers(logs, [math.sqrt((h / 1.96) ** 2 + noise ** 2 + NOISE_FLOOR ** 2) for h in halves])
        for p, o in zip(sub, odd):
            p.outlier = o
        segs = [(a + s, a + e, math.exp(level)) for s, e, level in detect(logs, halves, min_change, odd)]
        if k:
            prev = hist.segments[-1]
            hist.changes.append(Change(a, pts[a - 1], pts[a], prev[2], segs[0][2], "benchmark changed"))
        for (_, _, l0), (s1, e1, l1) in zip(segs, segs[1:]):
            kind = "unconfirmed" if e1 - s1 == 1 and e1 == len(pts) else "step"
            hist.changes.append(Change(s1, pts[s1 - 1], pts[s1], l0, l1, kind))
        hist.segments.extend(segs)
