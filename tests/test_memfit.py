"""Cases sized and checked against the memory the machine has free (issue: calibrate OOM-killed on a large L3)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tracemalloc

import pytest

import gpubench.cacheflush as cacheflush
import gpubench.envinfo as envinfo
from gpubench.calibrate import CACHE_FACTOR, plan
from gpubench.case import run_case
from gpubench.envinfo import cgroup_headroom
from gpubench.memfit import HEADROOM, MemoryNeed, case_need, largest_fitting, shortfall
from gpubench.ops import DeviceInfo
from gpubench.records import CaseSpec
from gpubench.workloads import get_workload

GiB, MiB = 1 << 30, 1 << 20


def fake_machine(monkeypatch, llc: int, available: int) -> None:
    """A machine whose last-level cache and free memory are ``llc`` and ``available`` bytes."""
    monkeypatch.setattr(cacheflush, "host_cache_bytes", lambda: (llc, "fake"))
    monkeypatch.setattr(envinfo, "available_memory", lambda: available)


def saxpy_host_need(n: int, llc: int) -> int:
    w = get_workload("saxpy")
    p = w.normalize_params({"n": n})
    return case_need(w, p, "float32", None, cacheflush.flush_bytes(llc)).host_total


@pytest.mark.parametrize("llc, available", [(480 * MiB, 22 * GiB), (1 * GiB, 60 * GiB), (32 * MiB, 3 * GiB)])
def test_calibrate_sizes_saxpy_within_free_memory_and_past_four_times_the_cache(monkeypatch, llc, available):
    # The VM of the report: 480 MiB L3, 24 GiB of memory (sized 2 GiB per array before, and was OOM-killed).
    fake_machine(monkeypatch, llc, available)
    for backend in ("numpy", "opencl"):
        specs = [s for s in plan((backend,), devices=("cpu", "opencl")) if s.workload == "saxpy"]
        assert specs, backend
        for s in specs:
            n = s.param_dict["n"]
            assert saxpy_host_need(n, llc) <= available * HEADROOM, (backend, n)
            assert 3 * 4 * n >= CACHE_FACTOR * llc  # still a memory ceiling derive_ceilings accepts


def test_a_calibration_case_that_cannot_fit_is_planned_small_and_skipped_with_the_reason(monkeypatch):
    # 1 GiB of L3 and 4 GiB free: even the smallest case that can make a memory ceiling does not fit.
    fake_machine(monkeypatch, 1 * GiB, 4 * GiB)
    (spec,) = [s for s in plan(("numpy",), devices=("cpu",)) if s.workload == "saxpy"]
    n = spec.param_dict["n"]
    assert 3 * 4 * n >= CACHE_FACTOR * GiB and 4 * n < 4 * GiB  # the least acceptable, not 4 GiB per array
    w = get_workload("saxpy")
    reason = shortfall(case_need(w, w.normalize_params(spec.param_dict), "float32", None,
                                 cacheflush.flush_bytes(GiB)))
    assert reason and "host memory" in reason and "4.0 GiB available" in reason


def test_the_case_path_skips_a_case_that_cannot_fit_before_allocating_it(monkeypatch):
    n = 1 << 22  # 16 MiB per array; with the reference, the op's copies and the check about 200 MiB
    fake_machine(monkeypatch, 8 * MiB, 150 * MiB)
    spec = CaseSpec.make("saxpy", "numpy", "cpu", "float32", {"n": n, "cache": "hot"})
    tracemalloc.start()
    try:
        result = run_case(spec)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.status == "skipped", result.error
    assert "needs about" in result.error and "host memory" in result.error and "the op's copies" in result.error
    assert peak < 4 * n  # not one input array was drawn
    # The cold-cache flush buffer counts too: a case that fits hot can miss cold.
    monkeypatch.setattr(envinfo, "available_memory", lambda: int(saxpy_host_need(n, 0) / HEADROOM) + MiB)
    assert run_case(spec).status == "ok"
    cold = run_case(CaseSpec.make("saxpy", "numpy", "cpu", "float32", {"n": n, "cache": "cold"}))
    assert cold.status == "skipped" and "cache flush buffer" in cold.error


def test_a_device_case_is_held_against_the_device_and_the_host():
    gpu = DeviceInfo("cuda:0", "Fake GPU", "cuda", memory_bytes=8 * GiB)
    need = MemoryNeed(host=2 * GiB, op=10 * GiB, flush=0, on_host=False)
    assert "on cuda:0, which has 8.0 GiB" in shortfall(need, gpu, available=64 * GiB)
    assert shortfall(MemoryNeed(2 * GiB, 6 * GiB, 0, False), gpu, available=64 * GiB) is None
    assert "host memory" in shortfall(MemoryNeed(2 * GiB, 6 * GiB, 0, False), gpu, available=2 * GiB)
    # Unknown free memory (0) is not a reason to skip.
    assert shortfall(MemoryNeed(2 * GiB, 6 * GiB, 0, True), None, available=0) is None


PEAK = textwrap.dedent("""
    import json, resource, sys
    from gpubench.backends import get_backend
    from gpubench.case import run_case
    from gpubench.harness import HarnessSettings
    from gpubench.records import CaseSpec
    backend, params = sys.argv[1], json.loads(sys.argv[2])
    get_backend(backend).load()
    run_case(CaseSpec.make("saxpy", backend, "cpu", "float32", {"n": 4096}), HarnessSettings(budget_s=0.05))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result = run_case(CaseSpec.make("saxpy", backend, "cpu", "float32", params), HarnessSettings(budget_s=0.2))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"status": result.status, "error": result.error, "peak": after - before}))
