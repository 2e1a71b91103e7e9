"""The machine watcher (the gpubench.machine package): NVML with a fake library, RAPL with a fake powercap tree,
CPU contention arithmetic with fake readings — every library call recorded and checked.

The fake NVML is nvidia-ml-py's own ``pynvml`` module with its functions replaced: its constants
and its error classes are the real ones, so the code under test cannot lean on anything the real
library lacks. The real-machine tests (a CPU hog) are in ``test_machine_contention.py``.
"""

from __future__ import annotations

import os
import types

import pytest

from gpubench import machine
from gpubench.commands.run import busy_summary, busy_warning
from gpubench.harness import HarnessSettings, measure
from gpubench.machine import CaseWatch, CpuReading, EnergyMeter, Nvml, Rapl, contention, sysfs
from gpubench.ops import DeviceInfo

pynvml = pytest.importorskip("pynvml")

GPU = DeviceInfo("cuda:0", "NVIDIA H100 80GB HBM3", "cuda")
CPU = DeviceInfo("cpu", "Test CPU", "cpu")


class FakeNvml:
    """pynvml's API over a scripted device; every call lands in ``calls``."""

    def __init__(self, *, count: int = 1, energy_mj: list[int] | None = None, throttle: int = 0,
                 pids: tuple[int, ...] = (), init_error: Exception | None = None, energy_error: Exception | None = None,
                 power_mw: int = 350_000, limit_mw: int = 700_000, energy_step: int = 0):
        self.calls: list[tuple] = []
        self.energy_step = energy_step
        self.energy_now = 0
        self.count = count
        self.energy = list(energy_mj or [1_000_000, 1_000_000])
        self.throttle = throttle
        self.pids = pids
        self.init_error = init_error
        self.energy_error = energy_error
        self.power_mw = power_mw
        self.limit_mw = limit_mw
        # The real module's constants and error classes.
        for name in dir(pynvml):
            if name.startswith(("NVML_", "NVMLError")) or name == "NVMLError":
                setattr(self, name, getattr(pynvml, name))

    def _rec(self, name: str, *args):
        self.calls.append((name, *args))

    def nvmlInit(self):
        self._rec("nvmlInit")
        if self.init_error:
            raise self.init_error

    def nvmlDeviceGetCount(self):
        self._rec("nvmlDeviceGetCount")
        return self.count

    def nvmlDeviceGetHandleByIndex(self, i):
        self._rec("nvmlDeviceGetHandleByIndex", i)
        return ("handle", i)

    def nvmlDeviceGetHandleByUUID(self, uuid):
        self._rec("nvmlDeviceGetHandleByUUID", uuid)
        return ("handle", uuid)

    def nvmlDeviceGetName(self, h):
        self._rec("nvmlDeviceGetName", h)
        return "NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetUUID(self, h):
        return "GPU-1234"

    def nvmlDeviceGetClockInfo(self, h, clock):
        self._rec("nvmlDeviceGetClockInfo", h, clock)
        return 1980 if clock == pynvml.NVML_CLOCK_SM else 2619

    def nvmlDeviceGetMaxClockInfo(self, h, clock):
        return 1980 if clock == pynvml.NVML_CLOCK_SM else 2619

    def nvmlDeviceGetTemperature(self, h, sensor):
        self._rec("nvmlDeviceGetTemperature", h, sensor)
        return 61

    def nvmlDeviceGetPowerUsage(self, h):
        self._rec("nvmlDeviceGetPowerUsage", h)
        return self.power_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, h):
        self._rec("nvmlDeviceGetEnforcedPowerLimit", h)
        return self.limit_mw

    def nvmlDeviceGetPowerManagementDefaultLimit(self, h):
        return 700_000

    def nvmlDeviceGetCurrentClocksEventReasons(self, h):
        self._rec("nvmlDeviceGetCurrentClocksEventReasons", h)
        return self.throttle

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        self._rec("nvmlDeviceGetTotalEnergyConsumption", h)
        if self.energy_error:
            raise self.energy_error
        if self.energy_step:
            self.energy_now += self.energy_step
            return self.energy_now
        return self.energy.pop(0) if len(self.energy) > 1 else self.energy[0]

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        self._rec("nvmlDeviceGetComputeRunningProcesses", h)
        return [types.SimpleNamespace(pid=p, usedGpuMemory=1 << 30) for p in self.pids]

    def nvmlDeviceGetGraphicsRunningProcesses(self, h):
        return []

    def nvmlDeviceGetEccMode(self, h):
        return [1, 1]

    def nvmlDeviceGetPersistenceMode(self, h):
        return 1

    def nvmlDeviceGetMigMode(self, h):
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)

    def nvmlDeviceGetCurrPcieLinkGeneration(self, h):
        return 5

    def nvmlDeviceGetMaxPcieLinkGeneration(self, h):
        return 5

    def nvmlDeviceGetCurrPcieLinkWidth(self, h):
        return 16

    def nvmlDeviceGetMaxPcieLinkWidth(self, h):
        return 16

    def nvmlSystemGetDriverVersion(self):
        return "580.65"


