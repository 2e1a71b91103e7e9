"""The plausibility guard: physical ceilings from fake device facts, the flag at measurement and at read time.

No GPU here: NVML is a recorded fake, sysfs a temporary tree, and the cases that break a ceiling
are real case paths finished with measurements too fast for the (named) device they claim.
"""

from __future__ import annotations

import json

import pytest

from gpubench.case import CasePath
from gpubench.datasheet import pcie_gbps
from gpubench.harness import Measurement
from gpubench.ops import DeviceInfo
from gpubench.plausibility import (
    Ceiling,
    HostLink,
    cpu_compute_ceiling,
    cpu_flop_per_cycle,
    host_link,
    judge,
    nvml_host_link,
    physical_ceiling,
    sysfs_host_link,
)
from gpubench.records import CaseSpec
from gpubench.store import RunInfo

H100 = "NVIDIA H100 80GB HBM3"


def test_pcie_bandwidth_per_generation_and_width():
    assert pcie_gbps(5, 16) == pytest.approx(63.02, abs=0.01)
    assert pcie_gbps(4, 16) == pytest.approx(31.51, abs=0.01)
    assert pcie_gbps(3, 8) == pytest.approx(7.88, abs=0.01)
    assert pcie_gbps(1, 1) == 0.25
    assert pcie_gbps(9, 16) is None


class FakeNvml:
    """The NVML calls the guard makes, recorded; an idle GPU's current link is gen1 x16."""

    def __init__(self, count=1, gen=5, lanes=16, fail_init=False):
        self.count, self.gen, self.lanes, self.fail_init = count, gen, lanes, fail_init
        self.calls: list[tuple] = []

    def nvmlInit(self):
        self.calls.append(("init",))
        if self.fail_init:
            raise RuntimeError("NVML Shared Library Not Found")

    def nvmlShutdown(self):
        self.calls.append(("shutdown",))

    def nvmlDeviceGetHandleByUUID(self, uuid):
        self.calls.append(("by uuid", uuid))
        return "h"

    def nvmlDeviceGetHandleByPciBusId(self, bus):
        self.calls.append(("by pci", bus))
        return "h"

    def nvmlDeviceGetCount(self):
        self.calls.append(("count",))
        return self.count

    def nvmlDeviceGetHandleByIndex(self, i):
        self.calls.append(("by index", i))
        return "h"

    def nvmlDeviceGetMaxPcieLinkGeneration(self, h):
        return self.gen

    def nvmlDeviceGetMaxPcieLinkWidth(self, h):
        return self.lanes

    def nvmlDeviceGetCurrPcieLinkGeneration(self, h):
        return 1

    def nvmlDeviceGetCurrPcieLinkWidth(self, h):
        return 16


def test_nvml_link_uses_the_maximum_not_the_idle_link():
    nvml = FakeNvml()
    link = nvml_host_link(uuid="5f1c-22", nvml=nvml)
    assert nvml.calls == [("init",), ("by uuid", "GPU-5f1c-22"), ("shutdown",)]
    assert link.gbps == pytest.approx(pcie_gbps(5, 16)) and (link.generation, link.lanes) == (5, 16)
    assert "PCIe gen5 x16" in link.source and "NVML" in link.source and "now gen1 x16" in link.source
    nvml = FakeNvml(gen=4, lanes=8)
    assert nvml_host_link(pci_bus_id="0000:17:00.0", nvml=nvml).gbps == pytest.approx(pcie_gbps(4, 8))
    assert ("by pci", "0000:17:00.0") in nvml.calls
    # No identity: only an unambiguous single GPU is used.
    assert nvml_host_link(nvml=FakeNvml(count=1)) is not None
    two = FakeNvml(count=2)
    assert nvml_host_link(nvml=two) is None and two.calls[-1] == ("shutdown",)
    assert nvml_host_link(uuid="x", nvml=FakeNvml(fail_init=True)) is None


def test_sysfs_link(tmp_path):
    dev = tmp_path / "0000:17:00.0"
    dev.mkdir()
    (dev / "max_link_speed").write_text("32.0 GT/s PCIe\n")
    (dev / "max_link_width").write_text("16\n")
    link = sysfs_host_link("00000000:17:00.0", root=tmp_path)  # NVML's 8-digit domain
    assert link.gbps == pytest.approx(pcie_gbps(5, 16)) and "sysfs" in link.source
    assert sysfs_host_link("17:00.0", root=tmp_path).generation == 5
    assert sysfs_host_link("0000:99:00.0", root=tmp_path) is None


