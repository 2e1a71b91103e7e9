"""The torch adapter's CUDA paths on a CPU machine: real torch (CPU build) with a recorded fake ``torch.cuda``.

Checked here: every event is recorded on the case's GPU's stream and every call is made with that
GPU current (two fake GPUs, so a timer left on ``cuda:0`` reads zero for a ``cuda:1`` case); the
precision switches a case sets are restored after it (the real torch flags); the CUDA-graph
variant follows torch's capture recipe; ``include_transfer`` times copies, not conversions.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

sys.path.insert(0, str(Path(__file__).parent))

from fake_cuda import COST_MS, FakeTorch, FakeTorchCuda  # noqa: E402

from gpubench.backends.base import DeviceInfo  # noqa: E402
from gpubench.backends.torch_backend import TorchBackend, capture_graph  # noqa: E402
from gpubench.records import CaseSpec  # noqa: E402
from gpubench.workloads import get_workload  # noqa: E402


class FakeGpuTorch(TorchBackend):
    """The torch adapter with a fake ``torch.cuda``: "device" tensors live in host memory, tagged by GPU."""

    def __init__(self, n_devices=2):
        self.cuda = FakeTorchCuda(n_devices)
        self.torch = FakeTorch(torch, self.cuda)
        self.uploads: list[tuple[str, int]] = []

    def upload(self, array, device, dtype=None):
        self.uploads.append((device.id, self.cuda.current))
        t = torch.from_numpy(np.array(array, copy=True))
        return t.to(getattr(torch, dtype)) if dtype else t


def gpu(index: int) -> DeviceInfo:
    return DeviceInfo(f"cuda:{index}", f"Fake GPU {index}", "cuda", dtypes=("float32", "bfloat16", "float16"))


def bound(backend, workload, params, dtype="float32", variant="default", index=1):
    wl = get_workload(workload)
    params = wl.normalize_params(params)
    spec = CaseSpec.make(workload, "torch", f"cuda:{index}", dtype, params, variant)
    inputs = wl.make_inputs(params, dtype, np.random.default_rng(3))
    return wl, spec, params, inputs


@pytest.mark.parametrize("index", [0, 1])
@pytest.mark.parametrize("workload, params", [("saxpy", {"n": 1000}), ("matmul", {"size": 16})])
def test_events_and_calls_are_on_the_cases_gpu(workload, params, index):
    backend = FakeGpuTorch()
    cuda = backend.cuda
    wl, spec, params, inputs = bound(backend, workload, params, index=index)
    device = gpu(index)
    with backend.case_scope(spec, device):
        op = backend.build(spec, params, inputs, device)
        calls = []

        def on_device():
            # The op's kernels run on its tensors' GPU (torch's device guard): count them there.
            calls.append(cuda.current)
            cuda.calls[index] += 1
            op.call()

        seconds = op.timer(on_device, 4)
    assert seconds * 1e3 == pytest.approx(4 * COST_MS)  # events on another GPU's stream would read 0
    assert calls == [index] * 4  # and the case's GPU is current for every call
    assert [e for e in cuda.log if e[0] == "record"] == [("record", f"default{index}")] * 2
    assert cuda.log[0] == ("device enter", index) and cuda.log[-1] == ("device exit", index)
    assert cuda.current == 0 and {cur for _, cur in backend.uploads} == {index}


def test_precision_switches_are_restored_after_a_case():
    """A tf32 case, then a float32 case: the second sees the defaults, and the process the state it had."""
    b = torch.backends
    before = (b.cuda.matmul.allow_tf32, b.cudnn.allow_tf32, b.cudnn.benchmark, torch.get_float32_matmul_precision(),
              b.cuda.matmul.fp32_precision, b.cudnn.conv.fp32_precision)
    backend = FakeGpuTorch()
    wl, spec, params, inputs = bound(backend, "matmul", {"size": 16, "tf32": True})
    with backend.case_scope(spec, gpu(1)):
        backend.build(spec, params, inputs, gpu(1))
        assert b.cuda.matmul.allow_tf32 is True and torch.get_float32_matmul_precision() == "high"
    assert b.cuda.matmul.allow_tf32 is False
    wl, spec, params, inputs = bound(backend, "matmul", {"size": 16})
    with backend.case_scope(spec, gpu(1)):
        backend.build(spec, params, inputs, gpu(1))
        assert b.cuda.matmul.allow_tf32 is False
    conv = dict(n=1, c=2, h=6, w=6, k=3, r=3, s=3, padding=1)
    wl, spec, params, inputs = bound(backend, "conv2d", conv)
    with backend.case_scope(spec, gpu(1)):
        backend.build(spec, params, inputs, gpu(1))
        assert b.cudnn.benchmark is True and b.cudnn.allow_tf32 is False
    after = (b.cuda.matmul.allow_tf32, b.cudnn.allow_tf32, b.cudnn.benchmark, torch.get_float32_matmul_precision(),
             b.cuda.matmul.fp32_precision, b.cudnn.conv.fp32_precision)
    assert after == before


def test_scope_restores_even_when_the_case_fails():
    backend = FakeGpuTorch()
    wl, spec, params, inputs = bound(backend, "matmul", {"size": 16, "tf32": True})
    before = torch.backends.cuda.matmul.allow_tf32
    with pytest.raises(RuntimeError), backend.case_scope(spec, gpu(0)):
        torch.backends.cuda.matmul.allow_tf32 = not before
        raise RuntimeError("the case failed")
    assert torch.backends.cuda.matmul.allow_tf32 == before


def test_capture_follows_torchs_recipe():
    cuda = FakeTorchCuda(2)
    fake = FakeTorch(torch, cuda)
    ran = []
    graph = capture_graph(fake, 1, lambda: ran.append(cuda.current_stream(1).name))
    side = cuda.log[0][1]
    assert cuda.log[0] == ("new stream", side, 1)
    assert cuda.log[1:] == [
        ("wait_stream", side, "default1"), ("stream enter", side), ("stream exit", side),
        ("wait_stream", "default1", side), ("new graph",), ("capture begin", side), ("capture end", side),
        ("synchronize", 1)]
    assert ran == [side] * 4  # three warm-up calls and the captured one, all on the side stream
    graph.replay()
    assert cuda.log[-1] == ("replay", 0)


@pytest.mark.parametrize("workload, params", [("saxpy", {"n": 100}), ("matmul", {"size": 8})])
def test_graph_variant_replays_and_starts_from_pristine_inputs(workload, params):
    backend = FakeGpuTorch()
    wl, spec, params, inputs = bound(backend, workload, params, variant="graph")
    ref = wl.reference(inputs, params)
    with backend.case_scope(spec, gpu(1)):
        op = backend.build(spec, params, inputs, gpu(1))
    assert op.call.__self__.__class__.__name__ == "FakeCUDAGraph" and op.call.__name__ == "replay"
    assert op.metrics["cuda_graph"]
    if workload == "saxpy":
        # Four real calls ran during warm-up and capture; the case must still start from y.
        np.testing.assert_array_equal(op.result(), inputs["y"])
    else:
        rel, tol = wl.check(op.result(), ref, params, "float32")  # the warm-up computed C already
        assert rel <= tol


def test_graph_variant_on_cpu_is_a_skip_with_reason():
    from gpubench.case import run_case
    from gpubench.harness import HarnessSettings

    r = run_case(CaseSpec.make("saxpy", "torch", "cpu", "float32", {"n": 100}, "graph"),
                 HarnessSettings(min_samples=1, max_samples=1, budget_s=0.01))
    assert r.status == "skipped"
    assert r.error == "torch: variant 'graph' of saxpy runs on cuda devices only, not on cpu"


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
def test_include_transfer_times_copies_not_conversions(dtype, monkeypatch):
    backend = FakeGpuTorch()
    wl, spec, params, inputs = bound(backend, "matmul", {"m": 9, "n": 7, "k": 5, "include_transfer": True}, dtype)
    ref = wl.reference(inputs, params)
    copies = []
    real_in, real_out = backend.copy_in, backend.copy_out

    def copy_in(handle, host, device):
        copies.append(("in", handle.dtype, host.dtype, host))
        real_in(handle, host, device)

    def copy_out(handle, host, device):
        copies.append(("out", handle.dtype, host.dtype, host))
        real_out(handle, host, device)

    monkeypatch.setattr(backend, "copy_in", copy_in)
    monkeypatch.setattr(backend, "copy_out", copy_out)
    with backend.case_scope(spec, gpu(1)):
        op = backend.build(spec, params, inputs, gpu(1))
        conversions = []
        real_to = torch.Tensor.to
        monkeypatch.setattr(torch.Tensor, "to", lambda self, *a, **k: conversions.append(a) or real_to(self, *a, **k))
        for _ in range(3):
            op.call()
        monkeypatch.setattr(torch.Tensor, "to", real_to)
        out = op.result()
    assert conversions == []
    assert len(copies) == 9 and all(device == host for _, device, host, _ in copies)
    assert all(str(d) == f"torch.{dtype}" for _, d, _, _ in copies)
    assert len({id(h) for kind, _, _, h in copies if kind == "in"}) == 2  # the same host tensors every call
    assert len({id(h) for kind, _, _, h in copies if kind == "out"}) == 1
    assert out.dtype == (np.float64 if dtype == "bfloat16" else np.dtype(dtype))  # widened after the timing
    rel, tol = wl.check(out, ref, params, dtype)
    assert rel <= tol
    itemsize = 2 if dtype != "float32" else 4
    assert f"({(9 * 5 + 5 * 7) * itemsize} bytes, pageable)" in op.metrics["include_transfer"]


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_include_transfer_of_a_conv_whose_first_call_makes_its_output(layout):
    """Nothing runs when the conv is built (its checked call is its first run), so the end-to-end wrapper makes
    the output it sizes its host buffer by, in either layout, and every call then copies and computes."""
    backend = FakeGpuTorch()
    conv = dict(n=1, c=2, h=6, w=6, k=3, r=3, s=3, padding=1, layout=layout, include_transfer=True)
    wl, spec, params, inputs = bound(backend, "conv2d", conv)
    ref = wl.reference(inputs, params)
    with backend.case_scope(spec, gpu(1)):
        op = backend.build(spec, params, inputs, gpu(1))
        op.call()
        rel, tol = wl.check(op.result(), ref, params, "float32")
    assert rel <= tol and "host→device" in op.metrics["include_transfer"]