class FakeClock:
    """A monotonic clock that moves ``step`` seconds each time it is read (so every window lasts a known time)."""

    def __init__(self, step: float = 1.0):
        self.t, self.step = 0.0, step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


def quiet_watch(**kw) -> CaseWatch:
    """A watch with a fake clock (each window lasts 1 s), no real sleeping, no sampler ticks."""
    kw.setdefault("rapl", Rapl("/nonexistent/powercap"))
    return CaseWatch(interval_s=3600, clock=FakeClock(), sleep=lambda s: None, **kw)


def watch_for(fake: FakeNvml, rapl: Rapl | None = None) -> CaseWatch:
    """A watch whose NVML is ``fake``."""
    return quiet_watch(nvml=lambda: Nvml.load(fake), rapl=rapl or Rapl("/nonexistent/powercap"))


def names(fake: FakeNvml) -> list[str]:
    return [c[0] for c in fake.calls]


# --- NVML ---------------------------------------------------------------------------------------------


def test_gpu_energy_per_call_from_the_counter_around_the_window():
    # 1,000,000 mJ at the window's start, 1,500,000 mJ at its end: 500 J over 1000 calls.
    fake = FakeNvml(energy_mj=[1_000_000, 1_000_000, 1_500_000])
    w = watch_for(fake)
    w.attach(GPU)
    assert "nvmlInit" in names(fake) and ("nvmlDeviceGetHandleByIndex", 0) in fake.calls
    w.window_start()
    w.window_end(1000)
    machine_state, energy, flags = w.state()
    assert energy["joules_per_call"] == pytest.approx(0.5)
    assert energy["joules"] == pytest.approx(500.0) and energy["calls"] == 1000 and energy["source"] == "nvml:0"
    # The counter was read at attach (supported?), at the window's start and at its end.
    assert names(fake).count("nvmlDeviceGetTotalEnergyConsumption") == 3
    gpu = machine_state["gpu"]
    assert gpu["sm_mhz_max"] == 1980 and gpu["mem_mhz_max"] == 2619 and gpu["temp_c_max"] == 61
    assert gpu["power_w_max"] == pytest.approx(350.0) and gpu["power_limit_w"] == pytest.approx(700.0)
    assert gpu["name"] == "NVIDIA H100 80GB HBM3" and "throttled" not in flags
    # The host's energy during a GPU case: RAPL, absent here, says why.
    assert energy["host"]["reason"].startswith("not available: no RAPL")


