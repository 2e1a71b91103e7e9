"""``gpubench compare``: the Mann-Whitney test, labels on samples with known outcomes, exit status."""

from __future__ import annotations

import math
import random
import re

import pytest

from gpubench.compare import EXACT_MAX_PAIRS, compare_results, compare_runs, mann_whitney_u
from gpubench.records import CaseResult, CaseSpec
from gpubench.store import ResultStore

SPEC = CaseSpec.make("matmul", "numpy", "cpu", "float32", {"m": 256, "n": 256, "k": 256})


def result(median: float, n: int = 30, seed: int = 0, noise: float = 0.01, spec: CaseSpec = SPEC,
           spec_hash: str = "abc", status: str = "ok", flags: tuple[str, ...] = (),
           machine: dict | None = None) -> CaseResult:
    if status != "ok":
        return CaseResult(spec, status, error="no cuda device", spec_hash=spec_hash)
    rng = random.Random(seed)
    samples = tuple(median * (1 + rng.gauss(0, noise)) for _ in range(n))
    return CaseResult(spec, "ok", samples=samples, spec_hash=spec_hash, flops=2.0 * 256**3, flags=flags,
                      machine=machine or {})


BUSY = {"cpu": {"other_cores": 1.02, "cores": 2}}


# --- the test itself, against values computed by hand and by SciPy ---------------------------------


def test_mann_whitney_exact_small_samples():
    # Complete separation of 5 vs 5: U = 0, exact two-sided p = 2 / C(10, 5) = 2/252.
    u, p = mann_whitney_u([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])
    assert u == 0
    assert p == pytest.approx(2 / 252)
    # Interleaved samples: no evidence at all.
    u, p = mann_whitney_u([1, 3, 5, 7], [2, 4, 6, 8])
    assert u == 6 and p == pytest.approx(0.6857142857, rel=1e-6)  # scipy.stats.mannwhitneyu, exact


def test_mann_whitney_normal_approximation_with_ties():
    x = [1.0, 2.0, 2.0, 3.0, 4.0, 4.0, 5.0]
    y = [3.0, 4.0, 5.0, 5.0, 6.0, 7.0, 7.0, 8.0]
    u, p = mann_whitney_u(x, y)
    # By hand: rank sum of x = 1 + 2.5 + 2.5 + 4.5 + 7 + 7 + 10 = 34.5, U = 34.5 - 7·8/2 = 6.5;
    # tie term Σ(t³ - t) / (N(N - 1)) = 66 / 210; σ² = 7·8/12 · (16 - 66/210) = 73.2;
    # z = (49.5 - 28 - 0.5) / √73.2 = 2.4544; p = erfc(z / √2) = 0.01411.
    assert u == 6.5
    assert p == pytest.approx(0.01411, abs=2e-4)


def test_mann_whitney_agrees_with_scipy_when_installed():
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(3)
    for m, n in ((5, 7), (12, 12), (30, 25)):
        x = [rng.random() for _ in range(m)]
        y = [rng.random() + 0.2 for _ in range(n)]
        # gpubench uses the exact distribution up to EXACT_MAX_PAIRS (SciPy's "auto" stops at 8 per side).
        method = "exact" if m * n <= EXACT_MAX_PAIRS else "asymptotic"
        ref = stats.mannwhitneyu(x, y, alternative="two-sided", method=method)
        u, p = mann_whitney_u(x, y)
        assert u == pytest.approx(ref.statistic)
        assert p == pytest.approx(ref.pvalue, rel=0.05)


def test_mann_whitney_identical_samples():
    u, p = mann_whitney_u([1.0] * 5, [1.0] * 5)
    assert p == 1.0 and not math.isnan(u)


# --- labels ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("new_median", "label"), [
    (1.20e-3, "slower"),   # 20 % slower, far outside the noise
    (0.80e-3, "faster"),
    (1.02e-3, "same"),     # real but below the 5 % threshold
])
def test_labels_on_known_shifts(new_median, label):
    c = compare_results(result(1e-3, seed=1), result(new_median, seed=2), threshold_pct=5.0)
    assert c.label == label
    assert c.change_pct == pytest.approx((new_median / 1e-3 - 1) * 100, abs=1.0)


def test_large_change_that_is_not_significant_is_inconclusive_not_same():
    # Two draws from the same very noisy distribution: the medians differ by more than the
    # threshold, but the rank test cannot tell: that is "we do not know", not "same".
    base = result(1e-3, n=8, seed=10, noise=0.4)
    new = result(1e-3, n=8, seed=11, noise=0.4)
    c = compare_results(base, new, threshold_pct=1.0)
    assert abs(c.change_pct) >= 1.0 and c.p_value >= 0.05
    assert c.label == "inconclusive" and "not significant" in c.reason
    # The same samples with a threshold above the change: below the threshold is "same".
    c = compare_results(base, new, threshold_pct=abs(c.change_pct) + 1)
    assert c.label == "same" and "within noise" in c.reason


