"""The measurement harness: warm-up, loop calibration, adaptive stopping, raw samples.

Pure logic. It never reads a clock itself: it is handed a :class:`Timer` (which times
``number`` back-to-back calls of an operation, synchronizing the device as its backend
requires) and a ``now`` function for its own time budget. Tests pass a fake timer driven by a
cost model and get fully deterministic behaviour; backends pass host or device-event timers.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from gpubench.stats import summarize


class Timer(Protocol):
    """Times ``number`` back-to-back calls of ``fn`` and returns the total in seconds."""

    name: str

    def __call__(self, fn: Callable[[], object], number: int) -> float:  # pragma: no cover - protocol
        ...


class WindowObserver(Protocol):
    """Told when :func:`measure`'s sampling window opens and closes (e.g. :class:`gpubench.machine.CaseWatch`,
    which reads the energy counters there, so energy per call divides by exactly the calls in the window)."""

    def window_start(self) -> None:  # pragma: no cover - protocol
        ...

    def window_end(self, calls: int) -> None:  # pragma: no cover - protocol
        ...


class HostTimer:
    """``time.perf_counter`` around the loop, with an optional device synchronization before and after.

    The loop iterates ``itertools.repeat`` like :mod:`timeit`, so the per-call overhead of the
    loop itself is a few tens of nanoseconds.
    """

    name = "perf_counter"

    def __init__(self, sync: Callable[[], object] | None = None):
        self.sync = sync

    def __call__(self, fn: Callable[[], object], number: int) -> float:
        sync = self.sync
        it = itertools.repeat(None, number)
        if sync is not None:
            sync()
        t0 = time.perf_counter()
        for _ in it:
            fn()
        if sync is not None:
            sync()
        return time.perf_counter() - t0


class DeviceEventTimer:
    """Times the loop between two device events recorded on the current stream (CUDA events).

    ``new_event`` makes a timing-enabled event with ``record()`` and ``synchronize()``;
    ``elapsed_ms(start, end)`` returns the milliseconds between two recorded events. The host
    waits only for the end event, so launch overhead between calls is not counted as device time.
    """

    def __init__(self, name: str, new_event: Callable[[], object],
                 elapsed_ms: Callable[[object, object], float]):
        self.name = name
        self.new_event = new_event
        self.elapsed_ms = elapsed_ms

    def __call__(self, fn: Callable[[], object], number: int) -> float:
        start, end = self.new_event(), self.new_event()
        it = itertools.repeat(None, number)
        start.record()
        for _ in it:
            fn()
        end.record()
        end.synchronize()
        return self.elapsed_ms(start, end) / 1e3


@dataclass(frozen=True)
class HarnessSettings:
    """Knobs of one measurement. Defaults follow GUIDE.md §4."""

    warmup_s: float = 0.1
    """Keep warming up until this much time was spent (after the first call)."""
    warmup_min_calls: int = 2
    """...and at least this many calls were made."""
    min_sample_s: float = 0.02
    """Batch calls until one sample lasts at least this long (timer resolution and overhead)."""
    min_samples: int = 7
    """Never stop with fewer samples (seven is the least for a 95 % interval of the median)."""
    max_samples: int = 500
    target_rel_ci: float = 0.01
    """Stop when the 95 % interval of the median is within ±this fraction of it."""
    budget_s: float = 2.0
    """Sampling time after which the harness stops even if the target was not met."""

    def __post_init__(self) -> None:
        if self.min_samples < 1 or self.max_samples < self.min_samples:
            raise ValueError("need 1 <= min_samples <= max_samples")
        for name in ("warmup_s", "min_sample_s", "target_rel_ci", "budget_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")


@dataclass(frozen=True)
class Measurement:
    """Raw outcome of :func:`measure`: per-call samples and how they were taken."""

    samples: tuple[float, ...]
    number: int
    clock: str
    target_met: bool
    warmup_calls: int
    elapsed_s: float


def calibrate(timer: Timer, fn: Callable[[], object], per_call_estimate: float,
              min_sample_s: float) -> int:
    """Return the number of calls per sample that makes one sample last at least ``min_sample_s``.

    Starts from the estimate and verifies it by timing, growing until the target is met
    (like :func:`timeit.Timer.autorange`, but aiming straight at the target).
    """
    if per_call_estimate <= 0:
        per_call_estimate = 1e-9
    number = max(1, math.ceil(min_sample_s / per_call_estimate))
    for _ in range(30):
        total = timer(fn, number)
        if total >= min_sample_s or number >= 10**9:
            return number
        # Aim 20 % past the target so one more try is usually enough.
        growth = 1.2 * min_sample_s / total if total > 0 else 10.0
        number = max(number + 1, math.ceil(number * min(growth, 100.0)))
    return number


def measure(fn: Callable[[], object], timer: Timer, settings: HarnessSettings = HarnessSettings(),
            now: Callable[[], float] = time.perf_counter, observer: WindowObserver | None = None) -> Measurement:
    """Warm up ``fn``, calibrate calls per sample, then sample until the median is known well enough.

    Stops when at least ``min_samples`` were taken and either the median's 95 % interval is
    within ``target_rel_ci`` (``target_met=True``), the sampling time passed ``budget_s``, or
    ``max_samples`` were taken (``target_met=False`` in the last two cases). ``observer``, when
    given, is told when the sampling window (after warm-up and calibration) opens and closes, and
    how many calls it held.
    """
    start = now()
    # Warm-up: the first call carries one-time costs (JIT, autotuning, handle creation).
    timings = [timer(fn, 1)]
    warm_start = now()
    while len(timings) < settings.warmup_min_calls + 1 or now() - warm_start < settings.warmup_s:
        timings.append(timer(fn, 1))
        if len(timings) > 10_000:
            break
    # Later warm-up calls estimate the steady per-call time; ignore the first.
    estimate = min(timings[1:])
    number = calibrate(timer, fn, estimate, settings.min_sample_s)

    samples: list[float] = []
    if observer is not None:
        observer.window_start()
    sample_start = now()
    target_met = False
    while True:
        total = timer(fn, number)
        samples.append(max(total, 1e-12) / number)
        n = len(samples)
        if n >= settings.min_samples:
            if summarize(samples).rel_ci_halfwidth <= settings.target_rel_ci:
                target_met = True
                break
            if n >= settings.max_samples or now() - sample_start >= settings.budget_s:
                break
    if observer is not None:
        observer.window_end(number * len(samples))
    return Measurement(tuple(samples), number, timer.name, target_met, len(timings), now() - start)
