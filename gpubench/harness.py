"""The measurement harness: warm-up, loop calibration, adaptive stopping, raw samples.

Pure logic. It never reads a clock itself: it is handed a :class:`Timer` (which times
``number`` back-to-back calls of an operation, synchronizing the device as its backend
requires) and a ``now`` function for its own time budget. Tests pass a fake timer driven by a
cost model and get fully deterministic behaviour; backends pass host or device-event timers.

Two things beside the device time:

* **host time per call.** A device-clock timer also reads the host clock around the same loop
  and leaves it in ``last_host_s``: how long the host took to *issue* the calls. When that is at
  least the device time per call (:func:`launch_bound`), the device waited for launches and its
  time is launch overhead, not the kernel.
* **cold cache.** With a ``flush`` function (a :class:`~gpubench.ops.CacheFlusher`'s), every
  sample is one call, preceded outside the timed region by a write of a buffer larger than the
  last-level cache, as nvbench's cold mode does: a batch of back-to-back calls would only be cold
  for its first call.
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
    """Times ``number`` back-to-back calls of ``fn`` and returns the total in seconds.

    A timer that reads a device clock may also set ``last_host_s`` after each call: the host-clock
    seconds the same ``number`` calls took to issue (see :class:`DeviceEventTimer`).
    """

    name: str

    def __call__(self, fn: Callable[[], object], number: int) -> float:  # pragma: no cover - protocol
        ...


class WindowObserver(Protocol):
    """Told when :func:`measure`'s sampling window opens and closes (e.g. :class:`gpubench.machine.CaseWatch`,
    which reads the energy counters there, so energy per call divides by exactly the calls in the window)."""

    def window_start(self) -> None:  # pragma: no cover - protocol
        ...

    def window_end(self, calls: int | None, not_per_call: str = "") -> None:  # pragma: no cover - protocol
        """``calls`` in the window, or None with the reason its energy is not per call."""


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
    ``elapsed_ms(start, end)`` returns the milliseconds between two recorded events.

    What the device time counts: everything the stream did between the two events — the kernels
    *and* any time the device sat idle waiting for the host's next launch. When the host issues
    calls faster than the device runs them, the launches queue up and the span is pure device
    work; when it issues them more slowly (small ops: a few µs of kernel, several µs of Python and
    driver launch cost), the span is the launch rate. So the host clock is read around the same
    loop too (from before the start event is recorded to after the end event is, without waiting
    for the device) and left in ``last_host_s``; :func:`launch_bound` compares the two.
    """

    def __init__(self, name: str, new_event: Callable[[], object],
                 elapsed_ms: Callable[[object, object], float],
                 host_clock: Callable[[], float] = time.perf_counter):
        self.name = name
        self.new_event = new_event
        self.elapsed_ms = elapsed_ms
        self.host_clock = host_clock
        self.last_host_s: float | None = None

    def __call__(self, fn: Callable[[], object], number: int) -> float:
        start, end = self.new_event(), self.new_event()
        it = itertools.repeat(None, number)
        clock = self.host_clock
        h0 = clock()
        start.record()
        for _ in it:
            fn()
        end.record()
        self.last_host_s = clock() - h0
        end.synchronize()
        return self.elapsed_ms(start, end) / 1e3


#: :func:`launch_bound` calls a case launch-bound when its host time per call reaches this fraction
#: of its device time per call. A starved device's span also holds the last call's run time and the
#: two event stamps, so it reads a hair above the host's issue time; 0.95 absorbs that.
LAUNCH_BOUND_RATIO = 0.95


@dataclass(frozen=True)
class HarnessSettings:
    """Knobs of one measurement. Defaults follow docs/measurement.md §2."""

    warmup_s: float = 0.1
    """Keep warming up until this much time was spent (after the first call)."""
    warmup_min_calls: int = 1
    """...and at least this many calls were made after the first. The first call (the case's checked call) carries
    the one-time costs; one more covers those that show on a second call (an output buffer allocated while the first
    call's is still held, a CUDA graph recorded on its second call), so samples start at the third call at the
    earliest. A short call is warmed far longer by ``warmup_s``; this bounds the warm-up of a call lasting seconds."""
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
    target_met: bool | None
    """Whether the median's interval reached the target; None where no target was pursued (:mod:`gpubench.timing`)."""
    warmup_calls: int
    elapsed_s: float
    host_samples: tuple[float, ...] = ()
    """Host-clock seconds per call spent issuing each sample's calls (device clocks only; else empty)."""
    cold: bool = False
    """Each sample was one call after a cache flush (see :func:`measure`'s ``flush``)."""


def launch_bound(m: Measurement, blocks_host: bool = False) -> bool:
    """Whether the device time of ``m`` is launch overhead: the host took about as long to issue a call.

    Judged on batched (hot) samples with host times only: a cold sample is one call issued while
    the device still runs the flush before it, so its launch is hidden and its device time is the call.
    An op that ``blocks_host`` (:attr:`gpubench.ops.BoundOp.blocks_host`: a pageable copy) waits for its
    own work by nature, so its host time equals its device time whatever launching costs: never flagged.
    """
    if blocks_host or m.cold or not m.host_samples or len(m.host_samples) != len(m.samples):
        return False
    host, device = summarize(list(m.host_samples)).median, summarize(list(m.samples)).median
    return host >= LAUNCH_BOUND_RATIO * device


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


