"""The lecture's experiment: three ways to time one call, and what the rest of gpubench does with each.

Timing logic runs on a fake clock and a fake asynchronous device (a queue with a launch cost and a work
time, CUDA-event-like stamps), so every figure is exact: the lecture's way measures the launch, the
synchronized host clock and gpubench's own measurement the work. Real backends are run for correctness
of the records only, never for their speed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from synthetic_results import (  # noqa: E402
    GPU_NAME,
    calibration_run,
    environment,
    lecture_results,
    lecture_run,
    synthetic_run,
)

from gpubench.case import CasePath, run_case  # noqa: E402
from gpubench.compare import compare_results, compare_runs, history_base  # noqa: E402
from gpubench.errors import UsageError  # noqa: E402
from gpubench.harness import DeviceEventTimer, HarnessSettings, Measurement, measure  # noqa: E402
from gpubench.ops import DeviceInfo  # noqa: E402
from gpubench.records import CaseResult, CaseSpec, RecordError  # noqa: E402
from gpubench.store import ResultStore  # noqa: E402
from gpubench.timing import (  # noqa: E402
    LECTURE_REPEATS,
    measure_naive,
    time_as_in_the_lecture,
    time_host_synchronized,
)

# --- a fake clock and a fake device ---------------------------------------------------------------------


class FakeClock:
    """Host time in seconds, moved only by the fake device and by explicit advances."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


class FakeAsyncDevice:
    """A device queue: a call costs the host ``launch_s`` and queues ``work_s`` of device work (asynchronous),
    or, with ``asynchronous=False``, runs the work on the host before returning (NumPy)."""

    def __init__(self, clock: FakeClock, launch_s: float, work_s: float, asynchronous: bool = True):
        self.clock, self.launch_s, self.work_s, self.asynchronous = clock, launch_s, work_s, asynchronous
        self.busy_until = 0.0
        self.calls = self.syncs = 0

    def call(self) -> None:
        self.calls += 1
        self.clock.advance(self.launch_s)
        start = max(self.clock.t, self.busy_until)
        self.busy_until = start + self.work_s
        if not self.asynchronous:
            self.clock.t = self.busy_until

    def synchronize(self) -> None:
        self.syncs += 1
        self.clock.t = max(self.clock.t, self.busy_until)

    @property
    def idle(self) -> bool:
        return self.busy_until <= self.clock.t

    # CUDA-event-like stamps: an event completes when the queue reaches it.
    def new_event(self) -> FakeEvent:
        return FakeEvent(self)


class FakeEvent:
    def __init__(self, device: FakeAsyncDevice):
        self.device, self.stamp = device, None

    def record(self) -> None:
        self.stamp = max(self.device.clock.t, self.device.busy_until)

    def synchronize(self) -> None:
        self.device.clock.t = max(self.device.clock.t, self.stamp)


def elapsed_ms(start: FakeEvent, end: FakeEvent) -> float:
    return (end.stamp - start.stamp) * 1e3


LAUNCH, WORK = 20e-6, 4e-3  # a 5000³ product on a big GPU: 20 µs to queue, 4 ms to compute


def test_way_1_on_an_asynchronous_device_measures_only_the_launch():
    clock = FakeClock()
    dev = FakeAsyncDevice(clock, LAUNCH, WORK)
    m = time_as_in_the_lecture(dev.call, clock=clock)
    assert m.samples == pytest.approx((LAUNCH,) * LECTURE_REPEATS)
    assert m.clock == "unsynchronized" and m.number == 1 and m.target_met is None
    assert dev.calls == LECTURE_REPEATS and dev.syncs == 0
    assert not dev.idle  # nine products still queued when the "measurement" ended
    # measure_naive drains the queue after way 1, outside the timing, so nothing spills into the next case.
    dev2 = FakeAsyncDevice(clock, LAUNCH, WORK)
    m2 = measure_naive("lecture", dev2.call, dev2.synchronize, clock=clock)
    assert m2.samples == pytest.approx((LAUNCH,) * LECTURE_REPEATS) and dev2.idle and dev2.syncs == 1


