"""TensorFlow on the CPU (oneDNN/Eigen) and on CUDA GPUs, ops traced with ``tf.function``.

TensorFlow's ``/GPU:N`` is gpubench's ``cuda:N``. Memory growth is switched on for every GPU
before first use, so TensorFlow does not reserve the whole GPU beside other backends. GPU work is
asynchronous: the host timer brackets each loop with ``tf.test.experimental.sync_devices()``.

**Copies between host and GPU.** TensorFlow's eager runtime *mirrors* a tensor: the first time a
tensor handle is copied to another device, the copy is cached on that handle and every later copy
of the same handle to that device reuses it without moving a byte (``LocalEagerCopyToDevice`` in
``tensorflow/core/common_runtime/eager/execute.cc`` returns the handle when
``HasLocalMirror(device)``). A timed copy must therefore start from a *new* handle each call:
:func:`fresh_copy` first makes one with ``tf.identity`` on the source's own device (a new handle
on the same buffer, no bytes moved), then copies that handle with ``tf.identity`` on the target.
"""

from __future__ import annotations

import contextlib
import os
import sys

import numpy as np

from gpubench.backends.base import Backend, DeviceInfo
from gpubench.errors import Unavailable, require

TF_DTYPES = ("float64", "float32", "float16", "bfloat16")


HOST = "/CPU:0"


def fresh_copy(tf, tensor, source: str, target: str):
    """Copy ``tensor`` (on device ``source``) to device ``target``, really moving its bytes every call.

    ``tf.identity`` on ``source`` returns a new handle on the same buffer (no copy, no mirrors
    yet); ``tf.identity`` of that handle on ``target`` then has no cached mirror to reuse and copies.
    """
    with tf.device(source):
        alias = tf.identity(tensor)
    with tf.device(target):
        return tf.identity(alias)


class HostSlot:
    """The host side of a ``copy_out``: TensorFlow tensors are immutable, so each copy replaces ``tensor``."""

    def __init__(self, tensor):
        self.tensor = tensor


