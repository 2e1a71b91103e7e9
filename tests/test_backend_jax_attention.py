"""The JAX attention op (``jax.nn.dot_product_attention``), run for real on the CPU through :func:`run_case`.

Correctness only (never speed): forward and forward+backward, causal and not, every dtype JAX
can run here, each against the workload's float64 reference; what JAX cannot run here (float16
on the CPU, float64, the cudnn implementation) is skipped with JAX's reason, and the claim behind
each reason is checked against JAX itself.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from gpubench.case import run_case
from gpubench.profile import QUICK
from gpubench.records import CaseSpec
from gpubench.workloads import get_workload
from gpubench.workloads.attention import attention_reference

jax = pytest.importorskip("jax", reason="jax not installed (pip install 'gpubench[jax]')")

from gpubench.backends.jax_backend import attention as jax_attention  # noqa: E402

#: Distinct B, H, S and D, so that a layout mistake (B×S×H×D against B×H×S×D) cannot go unseen.
PARAMS = {"b": 2, "h": 3, "s": 48, "d": 16}


def spec_of(dtype="float32", variant="xla", device="cpu", **params):
    return CaseSpec.make("attention", "jax", device, dtype, {**PARAMS, **params}, variant)


def has_cuda() -> bool:
    try:
        return bool(jax.devices("cuda"))
    except RuntimeError:
        return False


@pytest.fixture
def backend():
    from gpubench.backends import get_backend

    b = get_backend("jax")
    b.load()
    return b


def built(backend, dtype="float32", variant="xla", seed=0, **params):
    """``(op, inputs, params)`` of a case built directly on the CPU device (its scope stays open in the test)."""
    wl = get_workload("attention")
    params = wl.normalize_params({**PARAMS, **params})
    spec = CaseSpec.make("attention", "jax", "cpu", dtype, params, variant)
    device = backend.resolve_device("cpu")
    inputs = wl.make_inputs(params, dtype, np.random.default_rng(seed))
    return spec, device, params, inputs


# --- correctness through the case path ------------------------------------------------------------------
@pytest.mark.parametrize("backward", [False, True])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_real_cases_are_correct(dtype, causal, backward):
    r = run_case(spec_of(dtype, causal=causal, backward=backward), QUICK)
    assert r.status == "ok", (r.error, r.metrics.get("traceback"))
    assert 0 <= r.rel_error <= r.tolerance
    if dtype == "float32":
        assert r.rel_error < 1e-6  # true float32 (its bound, 1e-5·√(S+D), is 80× looser)
    assert r.flops == get_workload("attention").flops(r.spec.param_dict)
    assert r.clock == "perf_counter" and len(r.samples) >= 3 and r.gflops > 0
    assert r.metrics["jax_implementation"] == "xla"
    assert r.metrics["peak_memory_bytes"] > 0 and "memory_analysis" in r.metrics["memory_method"]


@pytest.mark.parametrize("causal", [False, True])
def test_result_is_o_then_gradients_in_the_workloads_layout(backend, causal):
    """O, dQ, dK, dV stacked as 4×B×H×S×D, each matching the float64 reference (and causal differs from not)."""
    spec, device, params, inputs = built(backend, causal=causal, backward=True)
    with backend.case_scope(spec, device):
        op = backend.build(spec, params, inputs, device)
        op.call()
        out = op.result()
        op.close()
    ref = np.stack(attention_reference(inputs["q"], inputs["k"], inputs["v"], causal, inputs["do"]))
    assert out.shape == (4, 2, 3, 48, 16) and out.dtype == np.float32
    for i, name in enumerate(("O", "dQ", "dK", "dV")):
        err = np.linalg.norm(out[i] - ref[i]) / np.linalg.norm(ref[i])
        assert err < 1e-5, name
    other = np.stack(attention_reference(inputs["q"], inputs["k"], inputs["v"], not causal, inputs["do"]))
    assert np.linalg.norm(out[0] - other[0]) > 1e-2 * np.linalg.norm(other[0])


def test_calls_are_compiled_at_build_and_synchronized_on_their_outputs(backend, monkeypatch):
    """No compilation after build, first run included (JAX's own compile log), and the timer blocks on the four
    outputs of the call."""
    spec, device, params, inputs = built(backend, backward=True)

    class Records(logging.Handler):
        def __init__(self):
            super().__init__()
            self.messages: list[str] = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    records = Records()
    logger = logging.getLogger("jax")
    logger.addHandler(records)
    try:
        with backend.case_scope(spec, device), jax.log_compiles(True):
            op = backend.build(spec, params, inputs, device)
            assert any(m.startswith("Compiling") for m in records.messages)  # the log is seen
            compiled = len(records.messages)
            op.timer(op.call, 1)  # the case's checked call, its first run
            waited = []
            real = jax.block_until_ready
            monkeypatch.setattr(jax, "block_until_ready", lambda x: waited.append(x) or real(x))
            op.timer(op.call, 3)
            monkeypatch.setattr(jax, "block_until_ready", real)
            op.result()
            assert len(records.messages) == compiled, records.messages[compiled:]
    finally:
        logger.removeHandler(records)
    # Before and after the loop, each time on the outputs (O, dQ, dK, dV) of the latest call.
    assert len(waited) == 2
    assert isinstance(waited[-1], tuple) and len(waited[-1]) == 4
    assert all(isinstance(a, jax.Array) and a.shape == (2, 48, 3, 16) for a in waited[-1])


def test_float32_products_are_true_float32(backend):
    """JAX's attention passes no precision to its float32 products: the case traces them at HIGHEST."""
    x = jax.ShapeDtypeStruct((1, 16, 2, 8), jax.numpy.float32)
    fn = jax_attention.attention_fn(jax, "xla", True, True)
    with jax_attention.precision_scope(jax, "float32"):
        text = jax.jit(fn).lower(x, x, x, x).as_text()
    dots = [line for line in text.splitlines() if "dot_general" in line]
    assert len(dots) >= 6 and all("precision = [HIGHEST, HIGHEST]" in line for line in dots)
    plain = jax.jit(fn).lower(x, x, x, x).as_text()
    assert "HIGHEST" not in plain  # what it would be without the scope (TF32 on Ampere and later)


# --- what JAX cannot run here, with its reason ---------------------------------------------------------------
@pytest.mark.parametrize("backward", [False, True])
def test_float16_on_the_cpu_is_skipped_with_jaxs_words(backward):
    r = run_case(spec_of("float16", backward=backward), QUICK)
    assert r.status == "skipped"
    assert r.error == ("jax: the xla attention cannot run this case on cpu: "
                       "The precision 'F16_F16_F32' is not supported by dot_general on CPU")


def test_float16_refusal_is_jaxs_own_under_jit():
    """The reason is true: jitted, JAX's attention in float16 does not lower for the CPU (eagerly its fallback runs)."""
    x = jax.ShapeDtypeStruct((1, 16, 2, 8), jax.numpy.float16)
    with pytest.raises(ValueError, match="F16_F16_F32"):
        jax.jit(jax_attention.attention_fn(jax, "xla", False, False)).lower(x, x, x)
    ones = jax.numpy.ones((1, 16, 2, 8), jax.numpy.float16)
    assert jax.nn.dot_product_attention(ones, ones, ones).dtype == jax.numpy.float16


def test_float64_is_skipped_and_the_reason_holds(backend):
    r = run_case(spec_of("float64"), QUICK)
    assert r.status == "skipped" and r.error == jax_attention.FLOAT64_REASON
    # The claim: with 64-bit arrays on, JAX's attention returns float64 but is float32-accurate.
    spec, device, params, inputs = built(backend, "float64", causal=True)
    before = bool(jax.config.jax_enable_x64)
    with backend.case_scope(spec, device):
        q, k, v = (backend.upload(np.ascontiguousarray(inputs[n].transpose(0, 2, 1, 3)), device, "float64")
                   for n in ("q", "k", "v"))
        out = jax.jit(jax_attention.attention_fn(jax, "xla", True, False))(q, k, v)
        assert out.dtype == np.float64
        out = np.asarray(out).transpose(0, 2, 1, 3)
    assert bool(jax.config.jax_enable_x64) == before
    ref = attention_reference(inputs["q"], inputs["k"], inputs["v"], True)[0]
    err = np.linalg.norm(out - ref) / np.linalg.norm(ref)
    tolerance = get_workload("attention").tolerance(params, "float64")
    assert 1e-9 < err < 1e-5 and err > 1e3 * tolerance


def test_cudnn_runs_on_cuda_only():
    r = run_case(spec_of("bfloat16", "cudnn"), QUICK)
    assert r.status == "skipped"
    assert r.error == "jax: variant 'cudnn' of attention runs on cuda devices only, not on cpu"


@pytest.mark.skipif(has_cuda(), reason="this JAX has a CUDA platform: cuDNN is detected")
def test_cudnn_refusal_is_jaxs_words(backend):
    """The probe behind a cudnn skip, pointed at the CPU device here: JAX's cuDNN check refuses, in its words."""
    spec, device, params, _ = built(backend, "bfloat16", "cudnn", backward=True)
    reason = jax_attention.refusal(backend, spec, params, device, compile_too=True)
    assert reason == "jax: the cudnn attention cannot run this case on cpu: cuDNN is not detected."
    spec32, *_ = built(backend, "float32")
    assert jax_attention.refusal(backend, spec32, params, device) is None  # xla lowers on the CPU


@pytest.mark.skipif(has_cuda(), reason="this JAX has a CUDA platform")
def test_cuda_cases_are_skipped_with_the_reason_here():
    r = run_case(spec_of("bfloat16", "cudnn", device="cuda"), QUICK)
    assert r.status == "skipped" and r.error.startswith("jax: no cuda device found (")


# --- memory ------------------------------------------------------------------------------------------------------
def test_xla_needs_the_score_matrices_and_more_for_the_backward():
    """Real compiled-memory analysis: the xla implementation holds H·S² float32 scores; the backward needs more."""
    params = {"b": 1, "h": 2, "s": 512, "d": 16}
    fwd = run_case(spec_of(**params), QUICK)
    bwd = run_case(spec_of(**params, backward=True), QUICK)
    assert fwd.status == bwd.status == "ok"
    scores = 2 * 512 * 512 * 4
    out = 2 * 512 * 16 * 4
    assert fwd.metrics["xla_output_bytes"] == out
    assert fwd.metrics["peak_memory_bytes"] >= scores + out
    assert bwd.metrics["xla_output_bytes"] >= 4 * out
    assert bwd.metrics["peak_memory_bytes"] > fwd.metrics["peak_memory_bytes"]


def test_memory_metrics_where_the_platform_gives_no_analysis():
    class Stats:
        output_size_in_bytes, temp_size_in_bytes, alias_size_in_bytes = 1000, 500, 200

    class Compiled:
        def __init__(self, answer):
            self.answer = answer
            self.calls = 0

        def memory_analysis(self):
            self.calls += 1
            if isinstance(self.answer, Exception):
                raise self.answer
            return self.answer

    got = jax_attention.memory_metrics(Compiled(Stats()))
    assert got["peak_memory_bytes"] == 1300 and got["xla_temp_bytes"] == 500
    none = Compiled(None)
    assert jax_attention.memory_metrics(none) == {
        "peak_memory_note": "not available: Compiled.memory_analysis() returned None on this platform"}
    assert none.calls == 1
    failing = jax_attention.memory_metrics(Compiled(NotImplementedError("Unimplemented on this backend\nmore")))
    assert failing == {"peak_memory_note": "not available: Compiled.memory_analysis() failed "
                                           "(NotImplementedError: Unimplemented on this backend)"}


# --- suite and command line ----------------------------------------------------------------------------------------
def test_the_suite_runs_xla_on_the_cpu_and_both_implementations_on_cuda():
    from gpubench.spec import Filters, expand, load_suite

    suite = load_suite("attention")
    full = [s for s in expand(suite, Filters(backends=("jax",)), check_memory=False)]
    assert {s.variant for s in full if s.device == "cpu"} == {"xla"}
    assert {s.dtype for s in full if s.device == "cpu"} == {"float32", "bfloat16"}
    assert {s.variant for s in full if s.device.startswith("cuda")} == {"xla", "cudnn"}
    assert max(s.param_dict["s"] for s in full) == 8192
    quick = expand(suite, Filters(backends=("jax",), devices=("cpu",)), quick=True)
    assert len(quick) == 16 and max(s.param_dict["s"] for s in quick) <= 128


def test_quick_suite_runs_on_jax_through_the_cli(cli, store_path):
    code, out, err = cli("run", "--suite", "attention", "--quick", "--backend", "jax", "--device", "cpu")
    assert code == 0, err
    assert "16 ok" in out and "incorrect" not in out
