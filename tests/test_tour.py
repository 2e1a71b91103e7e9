"""``gpubench run --suite tour``: ceilings first (measured, or reused from a recent calibration), one telling size of
everything, CPU baselines only where a call takes under a second, and a report that opens with the machine card."""

from __future__ import annotations

import random
import re
from datetime import datetime, timedelta, timezone

import pytest
from conftest import run_gpubench
from synthetic_results import GPU_NAME, environment, lecture_results, matmul_result

from gpubench.calibrate import reusable
from gpubench.recorder import RunRecorder, RunSettings
from gpubench.records import CaseResult, CaseSpec
from gpubench.spec import expand, load_suite
from gpubench.store import CALIBRATE_SUITE, ResultStore


def test_the_tour_suite():
    suite = load_suite("tour")
    assert suite.ceilings and suite.time_limit_s == 285.0 and suite.baseline == "numpy"
    limits: dict = {}
    specs = expand(suite, cpu_limits=limits, check_memory=False)
    workloads = {s.workload for s in specs}
    assert workloads == {"matmul", "saxpy", "transfer", "attention", "mnist"}
    # One size per thing: no sweeps.
    from gpubench.spec import telling_tiers

    assert telling_tiers(specs)[1] == []
    # CPU baselines of the products carry the one-second rule; the lecture is timed three ways.
    assert limits and all(s.device == "cpu" and v == 1.0 for s, v in limits.items())
    assert {s.param_dict.get("timing", "gpubench") for s in specs if s.param_dict.get("m") == 5000} == \
        {"lecture", "host_sync", "gpubench"}
    # MNIST's CNN on every GPU backend against torch on the CPU.
    assert {(s.backend, s.device) for s in specs if s.workload == "mnist"} == \
        {("torch", "cuda"), ("cupy", "cuda"), ("jax", "cuda"), ("tensorflow", "cuda"), ("torch", "cpu")}


def test_quick_tour_on_the_cpu_measures_ceilings_first_and_prints_the_card(store_path, tmp_path):
    proc = run_gpubench("run", "--suite", "tour", "--quick", "--backend", "numpy", "--device", "cpu", timeout=600)
    assert proc.returncode == 0, proc.stderr
    with ResultStore(store_path, readonly=True) as store:
        run = store.run()
        results = store.results(run.id)
        ceilings = store.ceilings(run.id)
    suites = [r.spec.suite for r in results]
    # The calibration cases ran first, in the same run, and their ceilings are stored with it (provisional: --quick).
    assert suites[0] == CALIBRATE_SUITE and suites.index("tour") > max(i for i, s in enumerate(suites)
                                                                       if s == CALIBRATE_SUITE)
    assert {c["kind"] for c in ceilings} >= {"peak_flops", "mem_bw"} and all(c["quality"] == "provisional"
                                                                            for c in ceilings)
    assert run.status in ("complete", "time_limited") and run.settings["time_limit_s"] == 285.0
    out = proc.stdout
    assert "== tour: the machine at a glance ==" in out and "CPU: " in out
    card = out[out.index("== tour"):]
    assert re.search(r"cpu\s+compute float32 \(provisional\)\s+[\d.]+ GFLOP/s", card)
    assert "limited by" in card and "% of measured" in card
    # The report opens with the card.
    report = tmp_path / "r.html"
    proc = run_gpubench("report", "-o", str(report))
    assert proc.returncode == 0, proc.stderr
    html = report.read_text()
    assert html.index('id="card"') < html.index('id="glance"')


def _calibration(store, hostname="synthetic-host", age_h=1.0, quick=False, gpu=True):
    settings = RunSettings("calibrate", profile="calibrate+quick" if quick else "calibrate")
    started = (datetime.now(timezone.utc) - timedelta(hours=age_h)).isoformat(timespec="seconds")
    run_id = store.begin_run(CALIBRATE_SUITE, settings=settings.to_dict(), environment=environment(hostname, gpu),
                             started_at=started)
    store.add_ceiling(run_id, "cuda", "peak_flops", 700000.0, "GFLOP/s", dtype="bfloat16", method="m")
    store.add_ceiling(run_id, "cuda", "mem_bw", 3000.0, "GB/s", method="m")
    store.finish_run(run_id)
    return run_id


