"""Run-to-run comparison: match cases by their spec, decide faster / slower / same / inconclusive /
not comparable.

A case is *slower* or *faster* only when the difference is both real and large enough: real means
a two-sided Mann-Whitney U test on the two runs' raw per-call samples rejects "same distribution"
at ``alpha`` (timings are not normal: they have a floor and a long right tail, so a rank test is
the right tool); large enough means the medians differ by at least ``threshold_pct``. Two cases
whose spec hash differs (a changed kernel source or workload version) are *not comparable*, as
are cases that did not produce a correct measurement on both sides (the asv rule), and cases timed as
in the lecture (flag ``not_a_measurement``: no synchronization, so no measurement to compare).

A case is *inconclusive*, never slower, faster or same, when:

* the machine disturbed a side: either side ran on a ``busy`` machine (other processes took more
  than a quarter of a core), or exactly one side ran on a ``throttled`` GPU (both throttled is the
  workload's own power or thermal limit, and compares as usual, with a note); or
* the change is large (at least ``threshold_pct``) but not significant (p ≥ ``alpha``): the
  samples cannot tell a +66 % change from noise, which is not the same as no change. More samples
  (``--budget``) or a quieter machine decide it.

"same" is kept for a change below the threshold, significant or not.

Beside its verdict, each case shows the new side's rate, speedup and flags as every other surface does (its
row, :mod:`gpubench.rows`). Pure Python: no SciPy needed.

:func:`compare` compares two stored runs (or a run and its machine's history) as ``gpubench compare`` does; the
module itself can be called, ``gpubench.compare(base, new)``, and a :class:`Comparison` shows itself in a
notebook as its HTML page (:func:`render_html`).
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import types
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from gpubench.envinfo import machine_key
from gpubench.errors import UsageError
from gpubench.records import NOT_A_MEASUREMENT, CaseResult, CaseSpec
from gpubench.rows import build_rows, is_a_measurement
from gpubench.store import CALIBRATE_SUITE, ResultStore, RunInfo
from gpubench.tables import fmt_rate, fmt_speedup, fmt_time, render

LABELS = ("slower", "faster", "inconclusive", "same", "not comparable")

#: Use the exact null distribution of U when there are no ties and at most this many sample pairs.
EXACT_MAX_PAIRS = 400


def _ranks(values: list[float]) -> tuple[list[float], list[int]]:
    """Average ranks (1-based) of ``values`` and the sizes of their tie groups."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    ties = []
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        avg = (i + j) / 2.0 + 1.0
        for k in range(i, j + 1):
            ranks[order[k]] = avg
        ties.append(j - i + 1)
        i = j + 1
    return ranks, ties


def _exact_cdf(u: float, m: int, n: int) -> float:
    """P(U <= u) under the null for sample sizes m, n without ties (counting by dynamic programming)."""
    # counts[j][k]: arrangements of j x-values among ... built up by the classic recurrence
    # f(m, n, u) = f(m - 1, n, u - n) + f(m, n - 1, u).
    max_u = m * n
    prev = [[1] + [0] * max_u for _ in range(n + 1)]  # m = 0: U is 0 for every n
    for _ in range(m):
        cur = [[1] + [0] * max_u]  # n = 0: U is 0
        for j in range(1, n + 1):
            row = cur[j - 1][:]  # the largest value is a y: U unchanged
            src = prev[j]  # the largest value is an x: it beats all j y's
            for k in range(j, max_u + 1):
                row[k] += src[k - j]
            cur.append(row)
        prev = cur
    counts = prev[n]
    total = math.comb(m + n, m)
    return sum(counts[: int(math.floor(u)) + 1]) / total


