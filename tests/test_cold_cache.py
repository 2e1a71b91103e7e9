"""Cold-cache mode: the harness order (fake clock and flusher), cache sizes, each backend's flusher, the mode.

The harness is checked with a fake clock and a fake flusher that log every call; the flushers of
torch, CuPy and TensorFlow on CUDA with recorded fakes of those libraries (no GPU here); the host
flusher and PoCL's for real; the ``cache`` mode end to end through ``run_case`` on NumPy and PoCL.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from gpubench.cacheflush import cpu_last_level_cache, cuda_l2_bytes, flush_bytes, host_flusher, parse_size
from gpubench.case import run_case
from gpubench.errors import UsageError
from gpubench.harness import HarnessSettings, measure
from gpubench.ops import DeviceInfo
from gpubench.profile import QUICK
from gpubench.records import CaseSpec


class LoggingClock:
    """A fake timer whose calls cost ``call_s`` each; the flusher costs ``flush_s``. Logs every event."""

    name = "fake"

    def __init__(self, call_s=1e-6, flush_s=1e-3):
        self.t, self.call_s, self.flush_s = 0.0, call_s, flush_s
        self.log: list[tuple[str, int]] = []

    def now(self):
        return self.t

    def flush(self):
        self.log.append(("flush", 0))
        self.t += self.flush_s

    def __call__(self, fn, number):
        self.log.append(("time", number))
        cost = number * self.call_s * (1.5 if len(self.log) % 4 == 0 else 1.0)  # a little noise
        self.t += cost
        return cost


def test_cold_mode_flushes_before_every_timed_call_and_never_batches():
    clock = LoggingClock()
    s = HarnessSettings(warmup_s=0.0, min_sample_s=0.02, min_samples=7, max_samples=40, target_rel_ci=0.0,
                        budget_s=0.02)
    m = measure(lambda: None, clock, s, now=clock.now, flush=clock.flush)
    assert m.cold and m.number == 1
    # flush, time(1), flush, time(1), ...: every timed call has its own flush right before it.
    assert clock.log == [("flush", 0), ("time", 1)] * (len(clock.log) // 2)
    assert len(m.samples) + m.warmup_calls == len(clock.log) // 2
    assert all(x in (pytest.approx(1e-6), pytest.approx(1.5e-6)) for x in m.samples)  # never the flush
    # The budget counts the flushes: 20 ms of sampling at ~1 ms per flush is ~20 samples, not 40.
    assert len(m.samples) == pytest.approx(21, abs=1)


def test_hot_mode_batches_and_never_flushes():
    clock = LoggingClock()
    m = measure(lambda: None, clock, HarnessSettings(warmup_s=0.0, min_sample_s=0.01, target_rel_ci=0.01),
                now=clock.now)
    assert not m.cold and m.number == 10_000
    assert ("flush", 0) not in clock.log


def write_cache(root, cpu, index, level, kind, size, shared):
    d = root / f"cpu{cpu}" / "cache" / f"index{index}"
    d.mkdir(parents=True)
    for name, value in (("level", level), ("type", kind), ("size", size), ("shared_cpu_list", shared)):
        (d / name).write_text(f"{value}\n")


def test_cpu_last_level_cache_from_sysfs(tmp_path):
    for cpu in range(4):
        write_cache(tmp_path, cpu, 0, 1, "Data", "32K", str(cpu))
        write_cache(tmp_path, cpu, 1, 1, "Instruction", "32K", str(cpu))
        write_cache(tmp_path, cpu, 2, 2, "Unified", "1024K", str(cpu))
        write_cache(tmp_path, cpu, 3, 3, "Unified", "32768K", "0-1" if cpu < 2 else "2-3")  # two L3 slices
    assert cpu_last_level_cache(tmp_path) == (64 << 20, "sysfs L3 32 MiB × 2")
    assert cpu_last_level_cache(tmp_path / "nothing") is None
    assert parse_size("32768K") == 32 << 20 and parse_size("2M") == 2 << 20 and parse_size("512") == 512
    assert flush_bytes(32 << 20) == 64 << 20 and flush_bytes(1000) == 4096


def test_host_flusher_rewrites_twice_the_cache():
    flusher = host_flusher((1 << 20, "test"))
    assert flusher.nbytes == 2 << 20
    assert flusher.metrics() == {"cache_flush_bytes": 2 << 20, "llc_bytes": 1 << 20, "llc_source": "test"}
    before = flusher.buffer.copy()
    assert flusher.buffer.nbytes == flusher.nbytes
    flusher.flush()  # a read-modify-write of every word: inverted once, changed; twice, restored
    assert np.all(flusher.buffer != before)
    flusher.flush()
    assert np.array_equal(flusher.buffer, before)


class FakeLibcuda:
    """The three driver calls of ``cuda_l2_bytes``, recorded."""

    def __init__(self, l2=50 << 20, init=0):
        self.l2, self.init, self.calls = l2, init, []

    def cuInit(self, flags):
        self.calls.append(("cuInit", flags))
        return self.init

    def cuDeviceGet(self, ref, ordinal):
        self.calls.append(("cuDeviceGet", ordinal))
        ref._obj.value = 100 + ordinal
        return 0

    def cuDeviceGetAttribute(self, ref, attribute, device):
        self.calls.append(("cuDeviceGetAttribute", attribute, device.value))
        ref._obj.value = self.l2
        return 0


def test_cuda_l2_from_the_driver_api():
    lib = FakeLibcuda()
    assert cuda_l2_bytes(1, lib=lib) == 50 << 20
    assert lib.calls == [("cuInit", 0), ("cuDeviceGet", 1), ("cuDeviceGetAttribute", 38, 101)]
    assert cuda_l2_bytes(0, lib=FakeLibcuda(init=100)) is None  # CUDA_ERROR_NO_DEVICE


# --- recorded fakes of the CUDA frameworks -----------------------------------------------------------
class Recorder:
    def __init__(self):
        self.calls: list[tuple] = []


def fake_torch(rec: Recorder, l2=50 << 20):
    class Buffer:
        def zero_(self):
            rec.calls.append(("zero_",))

    class Cuda:
        @staticmethod
        def get_device_properties(dev):
            rec.calls.append(("get_device_properties", dev))
            return type("Props", (), {"L2_cache_size": l2, "uuid": "1234-abcd"})()

        @staticmethod
        @contextlib.contextmanager
        def device(dev):
            rec.calls.append(("device enter", dev))
            yield
            rec.calls.append(("device exit", dev))

    class Torch:
        uint8 = "uint8"
        cuda = Cuda

        @staticmethod
        def empty(n, dtype, device):
            rec.calls.append(("empty", n, dtype, device))
            return Buffer()

    return Torch


def test_torch_cuda_flusher_zeroes_a_buffer_twice_the_l2_on_the_case_device():
    from gpubench.backends.torch_backend import TorchBackend

    rec = Recorder()
    backend = TorchBackend()
    backend.torch = fake_torch(rec)
    device = DeviceInfo("cuda:1", "NVIDIA H100 80GB HBM3", "cuda")
    flusher = backend.cache_flusher(device)
    assert flusher.nbytes == 100 << 20 and flusher.cache_source == "torch L2_cache_size"
    assert rec.calls == [("get_device_properties", "cuda:1"), ("device enter", "cuda:1"),
                         ("empty", 100 << 20, "uint8", "cuda:1"), ("device exit", "cuda:1")]
    rec.calls.clear()
    flusher.flush()
    flusher.flush()
    assert rec.calls == [("zero_",), ("zero_",)]
    assert backend.device_identity(device) == {"uuid": "1234-abcd"}
    # The CPU device gets the host flusher.
    assert backend.cache_flusher(DeviceInfo("cpu", "cpu", "cpu")).cache_source.startswith(("sysfs", "sysconf",
                                                                                          "assumed"))


def fake_cupy(rec: Recorder, l2=60 << 20):
    class Device:
        def __init__(self, i):
            self.i = i

        def __enter__(self):
            rec.calls.append(("Device enter", self.i))

        def __exit__(self, *exc):
            rec.calls.append(("Device exit", self.i))

    class Runtime:
        @staticmethod
        def getDeviceProperties(i):
            rec.calls.append(("getDeviceProperties", i))
            return {"l2CacheSize": l2, "pciBusID": 0x17, "pciDomainID": 0, "pciDeviceID": 0}

        @staticmethod
        def memsetAsync(ptr, value, nbytes, stream):
            rec.calls.append(("memsetAsync", ptr, value, nbytes, stream))

    class Array:
        data = type("Mem", (), {"ptr": 0xABC})()

    class Cuda:
        runtime = Runtime

        @staticmethod
        def get_current_stream():
            return type("Stream", (), {"ptr": 0x5})()

    Cuda.Device = Device

    class Cupy:
        uint8 = "uint8"
        cuda = Cuda

        @staticmethod
        def empty(n, dtype):
            rec.calls.append(("empty", n, dtype))
            return Array()

    return Cupy


def test_cupy_flusher_memsets_on_the_current_stream_of_the_case_device():
    from gpubench.backends.cupy_backend import CupyBackend

    rec = Recorder()
    backend = CupyBackend()
    backend.cupy = fake_cupy(rec)
    device = DeviceInfo("cuda:1", "NVIDIA H200", "cuda")
    flusher = backend.cache_flusher(device)
    assert flusher.nbytes == 120 << 20 and flusher.cache_bytes == 60 << 20
    assert rec.calls == [("getDeviceProperties", 1), ("Device enter", 1), ("empty", 120 << 20, "uint8"),
                         ("Device exit", 1)]
    rec.calls.clear()
    flusher.flush()
    assert rec.calls == [("Device enter", 1), ("memsetAsync", 0xABC, 0, 120 << 20, 0x5), ("Device exit", 1)]
    flusher.close()
    assert backend.device_identity(device) == {"pci_bus_id": "0000:17:00.0"}


def fake_tf(rec: Recorder):
    class Variable:
        def __init__(self, value):
            rec.calls.append(("Variable", value))

        def assign_add(self, value):
            rec.calls.append(("assign_add", value))

    def function(fn):
        class Traced:
            def __call__(self):
                rec.calls.append(("call traced",))
                return fn()

            def get_concrete_function(self):
                rec.calls.append(("trace",))

        return Traced()

    @contextlib.contextmanager
    def device(name):
        rec.calls.append(("device", name))
        yield

    class Tf:
        float32 = "float32"

    Tf.Variable = Variable
    Tf.function = staticmethod(function)
    Tf.device = staticmethod(device)
    Tf.zeros = staticmethod(lambda shape, dtype: ("zeros", tuple(shape), dtype))
    Tf.ones_like = staticmethod(lambda v: "ones")
    return Tf


def test_tensorflow_gpu_flusher_assigns_to_a_variable_on_the_gpu(monkeypatch):
    from gpubench.backends import tensorflow_backend
    from gpubench.backends.tensorflow_backend import TensorflowBackend

    rec = Recorder()
    backend = TensorflowBackend()
    backend.tf = fake_tf(rec)
    monkeypatch.setattr("gpubench.cacheflush.cuda_l2_bytes", lambda ordinal: None)  # no driver: the datasheet
    device = DeviceInfo("cuda:0", "NVIDIA H100 80GB HBM3", "cuda")
    assert backend.last_level_cache(device) == (50 * 10**6, "datasheet H100 SXM L2")
    flusher = backend.cache_flusher(device)
    assert flusher.nbytes == flush_bytes(50 * 10**6)
    assert rec.calls == [("device", "/GPU:0"), ("Variable", ("zeros", (flusher.nbytes // 4,), "float32")),
                         ("trace",)]
    rec.calls.clear()
    flusher.flush()
    assert rec.calls == [("call traced",), ("device", "/GPU:0"), ("assign_add", "ones")]
    assert tensorflow_backend  # imported without TensorFlow itself


# --- the mode -------------------------------------------------------------------------------------
def test_cache_is_a_declared_mode_of_the_bandwidth_workloads():
    from gpubench.workloads import get_workload, size_text

    saxpy, transfer = get_workload("saxpy"), get_workload("transfer")
    for w in (saxpy, transfer):
        p = w.params["cache"]
        assert p.mode and p.match_reference and p.default == "cold" and p.choices == ("cold", "hot")
    assert saxpy.normalize_params({"n": 8})["cache"] == "cold"
    assert transfer.normalize_params({"bytes": 8, "direction": "d2d"})["cache"] == "cold"
    assert "cache" not in transfer.normalize_params({"bytes": 8, "direction": "h2d"})
    with pytest.raises(UsageError, match="d2d only"):
        transfer.normalize_params({"bytes": 8, "direction": "h2d", "cache": "hot"})
    with pytest.raises(UsageError, match="one of"):
        saxpy.normalize_params({"n": 8, "cache": "lukewarm"})
    assert size_text("saxpy", {"n": 65536, "cache": "cold"}) == "n=2^16 cache=cold"
    assert size_text("saxpy", {"n": 65536, "cache": "hot"}) == "n=2^16 cache=hot"


def test_saxpy_suite_runs_cold_everywhere_and_hot_at_the_small_sizes():
    from gpubench.spec import Filters, expand, load_suite

    specs = expand(load_suite("saxpy"), Filters(("numpy",), (), ()), quick=True)
    got = {(s.param_dict["n"], s.param_dict["cache"]) for s in specs}
    assert got == {(65536, "cold"), (1048576, "cold"), (65536, "hot")}
    full = expand(load_suite("saxpy"), Filters(("numpy",), (), ()), quick=False)
    assert {s.param_dict["cache"] for s in full} == {"cold", "hot"}


def quick() -> HarnessSettings:
    return HarnessSettings(**{**QUICK.__dict__, "budget_s": 0.05, "min_samples": 3})


@pytest.mark.parametrize("backend, device", [("numpy", "cpu"), ("opencl", "opencl")])
def test_cold_and_hot_cases_end_to_end(backend, device):
    from gpubench.backends import get_backend

    if backend == "opencl" and get_backend("opencl").availability():
        pytest.skip(get_backend("opencl").availability())
    cold = run_case(CaseSpec.make("saxpy", backend, device, "float32", {"n": 4096}), quick())
    hot = run_case(CaseSpec.make("saxpy", backend, device, "float32", {"n": 4096, "cache": "hot"}), quick())
    assert cold.status == hot.status == "ok", (cold.error, hot.error)
    assert cold.spec.param_dict["cache"] == "cold" and hot.spec.param_dict["cache"] == "hot"
    assert cold.number == 1  # one call per sample
    assert cold.metrics["cache_flush_bytes"] == flush_bytes(cold.metrics["llc_bytes"]) > 0
    assert "cache_flush_bytes" not in hot.metrics and hot.metrics["llc_bytes"] > 0
    source = "OpenCL global_mem_cache_size" if backend == "opencl" else "sysfs"
    assert cold.metrics["llc_source"].startswith(source)


def test_d2d_cold_copy_on_pocl():
    from gpubench.backends import get_backend

    if get_backend("opencl").availability():
        pytest.skip(get_backend("opencl").availability())
    r = run_case(CaseSpec.make("transfer", "opencl", "opencl", "float32", {"bytes": 65536, "direction": "d2d"}),
                 quick())
    assert r.status == "ok", r.error
    assert r.spec.param_dict["cache"] == "cold" and r.number == 1 and r.metrics["cache_flush_bytes"] > 0


def test_a_backend_that_cannot_flush_skips_cold_cases_with_the_reason(monkeypatch):
    from gpubench.backends.numpy_backend import NumpyBackend

    monkeypatch.setattr(NumpyBackend, "cache_flusher", lambda self, device: None)
    r = run_case(CaseSpec.make("saxpy", "numpy", "cpu", "float32", {"n": 4096}), quick())
    assert r.status == "skipped" and 'cache = "hot"' in r.error
    hot = run_case(CaseSpec.make("saxpy", "numpy", "cpu", "float32", {"n": 4096, "cache": "hot"}), quick())
    assert hot.status == "ok"
