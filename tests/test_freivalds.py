"""Freivalds' check of products: it rejects what the full check rejects, accepts real low-precision products at
their tolerances, and its error behaves as derived in gpubench/workloads/freivalds.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gpubench.case import run_case
from gpubench.harness import HarnessSettings
from gpubench.records import CaseSpec
from gpubench.workloads import get_workload
from gpubench.workloads.base import random_array, relative_error
from gpubench.workloads.freivalds import VECTORS, Projection, dot64, project, vectors
from gpubench.workloads.matmul import FREIVALDS_MIN_MNK

QUICK = HarnessSettings(warmup_s=0.0, min_sample_s=0.001, min_samples=3, max_samples=5, budget_s=0.05)
M, N, K = 320, 448, 384  # rectangular, so a transposed shape would show


def _inputs(dtype: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    return random_array(rng, (M, K), dtype), random_array(rng, (K, N), dtype)


def _tolerance(dtype: str, tf32: bool = False) -> float:
    mm = get_workload("matmul")
    return mm.tolerance(mm.normalize_params({"m": M, "n": N, "k": K, "tf32": tf32}), dtype)


def _full(a, b):
    return a.astype(np.float64) @ b.astype(np.float64)


def _q(out, ref, proj: Projection) -> float:
    """Q = ‖E·X‖²/(r‖E‖²) of the module docstring, recovered from ρ: ρ = e·√Q·‖R‖/‖C‖."""
    e = relative_error(out, ref)
    rho = proj.relative_error(out)
    return (rho / e * np.linalg.norm(out.astype(np.float64)) / np.linalg.norm(ref)) ** 2


# --- rejects ------------------------------------------------------------------------------------------
def test_one_wrong_element_is_rejected_as_by_the_full_check():
    a, b = _inputs("float32")
    ref = _full(a, b)
    tol = _tolerance("float32")
    out = (a @ b).astype(np.float32)
    # Off by three times what the full check tolerates, in one element.
    out[17, 301] += 3 * tol * np.linalg.norm(ref)
    assert relative_error(out, ref) > tol
    for seed in range(20):  # any vectors: the miss probability at 3× is below 1e-10
        assert project(a, b, seed).relative_error(out) > tol
    garbage = (a @ b).astype(np.float32)
    garbage[0, 0] = 1e4
    assert project(a, b, 0).relative_error(garbage) > tol


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_element_is_rejected(bad):
    a, b = _inputs("float32")
    out = (a @ b).astype(np.float32)
    out[M - 1, N - 1] = bad
    assert project(a, b, 1).relative_error(out) == math.inf


def test_a_wrong_shape_or_zero_output_is_rejected():
    a, b = _inputs("float32")
    proj = project(a, b, 2)
    assert proj.relative_error((a @ b).T) == math.inf
    assert proj.relative_error(np.zeros((M, N), dtype=np.float32)) == math.inf
    assert proj.relative_error(2 * (a @ b)) > 0.4  # ‖C − R‖/‖C‖ = 1/2


# --- accepts real low-precision products ---------------------------------------------------------------
def _round_to_tf32(x: np.ndarray) -> np.ndarray:
    """Round float32 to TF32's 10 explicit mantissa bits (nearest, ties to even), as tensor cores read inputs."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounding = ((bits >> 13) & 1) + np.uint32(0xFFF)
    return ((bits + rounding) & np.uint32(0xFFFFE000)).view(np.float32)


def _product(kind: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if kind == "float32":
        return a @ b
    if kind == "tf32":
        return _round_to_tf32(a) @ _round_to_tf32(b)
    torch = pytest.importorskip("torch")
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}[kind]
    return (torch.from_numpy(a).to(dtype) @ torch.from_numpy(b).to(dtype)).float().numpy()


@pytest.mark.parametrize("kind", ["float32", "tf32", "bfloat16", "float16"])
def test_correct_low_precision_products_pass_and_read_as_the_full_check(kind):
    dtype = "float32" if kind == "tf32" else kind
    a, b = _inputs(dtype, seed=3)
    ref = _full(a, b)
    out = _product(kind, a, b)
    tol = _tolerance(dtype, tf32=kind == "tf32")
    full = relative_error(out, ref)
    assert 0 < full <= tol, (kind, full, tol)
    for seed in range(5):
        rho = project(a, b, seed).relative_error(out)
        assert rho <= tol
        # A rounding error is spread over the whole matrix: the projection reads the full check's number.
        assert rho == pytest.approx(full, rel=0.05), (kind, rho, full)


# --- the derivation, measured --------------------------------------------------------------------------
def test_a_rank_one_error_projects_as_chi_squared_over_r():
    """One wrong element: Q is exactly χ²_r/r over the random vectors (the least concentrated case)."""
    stats = pytest.importorskip("scipy.stats")
    a, b = _inputs("float32", seed=4)
    ref = _full(a, b)
    out = ref.copy()
    out[5, 7] += 0.01 * np.linalg.norm(ref)
    qs = np.array([_q(out, ref, project(a, b, seed)) for seed in range(300)])
    assert stats.kstest(qs * VECTORS, stats.chi2(VECTORS).cdf).pvalue > 1e-3
    assert qs.mean() == pytest.approx(1, abs=0.05)


