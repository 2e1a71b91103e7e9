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
    s = summarize([1.0] * 20)
    assert s.rel_ci_halfwidth == 0.0
    with pytest.raises(ValueError):
        summarize([])
