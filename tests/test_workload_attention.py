"""Attention: the float64 reference, the blocked NumPy/CuPy algorithm, torch's SDPA kernels, memory, suite, report."""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_cuda import attention_softmax_model as kernel_model  # noqa: E402

from gpubench.backends.cupy_backend import attention as cupy_attention  # noqa: E402
from gpubench.backends.numpy_backend.attention import bind_attention, block_shape, numpy_softmax  # noqa: E402
from gpubench.case import run_case  # noqa: E402
from gpubench.errors import UsageError  # noqa: E402
from gpubench.profile import QUICK  # noqa: E402
from gpubench.records import CaseSpec  # noqa: E402
from gpubench.workloads import get_workload  # noqa: E402
from gpubench.workloads.attention import (  # noqa: E402
    REF_BLOCK_BYTES,
    AttentionWorkload,
    attention_reference,
    reference_block_rows,
)

torch = pytest.importorskip("torch")


def rand(rng, *shape):
    return rng.random(shape) * 2 - 1


def torch_float64(q, k, v, do, causal):
    """Independent answer: torch's math SDPA and autograd, in float64."""
    tq, tk, tv = (torch.from_numpy(x).double().requires_grad_(True) for x in (q, k, v))
    o = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=causal)
    grads = torch.autograd.grad(o, (tq, tk, tv), torch.from_numpy(do).double())
    return [o.detach().numpy(), *(g.numpy() for g in grads)]


# --- the float64 reference --------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("shape", [(2, 3, 37, 8), (1, 2, 130, 16)])
def test_reference_matches_torch_autograd_in_float64(shape, causal):
    rng = np.random.default_rng(1)
    q, k, v, do = (rand(rng, *shape) for _ in range(4))
    s = shape[2]
    # Blocks of 5 queries: the blocking must not change the answer.
    got = attention_reference(q, k, v, causal, do, block_bytes=8 * s * 5)
    want = torch_float64(q, k, v, do, causal)
    for name, a, b in zip("O dQ dK dV".split(), got, want):
        assert np.max(np.abs(a - b)) < 1e-12, name


def test_reference_forward_only_returns_o_and_never_holds_a_whole_head():
    rng = np.random.default_rng(2)
    q, k, v = (rand(rng, 1, 1, 20, 4) for _ in range(3))
    (o,) = attention_reference(q, k, v, True)
    # The first query sees only the first key: its output is that key's value.
    assert np.allclose(o[0, 0, 0], v[0, 0, 0])
    assert reference_block_rows(8192) * 8192 * 8 <= REF_BLOCK_BYTES < 8192 * 8192 * 8
    assert reference_block_rows(10) == 10 and reference_block_rows(10**9) == 1


# --- parameters, FLOPs, bytes, memory, tolerance ----------------------------------------------------------


def test_params_flops_bytes_and_size_text():
    w = get_workload("attention")
    assert isinstance(w, AttentionWorkload) and w.report_section == "attention"
    p = w.normalize_params({"h": 12, "s": 1024, "d": 64})
    assert p == {"b": 1, "h": 12, "s": 1024, "d": 64, "causal": False, "backward": False}
    forward = 4.0 * 12 * 1024**2 * 64
    assert w.flops(p) == forward
    assert w.flops({**p, "causal": True}) == forward / 2
    assert w.flops({**p, "backward": True}) == 3.5 * forward
    assert w.flops({**p, "causal": True, "backward": True}) == 3.5 * forward / 2
    n = 12 * 1024 * 64
    assert w.bytes_moved(p, "bfloat16") == 4 * n * 2
    assert w.bytes_moved({**p, "backward": True}, "float32") == 8 * n * 4
    assert w.describe({**p, "causal": True, "backward": True}) == "1×12×1024×64 causal fwd+bwd"
    with pytest.raises(UsageError, match="missing parameter s"):
        w.normalize_params({"h": 1, "d": 8})
    with pytest.raises(UsageError, match="causal must be true or false"):
        w.normalize_params({"h": 1, "s": 8, "d": 8, "causal": 1})


