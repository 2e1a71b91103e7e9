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

3. ``--fidelity --device cuda``: the harness-fidelity check of a GPU run. Each case is built exactly
   as ``gpubench run``'s worker builds it (:class:`gpubench.case.CasePath`: inputs, float64 check)
   and measured by gpubench (its median, default settings), then the same op is called 100 times
   between two CUDA events recorded with the framework's own API, in the same process. Cases:
   torch bfloat16 8192³ matmul and cupy SAXPY of 2^26 elements (cache hot: 100 back-to-back calls
   are what the event loop times; at 768 MiB per call the data is far past any L2 anyway). Target
   ratio 0.97–1.03. ``--device cpu`` rehearses the same check on the CPU (torch float32 matmul and
   NumPy SAXPY, the loop on the host clock), ``--quick`` with small sizes: about 20 s here.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
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


#: Cases of the fidelity check per device kind: (workload, backend, variant, dtype, params, quick params).
FIDELITY_CASES = {
    "cuda": [("matmul", "torch", "default", "bfloat16", {"size": 8192}, {"size": 2048}),
             ("saxpy", "cupy", "elementwise", "float32", {"n": 1 << 26, "cache": "hot"},
              {"n": 1 << 22, "cache": "hot"})],
    "cpu": [("matmul", "torch", "default", "float32", {"size": 1024}, {"size": 384}),
            ("saxpy", "numpy", "default", "float32", {"n": 1 << 24, "cache": "hot"},
             {"n": 1 << 20, "cache": "hot"})],
}
#: Calls between the two events (or clock readings) of the reference loop.
LOOP_CALLS = 100
#: The fidelity target: gpubench's median over the loop's time per call.
FIDELITY_RANGE = (0.97, 1.03)


def _event_loop(backend: str, fn, calls: int = LOOP_CALLS) -> float:
    """Seconds per call of ``calls`` back-to-back calls between two CUDA events of the framework's own API."""
    if backend == "torch":
        import torch

        new, elapsed, sync = (lambda: torch.cuda.Event(enable_timing=True)), (lambda a, b: a.elapsed_time(b)), \
            torch.cuda.synchronize
    elif backend == "cupy":
        import cupy

        new, elapsed = cupy.cuda.Event, cupy.cuda.get_elapsed_time
        sync = cupy.cuda.Device().synchronize
    else:
        raise ValueError(f"no CUDA events for backend {backend!r}")
    for _ in range(3):
        fn()
    sync()
    start, end = new(), new()
    start.record()
    for _ in range(calls):
        fn()
    end.record()
    end.synchronize()
    return elapsed(start, end) / 1e3 / calls


def _host_loop(sync, fn, calls: int = LOOP_CALLS) -> float:
    """Seconds per call of ``calls`` back-to-back calls between two host-clock readings (device synchronized)."""
    for _ in range(3):
        fn()
    sync()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    sync()
    return (time.perf_counter() - t0) / calls


def fidelity(device: str, quick: bool = False, rounds: int = 3) -> int:
    """Run the fidelity check on ``device`` (``cuda`` or ``cpu``); print one line per case; return how many missed."""
    from gpubench.case import CasePath
    from gpubench.harness import HarnessSettings

    kind = device.split(":")[0]
    missed = 0
    print(f"harness fidelity on {device}: gpubench's median against {LOOP_CALLS} calls between two "
          f"{'CUDA events' if kind == 'cuda' else 'host-clock readings'}, same process, {rounds} rounds; "
          f"target {FIDELITY_RANGE[0]}–{FIDELITY_RANGE[1]}")
    for workload, backend, variant, dtype, params, small in FIDELITY_CASES[kind]:
        spec = CaseSpec.make(workload, backend, device, dtype, small if quick else params, variant, "fidelity")
        path = CasePath(spec)
        try:
            ended = path.prepare()
            if ended is not None:
                print(f"  {spec.label()}: {ended.status}: {ended.error}")
                missed += ended.status != "skipped"
                continue
            sync = functools.partial(path.backend.synchronize, path.device)
            medians, loops = [], []
            for _ in range(rounds):
                result = path.measure(HarnessSettings())
                if result.status != "ok":
                    print(f"  {spec.label()}: {result.status}: {result.error}")
                    break
                medians.append(result.median_s)
                loops.append(_event_loop(backend, path.op.call) if kind == "cuda" else _host_loop(sync, path.op.call))
            if len(medians) < rounds:
                missed += 1
                continue
        finally:
            path.close()
        ratios = [m / lp for m, lp in zip(medians, loops)]
        ratio = statistics.median(ratios)
        ok = FIDELITY_RANGE[0] <= ratio <= FIDELITY_RANGE[1]
        missed += not ok
        print(f"  {spec.label()}: gpubench median {statistics.median(medians) * 1e3:.4g} ms, loop "
              f"{statistics.median(loops) * 1e3:.4g} ms per call, ratio {ratio:.3f} "
              f"({'within' if ok else 'OUTSIDE'} target; rounds {_fmt(ratios)})")
    return missed


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fidelity", action="store_true", help="the harness-fidelity check (part 3 above)")
    parser.add_argument("--device", default="cuda", help="fidelity: cuda (default) or cpu")
    parser.add_argument("--quick", action="store_true", help="fidelity: small sizes (a rehearsal)")
    parser.add_argument("--strict", action="store_true", help="fidelity: exit 1 when a case misses the target")
    args = parser.parse_args()
    if args.fidelity:
        missed = fidelity(args.device, args.quick)
        sys.exit(1 if missed and args.strict else 0)
    main()
