"""The harness, tested deterministically with a fake clock driven by a seeded cost model."""

import random

import pytest

from gpubench.harness import HarnessSettings, HostTimer, calibrate, measure


class FakeClock:
    """A timer and a ``now`` sharing one fake time line.

    Each call of the op costs ``cost(i)`` seconds (``i`` counts calls) plus ``overhead`` per
    timed sample, the way a real timer reading costs a little.
    """

    name = "fake"

    def __init__(self, cost, overhead=0.0):
        self.t = 0.0
        self.calls = 0
        self.cost = cost
        self.overhead = overhead
        self.numbers = []

    def now(self):
        return self.t

    def __call__(self, fn, number):
        self.numbers.append(number)
        total = self.overhead
        for _ in range(number):
            total += self.cost(self.calls)
            self.calls += 1
        self.t += total
        return total


def noop():
    return None


def test_calibration_batches_short_calls_until_sample_is_long():
    clock = FakeClock(lambda i: 1e-6)
    number = calibrate(clock, noop, per_call_estimate=1e-6, min_sample_s=0.01)
    assert number >= 10_000
    assert clock.numbers[-1] * 1e-6 >= 0.01


def test_calibration_recovers_from_a_bad_estimate():
    clock = FakeClock(lambda i: 1e-6)
    number = calibrate(clock, noop, per_call_estimate=1.0, min_sample_s=0.01)  # estimate far too high
    assert number * 1e-6 >= 0.01
    assert len(clock.numbers) > 1


def test_constant_cost_meets_target_with_minimum_samples():
    clock = FakeClock(lambda i: 2e-3)
    s = HarnessSettings(warmup_s=0.01, min_sample_s=0.01, min_samples=7, target_rel_ci=0.01, budget_s=10)
    m = measure(noop, clock, s, now=clock.now)
    assert m.target_met
    assert len(m.samples) == 7
    assert all(x == pytest.approx(2e-3) for x in m.samples)
    assert m.number == 5  # 5 × 2 ms reaches the 10 ms sample
    assert m.clock == "fake"


def test_warmup_keeps_one_time_costs_out():
    # The first call costs a second (JIT, autotuning); steady state is 1 ms.
    clock = FakeClock(lambda i: 1.0 if i == 0 else 1e-3)
    m = measure(noop, clock, HarnessSettings(warmup_s=0.005, min_sample_s=0.005), now=clock.now)
    assert max(m.samples) == pytest.approx(1e-3)
    assert m.warmup_calls >= 3


def test_noisy_cost_stops_at_budget_without_target():
    rng = random.Random(42)
    clock = FakeClock(lambda i: 1e-3 * (1 + rng.expovariate(1.0)))
    s = HarnessSettings(warmup_s=0.0, min_sample_s=0.001, min_samples=5, max_samples=10_000,
                        target_rel_ci=0.0001, budget_s=0.5)
    m = measure(noop, clock, s, now=clock.now)
    assert not m.target_met
    assert sum(m.samples) * m.number == pytest.approx(0.5, rel=0.05)


def test_moderate_noise_converges_and_median_is_right():
    rng = random.Random(7)
    clock = FakeClock(lambda i: 1e-3 * (1 + 0.05 * rng.random()))
    s = HarnessSettings(warmup_s=0.0, min_sample_s=0.0005, min_samples=7, target_rel_ci=0.01, budget_s=60)
    m = measure(noop, clock, s, now=clock.now)
    assert m.target_met
    from gpubench.stats import summarize

    assert summarize(list(m.samples)).median == pytest.approx(1.025e-3, rel=0.01)


def test_max_samples_caps_the_run():
    rng = random.Random(1)
    clock = FakeClock(lambda i: 1e-3 * (1 + rng.random()))
    s = HarnessSettings(warmup_s=0.0, min_sample_s=0.0, min_samples=3, max_samples=12, target_rel_ci=0.0, budget_s=1e9)
    m = measure(noop, clock, s, now=clock.now)
    assert len(m.samples) == 12 and not m.target_met


def test_timer_overhead_is_amortised_by_batching():
    # 1 µs calls with 50 µs of timer overhead per reading: batching makes the error small.
    clock = FakeClock(lambda i: 1e-6, overhead=50e-6)
    m = measure(noop, clock, HarnessSettings(warmup_s=0.0, min_sample_s=0.02), now=clock.now)
    assert min(m.samples) == pytest.approx(1e-6, rel=0.005)


def test_settings_are_validated():
    with pytest.raises(ValueError):
        HarnessSettings(min_samples=0)
    with pytest.raises(ValueError):
        HarnessSettings(min_samples=10, max_samples=5)
    with pytest.raises(ValueError):
        HarnessSettings(budget_s=-1)