def mann_whitney_u(x: list[float], y: list[float]) -> tuple[float, float]:
    """Two-sided Mann-Whitney U test: ``(U of x, p-value)``.

    Exact null distribution without ties up to ``EXACT_MAX_PAIRS`` pairs (further than SciPy's
    ``method="auto"``, which stops at 8 samples per side), otherwise the normal approximation
    with tie and continuity corrections, as SciPy's ``method="asymptotic"``.
    """
    m, n = len(x), len(y)
    if m == 0 or n == 0:
        raise ValueError("Mann-Whitney U needs samples on both sides")
    ranks, ties = _ranks(list(x) + list(y))
    r1 = sum(ranks[:m])
    u1 = r1 - m * (m + 1) / 2.0
    u2 = m * n - u1
    big = max(u1, u2)
    has_ties = any(t > 1 for t in ties)
    if not has_ties and m * n <= EXACT_MAX_PAIRS:
        # P(U >= big) = P(U <= m*n - big) by symmetry.
        p = 2.0 * _exact_cdf(m * n - big, m, n)
        return u1, min(1.0, p)
    mu = m * n / 2.0
    tie_term = sum(t**3 - t for t in ties) / ((m + n) * (m + n - 1)) if m + n > 1 else 0.0
    sigma = math.sqrt(m * n / 12.0 * ((m + n + 1) - tie_term))
    if sigma == 0:
        return u1, 1.0
    z = (big - mu - 0.5) / sigma
    p = math.erfc(max(z, 0.0) / math.sqrt(2.0))
    return u1, min(1.0, p)


@dataclass
class CaseComparison:
    """One matched (or unmatched) case."""

    spec: CaseSpec
    label: str
    base: CaseResult | None
    new: CaseResult | None
    change_pct: float | None = None
    """(new median / base median − 1) × 100: positive means slower."""
    p_value: float | None = None
    reason: str = ""
    base_row: dict[str, Any] | None = None
    new_row: dict[str, Any] | None = None
    """The two sides' rows (:mod:`gpubench.rows`): the rate, speedup and flags every other surface shows."""


@dataclass
class Comparison:
    """The outcome of comparing two runs."""

    base: RunInfo
    new: RunInfo
    threshold_pct: float
    alpha: float
    cases: list[CaseComparison] = field(default_factory=list)
    base_text: str = ""
    """What the base is when it is not one run (``median of the last 5 runs of this machine: runs 3-7``)."""
    note: str = ""
    """Why there is nothing to compare, when there is not (the first run of a machine has no history yet)."""

    @property
    def shared(self) -> int:
        """How many cases both sides have (0: the two runs have nothing to compare)."""
        return sum(1 for c in self.cases if c.base is not None and c.new is not None)

    def describe_base(self) -> str:
        """``run 3 (matmul, 2026-...)`` or the history base's description."""
        if self.base_text:
            return self.base_text
        return f"run {self.base.id} ({self.base.suite}, {self.base.started_at})"

    @property
    def regressions(self) -> list[CaseComparison]:
        """Cases slower beyond the threshold (these make ``gpubench compare`` exit with status 1)."""
        return [c for c in self.cases if c.label == "slower"]

    def counts(self) -> Counter:
        """How many cases got each label."""
        return Counter(c.label for c in self.cases)

    def __str__(self) -> str:
        return self.note if self.note else format_table(self)

    def _repr_html_(self) -> str:
        """The comparison in a notebook: its HTML page (:func:`render_html`) inline."""
        from gpubench.report.html import esc, iframe

        if self.note:
            return f"<p>{esc(self.note)}</p>"
        return iframe(render_html(self), height=min(720, 220 + 30 * len(self.cases)),
                      title=f"gpubench compare: run {self.new.id}", scripts=False)


