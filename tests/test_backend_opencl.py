"""The OpenCL backend, run for real on whatever OpenCL platform is installed (PoCL on a CPU in CI)."""

from __future__ import annotations

import numpy as np
import pytest

from gpubench.case import run_case
from gpubench.harness import HarnessSettings
from gpubench.records import CaseSpec

pytest.importorskip("pyopencl", reason="pyopencl not installed (pip install 'gpubench[opencl]')")

SMALL = HarnessSettings(warmup_s=0.0, warmup_min_calls=1, min_sample_s=0.001, min_samples=3, max_samples=5,
                        target_rel_ci=0.5, budget_s=0.05)


@pytest.fixture(scope="module")
def backend():
    from gpubench.backends import get_backend

    b = get_backend("opencl")
    reason = b.availability()
    if reason:
        pytest.skip(reason)
    return b


@pytest.fixture(scope="module")
def device(backend):
    return backend.devices()[0]


def run(workload, params, dtype="float32", variant="default", device="opencl"):
    return run_case(CaseSpec.make(workload, "opencl", device, dtype, params, variant), SMALL)


def test_devices_are_listed_with_ids_and_dtypes(backend):
    devices = backend.devices()
    assert devices
    for d in devices:
        _, p, i = d.id.split(":")
        assert d.kind == "opencl" and p.isdigit() and i.isdigit()
        assert "float32" in d.dtypes and d.name


def test_device_selection_by_id_kind_and_name(backend, device):
    assert backend.resolve_device(device.id) == device
    assert backend.resolve_device("opencl") == backend.devices()[0]
    fragment = device.details["platform"].split()[0].lower()  # e.g. "portable" (PoCL), "nvidia"
    assert backend.resolve_device(fragment).details["platform"] == device.details["platform"]
    assert backend.resolve_device(f"opencl:{fragment}").details["platform"] == device.details["platform"]
    from gpubench.errors import Unavailable

    with pytest.raises(Unavailable, match="no device 'opencl:99:0'"):
        backend.resolve_device("opencl:99:0")


def test_saxpy_is_correct_and_timed_with_profiling_events():
    r = run("saxpy", {"n": 100_003, "a": -1.5})
    assert r.status == "ok", r.error
    assert r.clock == "opencl_event"
    assert r.rel_error is not None and r.rel_error <= r.tolerance
    assert all(s > 0 for s in r.samples)


@pytest.mark.parametrize("variant", ["tiled", "blocked"])
@pytest.mark.parametrize("shape", [(64, 64, 64), (100, 70, 33), (17, 5, 129), (1, 1, 1)])
def test_matmul_variants_are_correct_at_any_shape(variant, shape):
    m, n, k = shape
    r = run("matmul", {"m": m, "n": n, "k": k}, variant=variant)
    assert r.status == "ok", r.error
    assert r.rel_error <= r.tolerance


def test_float64_runs_or_skips_with_reason(device):
    r = run("matmul", {"m": 40, "n": 24, "k": 19}, dtype="float64", variant="tiled", device=device.id)
    if "float64" in device.dtypes:
        assert r.status == "ok", r.error
        assert r.rel_error < 1e-12
    else:
        assert r.status == "skipped" and "float64" in r.error


def test_unsupported_dtype_is_a_skip_with_reason():
    r = run("matmul", {"size": 32}, dtype="float16", variant="tiled")
    assert r.status == "skipped"
    assert "float16" in r.error


def test_kernel_source_changes_the_spec_hash(monkeypatch):
    from gpubench.backends.opencl_backend import kernel_source

    before = run("saxpy", {"n": 1024}).spec_hash
    import gpubench.backends.opencl_backend as ocl

    original = kernel_source
    monkeypatch.setattr(ocl, "kernel_source", lambda rel: original(rel) + "\n// changed\n")
    from gpubench.backends import get_backend

    get_backend("opencl")._programs.clear()
    after = run("saxpy", {"n": 1024}).spec_hash
    get_backend("opencl")._programs.clear()
    assert before != after


def test_build_error_surfaces_the_compiler_log(backend, device):
    from gpubench.backends.opencl_backend import KernelBuildError, build_program

    queue = backend.queue(device)
    broken = "__kernel void broken(__global float* x) { x[0] = undeclared_name_xyz; }"
    with pytest.raises(KernelBuildError) as info:
        build_program(backend.cl, queue.context, queue.device, broken, [], "broken.cl")
    msg = str(info.value)
    assert msg.startswith("opencl: building broken.cl failed on")
    assert "undeclared_name_xyz" in msg  # the compiler's own diagnostic
    assert "\n" not in msg  # one line, so the stored error keeps all of it


def test_build_error_is_stored_as_error_with_the_log(backend, monkeypatch):
    import gpubench.backends.opencl_backend as ocl

    monkeypatch.setattr(ocl, "kernel_source", lambda rel: "__kernel void saxpy() { syntax error here }")
    backend._programs.clear()
    try:
        r = run("saxpy", {"n": 256})
    finally:
        backend._programs.clear()
    assert r.status == "error"
    assert "KernelBuildError: opencl: building opencl/saxpy.cl failed" in r.error
    assert "error" in r.error.split("failed on", 1)[1]


