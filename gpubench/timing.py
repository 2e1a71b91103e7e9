"""The two naive ways to time a call, beside gpubench's own (:func:`gpubench.harness.measure`).

The course notes time a 5000×5000 float32 product as ``timeit.Timer("tensorflow.matmul(A, B)").repeat(10, 1)``
and report 0.02 s, "≈ 175×" NumPy. On a GPU ``tf.matmul`` returns as soon as the work is queued, so that clock
measured the launch. The ``lecture`` suite times every case three ways, side by side, so the mistake can be
watched (the case's ``timing`` mode, :data:`TIMINGS`):

1. ``lecture``: :func:`time_as_in_the_lecture`. ``timeit``, one call per repeat, ten repeats, no
   synchronization: the clock is ``unsynchronized`` and the record is flagged ``not_a_measurement``. On a
   synchronous library (NumPy) it is the work; on an asynchronous device (CUDA, and JAX even on a CPU) it is
   the time to queue the work.
2. ``host_sync``: :func:`time_host_synchronized`. The same ten single calls on the host clock, the device
   synchronized before and after each: the work, plus one launch and one synchronization per call, and no
   warm-up beyond the case's verified first call.
3. ``gpubench``: the harness (device events where the backend has them, warm-up, calls batched per sample,
   adaptive stopping on the median's confidence interval).

All three follow the case's one verified call (compilation, autotuning and the first allocation are out of all
of them). Pure logic: the clock is a parameter, so tests drive it with a fake clock and a fake device.
"""

from __future__ import annotations

import time
import timeit
from collections.abc import Callable

from gpubench.harness import Measurement

#: The timing modes (a case's ``timing`` parameter, :func:`gpubench.workloads.base.timing_param`), named here once:
#: ``lecture`` (way 1), ``host_sync`` (way 2) and ``gpubench`` (way 3, the harness; the default).
LECTURE, HOST_SYNC, GPUBENCH = "lecture", "host_sync", "gpubench"
TIMINGS = (LECTURE, HOST_SYNC, GPUBENCH)
#: The timing modes measured here rather than by the harness.
NAIVE_TIMINGS = (LECTURE, HOST_SYNC)

#: The lecture's ``repeat(10, 1)``: ten repeats of one call each (the ``host_sync`` way takes as many).
LECTURE_REPEATS = 10
#: The clock of the lecture's way (:data:`gpubench.records.CLOCKS`).
UNSYNCHRONIZED = "unsynchronized"
#: The host clock of the ``host_sync`` way.
HOST_CLOCK = "perf_counter"


def _positive(seconds: float) -> float:
    # A coarse clock can read 0 for a launch: the record needs a positive time.
    return max(float(seconds), 1e-12)


def time_as_in_the_lecture(fn: Callable[[], object], repeats: int = LECTURE_REPEATS,
                           clock: Callable[[], float] = time.perf_counter) -> Measurement:
    """Way 1: ``timeit.Timer(fn, timer=clock).repeat(repeats, 1)``, exactly the lecture's call, no synchronization.

    The samples are what the host clock saw per call; on an asynchronous device that is the launch, not the work.
    ``target_met`` is None: no confidence target was pursued.
    """
    start = clock()
    samples = timeit.Timer(fn, timer=clock).repeat(repeat=repeats, number=1)
    return Measurement(tuple(_positive(s) for s in samples), 1, UNSYNCHRONIZED, None, 0, clock() - start)


def time_host_synchronized(fn: Callable[[], object], sync: Callable[[], object],
                           repeats: int = LECTURE_REPEATS,
                           clock: Callable[[], float] = time.perf_counter) -> Measurement:
    """Way 2: ``repeats`` single calls on the host clock, ``sync()`` (the device's queue drained) before and after
    each, inside the timed span for the closing one: the work of one call, plus its launch and one synchronization."""
    start = clock()
    samples = []
    for _ in range(repeats):
        sync()
        t0 = clock()
        fn()
        sync()
        samples.append(_positive(clock() - t0))
    return Measurement(tuple(samples), 1, HOST_CLOCK, None, 0, clock() - start)


def measure_naive(timing: str, fn: Callable[[], object], sync: Callable[[], object],
                  repeats: int = LECTURE_REPEATS, clock: Callable[[], float] = time.perf_counter) -> Measurement:
    """Way 1 (``lecture``) or way 2 (``host_sync``) of ``fn``. After way 1 the device's queue is drained, outside
    any timing, so the work it left queued never spills into whatever runs next."""
    if timing == LECTURE:
        try:
            return time_as_in_the_lecture(fn, repeats, clock)
        finally:
            sync()
    if timing == HOST_SYNC:
        return time_host_synchronized(fn, sync, repeats, clock)
    raise ValueError(f"unknown naive timing {timing!r} (known: {', '.join(NAIVE_TIMINGS)})")