def compare_results(base: CaseResult, new: CaseResult, threshold_pct: float = 5.0,
                    alpha: float = 0.05, base_median: float | None = None) -> CaseComparison:
    """Label one pair of results of the same spec (``base_median`` replaces the base's own median, as for a
    base pooled from several runs, whose level is the median of the runs' medians)."""
    spec = new.spec
    for side, r in (("base", base), ("new", new)):
        if r.status == "ok" and not is_a_measurement(r):
            return CaseComparison(spec, "not comparable", base, new,
                                  reason=f"{side} run: {NOT_A_MEASUREMENT} (timed as in the lecture, without "
                                         "synchronization: never compared)")
        if r.status != "ok":
            why = f": {r.error}" if r.error else ""
            return CaseComparison(spec, "not comparable", base, new, reason=f"{side} run: {r.status}{why}")
    if base.spec_hash and new.spec_hash and base.spec_hash != new.spec_hash:
        return CaseComparison(spec, "not comparable", base, new,
                              reason=f"benchmark changed (spec hash {base.spec_hash} → {new.spec_hash}): "
                                     "kernel source or workload version differs")
    b, n = base_median or base.median_s, new.median_s
    change = (n / b - 1.0) * 100.0
    _, p = mann_whitney_u(list(base.samples), list(new.samples))
    bs, ns = base.summary, new.summary
    overlap = not (ns.ci95_low > bs.ci95_high or ns.ci95_high < bs.ci95_low)
    disturbed = disturbance(base, new)
    if disturbed:
        return CaseComparison(spec, "inconclusive", base, new, change, p, disturbed)
    both_throttled = "throttled" in base.flags and "throttled" in new.flags
    if p >= alpha and abs(change) >= threshold_pct:
        label = "inconclusive"
        reason = (f"a {change:+.0f}% change that is not significant (p = {p:.2g} ≥ {alpha:g}): "
                  "take more samples (--budget) to decide")
    elif p >= alpha:
        label = "same"
        reason = f"within noise (p = {p:.2g})"
    elif abs(change) < threshold_pct:
        label = "same"
        reason = f"real but below the {threshold_pct:g}% threshold"
    else:
        label = "slower" if change > 0 else "faster"
        reason = "" if not overlap else "confidence intervals overlap"
    if both_throttled:
        reason = "; ".join(x for x in (reason, "both sides ran on a throttled GPU") if x)
    return CaseComparison(spec, label, base, new, change, p, reason)


def _busy_text(r: CaseResult) -> str:
    cpu = (r.machine or {}).get("cpu") or {}
    other, cores = cpu.get("other_cores"), cpu.get("cores")
    if isinstance(other, (int, float)):
        return f"busy machine (other processes used {other:.2g}" + (f" of {cores} cores)" if cores else " cores)")
    return "busy machine"


def _throttle_text(r: CaseResult) -> str:
    gpu = (r.machine or {}).get("gpu") or {}
    # A record names the reasons that flagged it (throttled_by); one made before that, every reason but idle.
    names = gpu.get("throttled_by") or [n for n in gpu.get("throttle") or [] if n not in (
        "gpu_idle", "applications_clocks_setting", "display_clock_setting")]
    return "throttled GPU" + (f" ({', '.join(names)})" if names else "")


def disturbance(base: CaseResult, new: CaseResult) -> str:
    """Why the machine makes this pair inconclusive ('' when it does not): a busy side, or one throttled side."""
    why = [f"{side} run: {_busy_text(r)}" for side, r in (("base", base), ("new", new)) if "busy" in r.flags]
    throttled = [side for side, r in (("base", base), ("new", new)) if "throttled" in r.flags]
    if len(throttled) == 1:
        r = base if throttled[0] == "base" else new
        why.append(f"{throttled[0]} run: {_throttle_text(r)}, the other not")
    return "; ".join(why)


