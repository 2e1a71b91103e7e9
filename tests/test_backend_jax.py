"""The JAX backend, run for real on the CPU: every workload through :func:`gpubench.case.run_case`.

Correctness only (never speed): each output is checked against the workload's float64 reference,
MNIST against the NumPy reference loop, and the transfer op is checked to move the bytes on every
call (a fresh destination buffer holding the source's data of that moment).
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from gpubench.case import run_case
from gpubench.harness import HarnessSettings
from gpubench.records import CaseSpec
from gpubench.workloads import get_workload

jax = pytest.importorskip("jax", reason="jax not installed (pip install 'gpubench[jax]')")

SMALL = HarnessSettings(warmup_s=0.0, warmup_min_calls=1, min_sample_s=0.001, min_samples=3, max_samples=5,
                        target_rel_ci=0.5, budget_s=0.05)


def run(workload, params, dtype="float32", device="cpu"):
    return run_case(CaseSpec.make(workload, "jax", device, dtype, params), SMALL)


@pytest.fixture
def backend():
    from gpubench.backends import get_backend

    b = get_backend("jax")
    b.load()
    return b


def built(backend, workload, params, dtype="float32", seed=0):
    """``(op, inputs, params)`` of a case built directly on the CPU device, inside the backend's case scope."""
    wl = get_workload(workload)
    params = wl.normalize_params(params)
    spec = CaseSpec.make(workload, "jax", "cpu", dtype, params)
    device = backend.resolve_device("cpu")
    inputs = wl.make_inputs(params, dtype, np.random.default_rng(seed))
    return backend, spec, device, params, inputs


# --- kernels --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
@pytest.mark.parametrize("shape", [{"size": 64}, {"m": 96, "n": 40, "k": 130}])
def test_matmul_is_correct(dtype, shape):
    r = run("matmul", shape, dtype)
    assert r.status == "ok", (r.error, r.metrics.get("traceback"))
    assert 0 <= r.rel_error <= r.tolerance
    assert r.clock == "perf_counter" and r.gflops > 0 and len(r.samples) >= 3
    assert r.device_name and r.spec_hash


def test_float64_is_real_float64_and_x64_is_restored():
    before = bool(jax.config.jax_enable_x64)
    r = run("matmul", {"m": 64, "n": 48, "k": 300}, "float64")
    assert r.status == "ok", r.error
    # float32 arithmetic would miss the float64 reference by ~1e-7; float64 lands near 1e-16.
    assert r.rel_error < 1e-12
    assert bool(jax.config.jax_enable_x64) == before


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_saxpy_is_correct(dtype):
    r = run("saxpy", {"n": 10_001, "a": 3.0}, dtype)
    assert r.status == "ok", r.error
    assert r.rel_error <= r.tolerance and r.gbps > 0


def test_saxpy_updates_y_in_place_across_calls(backend):
    backend, spec, device, params, _ = built(backend, "saxpy", {"n": 7, "a": 2.0}, "float32")
    inputs = {"x": np.arange(7.0, dtype=np.float32), "y": np.ones(7, dtype=np.float32)}
    with backend.case_scope(spec, device):
        op = backend.build(spec, params, inputs, device)
        before = op.device_inputs["y"].value
        op.call()
        op.call()
        assert before.is_deleted()  # donated: the update reused y's buffer
        assert np.array_equal(op.result(), 1 + 2 * 2.0 * np.arange(7.0))
    assert np.array_equal(inputs["y"], np.ones(7))  # the host inputs stay pristine


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_conv2d_is_correct_in_both_layouts(layout, dtype):
    r = run("conv2d", {"n": 2, "c": 3, "h": 9, "w": 11, "k": 4, "r": 3, "s": 3, "stride": 2, "padding": 1,
                       "layout": layout}, dtype)
    assert r.status == "ok", (r.error, r.metrics.get("traceback"))
    assert r.rel_error <= r.tolerance
    assert r.metrics["dimension_numbers"].startswith(layout)


@pytest.mark.parametrize("workload, params", [
    ("matmul", {"size": 32, "include_transfer": True}),
    ("saxpy", {"n": 1000, "include_transfer": True}),
    ("conv2d", {"n": 1, "c": 2, "h": 8, "w": 8, "k": 3, "r": 3, "s": 3, "include_transfer": True}),
])
def test_include_transfer_on_the_cpu_is_the_plain_case(workload, params):
    from gpubench.backends.transfer_wrap import HOST_NOTE

    r = run(workload, params)
    assert r.status == "ok", r.error
    assert r.metrics["include_transfer"] == HOST_NOTE


