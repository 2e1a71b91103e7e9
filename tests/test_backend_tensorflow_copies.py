"""TensorFlow's copies, precision switch and fused saxpy, with the real TensorFlow (CPU build).

There is no GPU here: ``/GPU:0`` soft-places onto the CPU, so the copies below run for real but
between host buffers. What decides whether a GPU copy moves bytes is checked as TensorFlow's eager
runtime decides it: a copy of a tensor *handle* to a device is cached on that handle as a mirror
and reused (``LocalEagerCopyToDevice`` returns early when ``HasLocalMirror``), so every timed copy
must start from a new handle. The tests record the ``tf.identity`` calls and check exactly that.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from gpubench.backends import get_backend  # noqa: E402
from gpubench.backends.base import DeviceInfo  # noqa: E402
from gpubench.backends.tensorflow_backend import HOST, HostSlot  # noqa: E402
from gpubench.records import CaseSpec  # noqa: E402
from gpubench.workloads import get_workload  # noqa: E402

GPU = DeviceInfo("cuda:0", "soft-placed on the CPU", "cuda", dtypes=("float64", "float32", "float16", "bfloat16"))
CONV = dict(n=2, c=3, h=8, w=8, k=4, r=3, s=3, padding=1, layout="NHWC")  # the CPU kernel is NHWC-only


@pytest.fixture(scope="module")
def backend():
    b = get_backend("tensorflow")
    b.load()
    return b


class RecordingTF:
    """The real ``tf`` module, recording every ``tf.identity`` with the device scope it ran in."""

    def __init__(self):
        self.calls: list[tuple[str, object, object]] = []
        self._scopes: list[str] = []

    def __getattr__(self, name):
        return getattr(tf, name)

    @contextlib.contextmanager
    def device(self, name):
        self._scopes.append(name)
        with tf.device(name):
            yield
        self._scopes.pop()

    def identity(self, value):
        out = tf.identity(value)
        self.calls.append((self._scopes[-1] if self._scopes else "", value, out))  # objects kept: no id reuse
        return out


def _bound(backend, workload, params, dtype="float32", device=GPU):
    wl = get_workload(workload)
    params = wl.normalize_params(params)
    spec = CaseSpec.make(workload, "tensorflow", device.id, dtype, params)
    inputs = wl.make_inputs(params, dtype, np.random.default_rng(5))
    return wl, spec, params, inputs


@pytest.mark.parametrize("direction", ["h2d", "d2h"])
def test_every_timed_copy_starts_from_a_new_handle(backend, monkeypatch, direction):
    from gpubench.backends.tensorflow_backend import transfer

    wl, spec, params, inputs = _bound(backend, "transfer", {"bytes": 4096, "direction": direction,
                                                             "memory": "pageable"})
    spy = RecordingTF()
    monkeypatch.setattr(backend, "tf", spy)
    op = transfer.build(backend, spec, params, inputs, GPU)
    assert op.blocks_host  # pageable: the host waits for each copy, so it is never called launch_bound
    spy.calls.clear()
    for _ in range(4):
        op.call()
    source, target = ("/CPU:0", "/GPU:0") if direction == "h2d" else ("/GPU:0", "/CPU:0")
    assert len(spy.calls) == 8
    first, second = spy.calls[0::2], spy.calls[1::2]
    assert all(scope == source for scope, _, _ in first) and all(scope == target for scope, _, _ in second)
    # The cross-device identity of each call copies the handle made in the same call, never a reused one:
    for (_, _, alias), (_, copied, _) in zip(first, second):
        assert copied is alias
    assert len({id(copied) for _, copied, _ in second}) == 4
    assert all(copied is not first[0][1] for _, copied, _ in second)
    monkeypatch.setattr(backend, "tf", tf)
    np.testing.assert_array_equal(op.result().view(np.uint8), np.ascontiguousarray(inputs["src"]).view(np.uint8))


def test_copy_in_assigns_a_new_host_handle_every_call(backend, monkeypatch):
    with tf.device("/GPU:0"):
        var = tf.Variable(tf.zeros((3, 4), tf.bfloat16))
    host_values = np.arange(12, dtype=np.float32).reshape(3, 4)
    host = backend.host_input(var, host_values, GPU)
    assert host.dtype == tf.bfloat16 and "CPU" in host.device  # converted once, before any timing
    spy = RecordingTF()
    monkeypatch.setattr(backend, "tf", spy)
    casts = []
    monkeypatch.setattr(spy, "cast", lambda *a, **k: casts.append(a) or tf.cast(*a, **k), raising=False)
    for _ in range(3):
        var.assign(tf.zeros_like(var))
        backend.copy_in(var, host, GPU)
        np.testing.assert_array_equal(tf.cast(var, tf.float32).numpy(), host_values)
    assert casts == []
    assert [scope for scope, _, _ in spy.calls] == [HOST] * 3
    assert len({id(out) for _, _, out in spy.calls}) == 3


def test_copy_in_refuses_an_immutable_tensor(backend):
    t = tf.zeros((2,))
    with pytest.raises(TypeError, match="tf.Variable"):
        backend.copy_in(t, backend.host_input(t, np.ones(2, np.float32), GPU), GPU)


@pytest.mark.parametrize("make", ["tensor", "variable"])
def test_copy_out_copies_a_new_handle_to_the_host_every_call(backend, monkeypatch, make):
    values = np.random.default_rng(0).random((4, 5)).astype(np.float32)
    with tf.device("/GPU:0"):
        handle = tf.constant(values) if make == "tensor" else tf.Variable(values)
    slot = backend.host_output(handle, GPU)
    assert isinstance(slot, HostSlot)
    spy = RecordingTF()
    monkeypatch.setattr(backend, "tf", spy)
    for _ in range(3):
        backend.copy_out(handle, slot, GPU)
        assert "CPU" in slot.tensor.device
    crossing = spy.calls[1::2]
    assert [scope for scope, _, _ in crossing] == [HOST] * 3
    assert len({id(copied) for _, copied, _ in crossing}) == 3 and all(c is not handle for _, c, _ in crossing)
    np.testing.assert_array_equal(backend.host_array(slot), values)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("workload, params", [("conv2d", CONV), ("matmul", {"m": 12, "n": 9, "k": 7}),
                                              ("saxpy", {"n": 1001})])
def test_include_transfer_refills_the_device_inputs_every_call(backend, workload, params, dtype):
    """On a device with its own memory the end-to-end op copies in, computes, and copies out."""
    wl, spec, params, inputs = _bound(backend, workload, dict(params, include_transfer=True), dtype)
    ref = wl.reference(inputs, params)
    with backend.case_scope(spec, GPU):
        op = wl.bind(backend.build(spec, params, inputs, GPU), params, dtype)
        assert "host→device" in op.metrics["include_transfer"]
        for _ in range(2):
            for handle in op.device_inputs.values():
                handle.assign(tf.zeros_like(handle))  # stale device data: the call must copy the host input again
            op.call()
            rel, tol = wl.check(op.result(), ref, params, dtype)
            assert rel <= tol


def test_conv2d_include_transfer_is_no_longer_refused(backend):
    """It used to be skipped on every GPU: the adapter had no copy_in/copy_out."""
    wl, spec, params, inputs = _bound(backend, "conv2d", dict(CONV, include_transfer=True))
    op = backend.build(spec, params, inputs, GPU)
    assert op.timer.name == "perf_counter"
    assert "x host→device" in op.metrics["include_transfer"]


@pytest.mark.parametrize("initial", [True, False])
def test_tf32_switch_is_restored_after_each_case(backend, initial):
    """A tf32 case then a float32 case: each sees its own setting and the process keeps its own."""
    before = tf.config.experimental.tensor_float_32_execution_enabled()
    tf.config.experimental.enable_tensor_float_32_execution(initial)
    try:
        for tf32 in (True, False):
            wl, spec, params, inputs = _bound(backend, "matmul", {"size": 8, "tf32": tf32})
            with backend.case_scope(spec, GPU):
                backend.build(spec, params, inputs, GPU)
                assert tf.config.experimental.tensor_float_32_execution_enabled() is tf32
            assert tf.config.experimental.tensor_float_32_execution_enabled() is initial
    finally:
        tf.config.experimental.enable_tensor_float_32_execution(before)


def test_keras_float_type_is_restored_after_a_case(backend):
    keras = tf.keras
    before = keras.backend.floatx()
    spec = CaseSpec.make("mnist", "tensorflow", "cpu", "float64", {})
    with backend.case_scope(spec, backend.resolve_device("cpu")):
        keras.backend.set_floatx("float64")
    assert keras.backend.floatx() == before


def test_saxpy_is_one_fused_xla_kernel_updating_y_in_place(backend):
    """The compiled HLO: a single loop fusion, its output aliased to the variable y (3n elements moved)."""
    wl, spec, params, inputs = _bound(backend, "saxpy", {"n": 4099}, device=backend.resolve_device("cpu"))
    op = backend.build(spec, params, inputs, backend.resolve_device("cpu"))
    assert op.metrics["fusion"].startswith("xla: one fused kernel")
    op.call()
    np.testing.assert_allclose(op.result(), inputs["y"] + params["a"] * inputs["x"], rtol=1e-6)
    hlo = op.call.experimental_get_compiler_ir()(stage="optimized_hlo")
    entry = hlo[hlo.index("ENTRY"):]
    assert entry.count(" fusion(") == 1 and "kind=kLoop" in entry
    assert "multiply(" not in entry and "add(" not in entry  # nothing outside the fusion
    assert "input_output_alias={ {}: (2," in hlo or "input_output_alias" in hlo