def test_a_non_pcie_host_link_wins_over_pcie_facts():
    link = host_link("NVIDIA GH200 480GB", uuid="abc")
    assert link.gbps == 450 and "GH200" in link.source


def test_cpu_compute_ceiling_from_isa_and_clock():
    assert cpu_flop_per_cycle("float32", ["avx2", "fma"]) == 32
    assert cpu_flop_per_cycle("float64", ["avx512f"]) == 32
    assert cpu_flop_per_cycle("bfloat16", ["avx512f", "amx_bf16"]) == 2048
    c = cpu_compute_ceiling("float32", flags=["avx2"], cpus=2, max_mhz=4000)
    assert c.value == pytest.approx(256.0) and c.unit == "GFLOP/s" and "4000 MHz" in c.source
    assert cpu_compute_ceiling("float32", flags=["avx2"], cpus=2, max_mhz=0) is None


def test_memory_ceiling_applies_to_cold_and_large_cases_only():
    kw = dict(device_name=H100, is_cpu=False, compute_dtype="float32")
    cold = physical_ceiling("memory", params={"cache": "cold"}, bytes_moved=3 * 4 * 65536, llc_bytes=50 << 20, **kw)
    assert cold == Ceiling("memory", 3350.0, "GB/s", "datasheet H100 SXM")
    assert physical_ceiling("memory", params={"cache": "hot"}, bytes_moved=3 * 4 * 65536, llc_bytes=50 << 20,
                            **kw) is None  # hot and small: runs from L2, may beat HBM
    assert physical_ceiling("memory", params={"cache": "hot"}, bytes_moved=float(1 << 30), llc_bytes=50 << 20,
                            **kw) is not None  # hot but 20× the L2: from HBM
    assert physical_ceiling("compute", **kw).value == 67_000.0
    assert physical_ceiling("compute", **{**kw, "compute_dtype": "tf32"}).value == 495_000.0
    assert physical_ceiling(None, **kw) is None  # conv2d names none (Winograd)
    assert judge(3000.0, cold) is None
    assert judge(4000.0, cold) == {"name": "memory", "value": 3350.0, "unit": "GB/s", "source": "datasheet H100 SXM",
                                   "rate": 4000.0}


def finished(spec: CaseSpec, device: DeviceInfo, seconds: float, monkeypatch=None, link=None, metrics=None):
    """A real case path, finished with a measurement of ``seconds`` per call on ``device``."""
    path = CasePath(spec)
    path.device = device
    if metrics:
        path.cache_metrics = metrics
    if monkeypatch is not None:
        monkeypatch.setattr(path.backend, "host_link", lambda d: link)
    return path.finish(Measurement((seconds,) * 7, 10, "cuda_event", True, 3, 0.1))


GPU = DeviceInfo("cuda:0", H100, "cuda")


def test_a_copy_faster_than_the_pcie_link_is_implausible(monkeypatch):
    # TensorFlow's h2d that copies nothing: 1 GiB "in" 1 ms is 1074 GB/s over a PCIe gen5 x16 link.
    link = nvml_host_link(uuid="u", nvml=FakeNvml())
    spec = CaseSpec.make("transfer", "torch", "cuda", "float32", {"bytes": 1 << 30, "direction": "h2d"})
    r = finished(spec, GPU, 1e-3, monkeypatch, link)
    assert r.status == "ok" and "implausible" in r.flags
    broke = r.metrics["implausible"]
    assert broke["name"] == "host link" and broke["value"] == pytest.approx(63.02, abs=0.01)
    assert "PCIe gen5 x16 (NVML maximum link" in broke["source"] and broke["rate"] == pytest.approx(1073.7, abs=0.1)
    # At 25 ms (43 GB/s) the same copy is plausible; the ceiling it was held against is still recorded.
    ok = finished(spec, GPU, 25e-3, monkeypatch, link)
    assert "implausible" not in ok.flags and ok.metrics["physical_ceiling"]["name"] == "host link"


