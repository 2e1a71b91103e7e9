"""The torch inference op's CUDA paths on a CPU machine: real torch (CPU build) with a recorded fake ``torch.cuda``.

Checked here: the CUDA-graph variant captures the eager forward with torch's recipe and replays it,
its static output being the answer; each request is timed on the host clock with CUDA events beside
it; TF32 is off and cuDNN's autotuner on during the case, both restored after; peak memory comes from
``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

sys.path.insert(0, str(Path(__file__).parent))

from fake_cuda import FakeTorch, FakeTorchCuda  # noqa: E402

from gpubench.backends.base import DeviceInfo  # noqa: E402
from gpubench.backends.torch_backend import TorchBackend  # noqa: E402
from gpubench.backends.torch_backend import inference as torch_inference  # noqa: E402
from gpubench.harness import HarnessSettings  # noqa: E402
from gpubench.latency import measure_latency  # noqa: E402
from gpubench.records import CaseSpec  # noqa: E402
from gpubench.workloads import get_workload  # noqa: E402
from gpubench.workloads.models import weights as weights_module  # noqa: E402


class MemoryCuda(FakeTorchCuda):
    """The recorded fake plus the memory statistics and ``set_device`` the inference op reads."""

    def set_device(self, device):
        self.log.append(("set_device", str(device)))

    def reset_peak_memory_stats(self, device=None):
        self.log.append(("reset_peak", str(device)))

    def memory_allocated(self, device=None):
        return 1_000

    def max_memory_allocated(self, device=None):
        return 51_000


class FakeGpuTorch(TorchBackend):
    def __init__(self):
        self.cuda = MemoryCuda(2)
        self.torch = FakeTorch(torch, self.cuda)

    def upload(self, array, device, dtype=None):
        t = torch.from_numpy(np.array(array, copy=True))
        return t.to(getattr(torch, dtype)) if dtype else t

    def synchronize(self, device):
        self.cuda.synchronize(device.id)


@pytest.fixture
def fake(monkeypatch, tmp_path):
    monkeypatch.setenv("GPUBENCH_REFCACHE", str(tmp_path))
    monkeypatch.setattr(weights_module, "_MEMORY", {})
    # "Device" modules stay in host memory (the CPU build of torch has no CUDA).
    monkeypatch.setattr(torch_inference, "to_device", lambda net, device, dtype: net.to(dtype=dtype))
    return FakeGpuTorch()


def case(variant, dtype="float32"):
    wl = get_workload("inference")
    params = wl.normalize_params({"model": "cnn", "batch": 3})
    spec = CaseSpec.make("inference", "torch", "cuda:1", dtype, params, variant)
    inputs = wl.make_inputs(params, dtype, None)
    return wl, spec, params, inputs, DeviceInfo("cuda:1", "Fake GPU", "cuda", dtypes=("float32", "float16"))


def test_graph_variant_replays_the_captured_forward(fake):
    wl, spec, params, inputs, gpu = case("graph")
    ref = wl.reference(inputs, params)
    b = torch.backends
    before = (b.cuda.matmul.allow_tf32, b.cudnn.allow_tf32, b.cudnn.benchmark)
    with fake.case_scope(spec, gpu):
        op = fake.build(spec, params, inputs, gpu)
        assert (b.cuda.matmul.allow_tf32, b.cudnn.allow_tf32, b.cudnn.benchmark) == (False, False, True)
        assert op.call.__self__.__class__.__name__ == "FakeCUDAGraph"
        log = [e[0] for e in fake.cuda.log]
        assert log.index("capture begin") < log.index("capture end")  # torch's recipe: warm-up, then capture
        rel, tol = wl.check(op.result(), ref, params, "float32")  # the static output of the captured forward
        assert rel <= tol
        m, metrics = measure_latency(op.call, op.timer, lambda: fake.synchronize(gpu),
                                     HarnessSettings(warmup_s=0.0, warmup_min_calls=1, min_samples=3, budget_s=0.01))
    assert (b.cuda.matmul.allow_tf32, b.cudnn.allow_tf32, b.cudnn.benchmark) == before
    assert metrics["device_clock"] == "cuda_event" and metrics["device_latency_p50_s"] > 0
    assert op.metrics["peak_memory_bytes"] == 50_000 and "max_memory_allocated" in op.metrics["memory_method"]
    assert ("record", "default1") in fake.cuda.log  # events on the case's GPU's stream
    replays = [e for e in fake.cuda.log if e[0] == "replay"]
    assert len(replays) >= len(m.samples)


def test_eager_variant_on_the_fake_gpu(fake):
    wl, spec, params, inputs, gpu = case("default", "float16")
    ref = wl.reference(inputs, params)
    with fake.case_scope(spec, gpu):
        op = fake.build(spec, params, inputs, gpu)
        op.call()
        rel, tol = wl.check(op.result(), ref, params, "float16")
    assert rel <= tol and op.metrics["torch_variant"] == "eager"
    assert ("set_device", "cuda:1") in fake.cuda.log