def test_include_transfer_copies_run_through_the_slots(backend):
    """What ``include_transfer`` does on a GPU, driven on the CPU device: each call uploads fresh inputs
    into the op's slots, computes on them and copies the output into host memory."""
    from dataclasses import replace

    from gpubench.backends.transfer_wrap import end_to_end

    backend, spec, device, params, inputs = built(backend, "saxpy", {"n": 5, "a": 2.0, "include_transfer": True})
    with backend.case_scope(spec, device):
        op = backend._ops_module("saxpy").build(backend, spec, params, inputs, device)
        accelerator = replace(device, kind="accelerator")  # not "cpu": the wrapper makes real copies
        wrapped = end_to_end(backend, spec, op, inputs, accelerator)
        slot = op.device_inputs["x"]
        wrapped.call()
        first = slot.value
        wrapped.call()
        assert slot.value is not first  # a new upload every call
        # Each call starts again from the host inputs, so y is a·x + y after any number of calls.
        np.testing.assert_allclose(wrapped.result(), 2.0 * inputs["x"] + inputs["y"], rtol=1e-6)
        assert "host→device" in wrapped.metrics["include_transfer"]


def test_include_transfer_of_an_op_whose_output_its_first_call_makes(backend):
    """The matmul op makes its output on its first call (the case's checked call), not when it is built: the
    end-to-end wrapper makes one, outside the timing, to size the host buffer it copies into."""
    from dataclasses import replace

    from gpubench.backends.transfer_wrap import end_to_end

    backend, spec, device, params, inputs = built(backend, "matmul", {"m": 4, "n": 3, "k": 5, "include_transfer": True})
    with backend.case_scope(spec, device):
        op = backend._ops_module("matmul").build(backend, spec, params, inputs, device)
        assert op.device_output() is None  # nothing ran at build time
        wrapped = end_to_end(backend, spec, op, inputs, replace(device, kind="accelerator"))
        wrapped.call()
        np.testing.assert_allclose(wrapped.result(), inputs["a"] @ inputs["b"], rtol=1e-5)


def test_copy_in_and_copy_out_convert_bfloat16(backend):
    from gpubench.backends.jax_backend import DeviceSlot

    device = backend.resolve_device("cpu")
    values = np.array([1.0, -2.5, 0.15625], dtype=np.float32)
    slot = DeviceSlot(None, "bfloat16")
    backend.copy_in(slot, values, device)
    assert str(slot.value.dtype) == "bfloat16"
    host = np.zeros(3, dtype=np.float32)
    backend.copy_out(slot, host, device)
    assert np.array_equal(host, values) and np.array_equal(backend.download(slot), values)


def test_tf32_and_missing_gpu_are_skips_with_reasons(backend):
    r = run("matmul", {"size": 16, "tf32": True})
    assert r.status == "skipped" and "tf32" in r.error
    if any(d.kind == "cuda" for d in backend.devices()):
        pytest.skip("this machine has a GPU")
    r = run("matmul", {"size": 16}, device="cuda")
    assert r.status == "skipped"
    # The reason is JAX's own ("Unknown backend cuda. Available backends are ['cpu']", or why a plug-in failed).
    assert r.error.startswith("jax: no cuda device found (") and len(r.error) > len("jax: no cuda device found ()")


_EVENTS: dict[str, list[str] | None] = {"log": None}


def _record_event(event, duration, **_):
    log = _EVENTS["log"]
    if log is not None:
        log.append(event)


@contextlib.contextmanager
def compile_events():
    """The JAX monitoring events (compilations among them) of the ``with`` block, as a list."""
    if not _EVENTS.get("registered"):
        # Registered once: older JAX releases have no way to unregister a listener.
        jax.monitoring.register_event_duration_secs_listener(_record_event)
        _EVENTS["registered"] = True
    log: list[str] = []
    _EVENTS["log"] = log
    try:
        yield log
    finally:
        _EVENTS["log"] = None


def test_ops_are_compiled_before_they_are_timed(backend):
    """No XLA compilation happens inside the calls the harness times (and the recorder does see one)."""
    backend, spec, device, params, inputs = built(backend, "conv2d",
                                                   {"n": 1, "c": 2, "h": 8, "w": 8, "k": 3, "r": 3, "s": 3})
    with backend.case_scope(spec, device):
        op = backend.build(spec, params, inputs, device)
        with compile_events() as events:
            op.timer(op.call, 5)
        assert not [e for e in events if "compile" in e], events
        with compile_events() as events:
            backend.compile(lambda x: x * 3.0 + 1.0, op.device_inputs["x"].value)
        assert [e for e in events if "compile" in e]


