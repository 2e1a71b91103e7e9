"""Statistics derived from raw timing samples.

Pure Python on purpose: the store, the report and the harness all use it, and none of them
should need NumPy just to summarise a list of floats. Nothing here imports the rest of gpubench.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: z-value of a two-sided 95 % interval.
Z95 = 1.959963984540054


def quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated quantile ``q`` (0..1) of an already sorted, non-empty list."""
    if not sorted_values:
        raise ValueError("quantile of an empty list")
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = math.ceil(pos)
    if lo == hi:
        return sorted_values[lo]
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def median_ci95(samples: list[float]) -> tuple[float, float]:
    """Distribution-free 95 % confidence interval of the median.

    Uses the order statistics whose ranks bound the binomial(n, 1/2) quantiles (normal
    approximation), the usual non-parametric interval: no assumption that timings are normal,
    which they are not (they have a hard floor and a long right tail). With fewer than six
    samples no 95 % interval exists from order statistics, so the full range is returned.
    """
    xs = sorted(samples)
    n = len(xs)
    if n == 0:
        raise ValueError("confidence interval of no samples")
    if n < 6:
        return xs[0], xs[-1]
    half = Z95 * math.sqrt(n) / 2.0
    lo = max(0, math.floor(n / 2.0 - half) - 1)
    hi = min(n - 1, math.ceil(n / 2.0 + half))
    return xs[lo], xs[hi]


@dataclass(frozen=True)
class Summary:
    """Summary statistics of a list of per-call times, in seconds."""

    n: int
    min: float
    max: float
    median: float
    mean: float
    stdev: float
    q1: float
    q3: float
    ci95_low: float
    ci95_high: float

    @property
    def iqr(self) -> float:
        """Interquartile range in seconds."""
        return self.q3 - self.q1

    @property
    def rel_ci_halfwidth(self) -> float:
        """Half the 95 % interval of the median relative to the median (0.01 means ±1 %)."""
        if self.median <= 0:
            return math.inf
        return (self.ci95_high - self.ci95_low) / 2.0 / self.median


def _mean(xs: list[float]) -> float:
    """Mean of finite floats that never overflows (each term is divided by n before the exact sum)."""
    n = len(xs)
    return math.fsum(x / n for x in xs)


def _stdev(xs: list[float], mean: float) -> float:
    """Sample standard deviation in plain floats (``statistics.stdev`` is exact but slow), scaled by the
    largest deviation so that no square overflows, whatever the magnitude of the samples."""
    n = len(xs)
    if n < 2:
        return 0.0
    scale = max(abs(x - mean) for x in xs)
    if scale == 0 or not math.isfinite(scale):
        return 0.0 if scale == 0 else math.inf
    return scale * math.sqrt(math.fsum(((x - mean) / scale) ** 2 for x in xs) / (n - 1))


def _median(xs: list[float]) -> float:
    """Median of an already sorted, non-empty list (the middle pair averaged without overflow)."""
    n = len(xs)
    mid = n // 2
    return xs[mid] if n % 2 else xs[mid - 1] / 2 + xs[mid] / 2


def summarize(samples: list[float]) -> Summary:
    """Compute :class:`Summary` for a non-empty list of finite samples (any magnitude: nothing overflows)."""
    xs = sorted(samples)
    if not xs:
        raise ValueError("summary of no samples")
    lo, hi = median_ci95(xs)
    mean = _mean(xs)
    return Summary(
        n=len(xs),
        min=xs[0],
        max=xs[-1],
        median=_median(xs),
        mean=mean,
        stdev=_stdev(xs, mean),
        q1=quantile(xs, 0.25),
        q3=quantile(xs, 0.75),
        ci95_low=lo,
        ci95_high=hi,
    )
