"""FP8 matmul: rounding to the formats, scales, tolerance, real torch._scaled_mm on this CPU, CUDA skips, peaks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gpubench.case import run_case
from gpubench.errors import UsageError
from gpubench.ops import DeviceInfo
from gpubench.profile import QUICK
from gpubench.records import DTYPES, CaseResult, CaseSpec
from gpubench.workloads import get_workload
from gpubench.workloads.matmul_fp8 import E4M3, E5M2, OPERANDS, power_of_two_scale, round_to_float8

torch = pytest.importorskip("torch")


def awkward_values(fmt) -> np.ndarray:
    """Random magnitudes over the format's whole range, its subnormals, exact ties and the extremes."""
    rng = np.random.default_rng(0)
    top = math.log2(fmt.max_value)
    x = (2.0 ** rng.uniform(fmt.min_exponent - fmt.mantissa_bits - 2, top, 20000)).astype(np.float32)
    x *= rng.choice([-1, 1], x.size).astype(np.float32)
    # Midpoints between neighbours of 1.0 (ties round to even) and the largest value.
    step = 2.0 ** -fmt.mantissa_bits
    ties = np.array([1 + step / 2, 1 + 3 * step / 2, -(1 + step / 2), fmt.max_value, 0.0], dtype=np.float32)
    return np.concatenate([x, ties])


@pytest.mark.parametrize("fmt", [E4M3, E5M2], ids=lambda f: f.name)
def test_rounding_matches_torchs_cast(fmt):
    x = awkward_values(fmt)
    got = round_to_float8(x, fmt)
    want = torch.from_numpy(x).to(getattr(torch, fmt.name)).float().numpy()
    assert np.array_equal(got, want)
    assert np.array_equal(round_to_float8(got, fmt), got)  # representable values stay put


@pytest.mark.parametrize("fmt", [E4M3, E5M2], ids=lambda f: f.name)
def test_rounding_matches_ml_dtypes(fmt):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = awkward_values(fmt)
    want = x.astype(getattr(ml_dtypes, fmt.name)).astype(np.float32)
    assert np.array_equal(round_to_float8(x, fmt), want)


def test_rounding_saturates_and_ties_go_to_even():
    assert round_to_float8(np.float32([1000.0, -1e6]), E4M3).tolist() == [448.0, -448.0]
    assert round_to_float8(np.float32([1 + 1 / 16, 1 + 3 / 16]), E4M3).tolist() == [1.0, 1.25]
    assert round_to_float8(np.float32([2.0**-10, 2.0**-9 * 1.5]), E4M3).tolist() == [0.0, 2.0**-8]


def test_power_of_two_scale_fills_the_range_exactly():
    assert power_of_two_scale(1.0, E4M3) == 256.0  # 1·256 <= 448 < 1·512
    assert power_of_two_scale(0.75, E5M2) == 2.0**16
    assert power_of_two_scale(0.0, E4M3) == 1.0
    x = round_to_float8(np.random.default_rng(1).random(1000, dtype=np.float32) * 2 - 1, E4M3)
    scaled = x * np.float32(power_of_two_scale(float(np.abs(x).max()), E4M3))
    assert np.abs(scaled).max() <= E4M3.max_value
    assert np.array_equal(round_to_float8(scaled, E4M3), scaled)  # quantizing scaled values is exact


