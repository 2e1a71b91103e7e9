"""The CuPy backend: real GPU runs where CUDA works, otherwise a skip with its exact reason."""

from __future__ import annotations

import importlib.util

import pytest

from gpubench.case import run_case
from gpubench.harness import HarnessSettings
from gpubench.records import CaseSpec

SMALL = HarnessSettings(warmup_s=0.0, warmup_min_calls=1, min_sample_s=0.001, min_samples=3, max_samples=5,
                        target_rel_ci=0.5, budget_s=0.05)
KNOWN_REASONS = (
    "cupy: not installed — pip install 'gpubench[cupy]'",
    "cupy: no CUDA driver found",
    "cupy: no CUDA device found",
)


def _reason():
    from gpubench.backends import get_backend

    return get_backend("cupy").availability()


def test_backend_declares_variants_without_importing_cupy():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from gpubench.backends import get_backend\n"
        "b = get_backend('cupy')\n"
        "assert b.device_kinds == ('cuda',)\n"
        "assert b.variants('matmul') == ('cublas', 'naive', 'tiled', 'graph'), b.variants('matmul')\n"
        "assert b.variants('saxpy') == ('elementwise', 'raw', 'graph'), b.variants('saxpy')\n"
        "assert {'matmul', 'saxpy'} <= set(b.workloads())\n"
        "assert 'cupy' not in sys.modules, 'declaring variants imported cupy'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_unavailable_case_is_skipped_with_the_exact_reason():
    reason = _reason()
    if reason is None:
        pytest.skip("CUDA works here: covered by the GPU tests below")
    assert reason in KNOWN_REASONS
    if importlib.util.find_spec("cupy") is None:
        assert reason == KNOWN_REASONS[0]
    r = run_case(CaseSpec.make("matmul", "cupy", "cuda", "float32", {"size": 64}, "tiled"), SMALL)
    assert r.status == "skipped"
    assert r.error == reason


def test_reason_shows_in_gpubench_list(cli):
    reason = _reason()
    if reason is None:
        pytest.skip("CUDA works here")
    code, out, _ = cli("list", "backends")
    assert code == 0
    line = next(ln for ln in out.splitlines() if ln.startswith("cupy "))
    assert reason in line


needs_gpu = pytest.mark.skipif(_reason() is not None, reason=f"{_reason()}")


@needs_gpu
@pytest.mark.parametrize("variant", ["cublas", "naive", "tiled", "graph"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_matmul_variants_are_correct(variant, dtype):
    r = run_case(CaseSpec.make("matmul", "cupy", "cuda", dtype, {"m": 100, "n": 70, "k": 33}, variant), SMALL)
    assert r.status == "ok", r.error
    assert r.clock == "cuda_event"
    assert r.rel_error <= r.tolerance


@needs_gpu
@pytest.mark.parametrize("variant", ["elementwise", "raw", "graph"])
def test_saxpy_variants_are_correct(variant):
    r = run_case(CaseSpec.make("saxpy", "cupy", "cuda", "float32", {"n": 100_003}, variant), SMALL)
    assert r.status == "ok", r.error
    assert r.rel_error <= r.tolerance


@needs_gpu
def test_raw_kernel_rejects_float16_with_reason():
    r = run_case(CaseSpec.make("matmul", "cupy", "cuda", "float16", {"size": 64}, "naive"), SMALL)
    assert r.status == "skipped" and "float16" in r.error
