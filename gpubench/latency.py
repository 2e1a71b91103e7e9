"""Per-call latency: every call timed on its own, on the host clock, around a synchronization.

The harness (:func:`gpubench.harness.measure`) batches back-to-back calls per sample, which is
right for a kernel's throughput and wrong for a request's latency: a request is issued, waits for
its answer, and only then does the next one come. A workload that declares ``per_call_latency``
(:class:`~gpubench.workloads.base.Workload`) is measured here instead, one call per sample:

1. the device is synchronized (nothing of the previous call is still running);
2. the host clock starts, the call is issued (through the backend's timer where it reads a device
   clock: CUDA events recorded around the call), the device is synchronized again, the host clock
   stops. The sample is that host time: the launch, the work and the wait for the answer;
3. the device-event time of the same call is kept beside it where the backend has device events.

After the usual warm-up (:func:`gpubench.harness.warm_up`), calls are taken until there are
:data:`TARGET_CALLS` of them; or at least :data:`TAIL_CALLS` (enough for a 99th percentile with
one call in a hundred above it) once the harness's ``budget_s`` is spent; or, for a call so slow
that even that would take long, ``min_samples`` once :data:`BUDGET_FACTOR` × ``budget_s`` is spent.
How many were taken is recorded (``latency_calls``): a p99 of fewer than :data:`TAIL_CALLS` calls is
the slowest call, not a tail.

Percentiles are nearest-rank (the smallest sample with at least q % of the samples at or below
it, as latency monitors report them), derived from the record's raw samples when it is read
(:func:`latency_columns`), like every other statistic of a record. Throughput is the samples of
one call (the batch) times the calls, over the time they took: requests served one after
another, each waiting for the previous answer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from gpubench.harness import HarnessSettings, Measurement, Timer, WindowObserver, warm_up
from gpubench.stats import summarize

#: ``metrics["latency_method"]`` of a record measured here: its samples are single calls' latencies.
PER_CALL = "per_call"
#: Calls taken when they are fast enough (ten calls above the 99th percentile).
TARGET_CALLS = 1000
#: Calls a 99th percentile needs to be more than the slowest call.
TAIL_CALLS = 100
#: The longest a case samples, in units of the harness's ``budget_s``, before settling for ``min_samples`` calls.
BUDGET_FACTOR = 10
#: Percentiles the export derives from a per-call record.
PERCENTILES = (50, 90, 99)

#: Export columns derived from a per-call record (None for every other record).
COLUMNS = ("latency_p50_s", "latency_p90_s", "latency_p99_s", "latency_calls", "throughput_samples_per_s")

HOST_CLOCK = "perf_counter"


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank ``q``-th percentile (0 < q ≤ 100) of ``samples`` (not empty)."""
    if not samples:
        raise ValueError("percentile of no samples")
    return _nearest_rank(sorted(samples), q)


def _nearest_rank(ordered: Sequence[float], q: float) -> float:
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


def measure_latency(fn: Callable[[], object], timer: Timer, sync: Callable[[], object],
                    settings: HarnessSettings = HarnessSettings(), now: Callable[[], float] = time.perf_counter,
                    observer: WindowObserver | None = None) -> tuple[Measurement, dict[str, Any]]:
    """Time single calls of ``fn`` as requests; return the :class:`Measurement` and the metrics it adds.

    ``timer`` is the backend's: a host-clock timer is not used (the call is made directly between
    the two synchronizations); a device-clock one (``cuda_event``) times the call on the device too.
    ``sync`` waits for the device. The measurement's samples are host seconds per call (``number`` 1,
    clock ``perf_counter``); ``target_met`` says whether the median's 95 % interval reached the target.
    """
    device_clock = timer.name if timer.name != HOST_CLOCK and hasattr(timer, "last_host_s") else None
    device: list[float] = []

    def one() -> float:
        sync()
        t0 = now()
        if device_clock is None:
            fn()
        else:
            device.append(float(timer(fn, 1)))
        sync()
        return max(now() - t0, 1e-12)

    start = now()
    warmup = warm_up(lambda number: one(), settings, now)
    device.clear()
    host: list[float] = []
    if observer is not None:
        observer.window_start()
    sample_start = now()
    least = max(TAIL_CALLS, settings.min_samples)
    while True:
        host.append(one())
        n, spent = len(host), now() - sample_start
        if n >= TARGET_CALLS or (n >= least and spent >= settings.budget_s):
            break
        if n >= settings.min_samples and spent >= BUDGET_FACTOR * settings.budget_s:
            break
    if observer is not None:
        observer.window_end(len(host))
    target_met = summarize(host).rel_ci_halfwidth <= settings.target_rel_ci if len(host) > 1 else False
    metrics: dict[str, Any] = {"latency_method": PER_CALL, "latency_calls": len(host),
                               "latency_clock": HOST_CLOCK}
    if device_clock is not None and len(device) == len(host):
        metrics.update({"device_clock": device_clock,
                        **{f"device_latency_p{q}_s": percentile(device, q) for q in PERCENTILES}})
    m = Measurement(tuple(host), 1, HOST_CLOCK, target_met, len(warmup), now() - start)
    return m, metrics


def latency_columns(samples: Sequence[float], number: int, metrics: dict[str, Any] | None) -> dict[str, Any]:
    """The export's latency columns of one record (:data:`COLUMNS`): percentiles of its per-call samples,
    their count and the throughput; every column None unless the record was measured per call."""
    out: dict[str, Any] = dict.fromkeys(COLUMNS)
    metrics = metrics or {}
    if metrics.get("latency_method") != PER_CALL or number != 1 or not samples:
        return out
    ordered = sorted(samples)
    for q in PERCENTILES:
        out[f"latency_p{q}_s"] = _nearest_rank(ordered, q)
    out["latency_calls"] = len(samples)
    per_call = metrics.get("samples_per_call")
    total = float(sum(samples))
    if isinstance(per_call, (int, float)) and not isinstance(per_call, bool) and per_call > 0 and total > 0:
        out["throughput_samples_per_s"] = per_call * len(samples) / total
    return out