def test_way_2_synchronizes_around_each_call_and_measures_the_work():
    clock = FakeClock()
    dev = FakeAsyncDevice(clock, LAUNCH, WORK)
    clock.advance(1e-3)
    dev.call()  # work left queued by something earlier: the opening synchronization keeps it out
    m = time_host_synchronized(dev.call, dev.synchronize, clock=clock)
    assert m.samples == pytest.approx((LAUNCH + WORK,) * LECTURE_REPEATS)
    assert m.clock == "perf_counter" and m.number == 1 and m.target_met is None
    assert dev.syncs == 2 * LECTURE_REPEATS and dev.idle
    assert measure_naive("host_sync", dev.call, dev.synchronize, clock=clock).samples == pytest.approx(m.samples)


def test_way_3_device_events_measure_the_work():
    clock = FakeClock()
    dev = FakeAsyncDevice(clock, LAUNCH, WORK)
    timer = DeviceEventTimer("cuda_event", dev.new_event, elapsed_ms, host_clock=clock)
    m = measure(dev.call, timer, HarnessSettings(min_samples=7, budget_s=1.0), now=clock)
    assert m.clock == "cuda_event" and m.number >= 5  # batched: 20 ms samples of 4 ms calls
    # Launches queue up behind the work: each sample is its calls' work plus the first launch.
    assert all(s == pytest.approx(WORK, rel=LAUNCH / WORK) for s in m.samples)
    # ... while the host spent only the launches issuing them.
    assert all(h == pytest.approx(LAUNCH) for h in m.host_samples)


def test_on_a_synchronous_library_all_three_ways_agree():
    clock = FakeClock()
    dev = FakeAsyncDevice(clock, LAUNCH, WORK, asynchronous=False)
    one = time_as_in_the_lecture(dev.call, clock=clock)
    two = time_host_synchronized(dev.call, dev.synchronize, clock=clock)
    timer = DeviceEventTimer("fake", dev.new_event, elapsed_ms, host_clock=clock)
    three = measure(dev.call, timer, HarnessSettings(min_samples=7, budget_s=1.0), now=clock)
    assert one.samples == pytest.approx((LAUNCH + WORK,) * LECTURE_REPEATS)
    assert two.samples == pytest.approx((LAUNCH + WORK,) * LECTURE_REPEATS)
    assert all(s == pytest.approx(LAUNCH + WORK) for s in three.samples)


def test_an_unknown_naive_timing_is_refused():
    with pytest.raises(ValueError, match="unknown naive timing"):
        measure_naive("gpubench", lambda: None, lambda: None)


# --- the timing mode in specs ------------------------------------------------------------------------------


def test_the_timing_default_is_never_written_into_a_spec():
    from gpubench.workloads import get_workload

    matmul = get_workload("matmul")
    assert matmul.normalize_params({"size": 64}) == {"m": 64, "n": 64, "k": 64}
    assert matmul.normalize_params({"size": 64, "timing": "gpubench"}) == {"m": 64, "n": 64, "k": 64}
    assert matmul.normalize_params({"size": 64, "timing": "lecture"})["timing"] == "lecture"
    with pytest.raises(UsageError, match="timing must be one of"):
        matmul.normalize_params({"size": 64, "timing": "stopwatch"})
    # The match key (and so the spec hash) of an existing case is what it was before the mode existed.
    spec = CaseSpec.make("matmul", "numpy", "cpu", "float32", matmul.normalize_params({"size": 64}))
    assert spec.match_key() == ('{"backend":"numpy","device":"cpu","dtype":"float32","params":{"k":64,"m":64,"n":64},'
                                '"variant":"default","workload":"matmul"}')
    assert matmul.mode_tags({"m": 64, "n": 64, "k": 64, "timing": "lecture"}) == ["timing=lecture"]
    assert matmul.mode_tags({"m": 64, "n": 64, "k": 64}) == []


def test_the_lecture_suite_and_the_matmul_suite():
    from gpubench.spec import expand, load_suite

    full = expand(load_suite("lecture"), check_memory=False)
    series = {(s.backend, s.device, s.variant) for s in full}
    assert series == {("numpy", "cpu", "default"), ("tensorflow", "cpu", "default"), ("tensorflow", "cuda", "default"),
                      ("torch", "cpu", "default"), ("torch", "cuda", "default"), ("jax", "cpu", "default"),
                      ("jax", "cuda", "default"), ("cupy", "cuda", "cublas")}
    for s in full:
        assert s.dtype == "float32" and s.param_dict["m"] == s.param_dict["n"] == s.param_dict["k"] == 5000
    timings = sorted(s.param_dict.get("timing", "gpubench") for s in full)
    assert timings == sorted(["lecture", "host_sync", "gpubench"] * len(series))
    quick = expand(load_suite("lecture"), quick=True, check_memory=False)
    assert {s.param_dict["m"] for s in quick} == {1000} and len(quick) == len(full)
    # No case of the matmul suite sets a timing: their specs (and hashes) are unchanged.
    assert not any("timing" in s.param_dict for s in expand(load_suite("matmul"), check_memory=False))