def test_synchronize_waits_for_every_call_not_just_the_last(backend):
    """JAX dispatches asynchronously on the CPU too: after synchronize, every queued call has finished."""
    backend, spec, device, params, inputs = built(backend, "matmul", {"size": 384})
    with backend.case_scope(spec, device):
        op = backend.build(spec, params, inputs, device)
        outputs = []
        for _ in range(12):
            op.call()
            outputs.append(op.device_output())
        backend.synchronize(device)
        assert all(o.is_ready() for o in outputs)
        assert len({id(o) for o in outputs}) == 12


# --- transfer -------------------------------------------------------------------------------------
def has_gpu(backend) -> bool:
    return any(d.kind == "cuda" for d in backend.devices())


def test_d2d_transfer_is_bitwise_correct():
    r = run("transfer", {"bytes": 1 << 20, "direction": "d2d"})
    assert r.status == "ok", (r.error, r.metrics.get("traceback"))
    assert r.rel_error == 0 and r.gbps > 0
    assert r.metrics["copy"].startswith("compiled copy")


def _pointer(a) -> int:
    return a.ctypes.data if isinstance(a, np.ndarray) else a.unsafe_buffer_pointer()


@pytest.mark.parametrize("direction, device", [("d2d", "cpu"), ("h2d", "cuda"), ("d2h", "cuda"), ("d2d", "cuda")])
def test_every_transfer_call_moves_the_bytes(backend, direction, device):
    """Each call writes a new buffer (never the source's, never the previous call's) with the source's data."""
    if device == "cuda" and not has_gpu(backend):
        pytest.skip("no cuda device for JAX here")
    wl = get_workload("transfer")
    params = wl.normalize_params({"bytes": 4096, "direction": direction})
    spec = CaseSpec.make("transfer", "jax", device, "float32", params)
    dev = backend.resolve_device(device)
    inputs = wl.make_inputs(params, "float32", np.random.default_rng(0))
    with backend.case_scope(spec, dev):
        op = backend.build(spec, params, inputs, dev)
        copier = op.call
        destinations = []
        for _ in range(3):
            op.call()
            destinations.append(copier.last.value)
        backend.synchronize(dev)
        pointers = {_pointer(d) for d in destinations}
        assert len(pointers) == 3 and _pointer(copier.src) not in pointers
        for d in destinations:
            assert np.asarray(d).view(np.uint8).tobytes() == inputs["src"].view(np.uint8).tobytes()
        # d2h lands in host memory (a new NumPy array each call), h2d and d2d on the device itself.
        if direction == "d2h":
            assert all(isinstance(d, np.ndarray) for d in destinations)
        else:
            expected = "cpu" if device == "cpu" else "gpu"
            assert {d.platform for d in destinations[-1].devices()} == {expected}
        if direction == "h2d":
            # No cache and no alias: a change of the host source shows in the next copy, not the last.
            before = destinations[-1]
            copier.src[:] = 7.0
            op.call()
            backend.synchronize(dev)
            assert np.all(np.asarray(copier.last.value) == 7.0)
            assert np.array_equal(np.asarray(before), inputs["src"])


def test_jax_caches_the_host_copy_it_made_and_a_fresh_array_is_read_again():
    """The JAX behaviour the pageable d2h relies on, shown with real JAX on the CPU.

    A GPU array must be copied to be read; on the CPU a sub-byte (int4) array must too, so it behaves
    as a GPU array does: the first read copies and JAX keeps the copy (``_npy_value``), every later read
    returns it (no bytes move; jaxlib's ``device_put`` to another client's device reads the same cached
    value). :func:`fresh_host_read` reads a new ``jax.Array`` over the same buffer each time: a new copy.
    """
    from gpubench.backends.jax_backend.transfer import fresh_host_read

    cached = jax.numpy.arange(16, dtype=jax.numpy.int4)
    first = np.asarray(cached)
    assert np.asarray(cached) is first and cached._npy_value is not None  # JAX's cache: nothing is copied again
    src = jax.numpy.arange(16, dtype=jax.numpy.int4)
    read = fresh_host_read(jax, src)
    a, b = read(), read()
    assert a is not b and not np.shares_memory(a, b)  # a real copy each call
    assert np.array_equal(a, first) and np.array_equal(b, first)
    assert src._npy_value is None  # the source itself was never read, so never cached