def test_float32_matmul_above_the_fp32_peak_is_implausible_tf32_is_not():
    spec = CaseSpec.make("matmul", "torch", "cuda", "float32", {"size": 8192})
    seconds = 2 * 8192**3 / 100e12  # 100 TFLOP/s
    r = finished(spec, GPU, seconds)
    assert "implausible" in r.flags and r.metrics["implausible"]["name"] == "compute float32"
    tf32 = finished(CaseSpec.make("matmul", "torch", "cuda", "float32", {"size": 8192, "tf32": True}), GPU, seconds)
    assert "implausible" not in tf32.flags and tf32.metrics["physical_ceiling"]["value"] == 495_000.0


def test_hot_small_saxpy_may_beat_hbm_cold_may_not():
    seconds = 3 * 4 * 65536 / 5000e9  # 5 TB/s, above the H100's 3.35 TB/s
    cold = finished(CaseSpec.make("saxpy", "torch", "cuda", "float32", {"n": 65536}), GPU, seconds,
                    metrics={"llc_bytes": 50 << 20})
    assert "implausible" in cold.flags and cold.metrics["implausible"]["source"] == "datasheet H100 SXM"
    hot = finished(CaseSpec.make("saxpy", "torch", "cuda", "float32", {"n": 65536, "cache": "hot"}), GPU, seconds,
                   metrics={"llc_bytes": 50 << 20})
    assert hot.flags == () and "physical_ceiling" not in hot.metrics


def test_cpu_cases_and_unknown_devices_are_checked_only_where_a_ceiling_is_known(monkeypatch):
    monkeypatch.setattr("gpubench.plausibility.cpu_max_mhz", lambda root=None: 3000.0)
    cpu = DeviceInfo("cpu", "AMD EPYC", "cpu")
    r = finished(CaseSpec.make("matmul", "numpy", "cpu", "float32", {"size": 1024}), cpu, 2 * 1024**3 / 50e12)
    assert "implausible" in r.flags and "MHz" in r.metrics["implausible"]["source"]
    unknown = DeviceInfo("cuda:0", "Some Future GPU", "cuda")
    r = finished(CaseSpec.make("matmul", "torch", "cuda", "float32", {"size": 1024}), unknown, 1e-9)
    assert r.flags == () and "physical_ceiling" not in r.metrics


# --- read time ------------------------------------------------------------------------------------------
RUN = RunInfo(1, "2026-01-01T00:00:00+00:00", None, "complete", "t", "", "numpy", "", {}, {})


def test_export_rows_flag_above_the_measured_ceiling_only_beyond_the_interval():
    from gpubench.records import CaseResult
    from gpubench.rows import build_rows

    spec = CaseSpec.make("saxpy", "numpy", "cpu", "float32", {"n": 1 << 24})
    nbytes = 3 * 4 * (1 << 24)
    ceilings = [{"device": "cpu", "kind": "mem_bw", "dtype": "", "value": 20.0, "unit": "GB/s",
                 "method": "saxpy n=33554432 via numpy"}]
    fast = CaseResult(spec, "ok", samples=(nbytes / 30e9,) * 9, bytes=float(nbytes), metrics={"llc_bytes": 32 << 20})
    row = build_rows(RUN, [fast], ceilings, 7)[0]
    assert row["flags"] == ["above_ceiling"]
    assert row["metrics"]["above_ceiling"]["value"] == 20.0
    assert row["metrics"]["above_ceiling"]["source"].startswith("measured, calibration run 7: saxpy")
    assert "above_ceiling" not in fast.metrics  # the record itself is untouched
    # Median above the ceiling, but the slow end of its interval is not: no flag.
    spread = tuple(nbytes / r for r in (15e9, 16e9, 18e9, 19e9, 21e9, 22e9, 23e9, 24e9, 25e9))
    near = CaseResult(spec, "ok", samples=spread, bytes=float(nbytes), metrics={"llc_bytes": 32 << 20})
    assert build_rows(RUN, [near], ceilings, 7)[0]["flags"] == []
    # Hot and small: runs from cache, never held against memory bandwidth.
    small = CaseSpec.make("saxpy", "numpy", "cpu", "float32", {"n": 65536, "cache": "hot"})
    hot = CaseResult(small, "ok", samples=(1e-6,) * 9, bytes=3 * 4 * 65536.0, metrics={"llc_bytes": 32 << 20})
    assert build_rows(RUN, [hot], ceilings, 7)[0]["flags"] == []