def compare_runs(base_run: RunInfo, base_results: list[CaseResult], new_run: RunInfo,
                 new_results: list[CaseResult], threshold_pct: float = 5.0, alpha: float = 0.05,
                 base_medians: dict[str, float] | None = None, base_text: str = "",
                 base_rows: list[dict[str, Any]] | None = None,
                 new_rows: list[dict[str, Any]] | None = None) -> Comparison:
    """Match two runs' cases by :meth:`CaseSpec.match_key` and label each (a case repeated in a run: last wins).

    ``base_medians`` (by match key) replace the base results' own medians (see :func:`history_base`).
    ``base_rows`` and ``new_rows`` are the results' rows (:func:`gpubench.rows.read_runs`, in the results'
    order), whose rate, speedup and flags the comparison shows; without them, rows are built without ceilings.
    """
    base_rows = base_rows if base_rows is not None else build_rows(base_run, base_results)
    new_rows = new_rows if new_rows is not None else build_rows(new_run, new_results)
    base_by = {r.spec.match_key(): (r, row) for r, row in zip(base_results, base_rows)}
    new_by = {r.spec.match_key(): (r, row) for r, row in zip(new_results, new_rows)}
    out = Comparison(base_run, new_run, threshold_pct, alpha, base_text=base_text)
    for key, (nr, nrow) in new_by.items():
        if key not in base_by:
            c = CaseComparison(nr.spec, "not comparable", None, nr, reason="only in the new run")
        else:
            br, brow = base_by[key]
            c = compare_results(br, nr, threshold_pct, alpha, (base_medians or {}).get(key))
            c.base_row = brow
        c.new_row = nrow
        out.cases.append(c)
    for key, (br, brow) in base_by.items():
        if key not in new_by:
            out.cases.append(CaseComparison(br.spec, "not comparable", br, None, reason="only in the base run",
                                            base_row=brow))
    order = {label: i for i, label in enumerate(LABELS)}
    out.cases.sort(key=lambda c: (order[c.label], -(abs(c.change_pct) if c.change_pct is not None else 0)))
    return out


@dataclass
class HistoryBase:
    """A base made of the last N earlier runs of the new run's machine (:func:`history_base`)."""

    runs: list[RunInfo]
    results: list[CaseResult]
    medians: dict[str, float]

    def describe(self, last_n: int) -> str:
        ids = ", ".join(str(r.id) for r in self.runs)
        return f"median of up to the last {last_n} runs of this machine with each case (runs {ids})"


def history_base(store: ResultStore, new_run: RunInfo, new_results: list[CaseResult], last_n: int) -> HistoryBase:
    """For each case of ``new_run``, its results in the last ``last_n`` earlier runs of the same machine.

    Same machine: same host name, CPU model and GPU names (:func:`gpubench.envinfo.machine_key`);
    earlier: a smaller run id; calibration runs are left out. Per case, only correct results
    count, and only those of the same benchmark (spec hash) as the new case when any exist. The
    base result pools their raw samples (for the rank test, so run-to-run noise counts as noise) and
    its level is the median of their medians.
    """
    key = machine_key(new_run.environment or {})
    wanted = {r.spec.match_key(): r for r in new_results}
    found: dict[str, list[tuple[RunInfo, CaseResult]]] = {}
    used: dict[int, RunInfo] = {}
    for run in sorted(store.runs(), key=lambda r: -r.id):
        if run.id >= new_run.id or run.suite == CALIBRATE_SUITE or machine_key(run.environment or {}) != key:
            continue
        if all(len(found.get(k, ())) >= last_n for k in wanted):
            break
        for r in store.iter_results(run.id):
            k = r.spec.match_key()
            if k in wanted and r.status == "ok" and r.samples and len(found.setdefault(k, [])) < last_n:
                found[k].append((run, r))
                used[run.id] = run
    results, medians = [], {}
    for k, members in found.items():
        if not members:
            continue
        same = [(run, r) for run, r in members if r.spec_hash == wanted[k].spec_hash]
        members = same or members[:1]  # none of the same benchmark: the newest, to say it changed
        pooled = tuple(s for _, r in members for s in r.samples)
        first = members[0][1]
        results.append(CaseResult(first.spec, "ok", samples=pooled, spec_hash=first.spec_hash, clock=first.clock,
                                  flops=first.flops, bytes=first.bytes, device_name=first.device_name,
                                  flags=first.flags))
        medians[k] = statistics.median(r.median_s for _, r in members)
    return HistoryBase(sorted(used.values(), key=lambda r: r.id), results, medians)


def _size(spec: CaseSpec) -> str:
    from gpubench.workloads import size_text

    return size_text(spec.workload, spec.param_dict)