def warm_up(timed: Callable[[int], float], settings: HarnessSettings,
            now: Callable[[], float] = time.perf_counter, first_call_s: float | None = None) -> list[float]:
    """Time single calls (``timed(1)``) until one-time costs are out; return every warm-up time.

    The first call carries one-time costs (JIT, autotuning, handle creation, a flusher's first touch
    of its buffer); the harness keeps calling until ``warmup_s`` passed after it and at least
    ``warmup_min_calls`` more were made (10,000 at most). ``min(times[1:])`` estimates the steady
    per-call time. ``first_call_s``: that first call was already made (the case path's verification
    call) and took this long; the warm-up goes on from it.
    """
    timings = [timed(1) if first_call_s is None else float(first_call_s)]
    warm_start = now()
    while len(timings) < settings.warmup_min_calls + 1 or now() - warm_start < settings.warmup_s:
        timings.append(timed(1))
        if len(timings) > 10_000:
            break
    return timings


@dataclass(frozen=True)
class SamplingPlan:
    """How a warmed-up op is sampled: ``number`` calls per sample, each sample about ``sample_s`` long (in cold-cache
    mode one call and the flush before it), chosen after ``warmup_calls`` warm-up calls."""

    number: int
    sample_s: float
    warmup_calls: int


def plan_sampling(fn: Callable[[], object], timer: Timer, settings: HarnessSettings = HarnessSettings(),
                  now: Callable[[], float] = time.perf_counter,
                  flush: Callable[[], object] | None = None, first_call_s: float | None = None) -> SamplingPlan:
    """Warm ``fn`` up (:func:`warm_up`) and choose the calls per sample (:func:`calibrate`): the first half of
    :func:`measure`, also used by the pytest plug-in before pytest-benchmark takes the samples.

    With ``flush`` (cold-cache mode) every call is ``flush()`` then one timed call, and a sample is one call; its
    length is the shortest warm-up call with its flush (read on ``now``). Otherwise the steady per-call time is the
    shortest warm-up call after the first, and a sample lasts at least ``min_sample_s``; when even the fastest of
    them lasted a whole sample, one call per sample is proven and no calibration call is made.

    ``first_call_s``: the first call (its one-time costs) was already made and took this long (:func:`warm_up`).
    """
    walls: list[float] = []

    def timed(number: int) -> float:
        t0 = now()
        if flush is not None:
            flush()
        elapsed = timer(fn, number)
        walls.append(now() - t0)
        return elapsed

    timings = warm_up(timed, settings, now, first_call_s)
    if flush is not None:
        steady = walls[1:] if first_call_s is None else walls  # the first call's wall was not taken here
        return SamplingPlan(1, max(min(steady), min(timings[1:]), 1e-9), len(timings))
    # Later warm-up calls estimate the steady per-call time; ignore the first.
    estimate = min(timings[1:])
    number = 1 if estimate >= settings.min_sample_s else calibrate(timer, fn, estimate, settings.min_sample_s)
    return SamplingPlan(number, max(estimate * number, settings.min_sample_s, 1e-9), len(timings))


def rounds_within_budget(settings: HarnessSettings, sample_s: float) -> int:
    """Samples of ``sample_s`` seconds that fill the sampling budget, within ``[min_samples, max_samples]``: the
    fixed count of a sampler that cannot stop adaptively (pytest-benchmark's ``rounds``)."""
    return min(settings.max_samples, max(settings.min_samples, math.ceil(settings.budget_s / max(sample_s, 1e-9))))


def measure(fn: Callable[[], object], timer: Timer, settings: HarnessSettings = HarnessSettings(),
            now: Callable[[], float] = time.perf_counter,
            flush: Callable[[], object] | None = None, observer: WindowObserver | None = None,
            first_call_s: float | None = None) -> Measurement:
    """Warm up ``fn``, calibrate calls per sample, then sample until the median is known well enough.

    Stops when at least ``min_samples`` were taken and either the median's 95 % interval is
    within ``target_rel_ci`` (``target_met=True``), the sampling time passed ``budget_s``, or
    ``max_samples`` were taken (``target_met=False`` in the last two cases).

    With ``flush`` (cold-cache mode) every warm-up call and every sample is ``flush()`` followed
    by one timed call: the flush runs before the timer starts (a host timer synchronizes the
    device after it; a device timer's start event is queued behind it), and no calls are batched.
    The budget counts the flushes too.

    ``observer``, when given, is told when the sampling window (after warm-up and calibration)
    opens and closes, and how many calls it held — or, in cold-cache mode, that its energy is not
    per call (the flushes ran inside it).

    ``first_call_s``: the first call of ``fn`` (its one-time costs) was already made, taking this
    long — the case path's verification call — so the warm-up counts it instead of repeating it.
    """
    host: list[float] = []

    def timed(number: int) -> float:
        if flush is not None:
            flush()
        return timer(fn, number)

    start = now()
    plan = plan_sampling(fn, timer, settings, now, flush, first_call_s)
    number = plan.number

    samples: list[float] = []
    if observer is not None:
        observer.window_start()
    sample_start = now()
    target_met = False
    while True:
        total = timed(number)
        samples.append(max(total, 1e-12) / number)
        issued = getattr(timer, "last_host_s", None)
        if issued is not None:
            host.append(max(float(issued), 1e-12) / number)
        n = len(samples)
        if n >= settings.min_samples:
            if summarize(samples).rel_ci_halfwidth <= settings.target_rel_ci:
                target_met = True
                break
            if n >= settings.max_samples or now() - sample_start >= settings.budget_s:
                break
    if observer is not None:
        if flush is None:
            observer.window_end(number * len(samples))
        else:
            observer.window_end(None, "the cold-cache flush before each call ran inside the window")
    host_samples = tuple(host) if len(host) == len(samples) else ()
    return Measurement(tuple(samples), number, timer.name, target_met, plan.warmup_calls, now() - start,
                       host_samples=host_samples, cold=flush is not None)
