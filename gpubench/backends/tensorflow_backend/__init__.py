"""TensorFlow on the CPU (oneDNN/Eigen) and on CUDA GPUs, ops traced with ``tf.function``.

TensorFlow's ``/GPU:N`` is gpubench's ``cuda:N``. Memory growth is switched on for every GPU
before first use, so TensorFlow does not reserve the whole GPU beside other backends. GPU work is
asynchronous: the host timer brackets each loop with ``tf.test.experimental.sync_devices()``.
"""

from __future__ import annotations

import os

from gpubench.backends.base import Backend, DeviceInfo
from gpubench.errors import Unavailable, require

TF_DTYPES = ("float64", "float32", "float16", "bfloat16")


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

    def download(self, tensor):
        """Wait for the tensor and return a NumPy copy (bfloat16 widened to float32)."""
        tf = self.tf
        if hasattr(tensor, "read_value"):
            tensor = tensor.read_value()
        if tensor.dtype == tf.bfloat16:
            tensor = tf.cast(tensor, tf.float32)
        return tensor.numpy().copy()

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