def test_a_record_on_the_unsynchronized_clock_must_say_it_is_not_a_measurement():
    spec = CaseSpec.make("matmul", "jax", "cpu", "float32", {"m": 8, "n": 8, "k": 8, "timing": "lecture"})
    with pytest.raises(RecordError, match="not_a_measurement"):
        CaseResult(spec, "ok", samples=(1e-5,), clock="unsynchronized")
    r = CaseResult(spec, "ok", samples=(1e-5,), clock="unsynchronized", flags=("not_a_measurement",))
    assert CaseResult.from_dict(json.loads(json.dumps(r.to_dict()))) == r


# --- the case path on a real backend -----------------------------------------------------------------------


@pytest.mark.parametrize("timing", ["lecture", "host_sync", "gpubench"])
def test_the_case_path_times_each_way(timing):
    params = {"size": 96} if timing == "gpubench" else {"size": 96, "timing": timing}
    r = run_case(CaseSpec.make("matmul", "numpy", "cpu", "float32", params, suite="lecture"),
                 HarnessSettings(budget_s=0.05, warmup_s=0.0))
    assert r.status == "ok" and r.rel_error <= r.tolerance
    if timing == "lecture":
        assert r.clock == "unsynchronized" and "not_a_measurement" in r.flags
        assert len(r.samples) == LECTURE_REPEATS and r.number == 1 and r.target_met is None
    elif timing == "host_sync":
        assert r.clock == "perf_counter" and r.flags == () and r.target_met is None
        assert len(r.samples) == LECTURE_REPEATS and r.number == 1
    else:
        assert "timing" not in r.spec.param_dict and "not_a_measurement" not in r.flags
        assert r.target_met is not None


def test_the_case_path_synchronizes_after_way_1(monkeypatch):
    """Way 1 leaves the device's queue drained (through the backend's synchronize), never mid-timing."""
    from gpubench.backends import get_backend

    calls = []
    backend = get_backend("numpy")
    monkeypatch.setattr(type(backend), "synchronize", lambda self, device: calls.append(device.id))
    path = CasePath(CaseSpec.make("matmul", "numpy", "cpu", "float32", {"size": 32, "timing": "lecture"}))
    try:
        assert path.prepare() is None
        r = path.measure()
    finally:
        path.close()
    assert r.status == "ok" and calls == ["cpu"]


# --- the guard: way 1 above the device's peak ----------------------------------------------------------------


def _finished(spec: CaseSpec, device: DeviceInfo, seconds: float, clock: str) -> CaseResult:
    path = CasePath(spec)
    path.device = device
    return path.finish(Measurement((seconds,) * LECTURE_REPEATS, 1, clock, None, 0, 0.1))


def test_way_1_above_the_gpu_peak_is_flagged_implausible():
    gpu = DeviceInfo("cuda:0", GPU_NAME, "cuda")
    spec = CaseSpec.make("matmul", "torch", "cuda", "float32", {"size": 5000, "timing": "lecture"})
    r = _finished(spec, gpu, 20e-6, "unsynchronized")  # the launch: 12,500 TFLOP/s
    assert set(r.flags) == {"implausible", "not_a_measurement"}
    broke = r.metrics["implausible"]
    assert broke["name"] == "compute float32" and broke["value"] == 67_000.0 and broke["source"] == "datasheet H100 SXM"
    assert broke["rate"] == pytest.approx(2 * 5000**3 / 20e-6 / 1e9)
    # Way 2 of the same product, at 4 ms (62.5 TFLOP/s), is under the peak.
    sync = _finished(CaseSpec.make("matmul", "torch", "cuda", "float32", {"size": 5000, "timing": "host_sync"}),
                     gpu, 4e-3, "perf_counter")
    assert sync.flags == () and sync.metrics["physical_ceiling"]["value"] == 67_000.0


