"""The report's energy view: joules per call against size, energy speedup beside time speedup, or one line why not."""

from __future__ import annotations

import dataclasses
import json
import random
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from synthetic_results import environment, matmul_result  # noqa: E402

from gpubench.report.build import build_report  # noqa: E402
from gpubench.store import ResultStore  # noqa: E402

CPU_W, GPU_W = 100.0, 300.0


def with_energy(r, watts: float, source: str, host_watts: float | None = None):
    """``r`` with the energy a ``watts`` device spends per call at its median time."""
    j = watts * r.median_s
    energy = {"joules_per_call": j, "joules": j * 1000, "calls": 1000, "window_s": r.median_s * 1000,
              "watts": watts, "source": source}
    if host_watts is not None:
        energy["host"] = {"joules_per_call": host_watts * r.median_s, "source": "rapl"}
    return dataclasses.replace(r, energy=energy)


def energy_run(store: ResultStore, measured: bool = True) -> int:
    rng = random.Random(4)
    run = store.begin_run("matmul", baseline="numpy", environment=environment(), command="synthetic")
    for size in (256, 1024, 4096):
        cpu = matmul_result("numpy", "cpu", "float32", size, 50.0, rng)
        gpu = matmul_result("torch", "cuda:0", "float32", size, 5000.0, rng)
        if measured:
            cpu, gpu = with_energy(cpu, CPU_W, "rapl"), with_energy(gpu, GPU_W, "nvml:0", host_watts=40.0)
        else:
            reason = {"reason": "not available: no RAPL: /sys/class/powercap is absent"}
            cpu = dataclasses.replace(cpu, energy=reason, flags=("busy",))
            gpu = dataclasses.replace(gpu, energy={"reason": "not available: no NVIDIA driver"})
        store.add_result(run, cpu)
        store.add_result(run, gpu)
    store.finish_run(run)
    return run


def section(text: str) -> str:
    m = re.search(r'<section id="energy">(.*?)</section>', text, re.S)
    assert m, "no energy section"
    return m.group(1)


def test_energy_view_with_measured_energy(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as store:
        run = energy_run(store)
        path, runs = build_report(store, [str(run)], tmp_path / "r.html")
    text = path.read_text()
    body = section(text)
    assert "Energy and machine state" in body and "0 of 6 measured cases ran on a busy machine" in body
    # One figure (matmul float32): joules per call of both series against size.
    found = re.search(r'<script type="application/json" id="gpubench-data">(.*?)</script>', text, re.S)
    data = json.loads(found.group(1))
    figs = [f for f in data["figures"] if "joules per call" in f["layout"]["title"]["text"]]
    assert len(figs) == 1 and {t["name"] for t in figs[0]["data"]} == {"numpy", "torch:cuda:0"}
    rows = {r["series"]: r for r in runs[0].rows if r["params"]["m"] == 4096}
    gpu_j, cpu_j = rows["torch:cuda:0"]["energy"]["joules_per_call"], rows["numpy:cpu"]["energy"]["joules_per_call"]
    trace = next(t for t in figs[0]["data"] if t["name"] == "torch:cuda:0")
    assert trace["y"][-1] == pytest.approx(gpu_j)
    # The table: energy speedup = CPU J / GPU J, beside the time speedup (same CPU reference).
    time_speedup = rows["torch:cuda:0"]["speedup_cpu"]
    assert f"{cpu_j / gpu_j:.3g}×" in body and f"{time_speedup:.3g}×" in body
    assert cpu_j / gpu_j == pytest.approx(time_speedup * CPU_W / GPU_W)
    assert "GFLOP/J" in body and "host J per call" in body


def test_energy_view_without_energy_is_one_line_saying_why(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as store:
        run = energy_run(store, measured=False)
        path, _ = build_report(store, [str(run)], tmp_path / "r.html")
    body = section(path.read_text())
    assert "No energy was measured: not available: no RAPL: /sys/class/powercap is absent (3 cases); " \
           "not available: no NVIDIA driver (3 cases)." in body
    assert "3 of 6 measured cases ran on a busy machine" in body and "inconclusive" in body
    assert 'class="plot"' not in body


def test_energy_figures_render_in_a_browser(tmp_path):
    browser = pytest.importorskip("test_report_browser")
    if browser.CHROMIUM is None:
        pytest.skip("Chromium not installed (apt-get install chromium)")
    with ResultStore(tmp_path / "s.sqlite") as store:
        run = energy_run(store)
        path, _ = build_report(store, [str(run)], tmp_path / "r.html")
    dom, console = browser.open_in_browser(path, tmp_path)
    assert console == [], console
    found = browser.parse(dom)
    assert found.plots and all(found.plots.values())


def test_energy_view_marks_short_windows_and_names_what_throttled(tmp_path):
    rng = random.Random(5)
    with ResultStore(tmp_path / "s.sqlite") as store:
        run = store.begin_run("matmul", baseline="numpy", environment=environment(), command="synthetic")
        for size in (256, 1024):
            cpu = with_energy(matmul_result("numpy", "cpu", "float32", size, 50.0, rng), CPU_W, "rapl")
            gpu = with_energy(matmul_result("torch", "cuda:0", "float32", size, 5000.0, rng), GPU_W, "nvml:0")
            short = "a 0.2 s window, under the 2 s that nvml:0 needs: the GPU's power sensor samples part of it"
            gpu = dataclasses.replace(gpu, energy={**gpu.energy, "approximate": short})
            if size == 1024:  # at its power cap and thermally slowed: flagged, for the thermal reason only
                state = {"gpu": {"throttle": ["sw_power_cap", "hw_thermal_slowdown"], "power_capped": True,
                                 "throttled_by": ["hw_thermal_slowdown"]}}
                gpu = dataclasses.replace(gpu, flags=("throttled",), machine=state)
            else:  # at its power cap only: recorded, not flagged
                gpu = dataclasses.replace(gpu, machine={"gpu": {"throttle": ["sw_power_cap"], "power_capped": True}})
            store.add_result(run, cpu)
            store.add_result(run, gpu)
        store.finish_run(run)
        path, _ = build_report(store, [str(run)], tmp_path / "r.html")
    body = section(path.read_text())
    assert "1 on a throttled GPU (hw_thermal_slowdown: 1)" in body
    assert "2 ran at the GPU" in body and "software power cap, the normal state of a loaded GPU" in body
    assert "2 of 4 energies (marked ≈) are approximate: a 0.2 s window, under the 2 s" in body
    assert "≈ " in body


def test_flag_note_names_the_reasons_that_throttled_a_case():
    from gpubench.tables import flag_note

    gpu = {"throttle": ["sw_power_cap", "hw_thermal_slowdown", "sync_boost"],
           "throttled_by": ["hw_thermal_slowdown", "sync_boost"]}
    row = {"flags": ["throttled"], "machine": {"gpu": gpu}}
    assert flag_note(row, detail=True) == "throttled: hw_thermal_slowdown, sync_boost"
    assert flag_note({"flags": ["throttled"]}, detail=True) == "throttled"  # a record from before the reasons