def test_workload_inputs_flops_tolerance():
    w = get_workload("matmul_fp8")
    assert {"float8_e4m3fn", "float8_e5m2"} <= set(DTYPES)
    p = w.normalize_params({"size": 64})
    assert p == {"m": 64, "n": 64, "k": 64, "out_dtype": "bfloat16"}
    inputs = w.make_inputs(p, "float8_e5m2", np.random.default_rng(2))
    assert np.array_equal(round_to_float8(inputs["a"], E5M2), inputs["a"])
    assert np.array_equal(round_to_float8(inputs["b"], E4M3), inputs["b"])
    assert OPERANDS["float8_e5m2"] == (E5M2, E4M3) and OPERANDS["float8_e4m3fn"] == (E4M3, E4M3)
    assert w.flops(p) == 2 * 64**3
    assert w.bytes_moved(p, "float8_e4m3fn") == 64 * 64 * (1 + 1 + 2)
    assert w.tolerance(p, "float8_e4m3fn") == pytest.approx(1e-5 * 8 + 2**-8)
    assert w.tolerance({**p, "out_dtype": "float32"}, "float8_e4m3fn") == pytest.approx(1e-5 * 8)
    assert w.compute_dtype(p, "float8_e5m2") == "float8_e5m2"
    assert w.describe({**p, "out_dtype": "float32"}) == "64³ →float32"
    with pytest.raises(UsageError, match="dtype must be one of"):
        w.make_inputs(p, "float32", np.random.default_rng(0))
    with pytest.raises(UsageError, match="out_dtype must be one of"):
        w.normalize_params({"size": 64, "out_dtype": "float16"})


@pytest.mark.parametrize("out_dtype", ["bfloat16", "float32"])
@pytest.mark.parametrize("dtype", ["float8_e4m3fn", "float8_e5m2"])
def test_scaled_mm_runs_on_this_cpu_and_is_correct(dtype, out_dtype):
    spec = CaseSpec.make("matmul_fp8", "torch", "cpu", dtype, {"m": 48, "n": 80, "k": 96, "out_dtype": out_dtype})
    r = run_case(spec, QUICK)
    assert r.status == "ok", r.error
    assert r.rel_error <= r.tolerance
    a_fmt, b_fmt = OPERANDS[dtype]
    assert (r.metrics["a_format"], r.metrics["b_format"]) == (a_fmt.name, b_fmt.name)
    # The scales are real (not 1): inverses of the power of two that filled each format's range.
    for key, fmt in (("scale_a", a_fmt), ("scale_b", b_fmt)):
        exponent = -math.log2(r.metrics[key])
        assert exponent == int(exponent) and exponent >= math.floor(math.log2(fmt.max_value))


def test_scaled_mm_is_given_fp8_operands_and_a_column_major_b():
    from gpubench.backends import get_backend
    from gpubench.backends.torch_backend import matmul_fp8

    backend = get_backend("torch")
    backend.load()
    cpu = backend.resolve_device("cpu")
    w = get_workload("matmul_fp8")
    p = w.normalize_params({"m": 32, "n": 16, "k": 64})
    inputs = w.make_inputs(p, "float8_e4m3fn", np.random.default_rng(3))
    seen = {}
    real = torch._scaled_mm

    def spy(a, b, scale_a, scale_b, **kw):
        seen.update(a=a, b=b, scale_a=scale_a, scale_b=scale_b, kw=kw)
        return real(a, b, scale_a, scale_b, **kw)

    torch._scaled_mm = spy
    try:
        op = backend.build(CaseSpec.make("matmul_fp8", "torch", "cpu", "float8_e4m3fn", p), p, inputs, cpu)
        op.call()
    finally:
        torch._scaled_mm = real
    assert seen["a"].dtype == seen["b"].dtype == torch.float8_e4m3fn
    assert seen["b"].shape == (64, 16) and seen["b"].stride() == (1, 64)  # K×N, column-major
    assert torch.equal(seen["a"].float() * seen["scale_a"], torch.from_numpy(inputs["a"]))  # exact quantization
    assert seen["kw"]["out"].dtype == torch.bfloat16
    assert matmul_fp8.capability(cpu) == (0, 0)


