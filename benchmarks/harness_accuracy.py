"""How close is gpubench's median to the simplest honest measurement of the same operation?

Run: ``python benchmarks/harness_accuracy.py`` (CPU only, about a minute).

1. NumPy float32 matmul at 256 and 2048 through the numpy backend's bound op: gpubench's
   median (default harness settings) against the median of a plain ``time.perf_counter`` loop
   that times one call per reading. Target ratio 0.97–1.03.
2. A 1,000-element NumPy add: gpubench's median against ``timeit``'s best per-call time
   (autorange, best of 7). Target ratio at most 1.10.

The two methods alternate for several rounds in one process. Printed: the median of each side
over the rounds, the median of the per-round ratios (pairs measured back to back, so slow drifts
of a shared machine hit both sides alike), and every per-round ratio, to show the noise.
"""

from __future__ import annotations

import functools
import statistics
import time
import timeit

import numpy as np

from gpubench.backends import get_backend
from gpubench.harness import HarnessSettings, HostTimer, measure
from gpubench.records import CaseSpec
from gpubench.workloads import get_workload


def plain_loop_median(fn, seconds: float = 2.0) -> float:
    """Median of single-call perf_counter readings over ``seconds`` (after 3 warm-up calls)."""
    for _ in range(3):
        fn()
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 7:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def gpubench_median(fn, settings: HarnessSettings = HarnessSettings()) -> tuple[float, float]:
    """gpubench's median per-call time and the wall time the measurement took."""
    t0 = time.perf_counter()
    m = measure(fn, HostTimer(), settings)
    return statistics.median(m.samples), time.perf_counter() - t0


def matmul_op(size: int):
    workload = get_workload("matmul")
    params = workload.normalize_params({"size": size})
    spec = CaseSpec.make("matmul", "numpy", "cpu", "float32", params)
    inputs = workload.make_inputs(params, "float32", np.random.default_rng(0))
    backend = get_backend("numpy")
    return backend.build(spec, params, inputs, backend.resolve_device("cpu")).call


def _fmt(ratios: list[float]) -> str:
    return " ".join(f"{r:.3f}" for r in ratios)


def compare(label: str, fn, reference, scale: float, unit: str, rounds: int) -> None:
    """Alternate gpubench and ``reference(fn)`` for ``rounds`` rounds and print one result line."""
    ratios, g_meds, r_meds, walls = [], [], [], []
    for _ in range(rounds):
        g, wall = gpubench_median(fn)
        r = reference(fn)
        ratios.append(g / r)
        g_meds.append(g)
        r_meds.append(r)
        walls.append(wall)
    med = statistics.median
    print(f"{label:<28}{med(g_meds) * scale:>10.4g}{unit}{med(r_meds) * scale:>10.4g}{unit}"
          f"{med(ratios):>8.3f}  {med(walls):10.2f}  {_fmt(ratios)}")


def timeit_best(t: timeit.Timer) -> float:
    """``timeit``'s best per-call time (autorange, best of 7)."""
    number, _ = t.autorange()
    return min(t.repeat(repeat=7, number=number)) / number


def main(rounds: int = 5) -> None:
    print(f"{'case':<28}{'gpubench':>12}{'reference':>12}{'ratio':>8}  per-case s  per-round ratios")
    for size in (256, 2048):
        compare(f"matmul f32 {size} vs loop", matmul_op(size), plain_loop_median, 1e3, "ms", rounds)
    rng = np.random.default_rng(0)
    a = rng.random(1000, dtype=np.float32)
    b = rng.random(1000, dtype=np.float32)
    # timeit runs the statement compiled into its own loop, not through our callable.
    stmt = timeit.Timer("add(a, b)", globals={"add": np.add, "a": a, "b": b})
    compare("add 1000 f32 vs timeit best", functools.partial(np.add, a, b), lambda _fn: timeit_best(stmt),
            1e9, "ns", rounds)


if __name__ == "__main__":
    main()
