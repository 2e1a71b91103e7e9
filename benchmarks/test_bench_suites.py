"""Every case of gpubench's built-in suites as a pytest-benchmark benchmark.

Parametrized at collection time from the workload registry (``gpubench.workloads.workload_names()``),
the built-in suite files and the backend registry, so a new workload, suite or backend plug-in
is picked up without touching this file. Cases on CUDA or OpenCL devices carry the ``gpu``,
``cuda`` and ``opencl`` markers (select with ``-m``); where the device is absent they are skipped
with the backend's own reason. Every case is checked against its float64 reference before it is
timed: a wrong result fails the test.
"""

from __future__ import annotations

import pytest
from conftest import bench_profile


def _marks(spec) -> list:
    kind = spec.device.split(":")[0]
    if kind == "cuda":
        return [pytest.mark.gpu(spec.backend), pytest.mark.cuda(spec.backend)]
    if kind == "opencl":
        return [pytest.mark.opencl(spec.backend)]
    return []


def _case_id(spec) -> str:
    params = ",".join(f"{k}={v}" for k, v in spec.params)
    return f"{spec.workload}-{spec.implementation}-{spec.device}-{spec.dtype}-{params}"


def bench_params(quick_sizes: bool) -> list:
    """One ``pytest.param`` per case of every built-in suite, deduplicated, in registry order."""
    from gpubench.errors import UsageError
    from gpubench.spec import builtin_suites, expand, load_suite
    from gpubench.workloads import workload_names

    by_workload: dict[str, dict[str, object]] = {w: {} for w in workload_names()}
    broken = []
    for name in builtin_suites():
        try:
            specs = expand(load_suite(name), quick=quick_sizes, check_memory=False)
        except UsageError as exc:
            broken.append(pytest.param(None, f"suite {name}: {exc}", id=f"suite-{name}-invalid"))
            continue
        for spec in specs:
            if spec.param_dict.get("timing", "gpubench") != "gpubench":
                continue  # the lecture suite's naive ways are shown wrong by `gpubench run`, not benchmarked
            by_workload.setdefault(spec.workload, {}).setdefault(spec.match_key(), spec)
    out = list(broken)
    for workload, specs in by_workload.items():
        if not specs:
            out.append(pytest.param(None, f"no built-in suite has {workload} cases", id=f"{workload}-no-suite",
                                    marks=pytest.mark.skip(reason=f"no built-in suite has {workload} cases")))
        for spec in specs.values():
            out.append(pytest.param(spec, "", id=_case_id(spec), marks=_marks(spec)))
    return out


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "bench_spec" in metafunc.fixturenames:
        metafunc.parametrize(("bench_spec", "problem"), bench_params(bench_profile(metafunc.config).quick_sizes))


def test_case(bench_spec, problem, gpubench_case, benchmark):
    """Verify the case against float64, then time it (per call, synchronized) with pytest-benchmark."""
    if bench_spec is None:
        pytest.fail(problem, pytrace=False)
    benchmark.group = f"{bench_spec.workload} {bench_spec.dtype} " + ",".join(f"{k}={v}" for k, v in bench_spec.params)
    result = gpubench_case(bench_spec).run(benchmark)
    assert result is None or result.status == "ok"