def test_an_old_record_on_a_known_gpu_is_judged_by_its_datasheet_when_read():
    from gpubench.records import CaseResult
    from gpubench.rows import build_rows
    from gpubench.tables import flag_note

    spec = CaseSpec.make("matmul", "torch", "cuda:0", "float32", {"m": 8192, "n": 8192, "k": 8192})
    flops = 2.0 * 8192**3
    old = CaseResult(spec, "ok", samples=(flops / 200e12,) * 7, flops=flops, device_name=H100)
    row = build_rows(RUN, [old])[0]
    assert row["flags"] == ["implausible"]
    assert row["metrics"]["implausible"]["value"] == 67_000.0
    assert "implausible: 2e+05 > compute float32 6.7e+04 GFLOP/s (datasheet H100 SXM)" == flag_note(row, detail=True)


@pytest.fixture
def flagged_store(store_path):
    """A store with a (full) calibration of this machine and a run with one case above its ceiling."""
    from gpubench.envinfo import capture_host
    from gpubench.records import CaseResult
    from gpubench.store import ResultStore

    env = capture_host()
    with ResultStore(store_path) as store:
        cal = store.begin_run("calibrate", settings={"profile": "calibrate"}, environment=env)
        store.add_ceiling(cal, "cpu", "peak_flops", 100.0, "GFLOP/s", dtype="float32", method="matmul 2048³ via numpy")
        store.finish_run(cal)
        quick = store.begin_run("calibrate", settings={"profile": "calibrate+quick"}, environment=env)
        store.add_ceiling(quick, "cpu", "peak_flops", 1.0, "GFLOP/s", dtype="float32", method="matmul 256³")
        store.finish_run(quick)
        run = store.begin_run("matmul", baseline="numpy", environment=env)
        spec = CaseSpec.make("matmul", "numpy", "cpu", "float32", {"m": 1024, "n": 1024, "k": 1024})
        flops = 2.0 * 1024**3
        store.add_result(run, CaseResult(spec, "ok", samples=(flops / 150e9,) * 7, flops=flops, target_met=True))
        spec2 = CaseSpec.make("matmul", "numpy", "cpu", "float32", {"m": 512, "n": 512, "k": 512})
        store.add_result(run, CaseResult(spec2, "ok", samples=(2.0 * 512**3 / 50e9,) * 7, flops=2.0 * 512**3,
                                         target_met=True))
        store.finish_run(run)
    return cal, quick, run


def test_export_show_and_report_name_the_flags(cli, flagged_store, tmp_path):
    cal, quick, run = flagged_store
    code, out, err = cli("export", "--format", "json")
    assert code == 0, err
    rows = {r["size"]: r for r in json.loads(out)["results"]}
    assert rows["1024³"]["flags"] == ["above_ceiling"]  # 150 GFLOP/s > the full calibration's 100
    assert rows["1024³"]["metrics"]["above_ceiling"]["source"].startswith(f"measured, calibration run {cal}")
    assert rows["512³"]["flags"] == []  # 50 < 100; the quick calibration's 1 GFLOP/s is no roof
    code, out, err = cli("export", "--format", "csv")
    assert code == 0 and '"[""above_ceiling""]"' in out
    code, out, err = cli("show")
    assert code == 0
    line = next(ln for ln in out.splitlines() if "1024³" in ln)
    assert line.rstrip().endswith("above_ceiling")
    html = tmp_path / "r.html"
    code, _, err = cli("report", "-o", str(html))
    assert code == 0, err
    # The case table's cells travel as JSON inside the page (">" written as \u003e).
    assert f"above_ceiling: 150 \\u003e peak_flops 100 GFLOP/s (measured, calibration run {cal}" in html.read_text()


def test_flags_table_note_for_every_flag():
    from gpubench.tables import flag_note

    row = {"flags": ["implausible", "launch_bound", "noisy"], "target_met": False,
           "metrics": {"implausible": {"name": "host link", "value": 63.0, "unit": "GB/s", "source": "PCIe gen5 x16",
                                       "rate": 900.0}}}
    assert flag_note(row) == "implausible, launch_bound, noisy"
    assert flag_note(row, detail=True) == ("implausible: 900 > host link 63 GB/s (PCIe gen5 x16); "
                                           "launch_bound: host time per call ≥ device time; noisy: CI target not met")
    assert isinstance(HostLink(1.0, "x"), HostLink)


# --- float64: the FP64 tensor-core peak for GEMMs ------------------------------------------------------