def test_the_pass_probability_of_a_wrong_result_is_the_chi_squared_bound():
    """With few vectors the odds are large enough to count: P(pass) = P(χ²_r < r·(1+e)²/c²) for a rank-one error."""
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(5)
    a, b = rng.random((48, 40)) * 2 - 1, rng.random((40, 56)) * 2 - 1
    ref = a @ b
    r, c, tol = 4, 2.0, 1e-3
    out = ref.copy()
    out[3, 9] += c * tol * np.linalg.norm(ref)
    e = relative_error(out, ref)
    passes = sum(project(a, b, seed, r).relative_error(out) <= tol for seed in range(3000))
    # ‖C‖ and ‖R‖ differ by a factor within 1 ± e; the bound with that factor and without it bracket the rate.
    low, high = stats.chi2(r).cdf(r / c**2), stats.chi2(r).cdf(r * (1 + e) ** 2 / c**2)
    sigma = math.sqrt(high * (1 - high) / 3000)
    assert low - 4 * sigma <= passes / 3000 <= high + 4 * sigma, (passes / 3000, low, high)


def test_a_spread_error_projects_to_the_full_error():
    """Rounding-like noise everywhere: Q stays within a few percent of 1 for every set of vectors."""
    a, b = _inputs("float32", seed=6)
    ref = _full(a, b)
    out = ref * (1 + 1e-4 * np.random.default_rng(7).standard_normal(ref.shape))
    qs = [_q(out, ref, project(a, b, seed)) for seed in range(20)]
    assert max(abs(q - 1) for q in qs) < 0.05


def test_dot64_is_the_float64_product_block_by_block():
    rng = np.random.default_rng(8)
    m = rng.random((37, 23), dtype=np.float32)
    x = vectors(23, 1, 5)
    got, sumsq = dot64(m, x, with_sumsq=True, block_bytes=8 * 23 * 4)  # blocks of 4 rows
    assert np.allclose(got, m.astype(np.float64) @ x, rtol=1e-14, atol=0)
    assert sumsq == pytest.approx(float(np.sum(m.astype(np.float64) ** 2)), rel=1e-14)


# --- the workloads ------------------------------------------------------------------------------------
def test_products_above_the_threshold_are_checked_by_projection():
    mm = get_workload("matmul")
    at = mm.normalize_params({"size": 1024})
    above = mm.normalize_params({"m": 1024, "n": 1024, "k": 1025})
    assert 1024**3 == FREIVALDS_MIN_MNK and not mm.freivalds(at) and mm.freivalds(above)
    inputs = mm.make_inputs(at, "float32", np.random.default_rng(0))
    assert mm.randomized_reference(inputs, at, 0) is None
    assert mm.memory_bytes(above, "float32") < mm.memory_bytes(at, "float32")
    inputs = mm.make_inputs(above, "float32", np.random.default_rng(0))
    proj = mm.randomized_reference(inputs, above, 0)
    assert isinstance(proj, Projection) and proj.shape == (1024, 1024) and proj.x.shape[1] == VECTORS
    out = inputs["a"] @ inputs["b"]
    err, tol = mm.check(out, proj, above, "float32")
    assert err == pytest.approx(relative_error(out, _full(inputs["a"], inputs["b"])), rel=0.1) and err <= tol
    out[1000, 3] = np.nan
    assert mm.check(out, proj, above, "float32")[0] == math.inf


def test_a_large_case_runs_with_freivalds_and_a_wrong_backend_is_incorrect(monkeypatch):
    from gpubench.backends.numpy_backend import matmul as numpy_matmul

    spec = CaseSpec.make("matmul", "numpy", "cpu", "float32", {"m": 1024, "n": 1024, "k": 1040})
    r = run_case(spec, QUICK)
    assert r.status == "ok", r.error
    assert r.metrics["reference_source"] == "freivalds" and r.rel_error <= r.tolerance

    original = numpy_matmul.build

    def one_bad_element(backend, spec, params, inputs, device):
        op = original(backend, spec, params, inputs, device)
        result = op.result

        def wrong():
            out = np.array(result(), copy=True)
            out[512, 512] += 1e3
            return out

        op.result = wrong
        return op

    monkeypatch.setattr(numpy_matmul, "build", one_bad_element)
    bad = run_case(spec, QUICK)
    assert bad.status == "incorrect" and bad.metrics["reference_source"] == "freivalds"


def test_fp8_products_above_the_threshold_are_checked_by_projection():
    pytest.importorskip("torch")
    spec = CaseSpec.make("matmul_fp8", "torch", "cpu", "float8_e4m3fn", {"m": 2048, "n": 1024, "k": 1024})
    r = run_case(spec, QUICK)
    if r.status == "skipped":
        pytest.skip(r.error)
    assert r.status == "ok", (r.error, r.metrics.get("traceback"))
    assert r.metrics["reference_source"] == "freivalds" and 0 < r.rel_error <= r.tolerance