@pytest.fixture
def pretend_gpu(backend, monkeypatch):
    """JAX's CPU device standing in for a CUDA device: the adapter's GPU paths, run by real JAX here.

    Its L2 reads as 1 MiB (no CUDA driver here), so a cold-cache flush writes 2 MiB.
    """
    from gpubench.backends.jax_backend import JAX_DTYPES
    from gpubench.ops import DeviceInfo

    if has_gpu(backend):
        pytest.skip("this machine has a GPU: the GPU paths run for real")
    device = DeviceInfo("cuda:0", "NVIDIA H100 80GB HBM3", "cuda", dtypes=JAX_DTYPES)
    monkeypatch.setitem(backend._jax_devices, "cuda:0", jax.devices("cpu")[0])
    monkeypatch.setattr(backend, "_devices", [*backend.devices(), device])
    monkeypatch.setattr("gpubench.cacheflush.gpu_l2_cache", lambda ordinal, name="", lib=None: (1 << 20, "test L2"))
    return backend, device


@pytest.mark.parametrize("direction, memory, blocks", [("h2d", "pageable", True), ("d2h", "pageable", True),
                                                       ("d2d", None, False)])
def test_gpu_copies_move_the_bytes_and_pageable_ones_block_the_host(pretend_gpu, direction, memory, blocks):
    backend, device = pretend_gpu
    params = {"bytes": 4096, "direction": direction} | ({"memory": memory} if memory else {})
    r = run("transfer", params, device="cuda:0")
    assert r.status == "ok" and r.rel_error == 0, (r.error, r.metrics.get("traceback"))
    wl = get_workload("transfer")
    p = wl.normalize_params(params)
    spec = CaseSpec.make("transfer", "jax", "cuda:0", "float32", p)
    inputs = wl.make_inputs(p, "float32", np.random.default_rng(0))
    with backend.case_scope(spec, device):
        op = backend.build(spec, p, inputs, device)
        assert op.blocks_host is blocks
        if direction == "d2h":
            assert "new jax.Array" in op.metrics["copy"]
            op.call()
            first = op.call.last.value
            op.call()
            assert isinstance(first, np.ndarray) and op.call.last.value is not first  # a new host array each call
            assert op.result().view(np.uint8).tobytes() == inputs["src"].view(np.uint8).tobytes()


def test_gpu_cases_keep_host_samples(pretend_gpu):
    """JAX on a GPU times with the host clock; it also notes when the calls were dispatched, so a case whose
    device waited for them can be flagged launch_bound."""
    r = run("saxpy", {"n": 256}, device="cuda:0")
    assert r.status == "ok", (r.error, r.metrics.get("traceback"))
    assert r.clock == "perf_counter" and len(r.host_samples) == len(r.samples) >= 3
    assert all(0 < h <= s * (1 + 1e-9) for h, s in zip(r.host_samples, r.samples))  # issuing is part of the span
    cpu = run("saxpy", {"n": 256})
    assert cpu.host_samples == ()  # the CPU device's time is the host's own


def test_dispatch_timer_notes_the_issue_time():
    from gpubench.backends.jax_backend import DispatchTimer

    t = {"now": 0.0}
    events = []

    def call():
        events.append("call")
        t["now"] += 1.0  # dispatch costs the host 1 s

    def sync():
        events.append("sync")
        t["now"] += 5.0  # the device finishes 5 s after the last dispatch

    timer = DispatchTimer(sync, clock=lambda: t["now"])
    total = timer(call, 3)
    assert events == ["sync", "call", "call", "call", "sync"]
    assert total == 8.0 and timer.last_host_s == 3.0


def test_gpu_cold_cache_cases_have_a_flusher(pretend_gpu):
    backend, device = pretend_gpu
    r = run("saxpy", {"n": 4096, "cache": "cold"}, device="cuda:0")
    assert r.status == "ok", (r.error, r.metrics.get("traceback"))
    assert r.metrics["cache_flush_bytes"] == 2 << 20 and r.metrics["llc_source"] == "test L2"
    flusher = backend.cache_flusher(device)
    before = flusher.buffer.value
    flusher.flush()
    flusher.flush()
    backend.synchronize(device)
    out = np.asarray(flusher.buffer.value)
    assert out.nbytes == flusher.nbytes == 2 << 20 and np.all(out == 3)  # once when built, twice here
    assert backend._latest["cuda:0"] is flusher.buffer.value  # the timer's opening synchronization waits for it
    assert before.is_deleted()  # donated: XLA updated the buffer in place
    flusher.close()