""")


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_the_estimate_bounds_what_a_real_case_allocates(backend):
    pytest.importorskip(backend)
    n = 1 << 23
    params = {"n": n, "cache": "cold"}
    out = subprocess.run([sys.executable, "-c", PEAK, backend, json.dumps(params)], capture_output=True, text=True,
                         timeout=300, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["status"] == "ok", got
    w = get_workload("saxpy")
    need = case_need(w, w.normalize_params(params), "float32", None,
                     cacheflush.flush_bytes(cacheflush.host_cache_bytes()[0])).host_total
    assert got["peak"] <= need, (got["peak"] / MiB, need / MiB)


def test_largest_fitting():
    need = lambda n: 48 * n + 100  # noqa: E731
    assert largest_fitting(need, 1 << 20, 1 << 10, budget=0) == 1 << 20  # unknown budget: as preferred
    assert largest_fitting(need, 1 << 20, 1 << 10, budget=need(1 << 20)) == 1 << 20
    got = largest_fitting(need, 1 << 20, 1 << 10, budget=need(300_000), granule=1024)
    assert got % 1024 == 0 and need(got) <= need(300_000) < need(got + 1024)
    assert largest_fitting(need, 1 << 20, 1 << 10, budget=10) == 1 << 10  # nothing fits: the minimum


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_headroom_v2_and_v1(tmp_path):
    proc = tmp_path / "cgroup"
    root = tmp_path / "fs"
    write(proc, "0::/box/job\n")
    write(root / "cgroup.controllers", "memory\n")
    write(root / "box" / "memory.max", f"{8 * GiB}\n")
    write(root / "box" / "memory.current", f"{2 * GiB}\n")
    write(root / "box" / "job" / "memory.max", "max\n")
    write(root / "box" / "job" / "memory.current", f"{1 * GiB}\n")
    write(root / "box" / "memory.stat", f"anon 1\ninactive_file {GiB // 2}\n")
    assert cgroup_headroom(root, proc) == 6 * GiB + GiB // 2  # the ancestor's limit binds
    v1 = tmp_path / "v1"
    write(proc, "4:memory:/docker/abc\n1:cpu:/\n")
    write(v1 / "memory" / "memory.limit_in_bytes", "9223372036854771712\n")  # the root: no limit
    write(v1 / "memory" / "memory.usage_in_bytes", "1\n")
    write(v1 / "memory" / "docker" / "abc" / "memory.limit_in_bytes", f"{4 * GiB}\n")
    write(v1 / "memory" / "docker" / "abc" / "memory.usage_in_bytes", f"{3 * GiB}\n")
    assert cgroup_headroom(v1, proc) == 1 * GiB
    write(proc, "4:memory:/\n")
    assert cgroup_headroom(v1, proc) is None  # no limit
    assert cgroup_headroom(tmp_path / "none", tmp_path / "missing") is None