def test_profiling_event_timer_spans_first_start_to_last_end(backend, device):
    from gpubench.backends.opencl_backend import OpenclEventTimer

    x = backend.upload(np.arange(1 << 16, dtype=np.float32), device)
    prg, _ = backend.program(device, "opencl/saxpy.cl", ["-DREAL=float"])
    kernel = backend.cl.Kernel(prg, "saxpy")
    kernel.set_args(np.uint64(x.size), np.float32(1.0), x.data, x.data)
    queue = backend.queue(device)
    events = []

    def call():
        ev = backend.cl.enqueue_nd_range_kernel(queue, kernel, (x.size,), None)
        events.append(ev)
        return ev

    timer = OpenclEventTimer()
    assert timer.name == "opencl_event"
    one = timer(call, 1)
    assert one > 0
    events.clear()
    five = timer(call, 5)
    span = (events[-1].profile.end - events[0].profile.start) * 1e-9
    assert five == pytest.approx(span)
    assert five >= sum((e.profile.end - e.profile.start) * 1e-9 for e in events) * 0.999
    assert np.allclose(backend.download(x)[:4], np.arange(4) * 2**6)  # 1 + 5 calls doubled x six times


# --- explicit work-group sizes (conv2d, saxpy) --------------------------------------------------------
@pytest.mark.parametrize("global_size, limit", [((100_003,), 4096), ((7, 7, 128), 4096), ((224, 224, 64), 1024),
                                                ((6, 24, 48), 64), ((1,), 256), ((3, 5, 1), 4096),
                                                ((100_003,), 96), ((65, 3, 2), 1)])
def test_work_group_is_bounded_and_divides_the_rounded_range(global_size, limit):
    from gpubench.backends.opencl_backend import PREFERRED_WORK_GROUP, work_group

    padded, local = work_group(global_size, limit, (4096, 4096, 64))
    size = int(np.prod(local))
    assert size <= min(limit, PREFERRED_WORK_GROUP)
    assert all(n & (n - 1) == 0 for n in local)  # powers of two
    assert all(p % n == 0 and g <= p < g + n for g, p, n in zip(global_size, padded, local))
    assert local[-1] <= 64 or len(local) == 1  # the device's per-dimension limit


def test_work_group_fills_the_preferred_size_and_keeps_rows_contiguous():
    from gpubench.backends.opencl_backend import work_group

    assert work_group((100_003,), 4096) == ((100_096,), (256,))
    assert work_group((224, 224, 64), 4096) == ((224, 224, 64), (32, 8, 1))  # no padding, 32 along a row
    padded, local = work_group((7, 7, 128), 4096)  # LeNet-sized rows: 8 wide, the rest from the batch
    assert local[0] == 8 and int(np.prod(local)) == 256


@pytest.mark.parametrize("workload, params", [
    ("saxpy", {"n": 100_003}),
    ("saxpy", {"n": 257}),
    ("conv2d", dict(n=3, c=5, h=13, w=11, k=7, r=3, s=3, stride=2, padding=1, layout="NCHW")),
    ("conv2d", dict(n=3, c=5, h=13, w=11, k=7, r=3, s=3, stride=1, padding=0, layout="NHWC")),
])
def test_explicit_work_groups_stay_correct_past_the_range(backend, device, workload, params):
    """Sizes that are no multiple of the group: the padding work-items must do nothing."""
    r = run(workload, params)
    assert r.status == "ok", r.error
    assert r.rel_error <= r.tolerance
    launch = r.metrics["work_group"]
    limit = min(device.details["max_work_group_size"], 256)
    assert int(np.prod(launch["local"])) <= limit
    assert all(g % n == 0 for g, n in zip(launch["global"], launch["local"]))


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_kernels_guard_their_bounds_on_a_rounded_range(backend, device, layout):
    """Launched on a range rounded up to the group, neither kernel writes past its outputs."""
    import pyopencl.array as cla

    from gpubench.backends.opencl_backend import dtype_options
    from gpubench.workloads.conv2d import conv_shapes

    cl, queue = backend.cl, backend.queue(device)
    sentinel = np.float32(-7.25)
    # saxpy: n = 1000 elements of a 2048-element buffer, range rounded up to 1024.
    prg, _ = backend.program(device, "opencl/saxpy.cl", dtype_options("float32"))
    y = cla.to_device(queue, np.full(2048, sentinel, np.float32))
    x = cla.to_device(queue, np.ones(2048, np.float32))
    kernel = cl.Kernel(prg, "saxpy")
    kernel.set_args(np.uint64(1000), np.float32(2.0), x.data, y.data)
    global_size, local = backend.launch_shape(device, kernel, (1000,))
    cl.enqueue_nd_range_kernel(queue, kernel, global_size, local).wait()
    out = y.get()
    assert global_size[0] > 1000
    assert np.all(out[:1000] == sentinel + 2) and np.all(out[1000:] == sentinel)
    # conv2d: an output buffer with a sentinel tail past N·K·P·Q.
    params = dict(n=2, c=3, h=9, w=7, k=5, r=3, s=3, stride=1, padding=1)
    n, c, h, w, k, r, s, p, q, stride = conv_shapes(params)
    options = dtype_options("float32") + (["-DNHWC"] if layout == "NHWC" else [])
    prg, _ = backend.program(device, "opencl/conv2d.cl", options)
    xs = cla.to_device(queue, np.ones(n * c * h * w, np.float32))
    ws = cla.to_device(queue, np.ones(k * c * r * s, np.float32))
    size = n * k * p * q
    ys = cla.to_device(queue, np.full(size + 4096, sentinel, np.float32))
    kernel = cl.Kernel(prg, "conv2d")
    kernel.set_args(xs.data, ws.data, ys.data, *(np.int32(v) for v in (n, c, h, w, k, r, s, p, q, stride, 1)))
    shape = (k, q, n * p) if layout == "NHWC" else (q, p, n * k)
    global_size, local = backend.launch_shape(device, kernel, shape)
    assert any(g > want for g, want in zip(global_size, shape))
    cl.enqueue_nd_range_kernel(queue, kernel, global_size, local).wait()
    out = ys.get()
    assert np.all(out[size:] == sentinel)
    assert np.all(out[:size] > 0)  # every real output written (all-ones input: a positive count of taps)