def aligned_array(n: int) -> np.ndarray:
    """``n`` random float32 values at a 64-byte-aligned address."""
    buf = np.empty(n * 4 + 64, np.uint8)
    start = (-buf.ctypes.data) % 64
    out = buf[start:start + n * 4].view(np.float32)
    out[:] = np.random.default_rng(0).random(n, dtype=np.float32)
    return out


@pytest.mark.parametrize("direction, memory", [("h2d", "pageable"), ("d2h", "pageable"), ("d2h", "pinned")])
def test_host_copies_on_the_cpu_are_skips_because_jax_moves_nothing(backend, direction, memory):
    """Why h2d and d2h are skipped on the CPU device: JAX's API shares host memory there instead of copying.

    If the first two assertions start failing, JAX copies there now: h2d/d2h on the CPU can run again.
    """
    from gpubench.backends.jax_backend.transfer import CPU_HOST_COPY

    host = aligned_array(1024)
    wrapped = jax.device_put(host, jax.devices("cpu")[0], may_alias=False)
    assert wrapped.unsafe_buffer_pointer() == host.ctypes.data  # h2d: a wrap, not a copy
    owned = backend.upload(host, backend.resolve_device("cpu"))
    assert np.asarray(owned).ctypes.data == owned.unsafe_buffer_pointer()  # d2h: a view, not a copy
    r = run("transfer", {"bytes": 4096, "direction": direction, "memory": memory})
    assert r.status == "skipped" and r.error == CPU_HOST_COPY.format(direction=direction)


def test_uploads_are_never_aliases_of_host_memory(backend):
    device = backend.resolve_device("cpu")
    host = aligned_array(1024)
    for dtype in (None, "float32", "bfloat16"):
        x = backend.upload(host, device, dtype)
        assert x.unsafe_buffer_pointer() != host.ctypes.data
    x = backend.upload(host, device)
    host[:] = 3.0
    assert not np.any(np.asarray(x) == 3.0)


# --- MNIST ----------------------------------------------------------------------------------------
MNIST_SMALL = {"epochs": 3, "train_size": 2000, "eval_size": 1000, "target_accuracy": 0.85}


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_mnist_mlp_lands_within_one_point_of_the_numpy_reference(optimizer):
    r = run_case(CaseSpec.make("mnist", "jax", "cpu", "float32",
                               {**MNIST_SMALL, "optimizer": optimizer, "accuracy_tolerance": 0.01}))
    assert r.status == "ok", (r.error, r.metrics.get("traceback"))
    m = r.metrics
    assert r.rel_error <= 0.01 and m["final_accuracy"] >= 0.85
    assert len(m["curve"]) == 3 and len(r.samples) == 2 and r.number == 1
    assert m["curve"][-1]["train_loss"] < m["curve"][0]["train_loss"]
    assert m["time_to_target_s"] is not None and r.clock == "perf_counter"


def test_mnist_cnn_lands_within_one_point_of_the_numpy_reference():
    r = run_case(CaseSpec.make("mnist", "jax", "cpu", "float32",
                               {"model": "cnn", "optimizer": "adam", "epochs": 1, "train_size": 1000,
                                "eval_size": 1000, "accuracy_tolerance": 0.01, "target_accuracy": 0.5}))
    assert r.status == "ok", (r.error, r.metrics.get("traceback"))
    assert r.rel_error <= 0.01