def _row(c: CaseComparison) -> list[str]:
    s = c.spec
    new = c.new_row or {}
    return [c.label, s.workload, _size(s), s.series, s.dtype,
            fmt_time(c.base.median_s if c.base else None), fmt_time(c.new.median_s if c.new else None),
            f"{c.change_pct:+.1f}%" if c.change_pct is not None else "-",
            f"{c.p_value:.2g}" if c.p_value is not None else "-",
            fmt_rate(new), fmt_speedup(new.get("speedup")), " ".join(new.get("flags") or []) or "-", c.reason[:90]]


#: Columns of a comparison; ``new rate``, ``new speedup`` and ``new flags`` are the new case's row
#: (:mod:`gpubench.rows`), as ``show``, ``export`` and the report give them.
HEADERS = ["result", "workload", "size", "backend", "dtype", "base median", "new median", "change", "p",
           "new rate", "new speedup", "new flags", "note"]


def summary_line(comparison: Comparison) -> str:
    """``2 slower, 1 faster, 10 same, 0 not comparable`` plus the rule used."""
    counts = comparison.counts()
    parts = ", ".join(f"{counts.get(label, 0)} {label}" for label in LABELS)
    return (f"{parts} (threshold {comparison.threshold_pct:g}%, Mann-Whitney U at alpha {comparison.alpha:g}; "
            "change = new median / base median - 1, positive is slower)")


def format_table(comparison: Comparison) -> str:
    """The terminal report of a comparison."""
    from gpubench.textout import visible

    head = visible(f"base: {comparison.describe_base()}"
                   f"   new: run {comparison.new.id} ({comparison.new.suite}, {comparison.new.started_at})")
    if not comparison.cases:
        return head + "\nno cases to compare"
    table = render(HEADERS, [_row(c) for c in comparison.cases], right=(5, 6, 7, 8, 9, 10))
    return f"{head}\n{table}\n{summary_line(comparison)}"


def render_html(comparison: Comparison) -> str:
    """A self-contained HTML page of the comparison (no script at all; every value escaped)."""
    from gpubench.report.html import esc

    colors = {"slower": "#cf222e", "faster": "#1a7f37", "inconclusive": "#8250df", "same": "#57606a",
              "not comparable": "#9a6700"}
    body = []
    for c in comparison.cases:
        cells = _row(c)
        cells[-1] = c.reason
        tds = "".join(f"<td>{esc(v)}</td>" for v in cells[1:])
        body.append(f'<tr><td style="color:{colors[c.label]};font-weight:600">{esc(c.label)}</td>{tds}</tr>')
    head = "".join(f"<th>{esc(h)}</th>" for h in HEADERS)
    b, n = comparison.base, comparison.new
    base_name = "history" if comparison.base_text else f"run {b.id}"
    title = f"gpubench compare: {base_name} → run {n.id}"
    base_line = (esc(comparison.base_text) if comparison.base_text
                 else f"run {esc(b.id)} {esc(b.label)} · suite {esc(b.suite)} · {esc(b.started_at)}")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>{esc(title)}</title>