#: (driver name, datasheet entry, FP64 vector, FP64 tensor core) in TFLOP/s.
FP64_PEAKS = [
    ("NVIDIA H100 80GB HBM3", "H100 SXM", 34, 67),
    ("NVIDIA H100 PCIe", "H100 PCIe", 26, 51),
    ("NVIDIA H100 NVL", "H100 NVL", 30, 60),
    ("NVIDIA H200", "H200", 34, 67),
    ("NVIDIA H200 NVL", "H200 NVL", 30, 60),
    ("NVIDIA GH200 480GB", "GH200", 34, 67),
    ("NVIDIA A100-SXM4-80GB", "A100 80GB SXM", 9.7, 19.5),
    ("NVIDIA A100-SXM4-40GB", "A100 40GB", 9.7, 19.5),
    ("NVIDIA A100 80GB PCIe", "A100 80GB PCIe", 9.7, 19.5),
]


@pytest.mark.parametrize(("name", "entry", "vector", "tensor"), FP64_PEAKS)
def test_datasheet_names_both_fp64_peaks_and_gemms_use_the_tensor_core_one(name, entry, vector, tensor):
    from gpubench.datasheet import datasheet_for, gemm_peak

    display, peaks = datasheet_for(name)
    assert display == entry
    assert (peaks["float64"], peaks["float64_tensor"]) == (vector, tensor)
    assert gemm_peak(peaks, "float64") == (tensor, "float64_tensor")
    assert gemm_peak(peaks, "float32") == (peaks["float32"], "float32")  # FP32 has no tensor-core GEMM of its own


def test_gpus_without_fp64_tensor_cores_keep_one_fp64_peak_or_none():
    from gpubench.datasheet import datasheet_for, gemm_peak

    _, v100 = datasheet_for("Tesla V100-SXM2-16GB")
    assert "float64_tensor" not in v100 and gemm_peak(v100, "float64") == (7.8, "float64")
    for name in ("NVIDIA L4", "NVIDIA L40S", "NVIDIA A10", "NVIDIA GeForce RTX 4090", "Tesla T4"):
        _, peaks = datasheet_for(name)
        assert "float64" not in peaks and gemm_peak(peaks, "float64") is None


def test_h200_nvl_is_not_the_h200():
    from gpubench.datasheet import datasheet_for, device_facts

    assert datasheet_for("NVIDIA H200 NVL")[0] == "H200 NVL"
    assert datasheet_for("NVIDIA H200")[0] == "H200"
    assert datasheet_for("NVIDIA H200 NVL")[1]["float32"] == 60 and datasheet_for("NVIDIA H200")[1]["float32"] == 67
    assert device_facts("NVIDIA H200 NVL")[0] == "H200 NVL"


@pytest.mark.parametrize(("name", "tflops", "implausible"), [
    ("NVIDIA H100 80GB HBM3", 55, False), ("NVIDIA H100 80GB HBM3", 70, True),
    ("NVIDIA H200", 60, False), ("NVIDIA H100 PCIe", 45, False), ("NVIDIA H100 PCIe", 55, True),
    ("NVIDIA A100-SXM4-80GB", 17, False), ("NVIDIA A100-SXM4-80GB", 21, True),
])
def test_a_large_float64_gemm_is_held_against_the_fp64_tensor_core_peak(name, tflops, implausible):
    spec = CaseSpec.make("matmul", "torch", "cuda", "float64", {"size": 8192})
    r = finished(spec, DeviceInfo("cuda:0", name, "cuda"), 2 * 8192**3 / (tflops * 1e12))
    assert ("implausible" in r.flags) is implausible
    ceiling = r.metrics["physical_ceiling"]
    assert ceiling["name"] == "compute float64" and "FP64 tensor core" in ceiling["source"]


def test_calibrate_stores_a_float64_ceiling_from_a_dgemm_on_tensor_cores():
    from gpubench.calibrate import derive_ceilings
    from gpubench.commands.calibrate import format_ceilings

    spec = CaseSpec.make("matmul", "torch", "cuda", "float64", {"size": 8192}, suite="calibrate")
    r = finished(spec, GPU, 2 * 8192**3 / 55e12)  # 55 TFLOP/s: above the vector peak, as cuBLAS DGEMM runs
    (ceiling,) = derive_ceilings([r])
    assert ceiling["dtype"] == "float64" and ceiling["value"] == pytest.approx(55_000)
    assert "82% of H100 SXM datasheet 67000" in format_ceilings(1, [ceiling])
