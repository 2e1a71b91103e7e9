"""The CuPy adapter's CUDA paths on a CPU machine, against a recorded fake of CuPy (tests/fake_cuda.py).

What only a GPU can show (speed, cuBLAS under stream capture) belongs to the GPU check; what the
adapter decides and the order of the calls it makes are checked here: the probes of the driver and
the CUDA libraries and their skip reasons, the device every kernel and event runs on, the TF32
compute type's restoration, the CUDA-graph variants, and the copies of ``include_transfer``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_cuda import COST_MS, FakeCUDARuntimeError, FakeCupy  # noqa: E402

from gpubench.backends.base import DeviceInfo  # noqa: E402
from gpubench.backends.cupy_backend import CupyBackend, probe_cuda  # noqa: E402
from gpubench.case import run_case  # noqa: E402
from gpubench.errors import Unavailable  # noqa: E402
from gpubench.harness import HarnessSettings  # noqa: E402
from gpubench.records import CaseSpec  # noqa: E402
from gpubench.workloads import get_workload  # noqa: E402

SMALL = HarnessSettings(warmup_s=0.0, warmup_min_calls=1, min_sample_s=0.0005, min_samples=3, max_samples=5,
                        target_rel_ci=0.5, budget_s=0.05)

# The texts CuPy 14 raises on this machine (cupy-cuda13x without [ctk]): cupy.cuda.cublas raises
# ImportError(str(DynamicLibNotFoundError)) from cupy_backends/cuda/libs/__init__.py, and
# nvrtc.getVersion() raises cuda.pathfinder's DynamicLibNotFoundError (a RuntimeError).
CUBLAS_14 = ('Failure finding "libcublasLt.so.13 or libcublasLt.so.12": No such file: libcublasLt.so.13 or '
             'libcublasLt.so.12, No such file: libcublasLt.so.13 or libcublasLt.so.12\n')
NVRTC_14 = ('Failure finding "libnvrtc.so.13 or libnvrtc.so.12": No such file: libnvrtc.so.13 or libnvrtc.so.12, '
            'No such file: libnvrtc.so.13 or libnvrtc.so.12\n')
# CuPy 13's SoftLink (cupy_backends/cuda/_softlink.pyx) on Linux and on Windows.
NVRTC_13 = ("CuPy failed to load libnvrtc.so.12: OSError: libnvrtc.so.12: cannot open shared object file: "
            "No such file or directory")
NVRTC_13_WIN = ("CuPy failed to load nvrtc64_120_0.dll: FileNotFoundError: Could not find module "
                "'nvrtc64_120_0.dll' (or one of its dependencies). Try using the full path with constructor syntax.")


class DynamicLibNotFoundError(RuntimeError):
    """cuda.pathfinder's error type (a RuntimeError subclass), for machines without cuda-pathfinder."""


@pytest.fixture
def wheel(monkeypatch):
    """Pretend CuPy came from the wheel of its CUDA major (cupy-cuda13x, cupy-cuda12x)."""
    import gpubench.backends.cupy_backend as cb

    monkeypatch.setattr(cb, "_cupy_distribution", lambda major: f"cupy-cuda{major}x")


# --- load(): the driver, cuBLAS and NVRTC probes ---------------------------------------------------
def test_working_install_reports_its_devices():
    fake = FakeCupy(n_devices=2)
    assert probe_cuda(fake) == 2
    assert ("cublas import",) in fake.log and ("nvrtc.getVersion",) in fake.log


def test_no_driver_is_the_known_reason():
    with pytest.raises(Unavailable, match="^cupy: no CUDA driver found$"):
        probe_cuda(FakeCupy(driver_version=0))


def test_old_driver_names_both_versions_and_the_fix():
    with pytest.raises(Unavailable) as err:
        probe_cuda(FakeCupy(driver_version=12040, build_version=13020))
    assert str(err.value) == ('cupy: driver supports CUDA 12.4, this CuPy needs 13 — update the NVIDIA driver, '
                              'or pip install "cupy-cuda12x[ctk]"')