<style>body{{font:14px/1.5 system-ui,sans-serif;margin:24px;color:#1d2327}}table{{border-collapse:collapse}}
th,td{{border-bottom:1px solid #dde3e8;padding:4px 8px;text-align:left}}th{{background:#f0f3f6}}
.muted{{color:#5f6b73}}</style></head><body>
<h1>{esc(title)}</h1>
<p class="muted">base: {base_line}<br>
new: run {esc(n.id)} {esc(n.label)} · suite {esc(n.suite)} · {esc(n.started_at)}</p>
<p>{esc(summary_line(comparison))}</p>
<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>
</body></html>
"""


class NoSharedCase(UsageError):
    """Two runs with no case in common: nothing to compare (``gpubench compare`` exits with status 2)."""


def _number(option: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"{option} must be a number, got {value!r}")
    return float(value)


def check_options(threshold: float, alpha: float, against_last: int | None = None) -> None:
    """A :class:`UsageError` for a threshold that is not a non-negative percentage, an alpha outside (0, 1) or an
    ``against_last`` that is not a positive number of runs."""
    if not _number("--threshold", threshold) >= 0:
        raise UsageError(f"--threshold must be a non-negative percentage, got {threshold}")
    if not 0 < _number("--alpha", alpha) < 1:
        raise UsageError(f"--alpha must be between 0 and 1, got {alpha}")
    if against_last is not None and (isinstance(against_last, bool) or not isinstance(against_last, int)
                                     or against_last < 1):
        raise UsageError(f"--against-last must be a positive number of runs, got {against_last}")


def compare(base: str | int | None = None, new: str | int = "latest", *, against_last: int | None = None,
            threshold: float = 5.0, alpha: float = 0.05, store: str | os.PathLike[str] | None = None) -> Comparison:
    """Compare two stored runs case by case, as ``gpubench compare BASE NEW`` does (also ``gpubench.compare``).

    ``base`` and ``new``: run ids, ``latest`` or ``latest~N``; with ``against_last=N`` instead of ``base``, ``new``
    is judged against the median of the last N earlier runs of its machine (with no earlier run of that machine
    the comparison is empty and its :attr:`~Comparison.note` says so). ``threshold``: the smallest change in %
    that counts as faster or slower; ``alpha``: the rank test's significance level; ``store``: the results store,
    opened read-only. Bad input is a :class:`~gpubench.errors.UsageError` (:class:`NoSharedCase` for two runs
    with no case in common). :attr:`Comparison.regressions` are the cases that make ``gpubench compare`` exit 1;
    in a notebook the comparison shows as its HTML page.
    """
    from gpubench.rows import read_runs
    from gpubench.store import open_store

    check_options(threshold, alpha, against_last)
    for name, ref in (("base", base), ("new", new)):
        if ref is not None and (isinstance(ref, bool) or not isinstance(ref, (str, int))):
            raise UsageError(f"{name}: a run id, 'latest' or 'latest~N', got {ref!r}")
    if new is None:
        raise UsageError("name the run to judge (NEW)")
    if against_last is not None:
        if base is not None:
            raise UsageError("with --against-last N give only the run to judge: gpubench compare --against-last N NEW")
    elif base is None:
        raise UsageError("give two runs, BASE and NEW (or --against-last N NEW)")
    with open_store(os.fspath(store) if store is not None else None, readonly=True) as opened:
        if against_last is not None:
            (new_read,) = read_runs(opened, [opened.run(new)])
            new_info, new_results = new_read.info, new_read.results
            hist = history_base(opened, new_info, new_results, against_last)
            if not hist.results:
                # The first runs of a machine have no history yet: that is no failure of the new run.
                return Comparison(new_info, new_info, threshold, alpha, note=(
                    f"no earlier run of this machine has any case of run {new_info.id}: nothing to compare yet (the "
                    "history starts here)"))
            comparison = compare_runs(hist.runs[-1], hist.results, new_info, new_results, threshold_pct=threshold,
                                      alpha=alpha, base_medians=hist.medians,
                                      base_text=hist.describe(against_last), new_rows=new_read.rows)
        else:
            b, n = read_runs(opened, [opened.run(base), opened.run(new)])
            comparison = compare_runs(b.info, b.results, n.info, n.results, threshold_pct=threshold, alpha=alpha,
                                      base_rows=b.rows, new_rows=n.rows)
    if comparison.cases and not comparison.shared:
        b_info, n_info = comparison.base, comparison.new
        raise NoSharedCase(f"runs {b_info.id} ({b_info.suite}) and {n_info.id} ({n_info.suite}) share no case: "
                           "nothing to compare (list the runs with 'gpubench runs' and pick two of the same suite)")
    return comparison


class _CallableModule(types.ModuleType):
    """This module's type: calling ``gpubench.compare(...)`` calls :func:`compare` (the module keeps its name, so
    that ``gpubench.compare.compare_runs`` and the rest stay where they are)."""

    def __call__(self, base: str | int | None = None, new: str | int = "latest", **options: Any) -> Comparison:
        return compare(base, new, **options)


sys.modules[__name__].__class__ = _CallableModule
