"""Real NumPy and PyTorch CPU cases, checked for correctness against the float64 reference (not speed)."""

import numpy as np
import pytest

from gpubench.case import run_case
from gpubench.harness import HarnessSettings
from gpubench.records import CaseSpec
from gpubench.workloads import get_workload
from gpubench.workloads.base import random_array, relative_error, round_to_bfloat16

TINY = HarnessSettings(warmup_s=0.0, min_sample_s=0.001, min_samples=3, max_samples=5, budget_s=0.05)


def run(workload, backend, dtype, params, device="cpu", variant="default"):
    return run_case(CaseSpec.make(workload, backend, device, dtype, params, variant), TINY)


@pytest.mark.parametrize("backend, dtype", [
    ("numpy", "float64"), ("numpy", "float32"), ("numpy", "float16"),
    ("torch", "float64"), ("torch", "float32"), ("torch", "float16"), ("torch", "bfloat16"),
])
@pytest.mark.parametrize("shape", [{"size": 64}, {"m": 33, "n": 17, "k": 65}])
def test_matmul_correct(backend, dtype, shape):
    if backend == "torch":
        pytest.importorskip("torch")
    r = run("matmul", backend, dtype, get_workload("matmul").normalize_params(shape))
    assert r.status == "ok", r.error
    assert 0 <= r.rel_error <= r.tolerance
    assert r.gflops > 0 and len(r.samples) >= 3 and r.clock == "perf_counter"
    assert r.spec_hash and r.device_name


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_saxpy_correct(backend, dtype):
    if backend == "torch":
        pytest.importorskip("torch")
    r = run("saxpy", backend, dtype, {"n": 10_000, "a": 2.0})
    assert r.status == "ok", r.error
    assert r.gbps > 0 and r.bytes == 3 * 10_000 * np.dtype(dtype).itemsize


def test_numpy_bfloat16_is_skipped_with_reason():
    r = run("matmul", "numpy", "bfloat16", {"m": 8, "n": 8, "k": 8})
    assert r.status == "skipped" and r.error == "numpy: dtype bfloat16 not supported on cpu"


def test_tf32_on_cpu_is_skipped_with_reason():
    pytest.importorskip("torch")
    r = run("matmul", "torch", "float32", {"m": 8, "n": 8, "k": 8, "tf32": True})
    assert r.status == "skipped" and "CUDA devices only" in r.error


def test_cuda_without_gpu_is_skipped_not_crashed():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    r = run("matmul", "torch", "float32", {"m": 8, "n": 8, "k": 8}, device="cuda")
    assert r.status == "skipped" and r.error == "torch: no cuda device found"


def test_bfloat16_rounding_is_exact_and_ties_to_even():
    x = np.array([1.0, 1.00390625, 1.01171875, -3.5, 1e-3], dtype=np.float32)
    y = round_to_bfloat16(x)
    assert y[0] == 1.0 and y[1] == 1.0 and y[2] == 1.015625 and y[3] == -3.5
    torch = pytest.importorskip("torch")
    assert np.array_equal(torch.from_numpy(x).to(torch.bfloat16).float().numpy(), y)


def test_inputs_are_random_not_zero():
    a = random_array(np.random.default_rng(0), (100,), "float32")
    assert np.count_nonzero(a) == 100 and a.min() < -0.5 and a.max() > 0.5


def test_relative_error_rejects_nan_and_shape():
    ref = np.ones(4)
    assert relative_error(np.array([1, 1, np.nan, 1.0]), ref) == np.inf
    assert relative_error(np.ones(3), ref) == np.inf
    assert relative_error(ref * (1 + 1e-3), ref) == pytest.approx(1e-3)


def test_missing_framework_names_the_extra():
    from gpubench.errors import MissingDependency, require

    with pytest.raises(MissingDependency) as info:
        require("nosuchfw", "nosuchfw", "nosuchfw")
    assert str(info.value) == "nosuchfw: not installed — pip install 'gpubench[nosuchfw]'"
    with pytest.raises(MissingDependency, match="^tensorflow: keras_nope not installed"):
        require("tensorflow", "keras_nope", "tensorflow")
