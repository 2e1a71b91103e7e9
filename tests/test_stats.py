"""Statistics derived from raw samples."""

import math

import pytest

from gpubench.stats import median_ci95, quantile, summarize


def test_summary_of_known_samples():
    s = summarize([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (s.n, s.min, s.max, s.median, s.mean) == (5, 1.0, 5.0, 3.0, 3.0)
    assert s.stdev == pytest.approx(math.sqrt(2.5))
    assert (s.q1, s.q3, s.iqr) == (2.0, 4.0, 2.0)


def test_quantile_interpolates():
    assert quantile([0.0, 10.0], 0.25) == 2.5
    with pytest.raises(ValueError):
        quantile([], 0.5)


def test_median_ci_uses_order_statistics():
    xs = [float(i) for i in range(1, 101)]
    lo, hi = median_ci95(xs)
    # Binomial(100, 1/2) 95 % interval of the median: ranks 40 and 61 (1-based).
    assert (lo, hi) == (40.0, 61.0)
    assert lo <= summarize(xs).median <= hi


def test_small_samples_fall_back_to_range():
    assert median_ci95([3.0, 1.0, 2.0]) == (1.0, 3.0)


def test_relative_ci_halfwidth():
    # 1..20 in a shuffled order: n = 20 puts the interval at the 5th and 16th order statistics (5.0 and 16.0)
    # around the median 10.5, so half the interval over the median is 5.5 / 10.5.
    xs = [float(x) for x in (7, 19, 3, 12, 1, 16, 9, 20, 5, 14, 2, 18, 11, 6, 15, 4, 13, 8, 17, 10)]
    s = summarize(xs)
    assert (s.ci95_low, s.median, s.ci95_high) == (5.0, 10.5, 16.0)
    assert s.rel_ci_halfwidth == pytest.approx(5.5 / 10.5)
    # Relative: the same shape in microseconds gives the same width.
    assert summarize([x * 1e-6 for x in xs]).rel_ci_halfwidth == pytest.approx(5.5 / 10.5)
    # A skewed sample: the interval is asymmetric, the half-width is half its length.
    skew = summarize([1.0] * 10 + [2.0] * 5 + [10.0] * 5)
    assert (skew.ci95_low, skew.median, skew.ci95_high) == (1.0, 1.5, 10.0)
    assert skew.rel_ci_halfwidth == pytest.approx(3.0)
    assert summarize([1.0] * 20).rel_ci_halfwidth == 0.0
    assert summarize([0.0, 0.0, 0.0]).rel_ci_halfwidth == math.inf  # no median to be relative to
    with pytest.raises(ValueError):
        summarize([])
