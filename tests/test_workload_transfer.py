"""transfer: real copies on OpenCL (PoCL runs them on a CPU), exact verification, clear skips and errors."""

from __future__ import annotations

import numpy as np
import pytest

from gpubench.case import run_case
from gpubench.errors import UsageError
from gpubench.harness import HarnessSettings
from gpubench.records import CaseSpec
from gpubench.workloads import get_workload

TINY = HarnessSettings(warmup_s=0.0, warmup_min_calls=1, min_sample_s=0.001, min_samples=3, max_samples=3,
                       target_rel_ci=1.0, budget_s=0.05)


def opencl_available():
    from gpubench.backends import get_backend

    return get_backend("opencl").availability() is None


@pytest.mark.skipif(not opencl_available(), reason="no OpenCL platform")
@pytest.mark.parametrize("direction, memory", [("h2d", "pageable"), ("h2d", "pinned"), ("d2h", "pageable"),
                                               ("d2h", "pinned"), ("d2d", None)])
@pytest.mark.parametrize("nbytes", [4096, 1 << 20])
def test_opencl_copies_run_and_verify(direction, memory, nbytes):
    params = {"bytes": nbytes, "direction": direction} | ({"memory": memory} if memory else {})
    r = run_case(CaseSpec.make("transfer", "opencl", "opencl", "float32", params), TINY)
    assert r.status == "ok", r.error
    assert r.rel_error == 0.0 and r.tolerance == 0.0
    assert r.clock == "opencl_event"
    assert r.bytes == nbytes * (2 if direction == "d2d" else 1)
    assert r.gbps > 0


@pytest.mark.skipif(not opencl_available(), reason="no OpenCL platform")
@pytest.mark.parametrize("direction, memory, blocks", [("h2d", "pageable", True), ("d2h", "pinned", False),
                                                       ("d2h", "pageable", True), ("d2d", None, False)])
def test_opencl_pageable_copies_declare_that_they_block_the_host(direction, memory, blocks):
    from gpubench.backends import get_backend

    backend = get_backend("opencl")
    backend.load()
    wl = get_workload("transfer")
    params = wl.normalize_params({"bytes": 4096, "direction": direction} | ({"memory": memory} if memory else {}))
    device = backend.resolve_device("opencl")
    spec = CaseSpec.make("transfer", "opencl", device.id, "float32", params)
    op = backend.build(spec, params, wl.make_inputs(params, "float32", np.random.default_rng(0)), device)
    try:
        assert op.blocks_host is blocks
    finally:
        op.close()


def test_check_is_exact():
    wl = get_workload("transfer")
    params = wl.normalize_params({"bytes": 4096})
    src = wl.make_inputs(params, "float32", np.random.default_rng(0))["src"]
    ref = wl.reference({"src": src}, params)
    assert wl.check(src.copy(), ref, params, "float32") == (0.0, 0.0)
    wrong = src.copy()
    wrong.view(np.uint32)[7] ^= 1  # one flipped bit in 4096 bytes
    rel, tol = wl.check(wrong, ref, params, "float32")
    assert rel > tol == 0.0
    assert wl.check(src[:-1], ref, params, "float32")[0] == float("inf")


def test_torch_cpu_is_skipped_with_reason():
    from gpubench.backends import get_backend

    if get_backend("torch").availability():
        pytest.skip("torch not installed")
    r = run_case(CaseSpec.make("transfer", "torch", "cpu", "float32", {"bytes": 4096}), TINY)
    assert r.status == "skipped"
    assert r.error == "torch: transfer needs a device with its own memory"


def test_numpy_has_no_transfer():
    from gpubench.backends import get_backend

    assert "transfer" not in get_backend("numpy").workloads()


@pytest.mark.parametrize("bad, message", [
    ({}, "missing parameter bytes"),
    ({"bytes": 4100}, "multiple of 8"),
    ({"bytes": 0}, "bytes must be >= 1"),
    ({"bytes": 4096, "direction": "h2h"}, "direction must be one of"),
    ({"bytes": 4096, "memory": "locked"}, "memory must be one of"),
    ({"bytes": 4096, "direction": "d2d", "memory": "pinned"}, "applies to h2d and d2h only"),
    ({"bytes": 1 << 40}, "bytes must be <="),
])
def test_bad_parameters_are_usage_errors(bad, message):
    with pytest.raises(UsageError, match=message):
        get_workload("transfer").normalize_params(bad)


def test_defaults_and_bfloat16_rejected():
    wl = get_workload("transfer")
    assert wl.normalize_params({"bytes": 8}) == {"bytes": 8, "direction": "h2d", "memory": "pageable"}
    assert "memory" not in wl.normalize_params({"bytes": 8, "direction": "d2d"})
    with pytest.raises(UsageError, match="bfloat16"):
        wl.memory_bytes(wl.normalize_params({"bytes": 8}), "bfloat16")


def test_transfer_suite_expands(monkeypatch):
    from gpubench.spec import expand, load_suite

    specs = expand(load_suite("transfer"), quick=True, check_memory=False)
    assert {s.param_dict["direction"] for s in specs} == {"h2d", "d2h", "d2d"}
    assert not [s for s in specs if s.backend == "numpy"]


def test_tensorflow_transfer_on_cpu_is_skipped_with_reason():
    pytest.importorskip("tensorflow")
    from gpubench.case import run_case
    from gpubench.profile import QUICK
    from gpubench.records import CaseSpec

    spec = CaseSpec.make("transfer", "tensorflow", "cpu", "float32",
                         {"bytes": 4096, "direction": "h2d", "memory": "pageable"})
    r = run_case(spec, QUICK)
    assert r.status == "skipped" and r.error == "tensorflow: transfer needs a device with its own memory"
