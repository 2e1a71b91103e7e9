"""Host time per call beside device time, and the ``launch_bound`` flag, on a fake device.

The fake is a deterministic model of one CUDA stream: each launch costs the host ``launch_s``
and queues a kernel of ``kernel_s`` that starts when the device is free and the launch has
arrived; an event is stamped when the stream reaches it. Every library call is recorded, so the
tests check the order the timer makes them in, not only the numbers.
"""

from __future__ import annotations

import pytest

from gpubench.case import CasePath
from gpubench.harness import (
    DeviceEventTimer,
    HarnessSettings,
    HostTimer,
    Measurement,
    launch_bound,
    measure,
)
from gpubench.records import CaseSpec


class FakeStream:
    """A host clock and one in-order device stream."""

    def __init__(self, kernel_s: float, launch_s: float, record_s: float = 0.0):
        self.kernel_s, self.launch_s, self.record_s = kernel_s, launch_s, record_s
        self.host = 0.0
        self.device_free = 0.0
        self.log: list[str] = []

    def now(self) -> float:
        return self.host

    def launch(self) -> None:
        self.log.append("launch")
        self.host += self.launch_s
        self.device_free = max(self.device_free, self.host) + self.kernel_s

    def event(self) -> FakeEvent:
        return FakeEvent(self)

    @staticmethod
    def elapsed_ms(start: FakeEvent, end: FakeEvent) -> float:
        return (end.stamp - start.stamp) * 1e3


class FakeEvent:
    def __init__(self, stream: FakeStream):
        self.stream, self.stamp = stream, None

    def record(self) -> None:
        s = self.stream
        s.log.append("record")
        s.host += s.record_s
        self.stamp = s.device_free = max(s.device_free, s.host)

    def synchronize(self) -> None:
        s = self.stream
        s.log.append("synchronize")
        s.host = max(s.host, self.stamp)


def timer_for(stream: FakeStream) -> DeviceEventTimer:
    return DeviceEventTimer("fake", stream.event, stream.elapsed_ms, host_clock=stream.now)


def test_device_bound_loop_counts_kernels_and_host_issues_faster():
    s = FakeStream(kernel_s=10e-6, launch_s=2e-6)
    timer = timer_for(s)
    total = timer(s.launch, 100)
    assert s.log == ["record"] + ["launch"] * 100 + ["record", "synchronize"]
    # The first kernel waits for its launch (2 µs); then the queue keeps the device busy.
    assert total == pytest.approx(2e-6 + 100 * 10e-6)
    assert timer.last_host_s == pytest.approx(100 * 2e-6)


def test_launch_gaps_are_counted_between_the_events():
    # 1 µs kernels launched every 5 µs: the device idles 4 µs per call and the events count it.
    s = FakeStream(kernel_s=1e-6, launch_s=5e-6)
    timer = timer_for(s)
    total = timer(s.launch, 1000)
    assert total / 1000 == pytest.approx(5e-6, rel=1e-3)  # the launch rate, not the 1 µs kernel
    assert timer.last_host_s / 1000 == pytest.approx(5e-6)


def settings() -> HarnessSettings:
    return HarnessSettings(warmup_s=0.0, min_sample_s=1e-3, min_samples=7, target_rel_ci=0.01, budget_s=1.0)


@pytest.mark.parametrize("kernel_s, launch_s, bound", [
    (10e-6, 2e-6, False),   # the device is the bottleneck: its time is the kernel
    (1e-6, 5e-6, True),     # the host is: device time is launch overhead
    (5e-6, 5e-6, True),     # equal: host time per call = device time per call
    (5e-6, 4.5e-6, False),  # host 10 % faster than the device
])
def test_measure_records_host_time_per_call_and_launch_bound(kernel_s, launch_s, bound):
    s = FakeStream(kernel_s, launch_s)
    m = measure(s.launch, timer_for(s), settings(), now=s.now)
    assert len(m.host_samples) == len(m.samples) >= 7
    assert m.host_samples[-1] == pytest.approx(launch_s, rel=1e-6)
    assert m.samples[-1] == pytest.approx(max(kernel_s, launch_s), rel=0.01)
    assert launch_bound(m) is bound


def test_host_timer_leaves_host_samples_empty():
    s = FakeStream(1e-6, 5e-6)
    m = measure(s.launch, HostTimer(), HarnessSettings(warmup_s=0.0, min_sample_s=0.0, min_samples=3,
                                                        target_rel_ci=1.0), now=s.now)
    assert m.host_samples == () and not launch_bound(m)