def test_tolerance_is_derived_from_the_dtype_and_the_accumulation_length():
    w = get_workload("attention")
    p = w.normalize_params({"h": 12, "s": 1024, "d": 64})
    acc = 1e-5 * math.sqrt(1024 + 64)
    assert w.tolerance(p, "float32") == pytest.approx(acc)
    assert w.tolerance(p, "float64") == pytest.approx(1e-13 * math.sqrt(1088))
    assert w.tolerance(p, "bfloat16") == pytest.approx(3 * 2**-8 + acc)  # about 1.2e-2
    assert w.tolerance({**p, "backward": True}, "bfloat16") == pytest.approx(6 * 2**-8 + acc)
    assert w.tolerance(p, "float16") == pytest.approx(3 * 2**-11 + acc)
    assert 1e-2 < w.tolerance(p, "bfloat16") < 1.3e-2


def test_check_takes_the_worst_output_and_refuses_a_wrong_shape():
    w = get_workload("attention")
    p = w.normalize_params({"h": 1, "s": 4, "d": 2, "backward": True})
    rng = np.random.default_rng(3)
    ref = rand(rng, 4, 1, 1, 4, 2)
    out = ref.copy()
    out[3] *= 1.01  # dV 1 % off, the others exact
    err, tol = w.check(out, ref, p, "float32")
    assert err == pytest.approx(0.01) and tol == w.tolerance(p, "float32")
    assert w.check(out[:3], ref, p, "float32")[0] == math.inf


def test_memory_bytes_counts_the_unfused_matrices_and_expansion_refuses_what_cannot_fit(monkeypatch):
    w = get_workload("attention")
    p = w.normalize_params({"h": 8, "s": 8192, "d": 128, "backward": True})
    s2 = 8 * 8192**2
    need = w.memory_bytes(p, "bfloat16")
    assert need > 4 * s2 * 4  # four float32 S×S matrices per head (math kernel, forward+backward)
    assert w.memory_bytes({**p, "backward": False}, "bfloat16") < need
    import gpubench.envinfo as envinfo
    from gpubench.spec import expand, load_suite

    suite = load_suite("attention")
    monkeypatch.setattr(envinfo, "available_memory", lambda: 4 << 30)
    with pytest.raises(UsageError, match="needs about .* GiB of memory"):
        expand(suite)


def test_the_suite_expands_and_quick_cpu_cases_are_small():
    from gpubench.spec import Filters, expand, load_suite

    suite = load_suite("attention")
    full = expand(suite, check_memory=False)
    seqs = {s.param_dict["s"] for s in full}
    assert {128, 1024, 8192} <= seqs
    assert {s.param_dict["d"] for s in full} == {64, 128}
    cuda_torch = {s.variant for s in full if s.backend == "torch" and s.device == "cuda"}
    assert cuda_torch == {"flash", "efficient", "cudnn", "math"}
    quick = expand(suite, Filters(devices=("cpu",)), quick=True)
    assert {s.backend for s in quick} == {"numpy", "torch", "jax"}
    assert {s.variant for s in quick if s.backend == "torch"} == {"flash", "math"}
    assert max(s.param_dict["s"] for s in quick) <= 128
    assert {(s.param_dict["causal"], s.param_dict["backward"]) for s in quick} == {
        (False, False), (False, True), (True, False), (True, True)}


# --- the blocked algorithm (NumPy backend; CuPy's host side with NumPy standing in) --------------------------


def test_numpy_softmax_masks_the_future_and_normalizes_rows():
    rng = np.random.default_rng(4)
    scores = rand(rng, 2, 3, 7).astype(np.float32)  # queries 4, 5, 6 against keys 0..6
    numpy_softmax(scores, 0.5, True, 4)
    assert np.allclose(scores.sum(axis=2), 1)
    for r in range(3):
        assert np.all(scores[:, r, 4 + r + 1:] == 0) and np.all(scores[:, r, :4 + r + 1] > 0)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("block", [10**9, 96, 40])  # whole problem; uneven head and row blocks