def test_the_reported_case_plus_66_percent_at_p_0063_is_inconclusive():
    # The case: +66 % at p = 0.063 was labelled "same". Five samples a side, medians 1.0 and 1.66 ms.
    base = CaseResult(SPEC, "ok", samples=(0.6e-3, 0.8e-3, 1.0e-3, 1.9e-3, 2.0e-3), spec_hash="abc")
    new = CaseResult(SPEC, "ok", samples=(1.1e-3, 1.5e-3, 1.66e-3, 2.1e-3, 2.2e-3), spec_hash="abc")
    c = compare_results(base, new, threshold_pct=5.0)
    assert c.change_pct == pytest.approx(66.0) and c.p_value >= 0.05
    assert c.label == "inconclusive"


def test_not_comparable_when_benchmark_changed_or_not_ok():
    c = compare_results(result(1e-3, spec_hash="aaa"), result(2e-3, spec_hash="bbb"))
    assert c.label == "not comparable" and "spec hash" in c.reason
    c = compare_results(result(1e-3), result(1e-3, status="skipped"))
    assert c.label == "not comparable" and "skipped" in c.reason


@pytest.mark.parametrize("side", ["base", "new", "both"])
def test_a_busy_side_is_inconclusive_never_a_regression(side):
    # The numbers: 125x slower under contention. Far beyond noise, and still not a regression.
    base = result(193e-6, seed=1, flags=("busy",) if side in ("base", "both") else (),
                  machine=BUSY if side in ("base", "both") else None)
    new = result(24e-3, seed=2, flags=("busy",) if side in ("new", "both") else (),
                 machine=BUSY if side in ("new", "both") else None)
    c = compare_results(base, new, threshold_pct=50)
    assert c.label == "inconclusive"
    assert c.change_pct > 1000 and c.p_value < 0.05  # the figures are still shown
    assert "busy machine (other processes used 1 of 2 cores)" in c.reason


def test_throttled_on_one_side_is_inconclusive_on_both_compares_with_a_note():
    throttled = {"gpu": {"throttle": ["gpu_idle", "sw_power_cap"], "throttle_mask": 5}}
    c = compare_results(result(1e-3, seed=1), result(1.3e-3, seed=2, flags=("throttled",), machine=throttled))
    assert c.label == "inconclusive" and c.reason == "new run: throttled GPU (sw_power_cap), the other not"
    c = compare_results(result(1e-3, seed=1, flags=("throttled",), machine=throttled),
                        result(1.3e-3, seed=2, flags=("throttled",), machine=throttled))
    assert c.label == "slower" and "both sides ran on a throttled GPU" in c.reason
    # A record that names what flagged it: those reasons, not its power cap (recorded, normal under load).
    hot = {"gpu": {"throttle": ["sw_power_cap", "hw_thermal_slowdown"], "throttled_by": ["hw_thermal_slowdown"]}}
    c = compare_results(result(1e-3, seed=1), result(1.3e-3, seed=2, flags=("throttled",), machine=hot))
    assert c.reason == "new run: throttled GPU (hw_thermal_slowdown), the other not"


def test_compare_runs_matches_by_spec_and_reports_missing():
    from gpubench.store import RunInfo

    other = CaseSpec.make("saxpy", "numpy", "cpu", "float32", {"n": 1024})
    only_new = CaseSpec.make("saxpy", "numpy", "cpu", "float32", {"n": 2048})
    run = RunInfo(1, "t", None, "complete", "s", "", "numpy", "", {}, {})
    base = [result(1e-3), result(1e-4, spec=other)]
    new = [result(1.5e-3, seed=5), result(1e-4, spec=other, seed=6), result(1e-4, spec=only_new)]
    cmp = compare_runs(run, base, run, new)
    labels = {c.spec.match_key(): c.label for c in cmp.cases}
    assert labels[SPEC.match_key()] == "slower"
    assert labels[other.match_key()] == "same"
    assert labels[only_new.match_key()] == "not comparable"
    assert [c.spec for c in cmp.regressions] == [SPEC]
    assert cmp.cases[0].label == "slower"  # regressions first


# --- command line ----------------------------------------------------------------------------------


def _store_two_runs(path, new_median: float, new_hash: str = "abc"):
    with ResultStore(path) as store:
        a = store.begin_run("matmul", label="<b>base</b>")
        store.add_result(a, result(1e-3, seed=1))
        b = store.begin_run("matmul", label="new")
        store.add_result(b, result(new_median, seed=2, spec_hash=new_hash))
    return a, b


def test_cli_exit_status_one_on_regression(cli, store_path, tmp_path):
    a, b = _store_two_runs(store_path, 1.3e-3)
    code, out, _ = cli("compare", str(a), str(b), "--threshold", "10")
    assert code == 1
    assert "1 slower" in out and re.search(r"slower .* \+(2[5-9]|3[0-5])\.\d%", out), out
    # A threshold above the change: still real, but not a regression.
    code, out, _ = cli("compare", str(a), str(b), "--threshold", "50")
    assert code == 0 and "1 same" in out