def test_cold_samples_are_never_called_launch_bound():
    # Cold mode: one call per sample, queued behind the flush, so its launch is hidden.
    s = FakeStream(1e-6, 5e-6)
    flushes = []
    m = measure(s.launch, timer_for(s), settings(), now=s.now, flush=lambda: flushes.append(s.host))
    assert m.cold and m.number == 1 and m.host_samples
    assert not launch_bound(m)


def saxpy_path() -> CasePath:
    return CasePath(CaseSpec.make("saxpy", "numpy", "cpu", "float32", {"n": 1 << 16, "cache": "hot"}))


def test_case_record_carries_host_samples_and_the_flag():
    s = FakeStream(1e-6, 5e-6)
    m = measure(s.launch, timer_for(s), settings(), now=s.now)
    path = saxpy_path()
    result = path.finish(Measurement(m.samples, m.number, "cuda_event", m.target_met, m.warmup_calls,
                                     m.elapsed_s, host_samples=m.host_samples))
    assert result.host_samples == m.host_samples
    assert "launch_bound" in result.flags
    assert result.host_median_s == pytest.approx(5e-6)
    assert result.median_s == pytest.approx(5e-6, rel=0.01)
    # A host-timed record: no host samples, host median = median, never launch-bound.
    plain = path.finish(Measurement((2e-3,) * 7, 1, "perf_counter", True, 3, 0.1))
    assert plain.host_samples == () and plain.host_median_s == plain.median_s and plain.flags == ()


def test_export_row_has_host_median_and_table_note_shows_flags():
    from gpubench.rows import build_rows
    from gpubench.store import RunInfo
    from gpubench.tables import results_table

    s = FakeStream(1e-6, 5e-6)
    m = measure(s.launch, timer_for(s), settings(), now=s.now)
    result = saxpy_path().finish(Measurement(m.samples, m.number, "cuda_event", False, 3, 0.1,
                                             host_samples=m.host_samples))
    run = RunInfo(1, "2026-01-01T00:00:00+00:00", None, "complete", "t", "", "numpy", "", {}, {})
    row = build_rows(run, [result])[0]
    assert row["host_median_s"] == pytest.approx(5e-6)
    assert row["flags"] == ["launch_bound", "noisy"]
    assert "launch_bound noisy" in results_table([row])


def test_opencl_event_timer_reads_the_host_clock_around_the_enqueues():
    from gpubench.backends.opencl_backend import OpenclEventTimer

    class Profile:
        def __init__(self, start, end):
            self.start, self.end = start, end

    class Event:
        def __init__(self, i):
            self.profile = Profile(i * 10_000, i * 10_000 + 1_000)  # 1 µs kernels every 10 µs (ns)
            self.waited = False

        def wait(self):
            self.waited = True

    clock = {"t": 0.0}
    events = []

    def enqueue():
        clock["t"] += 10e-6
        events.append(Event(len(events)))
        return events[-1]

    timer = OpenclEventTimer(host_clock=lambda: clock["t"])
    total = timer(enqueue, 5)
    assert total == pytest.approx(41e-6)  # first start to last end, gaps included
    assert timer.last_host_s == pytest.approx(50e-6)
    assert events[-1].waited and not events[0].waited


# --- ops that block the host by nature (pageable copies) -------------------------------------------------


def test_a_blocking_op_is_never_launch_bound():
    # A pageable copy: the host waits for each copy, so its host time per call is its device time.
    s = FakeStream(kernel_s=5e-6, launch_s=5e-6)
    m = measure(s.launch, timer_for(s), settings(), now=s.now)
    assert launch_bound(m) and not launch_bound(m, blocks_host=True)


def test_case_path_reads_the_ops_blocking_declaration():
    from gpubench.ops import BoundOp

    s = FakeStream(1e-6, 5e-6)
    m = measure(s.launch, timer_for(s), settings(), now=s.now)
    measured = Measurement(m.samples, m.number, "cuda_event", m.target_met, m.warmup_calls, m.elapsed_s,
                           host_samples=m.host_samples)
    path = saxpy_path()
    path.op = BoundOp(call=lambda: None, result=lambda: None, blocks_host=True)
    result = path.finish(measured)
    assert "launch_bound" not in result.flags and result.host_samples == m.host_samples
    path.op = BoundOp(call=lambda: None, result=lambda: None)
    assert "launch_bound" in path.finish(measured).flags