def test_blocked_algorithm_matches_the_reference(causal, block):
    rng = np.random.default_rng(5)
    b, h, s, d = 2, 3, 24, 8
    q, k, v, do = (rand(rng, b, h, s, d).astype(np.float32) for _ in range(4))
    want = attention_reference(q, k, v, causal, do)
    call, outs = bind_attention(np, q, k, v, causal, numpy_softmax, block, do)
    for _ in range(2):  # a second call must not accumulate into dK, dV
        call()
    for name, got, ref in zip("O dQ dK dV".split(), outs, want):
        assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 1e-6, name
    fwd_call, (o,) = bind_attention(np, q, k, v, causal, numpy_softmax, block)
    fwd_call()
    assert np.linalg.norm(o - want[0]) / np.linalg.norm(want[0]) < 1e-6


def test_block_shape_bounds_the_score_block():
    assert block_shape(12, 1024, 1 << 20) == (1, 1024)
    assert block_shape(12, 1024, 4 << 20) == (4, 1024)
    assert block_shape(12, 8192, 1 << 12) == (1, 1)  # never less than one row
    heads, rows = block_shape(7, 100, 1234)
    assert (heads, rows) == (1, 12) and heads * rows * 100 <= 1234


@pytest.mark.parametrize("causal", [False, True])
def test_cupy_host_side_with_numpy_standing_in(causal):
    rng = np.random.default_rng(6)
    q, k, v, do = (rand(rng, 1, 3, 20, 4).astype(np.float32) for _ in range(4))
    softmax = cupy_attention.kernel_softmax(kernel_model, np.float32)
    call, outs = bind_attention(np, q, k, v, causal, softmax, 2 * 6 * 20, do)  # 2 heads × 6 rows per block
    call()
    for got, ref in zip(outs, attention_reference(q, k, v, causal, do)):
        assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 1e-6


def test_cupy_peak_tracker_follows_malloc_and_free():
    t = cupy_attention.PeakTracker()
    t.malloc(512, 1)
    t.malloc(1024, 2)
    t.free(512)
    t.malloc(256, 3)
    t.malloc(4096, 0)  # a failed malloc (null pointer) holds nothing
    assert (t.current, t.peak) == (1280, 1536)


def test_cupy_kernel_names_match_the_source():
    from gpubench.backends.cupy_backend import kernel_source

    source = kernel_source(cupy_attention.KERNEL)
    for suffix in cupy_attention.SUFFIX.values():
        assert f'extern "C" __global__ void attention_softmax_{suffix}(' in source


def test_cupy_case_is_skipped_with_the_reason_here():
    spec = CaseSpec.make("attention", "cupy", "cuda", "float32", {"h": 1, "s": 8, "d": 4})
    r = run_case(spec, QUICK)
    assert r.status == "skipped" and r.error.startswith("cupy:")


# --- real cases: NumPy and torch on this CPU -----------------------------------------------------------


@pytest.mark.parametrize("backward", [False, True])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("backend,variant,dtype", [
    ("numpy", "default", "float32"), ("numpy", "default", "float16"),
    ("torch", "flash", "float32"), ("torch", "flash", "bfloat16"), ("torch", "flash", "float16"),
    ("torch", "math", "float32"), ("torch", "math", "bfloat16"),
])
def test_real_cases_are_correct(backend, variant, dtype, causal, backward):
    spec = CaseSpec.make("attention", backend, "cpu", dtype,
                         {"h": 2, "s": 96, "d": 16, "causal": causal, "backward": backward}, variant)
    r = run_case(spec, QUICK)
    assert r.status == "ok", r.error
    assert r.rel_error <= r.tolerance
    assert r.flops == get_workload("attention").flops(r.spec.param_dict)
    assert r.metrics["peak_memory_bytes"] > 0 and r.metrics["memory_method"]


@pytest.mark.parametrize("variant", ["efficient", "cudnn"])
def test_kernels_torch_lacks_on_the_cpu_are_skipped_with_torchs_reason(variant):
    spec = CaseSpec.make("attention", "torch", "cpu", "float32", {"h": 2, "s": 64, "d": 16}, variant)
    r = run_case(spec, QUICK)
    assert r.status == "skipped"
    assert r.error.startswith(f"torch: the {variant} SDPA kernel cannot run this case on cpu: ")
    assert "No viable backend for scaled_dot_product_attention" in r.error


