"""ONNX Runtime: the engine many teams deploy models on, on its CPU and CUDA execution providers.

A backend plug-in registered through the public ``gpubench.backends`` entry point, like any
third-party one; it implements the ``inference`` workload only (ONNX Runtime runs models, not
single kernels). The models are exported from gpubench's torch definitions with ``torch.onnx``
(:mod:`gpubench.backends.onnxruntime_backend.export`, once per model, seed and dtype), and run
with every graph optimization ONNX Runtime has (``ORT_ENABLE_ALL``: constant folding, node
fusions, layout transformations), as a deployment would.

* **Devices.** ``cpu`` is the CPU execution provider (MLAS, all cores by default). ``cuda:N`` is
  the CUDA execution provider on GPU N, where ``onnxruntime-gpu`` is installed (it replaces the
  ``onnxruntime`` wheel: ``pip install 'gpubench[onnxruntime-gpu]'``); without it a ``cuda`` case
  is skipped, naming the providers this install has. A session whose CUDA provider fails to load
  (ONNX Runtime then quietly runs on the CPU) is a skip too, never a mislabelled CPU result.
* **dtypes.** float32 on the CPU (the CPU provider's float16 kernels cover few operators);
  float32 and float16 on CUDA. bfloat16 is not offered.
* **Timing.** ``InferenceSession.run`` returns when the answer is ready, and a CUDA call ends with
  the binding's ``synchronize_outputs()``, so the host clock is the clock.
* **Memory.** ONNX Runtime exposes no allocator statistics to Python: peak memory is recorded as
  not available, with that reason.
"""

from __future__ import annotations

from typing import Any

from gpubench.backends.base import Backend, DeviceInfo
from gpubench.errors import Unavailable, require

CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"


def nvml_gpus() -> list[dict[str, Any]]:
    """Name and memory of every NVIDIA GPU NVML lists (empty without a driver)."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no driver, no library: no GPUs to name
        return []
    out = []
    try:
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(handle)
            out.append({"name": name.decode() if isinstance(name, bytes) else str(name),
                        "memory": int(pynvml.nvmlDeviceGetMemoryInfo(handle).total)})
    except Exception:  # noqa: BLE001
        pass
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass
    return out


class OnnxruntimeBackend(Backend):
    """ONNX Runtime sessions on ``cpu`` (CPU execution provider) or ``cuda:N`` (CUDA execution provider)."""

    name = "onnxruntime"
    device_kinds = ("cpu", "cuda")
    extra = "onnxruntime"
    ops_package = "gpubench.backends.onnxruntime_backend"
    description = "ONNX Runtime (CPU and CUDA execution providers), models exported with torch.onnx"

    def __init__(self) -> None:
        self.ort = None
        self._devices: list[DeviceInfo] | None = None

    def load(self) -> None:
        """Import ``onnxruntime``."""
        if self.ort is None:
            self.ort = require("onnxruntime", "onnxruntime", self.extra)

    def providers(self) -> list[str]:
        """The execution providers this install of ONNX Runtime has."""
        return list(self.ort.get_available_providers())

    def devices(self) -> list[DeviceInfo]:
        """The CPU, and each GPU when the CUDA execution provider is installed."""
        if self._devices is not None:
            return self._devices
        import os

        from gpubench.envinfo import cpu_model

        out = [DeviceInfo("cpu", cpu_model(), "cpu", dtypes=("float32",),
                          details={"provider": CPU_PROVIDER, "threads": os.cpu_count()})]
        if CUDA_PROVIDER in self.providers():
            gpus = nvml_gpus() or [{"name": "CUDA device 0", "memory": None}]
            for i, gpu in enumerate(gpus):
                out.append(DeviceInfo(f"cuda:{i}", gpu["name"], "cuda", memory_bytes=gpu["memory"],
                                      dtypes=("float32", "float16"), details={"provider": CUDA_PROVIDER}))
        self._devices = out
        return out

    def resolve_device(self, wanted: str) -> DeviceInfo:
        """As :meth:`Backend.resolve_device`; a ``cuda`` device without the CUDA provider is a skip saying so."""
        if wanted.split(":")[0] == "cuda" and CUDA_PROVIDER not in self.providers():
            raise Unavailable(f"onnxruntime: no CUDA execution provider in this install (providers: "
                              f"{', '.join(self.providers())}) — pip install 'gpubench[onnxruntime-gpu]'")
        return super().resolve_device(wanted)

    @staticmethod
    def index(device: DeviceInfo) -> int:
        """CUDA ordinal of a ``cuda:N`` device."""
        return int(device.id.split(":")[1]) if ":" in device.id else 0

    def environment(self) -> dict[str, Any]:
        ort = self.ort
        return {"onnxruntime": ort.__version__, "onnxruntime_providers": self.providers(),
                "onnxruntime_device": ort.get_device()}