def test_way_1_above_a_cpu_whose_clock_is_hidden_is_flagged_too(monkeypatch):
    monkeypatch.setattr("gpubench.plausibility.cpu_max_mhz", lambda root=None: None)  # a VM: no sysfs clock
    monkeypatch.setattr("gpubench.envinfo.cpu_flags", lambda: ["avx2", "fma"])
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    cpu = DeviceInfo("cpu", "AMD EPYC", "cpu")
    spec = CaseSpec.make("matmul", "jax", "cpu", "float32", {"size": 1000, "timing": "lecture"})
    r = _finished(spec, cpu, 13.6e-6, "unsynchronized")  # JAX's asynchronous dispatch on a CPU
    assert "implausible" in r.flags
    broke = r.metrics["implausible"]
    assert broke["value"] == pytest.approx(2 * 32 * 6.5) and "6500 MHz" in broke["source"]
    assert "upper bound" in broke["source"]
    honest = _finished(CaseSpec.make("matmul", "jax", "cpu", "float32", {"size": 1000}), cpu, 25e-3, "perf_counter")
    assert "implausible" not in honest.flags


def test_the_read_time_guard_flags_way_1_without_a_recorded_ceiling():
    from gpubench.rows import guard_row

    row = {"status": "ok", "median_s": 20e-6, "workload": "matmul", "dtype": "float32", "device": "cuda:0",
           "device_name": GPU_NAME, "params": {"m": 5000, "n": 5000, "k": 5000, "timing": "lecture"},
           "flops": 2 * 5000.0**3, "flags": ["not_a_measurement"], "metrics": {}}
    guard_row(row)
    assert row["flags"] == ["implausible", "not_a_measurement"]


# --- speedups, headlines and comparisons never use way 1 -------------------------------------------------------


