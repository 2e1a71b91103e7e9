"""include_transfer: host backends run unchanged; a device with its own memory refills inputs each call."""

from __future__ import annotations

import numpy as np
import pytest

from gpubench.backends import get_backend
from gpubench.backends.base import DeviceInfo
from gpubench.backends.transfer_wrap import HOST_NOTE
from gpubench.case import run_case
from gpubench.errors import Unavailable
from gpubench.harness import HarnessSettings
from gpubench.records import CaseSpec
from gpubench.workloads import get_workload

TINY = HarnessSettings(warmup_s=0.0, warmup_min_calls=1, min_sample_s=0.001, min_samples=3, max_samples=3,
                       target_rel_ci=1.0, budget_s=0.05)
CONV = dict(n=2, c=3, h=8, w=8, k=4, r=3, s=3, padding=1)


@pytest.mark.parametrize("workload, params", [("conv2d", CONV), ("matmul", {"size": 32}), ("saxpy", {"n": 1000})])
def test_host_backends_run_unchanged_and_say_so(workload, params):
    r = run_case(CaseSpec.make(workload, "numpy", "cpu", "float32", dict(params, include_transfer=True)), TINY)
    assert r.status == "ok", r.error
    assert r.metrics["include_transfer"] == HOST_NOTE


def _bound(include: bool):
    """numpy's conv2d op bound to a device that is *not* host memory, so the wrapper does copy."""
    backend = get_backend("numpy")
    wl = get_workload("conv2d")
    params = wl.normalize_params(dict(CONV, include_transfer=include))
    spec = CaseSpec.make("conv2d", "numpy", "cpu", "float32", params)
    inputs = wl.make_inputs(params, "float32", np.random.default_rng(0))
    ref = wl.reference(inputs, params)
    device = DeviceInfo("sim:0", "separate-memory device", "sim")
    return backend.build(spec, params, inputs, device), ref, wl, params


def test_each_call_copies_inputs_in_and_output_out():
    op, ref, wl, params = _bound(include=True)
    op.device_inputs["x"][...] = 0  # stale device data: the next call must copy the host input again
    op.call()
    rel, tol = wl.check(op.result(), ref, params, "float32")
    assert rel <= tol
    op.device_output[...] = 0  # the host copy of the output is not the device array
    assert wl.check(op.result(), ref, params, "float32")[0] <= tol
    assert "host→device" in op.metrics["include_transfer"]
    assert op.timer.name == "perf_counter"


def test_without_the_flag_the_device_input_is_not_refreshed():
    op, ref, wl, params = _bound(include=False)
    op.device_inputs["x"][...] = 0
    op.call()
    rel, tol = wl.check(op.result(), ref, params, "float32")
    assert rel > tol  # proves the test above can fail


def test_an_op_without_device_buffers_is_skipped_with_reason():
    backend = get_backend("numpy")
    wl = get_workload("saxpy")
    params = wl.normalize_params({"n": 10, "include_transfer": True})
    spec = CaseSpec.make("saxpy", "numpy", "cpu", "float32", params)
    inputs = wl.make_inputs(params, "float32", np.random.default_rng(0))
    with pytest.raises(Unavailable, match="include_transfer cannot run"):
        backend.build(spec, params, inputs, DeviceInfo("sim:0", "sim", "sim"))


def test_torch_cpu_include_transfer_is_the_plain_case():
    if get_backend("torch").availability():
        pytest.skip("torch not installed")
    r = run_case(CaseSpec.make("conv2d", "torch", "cpu", "float32", dict(CONV, include_transfer=True)), TINY)
    assert r.status == "ok", r.error
    assert r.metrics["include_transfer"] == HOST_NOTE
