"""The TensorFlow backend, run for real on the CPU through :func:`gpubench.case.run_case`."""

from __future__ import annotations

import pytest

from gpubench.case import run_case
from gpubench.harness import HarnessSettings
from gpubench.records import CaseSpec

pytest.importorskip("tensorflow", reason="tensorflow not installed (pip install 'gpubench[tensorflow]')")

SMALL = HarnessSettings(warmup_s=0.0, warmup_min_calls=1, min_sample_s=0.001, min_samples=3, max_samples=5,
                        target_rel_ci=0.5, budget_s=0.05)


def run(workload, params, dtype="float32", device="cpu"):
    return run_case(CaseSpec.make(workload, "tensorflow", device, dtype, params), SMALL)


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
def test_matmul_is_correct(dtype):
    r = run("matmul", {"m": 96, "n": 40, "k": 130}, dtype)
    assert r.status == "ok", r.error
    assert r.clock == "perf_counter"
    assert r.rel_error <= r.tolerance
    assert r.gflops and r.gflops > 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_saxpy_is_correct_and_updates_in_place(dtype):
    r = run("saxpy", {"n": 10_001, "a": 3.0}, dtype)
    assert r.status == "ok", r.error
    assert r.rel_error <= r.tolerance
    assert r.samples and min(r.samples) > 0


def test_saxpy_variable_accumulates_across_calls():
    import numpy as np

    from gpubench.backends import get_backend
    from gpubench.workloads import get_workload

    backend = get_backend("tensorflow")
    backend.load()
    device = backend.resolve_device("cpu")
    spec = CaseSpec.make("saxpy", "tensorflow", "cpu", "float64", {"n": 7})
    params = get_workload("saxpy").normalize_params(spec.param_dict)
    inputs = {"x": np.arange(7.0), "y": np.ones(7)}
    op = backend.build(spec, params, inputs, device)
    op.call()
    op.call()
    assert np.array_equal(op.result(), 1 + 2 * params["a"] * np.arange(7.0))


def test_cpu_device_listed_and_gpu_ids_are_cuda():
    from gpubench.backends import get_backend

    backend = get_backend("tensorflow")
    assert backend.availability() is None
    devices = backend.devices()
    assert devices[0].id == "cpu" and devices[0].kind == "cpu"
    assert all(d.id.startswith("cuda:") and d.kind == "cuda" for d in devices[1:])
    assert backend.tf_device(devices[0]) == "/CPU:0"


def test_tf32_on_cpu_is_a_skip_with_reason():
    r = run("matmul", {"size": 16, "tf32": True})
    assert r.status == "skipped"
    assert "tf32" in r.error


def test_missing_gpu_is_a_skip_with_reason():
    from gpubench.backends import get_backend

    if len(get_backend("tensorflow").devices()) > 1:
        pytest.skip("this machine has a GPU")
    r = run("matmul", {"size": 16}, device="cuda")
    assert r.status == "skipped"
    assert r.error == "tensorflow: no cuda device found"