def test_a_recent_full_calibration_of_this_machine_is_reused(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as store:
        assert reusable(store, environment()) == (None, [])
        _calibration(store, age_h=30)                       # too old
        _calibration(store, quick=True)                     # provisional
        _calibration(store, hostname="another-host")        # another machine
        assert reusable(store, environment()) == (None, [])
        good = _calibration(store)
        run_id, ceilings = reusable(store, environment())
        assert run_id == good and {c["kind"] for c in ceilings} == {"peak_flops", "mem_bw"}


def test_the_tour_reuses_the_calibrated_device_kinds_and_measures_the_rest(store_path):
    from gpubench.envinfo import capture_host

    with ResultStore(store_path) as store:
        run_id = store.begin_run(CALIBRATE_SUITE, settings=RunSettings("calibrate", profile="calibrate").to_dict(),
                                 environment=capture_host())
        store.add_ceiling(run_id, "cpu", "peak_flops", 100.0, "GFLOP/s", dtype="float32", method="m")
        store.finish_run(run_id)
    proc = run_gpubench("run", "--suite", "tour", "--backend", "numpy,opencl", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert f"ceilings of cpu from calibration run {run_id}" in proc.stderr
    lines = proc.stdout.splitlines()
    # No CPU calibration case is planned again; the OpenCL device's are.
    assert not [ln for ln in lines if ln.startswith("matmul numpy:cpu float32 size=")]
    assert [ln for ln in lines if ln.startswith("saxpy opencl:opencl float32 n=")]


# --- the card ----------------------------------------------------------------------------------------------------


def _gpu_tour(store) -> int:
    rng = random.Random(1)
    rec = RunRecorder(store, "tour", RunSettings("run", time_limit_s=285.0, planned_cases=9), baseline="numpy",
                      environment=environment())
    run_id = rec.begin()
    for r in (matmul_result("numpy", "cpu", "float32", 4096, 80.0, rng),
              matmul_result("torch", "cpu", "float32", 4096, 100.0, rng),
              matmul_result("torch", "cuda:0", "float32", 4096, 45000.0, rng),
              matmul_result("cupy", "cuda:0", "float32", 4096, 50000.0, rng)):
        rec.add(r)
    spec = CaseSpec.make("saxpy", "torch", "cuda:0", "float32", {"n": 1024, "a": 2.0, "cache": "hot"}, suite="tour")
    rec.add(CaseResult(spec, "ok", samples=(8e-6,) * 7, flops=2048.0, bytes=12288.0, device_name=GPU_NAME,
                       flags=("launch_bound",), target_met=True))
    rec.added += len(lecture_results(store, run_id, size=5000, suite="tour"))
    rec.add_ceilings([{"device": "cuda", "kind": "peak_flops", "dtype": "float32", "value": 60000.0,
                       "unit": "GFLOP/s", "method": "matmul 8192³ via torch", "device_name": GPU_NAME},
                      {"device": "cpu", "kind": "peak_flops", "dtype": "float32", "value": 110.0, "unit": "GFLOP/s",
                       "method": "matmul 4096³ via torch", "device_name": "Test CPU"}])
    rec.finish("time_limited", "time limit 4m45s: 9 of 12 cases ran, 3 not started")
    return run_id


def test_the_card_names_ceilings_speedups_and_what_limited_each(tmp_path):
    from gpubench.report.card import card, card_text
    from gpubench.report.model import load_runs

    with ResultStore(tmp_path / "s.sqlite") as store:
        run_id = _gpu_tour(store)
        (run,) = load_runs(store, [str(run_id)])  # held against the run's own ceilings as it is read
    c = card(run)
    text = card_text(c)
    assert "time_limited (time limit 4m45s: 9 of 12 cases ran, 3 not started)" in text
    assert f"GPU: {GPU_NAME}" in text
    # Ceilings with their datasheet share (H100 SXM float32 is 67 TFLOP/s on its datasheet).
    row = next(r for r in c.ceilings if r[0] == "cuda")
    assert row[1] == "compute float32" and row[2] == "60 TFLOP/s" and row[3] == "90% of H100 SXM"
    # The headline: the fastest accelerator against the fastest CPU backend, and what limited it.
    mm = next(h for h in c.headlines if h[0] == "matmul float32 4096³")
    assert mm[1].startswith("cupy:cuda:0 ") and mm[1].endswith(" TFLOP/s")
    speedup = re.fullmatch(r"(\d+)× torch:cpu", mm[2])
    assert speedup and 450 < int(speedup.group(1)) < 510  # about 50 TFLOP/s against 100 GFLOP/s
    share = re.fullmatch(r"compute \(float32\): (\d+)% of measured 60 TFLOP/s", mm[3])
    assert share and 78 <= int(share.group(1)) <= 84  # about 50 of 60
    small = next(h for h in c.headlines if h[0].startswith("saxpy"))
    assert small[3].startswith("launch overhead") and small[2] == "no CPU case at this size"
    # The lecture's naive speedup beside the honest one.
    assert any("timed as in the lecture" in n and "timed by gpubench" in n for n in c.notes)


@pytest.mark.parametrize("suite, first", [("tour", True), ("matmul", False)])
def test_only_a_tour_report_opens_with_the_card(tmp_path, suite, first):
    from gpubench.report.build import build_report

    with ResultStore(tmp_path / "s.sqlite") as store:
        run_id = _gpu_tour(store)
        if suite != "tour":
            rng = random.Random(2)
            run_id = store.begin_run(suite, baseline="numpy", environment=environment())
            store.add_result(run_id, matmul_result("numpy", "cpu", "float32", 256, 50.0, rng))
            store.finish_run(run_id)
        path, _ = build_report(store, [str(run_id)], tmp_path / "r.html")
    html = path.read_text()
    assert ('id="card"' in html) is first
    if first:
        assert html.index('id="card"') < html.index('id="glance"') and "what limited each" in html