def test_newer_driver_minor_and_major_are_fine():
    assert probe_cuda(FakeCupy(driver_version=13000, build_version=13020)) == 2  # minor-version compatibility
    assert probe_cuda(FakeCupy(driver_version=13000, build_version=12090)) == 2


def test_missing_cublas_names_the_library_and_the_ctk_extra(wheel):
    with pytest.raises(Unavailable) as err:
        probe_cuda(FakeCupy(cublas_error=ImportError(CUBLAS_14)))
    assert str(err.value) == 'cupy: libcublasLt.so.13 not found — pip install "cupy-cuda13x[ctk]"'


@pytest.mark.parametrize("error, library, build", [
    (DynamicLibNotFoundError(NVRTC_14), "libnvrtc.so.13", 13020),
    (RuntimeError(NVRTC_13), "libnvrtc.so.12", 12080),
    (RuntimeError(NVRTC_13_WIN), "nvrtc64_120_0.dll", 12080),
])
def test_missing_nvrtc_names_the_library_and_the_ctk_extra(wheel, error, library, build):
    with pytest.raises(Unavailable) as err:
        probe_cuda(FakeCupy(nvrtc_error=error, build_version=build, driver_version=13000))
    assert str(err.value) == f'cupy: {library} not found — pip install "cupy-cuda{build // 1000}x[ctk]"'


def test_without_a_cupy_wheel_the_fix_is_the_toolkit(monkeypatch):
    import gpubench.backends.cupy_backend as cb

    monkeypatch.setattr(cb, "_cupy_distribution", lambda major: None)
    with pytest.raises(Unavailable) as err:
        probe_cuda(FakeCupy(cublas_error=ImportError(CUBLAS_14)))
    assert str(err.value).startswith('cupy: libcublasLt.so.13 not found — pip install "cuda-toolkit[')