@pytest.mark.parametrize(("mask", "throttled"), [
    (0x0, False), (0x1, False), (0x2, False), (0x100, False), (0x1 | 0x2, False),  # idle / user / display clocks
    (0x4, False), (0x1 | 0x4, False),  # the software power cap: an H100's normal state under a large GEMM
    (0x20, True), (0x40, True), (0x8, True), (0x10, True), (0x80, True),  # thermal, hardware, sync boost, brake
    (0x4 | 0x40, True), (0x800, True),  # the cap beside a thermal slowdown; a bit NVML added later
])
def test_throttled_flag_from_the_clock_event_reasons(mask, throttled):
    fake = FakeNvml(energy_mj=[0, 0, 10_000], throttle=mask)
    w = watch_for(fake)
    w.attach(GPU)
    w.window_start()
    w.window_end(10)
    machine_state, _, flags = w.state()
    assert ("throttled" in flags) is throttled
    gpu = machine_state["gpu"]
    # Every reason stays in the record; the ones that made the flag are named apart.
    assert gpu["throttle_mask"] == mask and gpu["throttle"] == machine.throttle_names(mask)
    assert gpu.get("throttled_by", []) == (machine.throttle_names(mask & ~0x4 & ~0x103) if throttled else [])
    assert gpu.get("power_capped", False) is bool(mask & 0x4)
    assert "nvmlDeviceGetCurrentClocksEventReasons" in names(fake)


def test_gpu_energy_over_a_short_window_is_approximate_and_over_two_seconds_is_not():
    fake = FakeNvml(energy_mj=[0, 0, 300_000])
    w = quiet_watch(nvml=lambda: Nvml.load(fake))  # the fake clock: a window of 1 s
    w.attach(GPU)
    w.window_start()
    w.window_end(100)
    _, energy, _ = w.state()
    assert energy["joules_per_call"] == pytest.approx(3.0)  # kept, but marked
    assert energy["approximate"].startswith("a 1 s window, under the 2 s that nvml:0 needs: the GPU's power sensor")
    fake = FakeNvml(energy_mj=[0, 0, 900_000])
    w = CaseWatch(interval_s=3600, clock=FakeClock(step=3.0), sleep=lambda s: None,
                  nvml=lambda: Nvml.load(fake), rapl=Rapl("/nonexistent/powercap"))
    w.attach(GPU)
    w.window_start()
    w.window_end(100)
    _, energy, _ = w.state()
    assert energy["window_s"] == 3.0 and "approximate" not in energy


def test_rapl_energy_is_never_marked_approximate(tmp_path):
    root = make_powercap(tmp_path / "powercap", {"package-0": 0})
    w = quiet_watch(rapl=Rapl(root))
    w.attach(CPU)
    w.window_start()
    set_uj(root, 0, 5_000_000)
    w.window_end(10)
    _, energy, _ = w.state()
    assert energy["window_s"] == 1.0 and "approximate" not in energy


def test_older_nvml_throttle_function_is_used_when_the_new_name_is_missing():
    fake = FakeNvml()
    fake.nvmlDeviceGetCurrentClocksEventReasons = None  # an old nvidia-ml-py
    fake.nvmlDeviceGetCurrentClocksThrottleReasons = lambda h: 0x40
    nvml = Nvml.load(fake)
    assert nvml.throttle_mask(("handle", 0)) == 0x40
    assert machine.throttle_names(0x40 | 0x1) == ["gpu_idle", "hw_thermal_slowdown"]
    assert machine.throttle_names(0x800) == ["0x800"]


def test_no_gpu_no_driver_no_counter_each_say_why():
    # No driver: nvmlInit fails with the real library's error.
    fake = FakeNvml(init_error=pynvml.NVMLError_LibraryNotFound(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND))
    w = watch_for(fake)
    w.attach(GPU)
    w.window_start()
    w.window_end(5)
    m, energy, flags = w.state()
    assert m["gpu"]["reason"].startswith("no NVIDIA driver")
    assert energy["reason"].startswith("not available: no NVIDIA driver") and "joules_per_call" not in energy
    # NVML works but sees no GPU.
    w = watch_for(FakeNvml(count=0))
    w.attach(GPU)
    assert w.gpu_reason == "NVML sees 0 GPU(s), no index 0"
    # A GPU without the energy counter (NOT_SUPPORTED before Volta).
    fake = FakeNvml(energy_error=pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED))
    w = watch_for(fake)
    w.attach(GPU)
    w.window_start()
    w.window_end(5)
    _, energy, _ = w.state()
    assert energy["reason"].startswith("not available: NVML's total-energy counter")
    # nvidia-ml-py not installed at all.
    with pytest.raises(machine.NvmlUnavailable, match="nvidia-ml-py not installed"):
        import builtins

        real_import = builtins.__import__

        def no_pynvml(name, *a, **k):
            if name == "pynvml":
                raise ImportError("No module named 'pynvml'")
            return real_import(name, *a, **k)

        builtins.__import__ = no_pynvml
        try:
            Nvml.load()
        finally:
            builtins.__import__ = real_import