class TensorflowBackend(Backend):
    """TensorFlow tensors on ``cpu`` or ``cuda:N``."""

    name = "tensorflow"
    device_kinds = ("cpu", "cuda")
    extra = "tensorflow"
    ops_package = "gpubench.backends.tensorflow_backend"
    description = "TensorFlow (CPU and CUDA), tf.function"

    def __init__(self) -> None:
        self.tf = None
        self._devices: list[DeviceInfo] | None = None

    def load(self) -> None:
        """Import TensorFlow (quietly) and enable memory growth on every GPU."""
        if self.tf is not None:
            return
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        tf = require("tensorflow", "tensorflow", self.extra)
        try:
            gpus = tf.config.list_physical_devices("GPU")
        except Exception as exc:  # noqa: BLE001 - a broken CUDA install must read as a reason
            raise Unavailable(f"tensorflow: listing GPUs failed: {exc}") from exc
        for gpu in gpus:
            try:
                tf.config.experimental.set_memory_growth(gpu, True)
            except RuntimeError:
                pass  # the GPU was already initialized (growth must be set before first use)
        self.tf = tf

    def devices(self) -> list[DeviceInfo]:
        """The CPU and every GPU TensorFlow sees."""
        if self._devices is not None:
            return self._devices
        from gpubench.envinfo import cpu_model

        tf = self.tf
        out = [DeviceInfo("cpu", cpu_model(), "cpu", dtypes=TF_DTYPES,
                          details={"intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads()})]
        for gpu in tf.config.list_physical_devices("GPU"):
            index = int(gpu.name.rsplit(":", 1)[-1])
            info = tf.config.experimental.get_device_details(gpu)
            cc = info.get("compute_capability")
            out.append(DeviceInfo(f"cuda:{index}", info.get("device_name", gpu.name), "cuda", dtypes=TF_DTYPES,
                                  details={"capability": f"{cc[0]}.{cc[1]}" if cc else None}))
        self._devices = out
        return out

    @staticmethod
    def tf_device(device: DeviceInfo) -> str:
        """TensorFlow's name of ``device``: ``/CPU:0`` or ``/GPU:N``."""
        if device.kind == "cuda":
            return f"/GPU:{device.id.split(':')[1]}"
        return "/CPU:0"

    def upload(self, array, device, dtype=None):
        """Copy a host array onto ``device`` as ``dtype`` (exact: host values are representable)."""
        tf = self.tf
        with tf.device(self.tf_device(device)):
            t = tf.identity(tf.convert_to_tensor(array))
            if dtype is not None and t.dtype.name != dtype:
                t = tf.cast(t, getattr(tf, dtype))
        return t

    @contextlib.contextmanager
    def case_scope(self, spec, device):
        """Restore TensorFlow's TF32 switch and Keras' float type (MNIST sets it) after each case."""
        tf = self.tf
        tf32 = tf.config.experimental.tensor_float_32_execution_enabled()
        # Keras is imported only by cases that use it (MNIST); otherwise nothing can change its state.
        keras = tf.keras if spec.workload == "mnist" else sys.modules.get("keras")
        floatx = keras.backend.floatx() if keras is not None and hasattr(keras, "backend") else None
        try:
            yield
        finally:
            tf.config.experimental.enable_tensor_float_32_execution(tf32)
            if floatx is not None:
                keras.backend.set_floatx(floatx)

    def download(self, tensor):
        """Wait for the tensor and return a NumPy copy (bfloat16 widened to float32)."""
        tf = self.tf
        if hasattr(tensor, "read_value"):
            tensor = tensor.read_value()
        if tensor.dtype == tf.bfloat16:
            tensor = tf.cast(tensor, tf.float32)
        return tensor.numpy().copy()

    # --- include_transfer: copies only, conversions outside the timing --------------------------
    def host_input(self, handle, array, device):
        """A host tensor holding ``array`` in the device variable's dtype (converted once, before timing)."""
        tf = self.tf
        with tf.device(HOST):
            t = tf.constant(np.ascontiguousarray(array))
            if t.dtype != handle.dtype:
                t = tf.cast(t, handle.dtype)
        return t

    def host_output(self, handle, device):
        """A :class:`HostSlot` for the output's host copy."""
        return HostSlot(None)

    def host_array(self, host):
        """The host copy as NumPy (bfloat16 widened to float32, after the timing)."""
        return self.download(host.tensor)

    def nbytes(self, handle):
        """Bytes of a tensor or variable."""
        return int(np.prod(handle.shape, dtype=np.int64)) * handle.dtype.size

    def copy_in(self, handle, host, device):
        """Copy a host tensor of the same dtype into device variable ``handle`` (a real copy every call).

        ``assign`` runs on the variable's device; its host input is a new handle each call
        (:func:`fresh_copy`'s first step), so the runtime copies it rather than reusing a mirror.
        """
        tf = self.tf
        if not isinstance(handle, tf.Variable):
            raise TypeError("tensorflow: copy_in needs a tf.Variable (tensors are immutable)")
        with tf.device(HOST):
            alias = tf.identity(host)
        handle.assign(alias)

    def copy_out(self, handle, host, device):
        """Copy device tensor or variable ``handle`` into ``host`` (a :class:`HostSlot`), a real copy every call."""
        tf = self.tf
        source = self.tf_device(device)
        if isinstance(handle, tf.Variable):
            with tf.device(source):
                handle = handle.read_value()
        host.tensor = fresh_copy(tf, handle, source, HOST)

    def synchronize(self, device):
        """Block until pending device work has finished (GPUs run asynchronously)."""
        if device.kind == "cuda":
            self.tf.test.experimental.sync_devices()

    def last_level_cache(self, device):
        """A GPU's L2 from the CUDA driver (TensorFlow does not report it), else its datasheet; the host's
        for the CPU."""
        if device.kind != "cuda":
            return super().last_level_cache(device)
        from gpubench.cacheflush import cuda_l2_bytes
        from gpubench.datasheet import device_facts

        size = cuda_l2_bytes(int(device.id.split(":")[1]))
        if size:
            return size, "CUDA driver L2 attribute"
        facts = device_facts(device.name)
        if facts and facts[1].get("l2_mb"):
            return int(facts[1]["l2_mb"]) * 10**6, f"datasheet {facts[0]} L2"
        return None

    def cache_flusher(self, device):
        """On a GPU, a traced ``assign_add`` over a float32 variable twice the L2 (the host timer's synchronization
        waits for it before the clock starts); on the CPU, the host flusher."""
        if device.kind != "cuda":
            return super().cache_flusher(device)
        from gpubench.cacheflush import flush_bytes
        from gpubench.ops import CacheFlusher

        cache = self.last_level_cache(device)
        if cache is None:
            return None
        tf = self.tf
        nbytes = flush_bytes(cache[0])
        name = self.tf_device(device)
        with tf.device(name):
            buffer = tf.Variable(tf.zeros([nbytes // 4], tf.float32))

        @tf.function
        def flush():
            with tf.device(name):
                buffer.assign_add(tf.ones_like(buffer))

        flush.get_concrete_function()
        return CacheFlusher(flush, nbytes, cache[0], cache[1])

    def environment(self):
        tf = self.tf
        build = tf.sysconfig.get_build_info()
        return {"tensorflow": tf.__version__, "tf_cuda": build.get("cuda_version"),
                "tf_cudnn": build.get("cudnn_version"),
                "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default")}