def test_host_timer_synchronizes_before_and_after():
    events = []
    timer = HostTimer(sync=lambda: events.append("sync"))
    assert timer(lambda: events.append("call"), 3) >= 0
    assert events == ["sync", "call", "call", "call", "sync"]


def test_device_event_timer_reads_the_events_not_the_host():
    from gpubench.harness import DeviceEventTimer

    log = []

    class Event:
        def __init__(self):
            self.t = None

        def record(self):
            log.append("record")
            self.t = len(log)

        def synchronize(self):
            log.append("sync")

    timer = DeviceEventTimer("cuda_event", Event, lambda s, e: (e.t - s.t) * 1.5)
    seconds = timer(lambda: log.append("call"), 2)
    assert log == ["record", "call", "call", "record", "sync"]
    assert seconds == pytest.approx(3 * 1.5 / 1e3) and timer.name == "cuda_event"


def test_default_warm_up_is_one_call_after_the_first_for_a_long_call_and_a_tenth_of_a_second_for_a_short_one():
    """The defaults: a call that lasts a second gets one warm-up call after the checked one (its one-time costs)
    and samples from the third call on; a 1 ms call is warmed for the 0.1 s of ``warmup_s``, about 100 calls."""
    s = HarnessSettings()
    slow = FakeClock(lambda i: 3.0 if i == 0 else 1.0)  # a second-call cost would show as a slow second call
    m = measure(noop, slow, s, now=slow.now, first_call_s=2.5)
    assert m.warmup_calls == 2 and slow.numbers[:2] == [1, 1] and len(m.samples) == s.min_samples
    second = FakeClock(lambda i: 2.0 if i == 0 else 1.0)  # the call after the checked one still slow: not sampled
    m = measure(noop, second, s, now=second.now, first_call_s=3.0)
    assert max(m.samples) == pytest.approx(1.0)
    quick = FakeClock(lambda i: 1e-3)
    m = measure(noop, quick, s, now=quick.now, first_call_s=0.5)
    assert 95 <= m.warmup_calls <= 105


def test_a_verification_call_already_made_is_the_first_warm_up_call_and_long_calls_need_no_calibration():
    """A 50 ms op: the case path's verification call (its one-time costs) counts as the first warm-up call,
    and warm-up calls that each lasted a whole sample prove one call per sample without another call."""
    s = HarnessSettings(warmup_s=0.0, warmup_min_calls=2, min_sample_s=0.02, min_samples=3, target_rel_ci=0.5)
    clock = FakeClock(lambda i: 0.05)
    m = measure(noop, clock, s, now=clock.now, first_call_s=1.0)
    assert clock.numbers == [1] * 5  # two more warm-up calls and three samples: no calibration call
    assert m.warmup_calls == 3 and m.number == 1 and len(m.samples) == 3
    fresh = FakeClock(lambda i: 1.0 if i == 0 else 0.05)
    m = measure(noop, fresh, s, now=fresh.now)
    assert fresh.numbers == [1] * 6 and max(m.samples) == pytest.approx(0.05)
    short = FakeClock(lambda i: 1e-3)  # a short op is still batched
    assert measure(noop, short, s, now=short.now, first_call_s=0.5).number >= 20


def test_plan_sampling_is_measures_first_half():
    """The pytest plug-in samples with pytest-benchmark but warms up and calibrates exactly as ``measure`` does."""
    from gpubench.harness import plan_sampling, rounds_within_budget

    s = HarnessSettings()
    clock = FakeClock(lambda i: 1.0 if i == 0 else 1e-4)
    plan = plan_sampling(noop, clock, s, now=clock.now)
    # At least 200 calls of 0.1 ms fill a 20 ms sample (floating-point sums may need one more try).
    assert plan.number >= 200 and plan.sample_s == pytest.approx(plan.number * 1e-4)
    again = FakeClock(lambda i: 1.0 if i == 0 else 1e-4)
    m = measure(noop, again, s, now=again.now)
    assert m.number == plan.number and m.warmup_calls == plan.warmup_calls
    assert rounds_within_budget(s, 0.02) == 100  # 2 s of 20 ms samples
    assert rounds_within_budget(s, 10.0) == s.min_samples and rounds_within_budget(s, 1e-6) == s.max_samples


def test_plan_sampling_cold_counts_the_flush_in_each_sample():
    from gpubench.harness import plan_sampling

    clock = FakeClock(lambda i: 1e-3)
    flushes = []

    def flush():
        flushes.append(clock.now())
        clock.t += 4e-3  # writing the flush buffer takes 4 ms of host time

    plan = plan_sampling(noop, clock, HarnessSettings(), now=clock.now, flush=flush)
    assert plan.number == 1 and plan.sample_s == pytest.approx(5e-3)  # one call and its flush
    assert len(flushes) == plan.warmup_calls  # every warm-up call was cold too