def test_a_counter_that_does_not_advance_or_runs_too_high_gives_a_reason_never_zero():
    w = watch_for(FakeNvml(energy_mj=[5_000, 5_000, 5_000]))
    w.attach(GPU)
    w.window_start()
    w.window_end(100)
    _, energy, _ = w.state()
    assert "joules_per_call" not in energy and "did not advance" in energy["reason"]
    # 10 MJ in a window of well under a second: far above twice the 700 W limit.
    w = watch_for(FakeNvml(energy_mj=[0, 0, 10_000_000_000]))
    w.attach(GPU)
    w.window_start()
    w.window_end(100)
    _, energy, _ = w.state()
    assert energy["reason"].startswith("implausible:") and "1400 W ceiling" in energy["reason"]


def test_other_processes_on_the_gpu():
    fake = FakeNvml(pids=(os.getpid(), 4242))
    w = watch_for(fake)
    w.attach(GPU)
    w.window_start()
    w.window_end(1)
    assert w.state()[0]["gpu"]["other_processes"] == [4242]
    # Inside a container NVML lists the host's PIDs: this process is not among them, so nothing is claimed.
    w = watch_for(FakeNvml(pids=(77, 78)))
    w.attach(GPU)
    gpu = w.state()[0]["gpu"]
    assert "other_processes" not in gpu and gpu["processes_seen"] == [77, 78]
    assert "PID namespace" in gpu["other_processes_note"]


def test_cuda_visible_devices_maps_cuda_ordinals_to_nvml_indices():
    assert machine.nvml_index("cuda", "") == 0
    assert machine.nvml_index("cuda:1", None if "CUDA_VISIBLE_DEVICES" not in os.environ else "") == 1
    assert machine.nvml_index("cuda:1", "3,5") == 5
    assert machine.nvml_index("cuda:0", "GPU-abc,1") == "GPU-abc"
    assert machine.nvml_index("cuda:2", "3,5") is None
    assert machine.nvml_index("opencl:0:0", "") is None and machine.nvml_index("cpu", "") is None
    # A UUID handle is asked for by UUID.
    fake = FakeNvml()
    nvml = Nvml.load(fake)
    nvml.handle("GPU-abc")
    assert ("nvmlDeviceGetHandleByUUID", "GPU-abc") in fake.calls


def test_gpu_environment_facts_and_their_printing():
    from gpubench.commands.env import gpu_state_lines

    env = machine.gpu_environment(Nvml.load(FakeNvml(throttle=0x4)))
    assert env["available"] and env["driver"] == "580.65"
    d = env["devices"][0]
    assert d["sm_mhz"] == 1980 and d["sm_max_mhz"] == 1980 and d["mem_max_mhz"] == 2619
    assert d["power_limit_w"] == pytest.approx(700.0)
    assert d["ecc"] == "enabled" and d["persistence_mode"] == "enabled"
    assert d["mig"] is None  # NOT_SUPPORTED reads as unknown, never as a guess
    assert (d["pcie_gen"], d["pcie_gen_max"], d["pcie_width"], d["pcie_width_max"]) == (5, 5, 16, 16)
    assert d["throttle"] == ["sw_power_cap"]
    (line,) = gpu_state_lines(env)
    assert "SM 1980/1980 MHz" in line and "power limit 700 W" in line and "PCIe gen 5/5 x16/x16" in line
    assert "MIG ?" in line and "sw_power_cap" in line
    gone = machine.gpu_environment(Nvml.load(FakeNvml(count=0)))
    assert gone == {"available": False, "reason": "NVML sees no NVIDIA GPU"}
    assert gpu_state_lines(gone) == ["NVML      NVML sees no NVIDIA GPU"]


