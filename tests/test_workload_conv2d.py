"""conv2d: the im2col reference against a direct loop, every CPU backend against the reference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gpubench.case import run_case
from gpubench.errors import UsageError
from gpubench.harness import HarnessSettings
from gpubench.records import CaseSpec
from gpubench.workloads import get_workload
from gpubench.workloads.conv2d import conv2d_reference

TINY = HarnessSettings(warmup_s=0.0, warmup_min_calls=1, min_sample_s=0.001, min_samples=3, max_samples=3,
                       target_rel_ci=1.0, budget_s=0.05)
SHAPES = [
    dict(n=2, c=3, h=9, w=7, k=4, r=3, s=2, stride=2, padding=1),
    dict(n=1, c=1, h=12, w=12, k=6, r=5, s=5, padding=2),
    dict(n=3, c=5, h=6, w=8, k=2, r=1, s=1, stride=3),
]


def direct_conv(x, w, stride, pad):
    """The textbook seven-loop definition (float64), only for tiny shapes."""
    n, c, h, wd = x.shape
    k, _, r, s = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    p, q = (h + 2 * pad - r) // stride + 1, (wd + 2 * pad - s) // stride + 1
    out = np.zeros((n, k, p, q))
    for ni, ki, pi, qi in itertools.product(range(n), range(k), range(p), range(q)):
        patch = xp[ni, :, pi * stride:pi * stride + r, qi * stride:qi * stride + s]
        out[ni, ki, pi, qi] = np.sum(patch * w[ki])
    return out


@pytest.mark.parametrize("shape", SHAPES)
def test_reference_matches_direct_loop(shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((shape["n"], shape["c"], shape["h"], shape["w"]))
    w = rng.standard_normal((shape["k"], shape["c"], shape["r"], shape["s"]))
    got = conv2d_reference(x, w, shape.get("stride", 1), shape.get("padding", 0))
    np.testing.assert_allclose(got, direct_conv(x, w, shape.get("stride", 1), shape.get("padding", 0)), rtol=1e-12,
                               atol=1e-12)


def test_reference_blocks_large_batches(monkeypatch):
    """Blocking over images (small column buffer) gives the same result as one block."""
    import gpubench.workloads.conv2d as conv

    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((5, 3, 8, 8)), rng.standard_normal((4, 3, 3, 3))
    whole = conv.conv2d_reference(x, w, 1, 1)
    monkeypatch.setattr(conv, "COLUMN_BLOCK_BYTES", 1)
    np.testing.assert_allclose(conv.conv2d_reference(x, w, 1, 1), whole, rtol=1e-13)


def test_nhwc_reference_is_the_transposed_nchw_one():
    wl = get_workload("conv2d")
    params = wl.normalize_params(dict(SHAPES[0], layout="nhwc"))
    inputs = wl.make_inputs(params, "float64", np.random.default_rng(2))
    assert inputs["x"].shape == (2, 9, 7, 3)
    ref = wl.reference(inputs, params)
    direct = direct_conv(inputs["x"].transpose(0, 3, 1, 2), inputs["w"], 2, 1)
    np.testing.assert_allclose(ref, direct.transpose(0, 2, 3, 1), rtol=1e-12, atol=1e-12)


def test_flops_and_tolerance():
    wl = get_workload("conv2d")
    p = wl.normalize_params(dict(n=2, c=64, h=56, w=56, k=64, r=3, s=3, padding=1))
    assert wl.flops(p) == 2 * 2 * 64 * 64 * 9 * 56 * 56
    assert wl.tolerance(p, "float32") == pytest.approx(1e-5 * (64 * 9) ** 0.5)


@pytest.mark.parametrize("bad, message", [
    (dict(n=1, c=1, h=4, w=4, k=1, r=5, s=3), "larger than the padded height"),
    (dict(n=1, c=1, h=4, w=4, k=1, r=3), "missing parameter s"),
    (dict(n=1, c=1, h=4, w=4, k=1, r=3, s=3, stride=0), "stride must be >= 1"),
    (dict(n=1, c=1, h=4, w=4, k=1, r=3, s=3, padding=-1), "padding must be >= 0"),
    (dict(n=1, c=1, h=4, w=4, k=1, r=3, s=3, layout="NCWH"), "layout must be one of"),
    (dict(n=1, c=1, h=4, w=4, k=1, r=3, s=3, dilation=2), "unknown parameter 'dilation'"),
])
def test_bad_parameters_are_usage_errors(bad, message):
    with pytest.raises(UsageError, match=message):
        get_workload("conv2d").normalize_params(bad)


def _available(name):
    from gpubench.backends import get_backend

    return get_backend(name).availability() is None


CPU_BACKENDS = [("numpy", "cpu"), ("torch", "cpu"), ("tensorflow", "cpu"), ("opencl", "opencl")]


@pytest.mark.parametrize("backend, device", CPU_BACKENDS)
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("shape", SHAPES[:2])
def test_cpu_backends_match_the_reference(backend, device, layout, shape):
    if not _available(backend):
        pytest.skip(f"{backend} unavailable here")
    spec = CaseSpec.make("conv2d", backend, device, "float32", dict(shape, layout=layout))
    r = run_case(spec, TINY)
    if backend == "tensorflow" and layout == "NCHW":
        assert r.status == "skipped" and "NHWC" in r.error
        return
    assert r.status == "ok", r.error
    assert r.rel_error <= r.tolerance
    assert r.flops == get_workload("conv2d").flops(get_workload("conv2d").normalize_params(dict(shape)))