def test_cli_no_regression_exit_zero_and_html(cli, store_path, tmp_path):
    a, b = _store_two_runs(store_path, 0.7e-3)
    html_path = tmp_path / "cmp" / "compare.html"
    code, out, err = cli("compare", "latest~1", "latest", "--html", str(html_path))
    assert code == 0, err
    assert "faster" in out
    text = html_path.read_text()
    assert "faster" in text and "&lt;b&gt;base&lt;/b&gt;" in text and "<b>base" not in text
    assert "<script" not in text


def test_cli_hash_change_is_not_comparable(cli, store_path):
    a, b = _store_two_runs(store_path, 3e-3, new_hash="changed")
    code, out, _ = cli("compare", str(a), str(b))
    assert code == 0  # a changed benchmark is not a regression
    assert "not comparable" in out and "1 not comparable" in out


def test_cli_busy_side_is_inconclusive_and_exits_zero(cli, store_path):
    with ResultStore(store_path) as store:
        a = store.begin_run("matmul", label="quiet")
        store.add_result(a, result(1e-3, seed=1))
        b = store.begin_run("matmul", label="under a hog")
        store.add_result(b, result(2e-3, seed=2, flags=("busy",), machine=BUSY))
    code, out, _ = cli("compare", str(a), str(b), "--threshold", "50")
    assert code == 0, out
    assert "1 inconclusive" in out and "0 slower" in out and "new run: busy machine" in out


def test_cli_bad_input(cli, store_path):
    _store_two_runs(store_path, 1e-3)
    code, _, err = cli("compare", "1", "9")
    assert code == 2 and "no run 9" in err
    code, _, err = cli("compare", "1", "2", "--threshold", "-3")
    assert code == 2 and "--threshold" in err


def test_cli_runs_that_share_no_case_warn_and_exit_2(cli, store_path):
    with ResultStore(store_path) as store:
        a = store.begin_run("matmul")
        store.add_result(a, result(1e-3))
        b = store.begin_run("saxpy")
        store.add_result(b, result(1e-4, spec=CaseSpec.make("saxpy", "numpy", "cpu", "float32", {"n": 1024})))
    code, out, err = cli("compare", str(a), str(b))
    assert code == 2 and out == ""
    assert err.startswith("gpubench: warning: runs 1 (matmul) and 2 (saxpy) share no case") and err.count("\n") == 1


# --- against the last N runs of the same machine ------------------------------------------------------


def _history(path, **kw):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from history_store import history_store

    return history_store(path, **kw)


def test_against_last_n_runs_of_the_same_machine(cli, store_path, tmp_path):
    from synthetic_results import environment, samples

    # Runs 1-7 at one level, run 8 has torch 512³ 30 % slower; a faster machine's runs are in between.
    store = _history(store_path, n_runs=7, step_at=99)
    rng = random.Random(9)
    for _ in range(3):
        other = store.begin_run("matmul", environment=environment("other-host", gpu=False))
        spec = CaseSpec.make("matmul", "torch", "cpu", "float32", {"m": 512, "n": 512, "k": 512}, suite="matmul")
        store.add_result(other, CaseResult(spec, "ok", samples=samples(1e-4, 9, rng), spec_hash="htorch"))
    store.close()
    _history(tmp_path / "later.sqlite", n_runs=8, step_at=7).close()
    with ResultStore(tmp_path / "later.sqlite") as later, ResultStore(store_path) as store:
        last = later.run("latest")
        new = store.begin_run("matmul", baseline="numpy", environment=last.environment)
        for r in later.results(last.id):
            store.add_result(new, r)
    code, out, err = cli("compare", "--against-last", "5", "latest", "--threshold", "10")
    assert code == 1, err
    assert "base: median of up to the last 5 runs of this machine with each case (runs 3, 4, 5, 6, 7)" in out
    assert "1 slower, 0 faster, 0 inconclusive, 3 same" in out
    assert re.search(r"slower\s+matmul\s+512³\s+torch:cpu .* \+(2[4-9]|3[0-6])\.\d%", out), out
    html = tmp_path / "c.html"
    code, out, _ = cli("compare", "--against-last", "3", str(new), "--threshold", "50", "--html", str(html))
    assert code == 0 and "runs 5, 6, 7" in out and "gpubench compare: history → run" in html.read_text()


def test_against_last_without_history_is_not_a_failure(cli, store_path):
    _history(store_path, n_runs=1).close()
    code, out, err = cli("compare", "--against-last", "5", "latest")
    assert code == 0 and out == "" and "nothing to compare yet" in err


@pytest.mark.parametrize("args, message", [
    (["--against-last", "0", "1"], "--against-last must be a positive"),
    (["--against-last", "3", "1", "2"], "give only the run to judge"),
    (["1"], "give two runs"),
])
def test_against_last_bad_input(cli, store_path, args, message):
    _store_two_runs(store_path, 1e-3)
    code, _, err = cli("compare", *args)
    assert code == 2 and message in err and err.count("\n") == 1