@pytest.mark.parametrize("cap,dims,reason", [
    ("8.0", (1024, 1024, 1024), "needs CUDA compute capability >= 8.9"),
    ("8.6", (1024, 1024, 1024), "is 8.6"),
    ("8.9", (1024, 1024, 1024), None),
    ("9.0", (1024, 1024, 1024), None),
    ("9.0", (1000, 1024, 1024), "divisible by 16 (m=1000)"),
])
def test_cuda_capability_and_shape_rules(cap, dims, reason):
    from gpubench.backends import get_backend

    backend = get_backend("torch")
    backend.load()
    gpu = DeviceInfo("cuda:0", "Some GPU", "cuda", dtypes=DTYPES, details={"capability": cap})
    params = get_workload("matmul_fp8").normalize_params(dict(zip("mnk", dims)))
    spec = CaseSpec.make("matmul_fp8", "torch", "cuda:0", "float8_e4m3fn", params)
    got = backend.unsupported(spec, params, gpu)
    if reason is None:
        assert got is None
    else:
        assert got.startswith("torch: ") and reason in got


def test_other_backends_and_devices_skip_with_a_reason():
    r = run_case(CaseSpec.make("matmul_fp8", "numpy", "cpu", "float8_e4m3fn", {"size": 32}), QUICK)
    assert r.status == "skipped" and "float8_e4m3fn" in r.error
    r = run_case(CaseSpec.make("matmul_fp8", "torch", "cuda", "float8_e4m3fn", {"size": 32}), QUICK)
    assert r.status == "skipped" and r.error == "torch: no cuda device found"
    r = run_case(CaseSpec.make("matmul_fp8", "torch", "cpu", "float32", {"size": 32}), QUICK)
    assert r.status == "skipped" and "runs the float8 dtypes" in r.error


def test_datasheet_fp8_peaks_and_calibration():
    from gpubench.calibrate import derive_ceilings, plan
    from gpubench.datasheet import datasheet_for
    from gpubench.store import PEAK_FLOPS

    for name, peak in (("NVIDIA H100 80GB HBM3", 1979), ("NVIDIA H200", 1979), ("NVIDIA H100 PCIe", 1513),
                       ("NVIDIA L40S", 733)):
        _, peaks = datasheet_for(name)
        assert peaks["float8_e4m3fn"] == peaks["float8_e5m2"] == peak
        assert peaks["float8_e4m3fn"] == pytest.approx(2 * peaks["bfloat16"], rel=0.02)  # FP8 is 2× BF16
    assert "float8_e4m3fn" not in datasheet_for("NVIDIA A100-SXM4-80GB")[1]  # Ampere has no FP8
    specs = plan(("torch",), quick=True)
    fp8 = [s for s in specs if s.workload == "matmul_fp8"]
    assert [(s.device, s.dtype) for s in fp8] == [("cuda", "float8_e4m3fn")]
    spec = CaseSpec.make("matmul_fp8", "torch", "cuda", "float8_e4m3fn", {"m": 8192, "n": 8192, "k": 8192},
                         suite="calibrate")
    flops = 2.0 * 8192**3
    result = CaseResult(spec, "ok", samples=(flops / 1.2e15,) * 5, flops=flops, bytes=3.0 * 8192**2,
                        device_name="NVIDIA H100 80GB HBM3")
    (row,) = derive_ceilings([result])
    assert (row["kind"], row["dtype"]) == (PEAK_FLOPS, "float8_e4m3fn")
    assert row["value"] == pytest.approx(1.2e6) and row["method"].startswith("matmul_fp8 8192³ via torch")


def test_matmul_suite_has_fp8_cases_on_cuda():
    from gpubench.spec import Filters, expand, load_suite

    specs = [s for s in expand(load_suite("matmul"), Filters(backends=("torch",)), check_memory=False)
             if s.workload == "matmul_fp8"]
    assert {(s.device, s.dtype) for s in specs} == {("cuda", "float8_e4m3fn"), ("cuda", "float8_e5m2"),
                                                    ("cpu", "float8_e4m3fn")}
    assert max(s.param_dict["m"] for s in specs) == 8192
