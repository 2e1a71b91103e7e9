"""The ONNX Runtime backend: a plug-in through the public entry point, real runs on its CPU provider, honest skips."""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("torch")

from conftest import TINY  # noqa: E402

from gpubench.backends import get_backend  # noqa: E402
from gpubench.backends.onnxruntime_backend import CPU_PROVIDER, CUDA_PROVIDER  # noqa: E402
from gpubench.backends.onnxruntime_backend import export as export_module  # noqa: E402
from gpubench.backends.onnxruntime_backend.inference import session  # noqa: E402
from gpubench.case import run_case  # noqa: E402
from gpubench.errors import Unavailable  # noqa: E402
from gpubench.ops import DeviceInfo  # noqa: E402
from gpubench.records import CaseSpec  # noqa: E402
from gpubench.workloads.models import weights as weights_module  # noqa: E402


def case(model="mlp", batch=2, device="cpu", dtype="float32"):
    return run_case(CaseSpec.make("inference", "onnxruntime", device, dtype, {"model": model, "batch": batch}), TINY)


def test_registered_through_the_public_entry_point():
    (ep,) = [ep for ep in entry_points(group="gpubench.backends") if ep.name == "onnxruntime"]
    assert ep.value == "gpubench.backends.onnxruntime_backend:OnnxruntimeBackend"
    backend = get_backend("onnxruntime")
    assert backend.workloads() == ("inference",)
    backend.load()
    assert backend.devices()[0].id == "cpu" and backend.devices()[0].dtypes == ("float32",)


def test_cpu_provider_runs_the_exported_model_once_for_every_batch(weight_cache):
    r = case(batch=2)
    assert r.status == "ok", (r.error, r.metrics.get("traceback"))
    assert r.rel_error <= r.tolerance
    m = r.metrics
    assert m["execution_provider"] == CPU_PROVIDER and m["graph_optimization"] == "ORT_ENABLE_ALL"
    assert m["onnx_exporter"].startswith("torch.onnx.export(") and m["peak_memory_note"].startswith("not available")
    path = export_module.onnx_path("mlp", 0, "float32")
    assert path.exists() and m["onnx_file"] == path.name
    stamp = path.stat().st_mtime_ns
    again = case(batch=5)  # the batch axis is dynamic: the same file serves it
    assert again.status == "ok" and path.stat().st_mtime_ns == stamp
    assert [p.name for p in path.parent.iterdir() if p.suffix == ".tmp" or p.name.endswith(".tmp")] == []


def test_a_damaged_cached_model_is_exported_again(weight_cache):
    path = export_module.onnx_path("mlp", 0, "float32")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00garbage")
    r = case(batch=2)
    assert r.status == "ok", r.error
    assert path.stat().st_size > 1000


def test_exporting_without_torch_is_a_skip_naming_it(weight_cache, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    with pytest.raises(Unavailable, match="needs torch"):
        export_module.exported("mlp", 0, "float32", {})


def test_cuda_without_the_cuda_provider_is_a_skip(weight_cache):
    backend = get_backend("onnxruntime")
    backend.load()
    if CUDA_PROVIDER in backend.providers():
        pytest.skip("this onnxruntime has the CUDA execution provider")
    r = case(device="cuda")
    assert r.status == "skipped"
    assert "no CUDA execution provider" in r.error and "onnxruntime-gpu" in r.error


def test_a_cuda_session_that_fell_back_to_the_cpu_is_a_skip(tmp_path):
    class FakeSession:
        def __init__(self, path, options, providers):
            self.asked = providers

        def get_providers(self):
            return [CPU_PROVIDER]  # what ONNX Runtime does when the CUDA provider's libraries do not load

    class FakeOrt:
        InferenceSession = FakeSession

        class GraphOptimizationLevel:
            ORT_ENABLE_ALL = 99

        class SessionOptions:
            pass

    gpu = DeviceInfo("cuda:0", "GPU", "cuda", dtypes=("float32", "float16"))
    with pytest.raises(Unavailable, match="CUDA execution provider did not load"):
        session(FakeOrt, tmp_path / "m.onnx", gpu, 0)
    cpu = DeviceInfo("cpu", "CPU", "cpu")
    sess = session(FakeOrt, tmp_path / "m.onnx", cpu, 0)
    assert sess.asked == [CPU_PROVIDER]


def test_export_is_the_same_function_as_the_torch_module(weight_cache):
    import onnxruntime as ort
    import torch

    from gpubench.backends.torch_backend.inference_nets import build_net

    w = weights_module.load_weights("cnn", 0)
    path, info = export_module.exported("cnn", 0, "float32", w)
    assert info["cached"] is False and info["exporter"] == "torch.onnx.export(dynamo=True)"
    x = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    sess = ort.InferenceSession(str(path), providers=[CPU_PROVIDER])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    want = build_net(torch, "cnn", w)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert export_module.exported("cnn", 0, "float32", w)[1]["cached"] is True