def first_max_pool(x):
    """The reference's 2×2 max-pool, its gradient sent to the first maximum of each window only.

    The reference's own mask sends it to every tied maximum (blank MNIST regions give four equal
    values, relu(bias), once a bias turns positive); XLA, like cuDNN and oneDNN, picks one.
    """
    c, n, h, w = x.shape
    xr = x.reshape(c, n, h // 2, 2, w // 2, 2)
    out = xr.max(axis=(3, 5))
    windows = xr.transpose(0, 1, 2, 4, 3, 5).reshape(c, n, h // 2, w // 2, 4)
    first = np.zeros(windows.shape, dtype=bool)
    np.put_along_axis(first, windows.argmax(axis=-1)[..., None], True, axis=-1)
    return out, first.reshape(c, n, h // 2, w // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5)


@pytest.mark.parametrize("model, optimizer", [("mlp", "sgd"), ("mlp", "adam"), ("cnn", "sgd")])
def test_mnist_step_is_the_reference_math_in_float64(backend, monkeypatch, model, optimizer):
    """Without dropout the JAX model, gradients and optimizer are the NumPy reference's: the same curve to 1e-12."""
    import gpubench.workloads.mnist_reference as reference_loop
    from gpubench.workloads.training import run_training

    monkeypatch.setattr(reference_loop, "_maxpool2", first_max_pool)
    params = {"model": model, "optimizer": optimizer, "epochs": 2, "train_size": 300, "eval_size": 200,
              "batch_size": 64, "dropout": 0.0}  # 64 does not divide 300: the last, smaller batch too
    backend, spec, device, params, inputs = built(backend, "mnist", params, "float64")
    reference = run_training(reference_loop.ArraySession(np, inputs, params, np.float64,
                                                         reference_loop.numpy_uniform(1)), params["epochs"])
    with backend.case_scope(spec, device):
        session = backend.build(spec, params, inputs, device)
        curve = run_training(session, params["epochs"])
        again = run_training(session, params["epochs"])  # start() resets weights and optimizer state
        session.close()
    for ours, ref in zip(curve, reference):
        assert ours["train_loss"] == pytest.approx(ref["train_loss"], rel=1e-12)
        assert ours["eval_loss"] == pytest.approx(ref["eval_loss"], rel=1e-12)
        assert ours["eval_accuracy"] == ref["eval_accuracy"]
    assert [c["train_loss"] for c in again] == [c["train_loss"] for c in curve]


def test_mnist_dropout_masks_are_fixed_per_run(backend):
    from gpubench.workloads.training import run_training

    params = {"epochs": 1, "train_size": 500, "eval_size": 200}
    backend, spec, device, params, inputs = built(backend, "mnist", params)
    with backend.case_scope(spec, device):
        session = backend.build(spec, params, inputs, device)
        first, second = run_training(session, 1), run_training(session, 1)
        session.close()
    assert first[0]["train_loss"] == second[0]["train_loss"]


def test_mnist_epochs_never_compile(backend):
    params = {"epochs": 2, "train_size": 300, "eval_size": 100, "optimizer": "adam"}
    backend, spec, device, params, inputs = built(backend, "mnist", params)
    with backend.case_scope(spec, device):
        session = backend.build(spec, params, inputs, device)
        session.start()
        with compile_events() as events:
            session.train_epoch(0)
            session.train_epoch(1)
            session.evaluate()
        session.close()
    assert not [e for e in events if "compile" in e], events


def test_mnist_session_reads_no_clock_of_its_own(backend):
    """The workload owns the epoch clock: the JAX session supplies start/train_epoch/evaluate and times nothing."""
    from gpubench.workloads.training import TrainingSession

    module = backend._ops_module("mnist")
    assert issubclass(module.JaxSession, TrainingSession)
    source = open(module.__file__, encoding="utf-8").read()
    assert "perf_counter" not in source and "import time" not in source


def test_mnist_in_half_precision_is_a_skip_with_reason():
    r = run("mnist", {"epochs": 1, "train_size": 100, "eval_size": 100}, "float16")
    assert r.status == "skipped" and r.error == "jax: mnist trains in float32 or float64, not float16"


# --- discovery and environment --------------------------------------------------------------------
def test_devices_and_environment(backend):
    devices = backend.devices()
    assert devices[0].id == "cpu" and devices[0].kind == "cpu"
    assert all(d.id.startswith("cuda:") and d.kind == "cuda" for d in devices[1:])
    assert {"float64", "float32", "float16", "bfloat16"} <= set(devices[0].dtypes)
    env = backend.environment()
    import jaxlib

    assert env["jax"] == jax.__version__ and env["jaxlib"] == jaxlib.__version__
    assert env["jax_platform"] in ("cpu", "gpu", "cuda") and "cpu" in " ".join(env["jax_devices"]).lower()
    assert set(backend.workloads()) >= {"matmul", "saxpy", "conv2d", "transfer", "mnist"}


def test_the_adapter_imports_jax_only_when_loaded():
    import subprocess
    import sys

    code = ("import sys; from gpubench.backends import get_backend; b = get_backend('jax'); b.workloads(); "
            "print('jax' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