# --- RAPL (a fake powercap tree) -------------------------------------------------------------------


def make_powercap(root, packages: dict[str, int], max_range: int | None = 262_143_328_850, psys: bool = True):
    """A powercap tree like Linux's: package zones, their core subzones listed at top level too, psys."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "intel-rapl").mkdir()  # the control type directory, not a zone
    for i, (name, uj) in enumerate(packages.items()):
        z = root / f"intel-rapl:{i}"
        z.mkdir()
        (z / "name").write_text(name + "\n")
        (z / "energy_uj").write_text(f"{uj}\n")
        if max_range is not None:
            (z / "max_energy_range_uj").write_text(f"{max_range}\n")
        sub = root / f"intel-rapl:{i}:0"
        sub.mkdir()
        (sub / "name").write_text("core\n")
        (sub / "energy_uj").write_text("123\n")
    if psys:
        z = root / f"intel-rapl:{len(packages)}"
        z.mkdir()
        (z / "name").write_text("psys\n")
        (z / "energy_uj").write_text("999999999\n")
    return root


def set_uj(root, index: int, uj: int) -> None:
    (root / f"intel-rapl:{index}" / "energy_uj").write_text(f"{uj}\n")


def test_rapl_reads_package_zones_only(tmp_path):
    root = make_powercap(tmp_path / "powercap", {"package-0": 10, "package-1": 20})
    rapl = Rapl(root)
    assert rapl.available and sorted(rapl.zones) == ["package-0", "package-1"]
    assert rapl.read() == {"package-0": 10, "package-1": 20}
    assert rapl.ranges == {"package-0": 262_143_328_850, "package-1": 262_143_328_850}


def test_cpu_case_energy_with_counter_wrap_around(tmp_path):
    top = 262_143_328_850
    root = make_powercap(tmp_path / "powercap", {"package-0": top - 2_000_000, "package-1": 5_000_000})
    w = quiet_watch(rapl=Rapl(root))
    w.attach(CPU)
    w.window_start()
    # Package 0 wraps past its range (2 J before the top, 3 J after 0); package 1 adds 5 J.
    set_uj(root, 0, 3_000_000)
    set_uj(root, 1, 10_000_000)
    w.window_end(10)
    _, energy, _ = w.state()
    assert energy["source"] == "rapl" and energy["wraps"] == 1
    assert energy["joules"] == pytest.approx(10.0)
    assert energy["joules_per_call"] == pytest.approx(1.0)
    assert "host" not in energy  # a CPU case: RAPL is the case's own energy


def test_rapl_wraps_across_several_sampler_steps(tmp_path):
    top = 1_000_000  # a small range so the counter wraps twice in one window
    root = make_powercap(tmp_path / "powercap", {"package-0": 900_000}, max_range=top)
    meter = machine.rapl_meter(Rapl(root))
    meter.start()
    for value in (100_000, 950_000, 50_000, 400_000):  # +200k (wrap), +850k, +100k (wrap), +350k
        set_uj(root, 0, value)
        meter.update()
    assert meter.wraps == 2 and meter.joules == pytest.approx(1.5)
    # The window is long enough that 1.5 J is plausible: 1.5 J per call over 1 call.
    assert meter.entry(10.0, 1)["joules_per_call"] == pytest.approx(1.5)


def test_rapl_counter_going_backwards_without_a_range_is_an_error(tmp_path):
    root = make_powercap(tmp_path / "powercap", {"package-0": 500}, max_range=None)
    meter = machine.rapl_meter(Rapl(root))
    meter.start()
    set_uj(root, 0, 100)
    meter.update()
    entry = meter.entry(1.0, 10)
    assert entry["reason"].startswith("not available: the rapl counter package-0 went backwards")


def test_rapl_missing_permission(tmp_path, monkeypatch):
    root = make_powercap(tmp_path / "powercap", {"package-0": 10})
    energy = root / "intel-rapl:0" / "energy_uj"
    energy.chmod(0o000)
    real = sysfs.read_text

    def deny(path):  # root reads a 0400 file anyway: refuse as the kernel refuses a normal user
        if path.name == "energy_uj" and not (path.stat().st_mode & 0o444):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(sysfs, "read_text", deny)
    rapl = Rapl(root)
    assert not rapl.available and "not readable by this user" in rapl.reason and str(energy) in rapl.reason
    w = quiet_watch(rapl=rapl)
    w.attach(CPU)
    w.window_start()
    w.window_end(3)
    _, e, _ = w.state()
    assert e["reason"].startswith("not available: ") and "not readable" in e["reason"]
    assert "joules_per_call" not in e


def test_no_powercap_at_all(tmp_path):
    rapl = Rapl(tmp_path / "absent")
    assert not rapl.available and rapl.reason.startswith("no RAPL:")
    rapl = Rapl(make_powercap(tmp_path / "only-psys", {}, psys=True))
    assert not rapl.available and "no RAPL package zone" in rapl.reason


def test_gpu_case_also_records_host_energy_from_rapl(tmp_path):
    root = make_powercap(tmp_path / "powercap", {"package-0": 0})
    w = watch_for(FakeNvml(energy_mj=[0, 0, 2_000]), rapl=Rapl(root))
    w.attach(GPU)
    w.window_start()
    set_uj(root, 0, 4_000_000)
    w.window_end(4)
    _, energy, _ = w.state()
    assert energy["joules_per_call"] == pytest.approx(0.5) and energy["source"] == "nvml:0"
    assert energy["host"]["joules_per_call"] == pytest.approx(1.0) and energy["host"]["source"] == "rapl"


# --- CPU contention ------------------------------------------------------------------------------------


def test_cpu_window_arithmetic():
    a = CpuReading(t=10.0, busy_s=100.0, steal_s=1.0, own_s=5.0, cores=2)
    b = CpuReading(t=12.0, busy_s=103.0, steal_s=1.2, own_s=6.0, cores=2)
    w = machine.cpu_window(a, b)
    # 3 s of busy CPU over 2 s, of which 1 s was this process's: others took 1 core, half of 2.
    assert w["other_cores"] == pytest.approx(1.0) and w["other_share"] == pytest.approx(0.5)
    assert w["own_cores"] == pytest.approx(0.5) and w["steal_cores"] == pytest.approx(0.1)
    # Tick rounding can make own > busy: never a negative figure.
    c = CpuReading(t=12.0, busy_s=100.5, steal_s=1.0, own_s=6.0, cores=2)
    assert machine.cpu_window(a, c)["other_cores"] == 0.0
    # ... nor more than the usable cores.
    d = CpuReading(t=12.0, busy_s=104.4, steal_s=1.0, own_s=5.0, cores=2)
    assert machine.cpu_window(a, d)["other_cores"] == 2.0


def scripted_cpu(monkeypatch, readings):
    it = iter(readings)
    last = {}

    def fake_read(since=None):
        try:
            last["r"] = next(it)
        except StopIteration:
            pass
        return last["r"]

    monkeypatch.setattr(contention, "read_cpu", fake_read)


@pytest.mark.parametrize(("other_busy_s", "busy"), [(0.0, False), (0.2, False), (0.3, True), (2.0, True)])
def test_busy_flag_threshold(monkeypatch, other_busy_s, busy):
    # Readings: case start, window start, window end, case end. The window lasts 1 s (monotonic
    # clock faked through the readings' t); this process used 1 core-second in it.
    r0 = CpuReading(0.0, 0.0, 0.0, 0.0, 2)
    r1 = CpuReading(1.0, 0.5, 0.0, 0.5, 2)
    r2 = CpuReading(2.0, 1.5 + other_busy_s, 0.0, 1.5, 2)
    scripted_cpu(monkeypatch, [r0, r1, r2, r2])
    w = quiet_watch()
    w.attach(CPU)
    w.window_start()
    w.window_end(100)
    m, energy, flags = w.state()
    assert m["cpu"]["other_cores"] == pytest.approx(other_busy_s)
    assert ("busy" in flags) is busy
    assert m["cpu"]["busy_threshold_cores"] == machine.BUSY_CORES == 0.25
    assert energy["reason"].startswith("not available: no RAPL")


def test_no_window_no_busy_flag_and_the_reason_for_no_energy(monkeypatch):
    w = quiet_watch()
    w.attach(CPU)
    m, energy, flags = w.state("skipped")
    assert flags == [] and m["cpu"]["span"] == "case"
    assert energy == {"reason": "not measured: the case ended as skipped before a measured window"}


def test_wait_idle_probes_until_quiet(monkeypatch):
    figures = iter([1.2, 0.9, 0.1])
    probes = []

    def fake_probe(seconds, sleep):
        probes.append(seconds)
        return {"other_cores": next(figures), "window_s": seconds}

    monkeypatch.setattr(contention, "probe_cpu", fake_probe)
    out = machine.wait_idle(60.0, probe_s=0.5)
    assert out["quiet"] is True and out["other_cores"] == 0.1 and probes == [0.5, 0.5, 0.5]
    # A machine that stays busy: gives up after the timeout, saying so.
    monkeypatch.setattr(contention, "probe_cpu", lambda seconds, sleep: {"other_cores": 1.5, "window_s": seconds})
    clock = iter(range(0, 1000))
    monkeypatch.setattr(contention.time, "monotonic", lambda: float(next(clock)))
    out = machine.wait_idle(3.0, probe_s=0.5)
    assert out["quiet"] is False and out["other_cores"] == 1.5 and out["waited_s"] <= 3.0


def test_busy_warning_and_summary():
    from gpubench.records import CaseResult, CaseSpec

    assert busy_warning({"other_cores": 0.1, "cores": 2}) is None
    assert busy_warning(None) is None
    text = busy_warning({"other_cores": 1.0, "cores": 2})
    assert text.startswith("gpubench: warning: the machine is busy: other processes use 1 of 2 cores")
    assert "--wait-idle" in text and "\n" not in text
    spec = CaseSpec.make("saxpy", "numpy", "cpu", "float32", {"n": 1024})
    results = [CaseResult(spec, "ok", samples=(1e-3,), flags=("busy",)) for _ in range(3)]
    results += [CaseResult(spec, "ok", samples=(1e-3,)), CaseResult(spec, "skipped", error="no")]
    assert busy_summary(results).startswith("3 of 4 measured cases ran on a busy machine")
    assert busy_summary([results[-1]]) is None
    hot = {"gpu": {"throttle": ["sw_power_cap", "hw_thermal_slowdown"], "throttled_by": ["hw_thermal_slowdown"]}}
    results.append(CaseResult(spec, "ok", samples=(1e-3,), flags=("throttled",), machine=hot))
    assert busy_summary(results).endswith("; 1 ran on a throttled GPU (hw_thermal_slowdown: 1)")


def test_cpu_frequency_and_governor_from_a_fake_sysfs(tmp_path):
    for i in machine.usable_cpus():
        d = tmp_path / f"cpu{i}" / "cpufreq"
        d.mkdir(parents=True)
        (d / "scaling_governor").write_text("performance\n")
        (d / "scaling_driver").write_text("amd-pstate-epp\n")
        (d / "cpuinfo_min_freq").write_text("400000\n")
        (d / "cpuinfo_max_freq").write_text("5100000\n")
        (d / "scaling_cur_freq").write_text("3000000\n")
    f = machine.cpu_frequency(tmp_path)
    assert f["governor"] == "performance" and f["driver"] == "amd-pstate-epp"
    assert f["freq_mhz"] == 3000.0 and f["freq_source"] == "sysfs cpufreq"
    assert (f["freq_min_mhz"], f["freq_max_mhz"]) == (400.0, 5100.0)
    bare = machine.cpu_frequency(tmp_path / "none")
    assert bare["governor"] is None and "no cpufreq in sysfs" in bare["governor_reason"]


# --- the harness's observer hook -------------------------------------------------------------------------


def test_measure_tells_the_observer_exactly_the_calls_in_the_window():
    events = []

    class Observer:
        def window_start(self):
            events.append(("start", timer.calls))

        def window_end(self, calls):
            events.append(("end", timer.calls, calls))

    class CountingTimer:
        name = "fake"

        def __init__(self):
            self.calls = 0
            self.t = 0.0

        def __call__(self, fn, number):
            self.calls += number
            self.t += number * 1e-3
            return number * 1e-3

    timer = CountingTimer()
    settings = HarnessSettings(warmup_s=0.0, min_sample_s=0.01, min_samples=7, max_samples=7)
    m = measure(lambda: None, timer, settings, now=lambda: timer.t, observer=Observer())
    (_, before), (_, after, calls) = events
    assert calls == after - before == m.number * len(m.samples) == 70


def test_energy_meter_of_a_failing_counter():
    def broken():
        raise OSError("I/O error")

    meter = EnergyMeter("rapl", broken, {}, 1e-6, 1000.0)
    meter.start()
    meter.update()
    assert meter.entry(1.0, 1)["reason"] == "not available: reading the rapl counter failed: I/O error"


def test_wait_idle_bad_input_is_a_one_line_error(cli, store_path):
    code, _, err = cli("run", "--suite", "saxpy", "--quick", "--backend", "numpy", "--wait-idle", "-1")
    assert code == 2 and "--wait-idle must be a non-negative number of seconds" in err
    assert not store_path.exists()


def test_env_json_carries_the_cpu_clock_fields(cli):
    import json

    code, out, _ = cli("env", "--json", "--backend", "none")
    env = json.loads(out)
    for key in ("governor", "freq_mhz", "freq_min_mhz", "freq_max_mhz", "load_average"):
        assert key in env["cpu"]
    assert env["cpu"]["governor"] or env["cpu"]["governor_reason"]
    assert env["gpu_state"]["available"] or env["gpu_state"]["reason"]


def test_the_sampler_thread_samples_during_a_long_window():
    import threading

    fake = FakeNvml(energy_step=10, throttle=0x20)  # +10 mJ per read; a thermal slowdown in every sample
    w = CaseWatch(interval_s=0.02, nvml=lambda: Nvml.load(fake), rapl=Rapl("/nonexistent"))
    w.attach(GPU)
    w.window_start()
    import time

    time.sleep(0.3)
    w.window_end(1000)
    assert not any(t.name == "gpubench-machine-sampler" for t in threading.enumerate())
    m, energy, flags = w.state()
    series = m["series"]
    assert len(series) >= 3 and all(p["sm_mhz"] == 1980 and p["throttle"] == 0x20 for p in series)
    assert all("other_cores" in p for p in series) and series == sorted(series, key=lambda p: p["t"])
    reads = names(fake).count("nvmlDeviceGetTotalEnergyConsumption")
    # Every read but the support check at attach adds 10 mJ: start, one per sampler step, end. A step under way
    # when the window closes still adds its point, but no energy (the meter has finished): one point at most.
    assert reads - 1 >= len(series) + 1
    assert energy["joules"] == pytest.approx((reads - 2) * 0.010)
    assert energy["joules_per_call"] == pytest.approx(energy["joules"] / 1000)
    assert "throttled" in flags and m["gpu"]["throttle"] == ["sw_thermal_slowdown"]  # (busy: the shared machine)