@pytest.fixture
def lecture_store(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as store:
        calibration_run(store)
        gpu = lecture_run(store)
        cpu = lecture_run(store, seed=2, gpu=False, label="cpu only", hostname="cpu-host")
        yield store, gpu, cpu


def test_export_and_tables_give_way_1_no_speedup(lecture_store):
    from gpubench.rows import build_rows

    store, gpu, _ = lecture_store
    rows = build_rows(store.run(str(gpu)), store.results(gpu))
    for r in rows:
        timing = r["params"].get("timing", "gpubench")
        if timing == "lecture":
            assert r["speedup"] is None and r["clock"] == "unsynchronized" and "not_a_measurement" in r["flags"]
        else:
            assert r["speedup"] is not None  # against numpy:cpu timed the same way
    cupy2 = next(r for r in rows if r["backend"] == "cupy" and r["params"].get("timing") == "host_sync")
    numpy2 = next(r for r in rows if r["backend"] == "numpy" and r["params"].get("timing") == "host_sync")
    assert cupy2["speedup"] == pytest.approx(numpy2["median_s"] / cupy2["median_s"])


def test_the_report_model_never_uses_way_1_as_a_reference_or_a_speedup(lecture_store):
    from gpubench.report.analysis import headlines
    from gpubench.report.model import load_runs

    store, gpu, cpu = lecture_store
    runs = load_runs(store, [str(gpu), str(cpu)])
    for run in runs:
        for r in run.rows:
            if "not_a_measurement" in r["flags"]:
                assert r["speedup_cpu"] is None and r["speedup"] is None
            elif r["status"] == "ok":
                assert "timing=lecture" not in r["fastest_cpu"]
                ref_timing = r["params"].get("timing", "gpubench")
                ref = next(x for x in run.rows if x["series"] == r["fastest_cpu"]
                           and x["params"].get("timing", "gpubench") == ref_timing)
                assert "not_a_measurement" not in ref["flags"]
    lines = headlines(runs)
    assert lines and not any("timing=" in line for line in lines)
    # On the CPU machine JAX's way 1 (12 µs, an asynchronous dispatch) would be "the fastest" by far.
    cpu_line = next(line for line in lines if line.startswith("run 3 · cpu only: matmul"))
    assert "jax" not in cpu_line and "tensorflow:cpu" in cpu_line


def test_the_speedup_rules(lecture_store):
    from gpubench.report.lecture import CLAIM, experiments, speedups
    from gpubench.report.model import load_runs

    store, gpu, cpu = lecture_store
    (exp_gpu,), (exp_cpu,) = (experiments(load_runs(store, [str(r)])) for r in (gpu, cpu))
    by = {s.name: s for s in exp_gpu.series}
    sp = speedups(exp_gpu)
    # naive: NumPy's way 1 over the best accelerator's way 1 (CuPy's 15 µs launch).
    assert sp.naive.numerator is by["numpy:cpu"].ways["lecture"]
    assert sp.naive.denominator is by["cupy[cublas]:cuda:0"].ways["lecture"]
    assert sp.naive.value == pytest.approx(by["numpy:cpu"].ways["lecture"]["median_s"]
                                           / by["cupy[cublas]:cuda:0"].ways["lecture"]["median_s"])
    assert sp.naive.value > 1e5 and sp.naive.halfwidth is None
    # the same two, timed by gpubench; honest: the fastest CPU backend (TensorFlow) over the best accelerator.
    assert sp.same_pair.numerator is by["numpy:cpu"].ways["gpubench"]
    assert sp.same_pair.denominator is by["cupy[cublas]:cuda:0"].ways["gpubench"]
    assert sp.honest.numerator is by["tensorflow:cpu"].ways["gpubench"]
    assert sp.honest.denominator is by["cupy[cublas]:cuda:0"].ways["gpubench"]
    assert 300 < sp.honest.value < sp.same_pair.value < 700 and sp.honest.halfwidth < 0.1
    # CPU only: the naive one is over the best other CPU backend (JAX's dispatch); no honest one.
    sp = speedups(exp_cpu)
    assert sp.naive.denominator["series"] == "jax:cpu" and "no accelerator" in sp.naive.basis
    assert sp.naive.value > 1e4
    assert sp.same_pair.value == pytest.approx(3.0 / 2.5, rel=0.05)
    assert sp.honest is None and sp.why_no_honest == "no accelerator case ran in this run"
    assert sp.fastest_cpu_vs_baseline.denominator["series"] == "tensorflow:cpu"
    # The lecture's own arithmetic.
    assert CLAIM.tensorflow_tflops == pytest.approx(12.5) and CLAIM.times_peak == pytest.approx(2.86, abs=0.01)


def test_compare_never_compares_way_1(lecture_store):
    store, gpu, _ = lecture_store
    again = lecture_run(store, seed=9)
    cmp = compare_runs(store.run(str(gpu)), store.results(gpu), store.run(str(again)), store.results(again))
    way1 = [c for c in cmp.cases if c.spec.param_dict.get("timing") == "lecture"]
    assert len(way1) == 8 and all(c.label == "not comparable" for c in way1)
    assert all("not_a_measurement" in c.reason for c in way1)
    assert all(c.label != "not comparable" for c in cmp.cases if c.spec.param_dict.get("timing") != "lecture")
    # Against the machine's history too (the pooled base keeps the flag).
    base = history_base(store, store.run(str(again)), store.results(again), 5)
    pooled = [r for r in base.results if r.spec.param_dict.get("timing") == "lecture"]
    assert pooled and all("not_a_measurement" in r.flags for r in pooled)
    one = compare_results(pooled[0], next(r for r in store.results(again) if r.spec == pooled[0].spec))
    assert one.label == "not comparable"


def test_history_leaves_way_1_out(lecture_store):
    from gpubench.history import collect

    store, _, _ = lecture_store
    hists = collect(store, suite="lecture")
    assert hists and not any(h.spec.param_dict.get("timing") == "lecture" for h in hists)
    assert any(h.spec.param_dict.get("timing") == "host_sync" for h in hists)


# --- the report section ----------------------------------------------------------------------------------


def test_the_report_section_shows_three_ways_the_peak_and_the_speedups(lecture_store, tmp_path):
    from gpubench.report.build import build_report

    store, gpu, cpu = lecture_store
    path, _ = build_report(store, [str(gpu)], tmp_path / "r.html")
    text = path.read_text()
    assert 'id="three-ways"' in text and "The lecture&#x27;s experiment: three ways to time it" in text
    data = json.loads(text.split('id="gpubench-data">')[1].split("</script>")[0])
    fig = next(f for f in data["figures"] if "three ways" in f["layout"]["title"]["text"])
    bars = [t for t in fig["data"] if t["type"] == "bar"]
    assert [b["name"].split(" ·")[0] for b in bars] == ["1", "2", "3"]
    assert all(len(b["x"]) == 8 for b in bars)  # every series, every way
    assert fig["layout"]["yaxis"]["type"] == "log" and fig["layout"]["barmode"] == "group"
    lines = {t["name"]: t for t in fig["data"] if t.get("mode") == "lines"}
    physical = lines["peak: physical ceiling (datasheet, ISA × clock)"]
    assert 67e12 in physical["y"] and "datasheet H100 SXM" in " ".join(physical["text"])
    assert 50e12 in lines["peak: gpubench calibrate (measured)"]["y"]
    ring = next(t for t in fig["data"] if t["name"].startswith("⚠"))
    # The four GPU way-1 bars above the H100's peak, and JAX's CPU way 1 above the measured CPU ceiling.
    assert len(ring["x"]) == 5
    for needle in ("the lecture&#x27;s claim", "≈ 175×", "12.5 TFLOP/s, 2.9×", "naive speedup here (way 1)",
                   "honest speedup (way 3)", "tensorflow:cpu 2.4"):
        assert needle in text, needle
    # At a glance quotes the honest speedup, never way 1's.
    glance = text.split('id="glance"')[1].split("</section>")[0]
    assert "The lecture&#x27;s experiment" in glance and "timing=lecture" not in glance
    # The matmul section leaves way 1 out of its charts and says so.
    assert "8 timed as in the lecture: shown only in the three-ways section" in text


def test_the_section_is_chosen_by_the_timing_mode_not_the_suite(tmp_path):
    from gpubench.report.build import build_report

    with ResultStore(tmp_path / "s.sqlite") as store:
        plain = synthetic_run(store, 40, gpu=False)
        assert 'id="three-ways"' not in build_report(store, [str(plain)], tmp_path / "a.html")[0].read_text()
        mine = store.begin_run("my-suite", baseline="numpy", environment=environment(gpu=False))
        lecture_results(store, mine, gpu=False, size=1000, suite="my-suite")
        store.finish_run(mine)
        text = build_report(store, [str(mine)], tmp_path / "b.html")[0].read_text()
    assert 'id="three-ways"' in text and "this run measured 1000³" in text


# --- the suite, run for real ---------------------------------------------------------------------------------


def test_gpubench_run_suite_lecture_quick(cli, store_path):
    """numpy and torch on this machine: every CPU case ok three ways, way 1 flagged, GPU cases skipped with reasons."""
    code, out, err = cli("run", "--suite", "lecture", "--quick", "--backend", "numpy,torch")
    assert code == 0, err
    assert "timing=lecture" in out and "not_a_measurement" in out
    code, text, err = cli("export", "--format", "json")
    assert code == 0, err
    rows = json.loads(text)["results"]
    ok = {(r["implementation"], r["device"], r["params"].get("timing", "gpubench")): r
          for r in rows if r["status"] == "ok"}
    assert set(ok) == {(b, "cpu", t) for b in ("numpy", "torch") for t in ("lecture", "host_sync", "gpubench")}
    for (_, _, timing), r in ok.items():
        assert r["size"] == "1000³" + ("" if timing == "gpubench" else f" timing={timing}")
        if timing == "lecture":
            assert r["clock"] == "unsynchronized" and "not_a_measurement" in r["flags"] and r["speedup"] is None
            assert r["n_samples"] == LECTURE_REPEATS
        else:
            assert r["clock"] == "perf_counter" and "not_a_measurement" not in r["flags"]
            assert r["speedup"] is not None
    skipped = [r for r in rows if r["status"] == "skipped"]
    assert {r["params"].get("timing", "gpubench") for r in skipped} == {"lecture", "host_sync", "gpubench"}
    assert all(r["device"] == "cuda" and r["error"] for r in skipped)


def test_a_noisy_speedup_is_never_quoted_as_a_ratio():
    from gpubench.report.lecture import Ratio, compared

    fast, slow = {"series": "tensorflow:cpu", "median_s": 1.49}, {"series": "numpy:cpu", "median_s": 2.29}
    tight = compared(Ratio(2.29 / 1.49, slow, fast, "", 0.05), "the fastest CPU backend", "the baseline")
    assert tight == "the fastest CPU backend, tensorflow:cpu, is 1.54× the baseline (numpy:cpu)"
    noisy = compared(Ratio(2.29 / 1.49, slow, fast, "", 0.62), "the fastest CPU backend", "the baseline")
    assert "×" not in noisy and "1.49 s" in noisy and "2.29 s" in noisy and "too noisy to quote a ratio (±62%)" in noisy


def test_rates_of_a_launch_read_in_pflops():
    from gpubench.tables import fmt_rate

    assert fmt_rate({"rate": 1.67e7, "rate_unit": "gflops"}) == "16.7 PFLOP/s"
    assert fmt_rate({"rate": 4.5e4, "rate_unit": "gflops"}) == "45 TFLOP/s"
    assert fmt_rate({"rate": 167.5, "rate_unit": "gflops"}) == "168 GFLOP/s"