def test_no_device_after_the_libraries():
    fake = FakeCupy(count_error=FakeCUDARuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected"))
    with pytest.raises(Unavailable, match="^cupy: no CUDA device found$"):
        probe_cuda(fake)


def test_probes_run_against_the_real_cupy_here():
    """The installed CuPy, unfaked: whatever is missing here is named (no driver on the CPU machine)."""
    cupy = pytest.importorskip("cupy")
    try:
        count = probe_cuda(cupy)
    except Unavailable as exc:
        reason = str(exc)
        assert reason == "cupy: no CUDA driver found" or " not found — pip install " in reason \
            or "driver supports CUDA" in reason or reason == "cupy: no CUDA device found", reason
    else:
        assert count >= 1


LIBRARY_REASON = r'^cupy: {lib} not found — pip install "cupy-cuda\d+x\[ctk\]"$'


def test_real_cublas_error_of_this_cupy_parses(wheel):
    """CuPy's own exception for its missing cuBLAS (when it is missing here) gives the same reason."""
    cupy = pytest.importorskip("cupy")
    try:
        cupy.cuda.cublas  # noqa: B018
    except ImportError as exc:
        fake = FakeCupy(cublas_error=exc, build_version=cupy.cuda.driver.get_build_version())
        with pytest.raises(Unavailable, match=LIBRARY_REASON.format(lib=r"libcublas\S*\.so\.\d+")):
            probe_cuda(fake)
    else:
        pytest.skip("cuBLAS loads here")


def test_real_nvrtc_error_of_this_cupy_parses(wheel):
    """CuPy's own exception for its missing NVRTC (when it is missing here) gives the same reason."""
    cupy = pytest.importorskip("cupy")
    try:
        cupy.cuda.nvrtc.getVersion()
    except RuntimeError as exc:
        fake = FakeCupy(nvrtc_error=exc, build_version=cupy.cuda.driver.get_build_version())
        with pytest.raises(Unavailable, match=LIBRARY_REASON.format(lib=r"libnvrtc\.so\.\d+")):
            probe_cuda(fake)
    else:
        pytest.skip("NVRTC loads here")


# --- a whole case on a fake GPU: device, events, TF32, graphs -------------------------------------
@pytest.fixture
def fake_backend(monkeypatch):
    """The registered cupy backend, driving a FakeCupy with two GPUs."""
    from gpubench.backends import get_backend

    backend = get_backend("cupy")
    fake = FakeCupy(n_devices=2)

    def load():
        backend.cupy = fake
        backend._count = probe_cuda(fake)
        del fake.log[:]  # the log holds the case's calls (the load probes are checked on their own)

    monkeypatch.setattr(backend, "load", load)
    monkeypatch.setattr(backend, "cupy", fake, raising=False)
    monkeypatch.setattr(backend, "_count", backend._count, raising=False)  # restored after the test
    monkeypatch.setattr(backend, "_modules", {})  # compiled modules belong to this fake
    yield backend, fake


def _per_call_ms(result) -> float:
    return float(np.median(result.samples)) * 1e3


@pytest.mark.parametrize("workload, params, variant", [
    ("saxpy", {"n": 1001}, "elementwise"),
    ("saxpy", {"n": 1001}, "graph"),
    ("matmul", {"m": 20, "n": 12, "k": 7}, "cublas"),
    ("matmul", {"m": 20, "n": 12, "k": 7}, "graph"),
])
@pytest.mark.parametrize("device", ["cuda:0", "cuda:1"])
def test_case_runs_and_is_timed_on_its_own_device(fake_backend, workload, params, variant, device):
    backend, fake = fake_backend
    index = int(device[-1])
    r = run_case(CaseSpec.make(workload, "cupy", device, "float32", params, variant), SMALL)
    assert r.status == "ok", r.error
    assert r.rel_error <= r.tolerance
    # One kernel per call on the case's GPU: events on another GPU's stream would time ~0.
    assert _per_call_ms(r) == pytest.approx(COST_MS)
    kernels = [e for e in fake.log if e[0] in ("kernel", "graph launch", "captured")]
    assert kernels and all(e[2] == index for e in kernels if e[0] != "graph launch")
    assert all(e[1] == index for e in fake.log if e[0] in ("record", "graph launch"))
    # The case's device was entered first and left last: nothing leaks into the next case.
    entered = [e for e in fake.log if e[0] == "device enter"]
    assert entered[0] == ("device enter", index)
    assert fake.current == 0
    if workload == "saxpy":  # cold by default: an L2 flush on the case's GPU before every timed call
        flushes = [e for e in fake.log if e[0] == "memset"]
        assert flushes and all(e[1] == index and e[2] >= 2 * 50 * 2**20 for e in flushes)
    if variant == "graph":
        assert r.metrics["cuda_graph"]
        assert not [e for e in fake.log if e[0] == "kernel" and fake.log.index(e) > fake.log.index(
            next(x for x in fake.log if x[0] == "end_capture"))], "the graph variant launched a kernel itself"


def test_graph_capture_order(fake_backend):
    backend, fake = fake_backend
    from gpubench.backends.cupy_backend import capture_graph

    calls = []

    def fn():
        calls.append(fake.current)
        fake._launch("k", (), lambda: None)

    graph = capture_graph(fake, 1, fn)
    names = [e[0] for e in fake.log]
    assert names == ["device enter", "new stream", "stream enter", "kernel", "stream sync", "begin_capture",
                     "captured", "end_capture", "stream exit", "stream sync", "device exit"]
    assert calls == [1, 1]
    with fake.cuda.Device(1):
        graph.launch()
    assert fake.kernels[1] == 2 and fake.kernels[0] == 0


def test_tf32_case_then_float32_case_sees_the_default_restored(fake_backend):
    backend, fake = fake_backend
    backend.load()
    linalg = fake._core._routines_linalg
    device = DeviceInfo("cuda:1", "Fake GPU 1", "cuda")
    tf32 = CaseSpec.make("matmul", "cupy", "cuda:1", "float32", {"size": 64, "tf32": True}, "cublas")
    plain = CaseSpec.make("matmul", "cupy", "cuda:1", "float32", {"size": 64}, "cublas")
    with backend.case_scope(tf32, device):
        assert linalg.get_compute_type(np.float32) == linalg.COMPUTE_TYPE_TF32
    assert linalg.get_compute_type(np.float32) == linalg.COMPUTE_TYPE_DEFAULT
    with backend.case_scope(plain, device):
        assert linalg.get_compute_type(np.float32) == linalg.COMPUTE_TYPE_DEFAULT
    # Set (and restored) with the case's GPU current: TF32 support is a property of that GPU.
    assert {e[3] for e in fake.log if e[0] == "set_compute_type"} == {1}


def test_a_tf32_case_restores_even_when_it_fails(fake_backend):
    backend, fake = fake_backend
    backend.load()
    linalg = fake._core._routines_linalg
    spec = CaseSpec.make("matmul", "cupy", "cuda:0", "float32", {"size": 64, "tf32": True}, "cublas")
    with pytest.raises(RuntimeError), backend.case_scope(spec, DeviceInfo("cuda:0", "g", "cuda")):
        raise RuntimeError("the case failed")
    assert linalg.get_compute_type(np.float32) == linalg.COMPUTE_TYPE_DEFAULT


def test_scope_restores_cupys_real_compute_type_switch(fake_backend):
    """CuPy's own module-level switch (no driver needed for the non-TF32 types)."""
    cupy = pytest.importorskip("cupy")
    backend, fake = fake_backend
    backend.load()
    linalg = cupy._core._routines_linalg
    fake._core._routines_linalg = linalg
    before = linalg.get_compute_type(np.float32)
    try:
        linalg.set_compute_type(np.float32, linalg.COMPUTE_TYPE_PEDANTIC)
        spec = CaseSpec.make("matmul", "cupy", "cuda:0", "float32", {"size": 64}, "cublas")
        with backend.case_scope(spec, DeviceInfo("cuda:0", "g", "cuda")):
            assert linalg.get_compute_type(np.float32) == linalg.COMPUTE_TYPE_DEFAULT
        assert linalg.get_compute_type(np.float32) == linalg.COMPUTE_TYPE_PEDANTIC
    finally:
        linalg.set_compute_type(np.float32, before)


def test_include_transfer_converts_before_timing_and_copies_only(fake_backend):
    """float16 device arrays: the host side is converted once at build; each timed call only copies."""
    backend, fake = fake_backend
    r = run_case(CaseSpec.make("saxpy", "cupy", "cuda:1", "float16", {"n": 999, "include_transfer": True},
                               "elementwise"), SMALL)
    assert r.status == "ok", r.error
    sets = [e for e in fake.log if e[0] == "set"]
    gets = [e for e in fake.log if e[0] == "get" and e[2] is not None]
    assert len(sets) >= 2 * 5 and all(e[1:3] == (1, "float16") for e in sets)  # CuPy's set() refuses other dtypes
    # The same two host arrays every call: converted once before timing, never inside a timed call.
    assert len({id(e[3]) for e in sets}) == 2
    assert len(gets) >= 5 and len({id(e[2]) for e in gets}) == 1 and all(e[1] == 1 for e in gets)
    assert f"({2 * 999 * 2} bytes, pageable)" in r.metrics["include_transfer"]


def test_include_transfer_host_buffers_have_the_device_dtype(fake_backend):
    backend, fake = fake_backend
    backend.load()
    device = DeviceInfo("cuda:0", "g", "cuda", dtypes=("float16", "float32"))
    wl = get_workload("matmul")
    params = wl.normalize_params({"m": 5, "n": 6, "k": 7, "include_transfer": True})
    spec = CaseSpec.make("matmul", "cupy", "cuda:0", "float16", params, "cublas")
    inputs = wl.make_inputs(params, "float16", np.random.default_rng(1))
    with backend.case_scope(spec, device):
        op = backend.build(spec, params, inputs, device)
        n_sets = len([e for e in fake.log if e[0] == "set"])
        op.call()
        assert len([e for e in fake.log if e[0] == "set"]) == n_sets + 2
        out = op.result()
    assert out.dtype == np.float16
    np.testing.assert_allclose(out, inputs["a"].astype(np.float16) @ inputs["b"].astype(np.float16), rtol=1e-2)


def test_backend_class_is_the_registered_one():
    from gpubench.backends import get_backend

    assert isinstance(get_backend("cupy"), CupyBackend)


# --- the load probe's trivial kernel (CUDA headers for NVRTC) ------------------------------------------


class CompileException(Exception):
    """Stands in for ``cupy.cuda.compiler.CompileException`` (what NVRTC's failure raises through CuPy)."""


#: NVRTC's failure through CuPy 14 when the CUDA runtime headers are missing (CuPy's install docs quote it).
NO_HEADERS = ('/site-packages/cupy/_core/include/cupy/carray.cuh(8): catastrophic error: cannot open source file '
              '"vector_types.h"\n\n1 catastrophic error detected in the compilation of "kern.cu".\n'
              'Compilation terminated.\n')


def test_the_probe_compiles_and_runs_a_trivial_kernel_on_the_first_gpu():
    fake = FakeCupy(n_devices=2)
    assert probe_cuda(fake) == 2
    assert ("nvrtc compile", "gpubench_probe") in fake.log and ("kernel", "gpubench_probe", 0) in fake.log


def test_missing_cuda_headers_are_a_skip_that_names_the_fix(wheel):
    fake = FakeCupy(kernel_error=CompileException(NO_HEADERS))
    with pytest.raises(Unavailable) as info:
        probe_cuda(fake)
    reason = str(info.value)
    assert reason.startswith("cupy: CUDA headers not found (NVRTC cannot open vector_types.h")
    assert reason.endswith('pip install "cupy-cuda13x[ctk]"') and "\n" not in reason


def test_other_probe_kernel_failures_are_skips_with_the_error():
    old_driver = FakeCupy(kernel_error=FakeCUDARuntimeError("CUDA_ERROR_UNSUPPORTED_PTX_VERSION: the provided PTX "
                                                            "was compiled with an unsupported toolchain."))
    with pytest.raises(Unavailable, match=r"driver is too old .* update the NVIDIA driver$"):
        probe_cuda(old_driver)
    other = FakeCupy(kernel_error=CompileException("kern.cu(3): error: identifier \"x\" is undefined\nmore"))
    with pytest.raises(Unavailable, match=r'^cupy: a trivial kernel failed to compile or run \(CompileException: '
                                          r'kern.cu\(3\): error: identifier "x" is undefined\)$'):
        probe_cuda(other)


def test_a_case_on_a_machine_without_headers_is_skipped_not_failed(monkeypatch, wheel):
    from gpubench.backends import get_backend

    backend = get_backend("cupy")
    fake = FakeCupy(kernel_error=CompileException(NO_HEADERS))
    monkeypatch.setattr(backend, "cupy", None, raising=False)
    monkeypatch.setattr("gpubench.backends.cupy_backend.require", lambda *a: fake)
    r = run_case(CaseSpec.make("saxpy", "cupy", "cuda:0", "float32", {"n": 64}), SMALL)
    assert r.status == "skipped" and "CUDA headers not found" in r.error and "[ctk]" in r.error


# --- float16 attention: half-precision GEMMs, not float32 ones ---------------------------------------------


@pytest.mark.parametrize("backward", [False, True])
def test_float16_attention_runs_half_gemms(fake_backend, backward):
    from fake_cuda import attention_softmax_model

    backend, fake = fake_backend
    fake.raw_kernels.update({f"attention_softmax_{s}": attention_softmax_model for s in ("f16", "f32", "f64")})
    params = {"b": 1, "h": 3, "s": 24, "d": 8, "causal": True, "backward": backward}
    r = run_case(CaseSpec.make("attention", "cupy", "cuda:1", "float16", params), SMALL)
    assert r.status == "ok", (r.error, r.metrics.get("traceback"))
    assert r.rel_error <= r.tolerance
    gemms = [e for e in fake.log if e[0] == "gemmStridedBatchedEx"]
    # Every product: float16 operands and product (CUDA_R_16F = 2), float32 accumulation, on the case's GPU.
    assert gemms and all(e[1:6] == (1, 2, 2, 2, FakeCublasCompute32F) for e in gemms)
    assert not [e for e in fake.log if e[:2] == ("kernel", "matmul")]  # CuPy's matmul would run them in float32
    assert "float16 operands" in r.metrics["gemm"]
    # float32 keeps cupy.matmul (a float32 strided-batched GEMM already).
    r32 = run_case(CaseSpec.make("attention", "cupy", "cuda:1", "float32", params), SMALL)
    assert r32.status == "ok" and r32.rel_error <= r32.tolerance
    assert [e for e in fake.log if e[:2] == ("kernel", "matmul")] and r32.metrics["gemm"].startswith("cupy.matmul")


FakeCublasCompute32F = 68


@pytest.mark.parametrize("layout", ["nn", "tn", "nt", "tt"])
def test_half_matmul_handles_transposed_and_strided_operands(layout):
    """The column-major translation of a row-major product, against NumPy, for every operand layout."""
    from fake_cuda import FakeCublas

    from gpubench.backends.cupy_backend.attention import half_matmul

    rng = np.random.default_rng(2)
    fake = FakeCupy()
    g, m, k, n = 3, 5, 4, 6
    a = (rng.random((g, m, k)) if layout[0] == "n" else rng.random((g, k, m)).transpose(0, 2, 1)).astype(np.float16)
    b = (rng.random((g, k, n)) if layout[1] == "n" else rng.random((g, n, k)).transpose(0, 2, 1)).astype(np.float16)
    big = np.zeros((g, m + 2, n + 3), np.float16)
    out = big[:, 1:m + 1, 2:n + 2]  # a strided slice of a larger buffer, as attention's outputs are
    matmul = half_matmul(FakeCublas(fake), 2, 7, pointer=lambda x: x.ctypes.data)
    matmul(a, b, out)
    want = (a.astype(np.float32) @ b.astype(np.float32)).astype(np.float16)
    np.testing.assert_allclose(out.astype(np.float32), want.astype(np.float32), rtol=2e-3, atol=2e-3)
    assert np.all(big[:, 0] == 0) and np.all(big[:, :, :2] == 0)  # nothing written outside the slice
    (call,) = [e for e in fake.log if e[0] == "gemmStridedBatchedEx"]
    assert call[2:] == (2, 2, 2, 68, g)


# --- pageable copies declare that they block the host ------------------------------------------------------


@pytest.mark.parametrize("direction, memory, blocks", [("h2d", "pageable", True), ("d2h", "pageable", True),
                                                       ("d2d", None, False)])
def test_copies_declare_whether_they_block_the_host(fake_backend, direction, memory, blocks):
    backend, fake = fake_backend
    params = {"bytes": 4096, "direction": direction} | ({"memory": memory} if memory else {})
    r = run_case(CaseSpec.make("transfer", "cupy", "cuda:1", "float32", params), SMALL)
    assert r.status == "ok" and r.rel_error == 0, r.error
    assert [e for e in fake.log if e[0] == "memcpy" and e[1] == 1]
    wl = get_workload("transfer")
    p = wl.normalize_params(params)
    device = DeviceInfo("cuda:1", "g", "cuda")
    spec = CaseSpec.make("transfer", "cupy", "cuda:1", "float32", p)
    with backend.case_scope(spec, device):
        op = backend.build(spec, p, wl.make_inputs(p, "float32", np.random.default_rng(0)), device)
    assert op.blocks_host is blocks