def test_math_kernel_needs_the_score_matrices_flash_does_not():
    """Real memory measurement: torch's math kernel holds H·S² scores, its CPU flash kernel O(S·D) blocks."""
    params = {"h": 2, "s": 512, "d": 16}
    scores = 2 * 512 * 512 * 4
    flash = run_case(CaseSpec.make("attention", "torch", "cpu", "float32", params, "flash"), QUICK)
    math_ = run_case(CaseSpec.make("attention", "torch", "cpu", "float32", params, "math"), QUICK)
    numpy_ = run_case(CaseSpec.make("attention", "numpy", "cpu", "float32", params), QUICK)
    assert flash.status == math_.status == numpy_.status == "ok"
    assert math_.metrics["peak_memory_bytes"] >= scores
    assert flash.metrics["peak_memory_bytes"] < scores / 2
    out_bytes = 2 * 512 * 16 * 4
    assert numpy_.metrics["peak_memory_bytes"] >= out_bytes  # its output and score block
    assert flash.metrics["sdpa_kernel"] == "flash"


def test_refusal_reason_uses_torchs_words():
    from gpubench.backends.torch_backend.attention import refusal_reason

    err = RuntimeError("No available kernel. Aborting execution.")
    msgs = ["Flash attention kernel not used because:",
            "Flash attention requires q,k,v to have the same last dimension."]
    reason = refusal_reason("flash", "cuda:0", err, msgs)
    assert reason == ("torch: the flash SDPA kernel cannot run this case on cuda:0: Flash attention kernel not "
                      "used because: Flash attention requires q,k,v to have the same last dimension. "
                      "(No available kernel. Aborting execution.)")
    assert refusal_reason("flash", "cpu", RuntimeError("CUDA out of memory"), []) is None


def test_cuda_peak_memory_calls(monkeypatch):
    """The CUDA branch (no GPU here): the calls it makes on torch.cuda, recorded, and the figure it derives."""
    from gpubench.backends.torch_backend.attention import measure_peak
    from gpubench.ops import DeviceInfo

    calls = []

    class FakeCuda:
        def synchronize(self, dev):
            calls.append(("synchronize", dev))

        def reset_peak_memory_stats(self, dev):
            calls.append(("reset", dev))

        def memory_allocated(self, dev):
            calls.append(("allocated", dev))
            return 1000

        def max_memory_allocated(self, dev):
            calls.append(("max", dev))
            return 5096

    class FakeTorch:
        cuda = FakeCuda()

    metrics = measure_peak(FakeTorch, DeviceInfo("cuda:1", "GPU", "cuda"), lambda: calls.append(("call", None)))
    assert metrics["peak_memory_bytes"] == 4096
    assert [c[0] for c in calls] == ["synchronize", "reset", "allocated", "call", "synchronize", "max"]
    assert {c[1] for c in calls if c[1]} == {"cuda:1"}


def test_the_selected_kernel_is_restored_after_the_case():
    """Forcing a kernel is process-global in torch: after a case (run or skipped) the switches are as before."""
    flags = (torch.backends.cuda.math_sdp_enabled, torch.backends.cuda.flash_sdp_enabled,
             torch.backends.cuda.mem_efficient_sdp_enabled, torch.backends.cuda.cudnn_sdp_enabled)
    before = [f() for f in flags]
    assert all(before)
    for variant in ("flash", "math", "efficient"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # and no warning escapes the probe or the case
            r = run_case(CaseSpec.make("attention", "torch", "cpu", "float32", {"h": 1, "s": 32, "d": 8}, variant),
                         QUICK)
        assert r.status == ("skipped" if variant == "efficient" else "ok")
        assert [f() for f in flags] == before, variant


def test_quick_suite_runs_on_numpy_through_the_cli(cli, store_path):
    code, out, err = cli("run", "--suite", "attention", "--quick", "--backend", "numpy")
    assert code == 0, err
    assert "8 ok" in out and "incorrect" not in out
