"""CuPy on CUDA GPUs: cuBLAS through ``cupy.matmul`` and hand-written CUDA kernels from ``kernels/cuda``.

The ``.cu`` files ship in the wheel as ``gpubench.kernels`` and are compiled at run time by NVRTC
through :class:`cupy.RawModule`; their text goes into each record's spec hash. Every case is
timed with CUDA events on the current stream (:class:`gpubench.harness.DeviceEventTimer`).
"""

from __future__ import annotations

from gpubench.backends.base import Backend, DeviceInfo
from gpubench.errors import Unavailable, require

CUPY_DTYPES = ("float64", "float32", "float16")
#: CUDA runtime errors that mean "no usable driver" rather than "no GPU".
_DRIVER_ERRORS = ("cudaErrorInsufficientDriver", "cudaErrorNoDevice", "cudaErrorInitializationError",
                  "cudaErrorSystemDriverMismatch", "cudaErrorCompatNotSupportedOnDevice", "cudaErrorStubLibrary")


def kernel_source(relpath: str) -> str:
    """Text of a kernel file shipped in ``gpubench.kernels`` (e.g. ``cuda/saxpy.cu``)."""
    from importlib.resources import files

    return files("gpubench.kernels").joinpath(relpath).read_text(encoding="utf-8")


def kernel_suffix(dtype: str) -> str:
    """Suffix of the ``extern "C"`` kernel for ``dtype`` in the ``.cu`` files (``f32`` or ``f64``)."""
    return {"float32": "f32", "float64": "f64"}[dtype]


class CupyBackend(Backend):
    """CuPy arrays, cuBLAS and raw CUDA kernels on ``cuda:N``."""

    name = "cupy"
    device_kinds = ("cuda",)
    extra = "cupy"
    ops_package = "gpubench.backends.cupy_backend"
    description = "CuPy (CUDA): cuBLAS and raw CUDA kernels"

    def __init__(self) -> None:
        self.cupy = None
        self._count = 0
        self._modules: dict[tuple[int, str, str], object] = {}

    def load(self) -> None:
        """Import CuPy and ask the CUDA runtime for devices; say why when it cannot."""
        cupy = require("cupy", "cupy", self.extra)
        runtime = cupy.cuda.runtime
        try:
            self._count = runtime.getDeviceCount()
        except runtime.CUDARuntimeError as exc:
            text = str(exc)
            if "cudaErrorNoDevice" in text:
                raise Unavailable("cupy: no CUDA device found") from exc
            if any(code in text for code in _DRIVER_ERRORS):
                raise Unavailable("cupy: no CUDA driver found") from exc
            raise Unavailable(f"cupy: CUDA runtime error: {text.splitlines()[0]}") from exc
        self.cupy = cupy

    def devices(self) -> list[DeviceInfo]:
        """Every CUDA device as ``cuda:N``."""
        runtime = self.cupy.cuda.runtime
        out = []
        for i in range(self._count):
            p = runtime.getDeviceProperties(i)
            name = p["name"].decode() if isinstance(p["name"], bytes) else str(p["name"])
            out.append(DeviceInfo(f"cuda:{i}", name, "cuda", memory_bytes=int(p["totalGlobalMem"]),
                                  dtypes=CUPY_DTYPES,
                                  details={"capability": f"{p['major']}.{p['minor']}",
                                           "sm_count": p["multiProcessorCount"],
                                           "l2_bytes": p.get("l2CacheSize")}))
        return out

    @staticmethod
    def index(device: DeviceInfo) -> int:
        """CUDA ordinal of ``device``."""
        return int(device.id.split(":")[1])

    def use(self, device: DeviceInfo) -> None:
        """Make ``device`` current for this thread (allocations, kernels, events)."""
        self.cupy.cuda.Device(self.index(device)).use()

    def module(self, device: DeviceInfo, relpath: str):
        """The compiled :class:`cupy.RawModule` of a ``.cu`` file and its source text."""
        source = kernel_source(relpath)
        key = (self.index(device), relpath, source)
        if key not in self._modules:
            self._modules[key] = self.cupy.RawModule(code=source)
        return self._modules[key], source

    def upload(self, array, device, dtype=None):
        """Copy a host array onto ``device`` (as ``dtype`` when given)."""
        cupy = self.cupy
        with cupy.cuda.Device(self.index(device)):
            return cupy.array(array, dtype=dtype, copy=True)

    def download(self, handle):
        """Synchronize and return a host copy."""
        return self.cupy.asnumpy(handle)

    def copy_in(self, handle, array, device):
        """Copy a host array (pageable) into an existing device array (dtype converted)."""
        handle.set(array.astype(handle.dtype, copy=False))

    def copy_out(self, handle, array, device):
        """Copy a device array into an existing host array; returns once the data is there."""
        handle.get(out=array)  # blocking by default

    def synchronize(self, device):
        """Wait for all work on ``device``."""
        self.cupy.cuda.Device(self.index(device)).synchronize()

    def timer(self, device):
        """CUDA events on the current stream."""
        from gpubench.harness import DeviceEventTimer

        return DeviceEventTimer("cuda_event", self.cupy.cuda.Event, self.cupy.cuda.get_elapsed_time)

    def last_level_cache(self, device):
        """The GPU's L2 as the CUDA runtime reports it (``l2CacheSize``)."""
        size = int(self.cupy.cuda.runtime.getDeviceProperties(self.index(device)).get("l2CacheSize") or 0)
        return (size, "CUDA l2CacheSize (cupy)") if size > 0 else None

    def cache_flusher(self, device):
        """``cudaMemsetAsync`` of a device buffer twice the L2 on the current stream (nvbench's L2 flush)."""
        from gpubench.cacheflush import flush_bytes
        from gpubench.ops import CacheFlusher

        cache = self.last_level_cache(device)
        if cache is None:
            return None
        cupy = self.cupy
        nbytes = flush_bytes(cache[0])
        index = self.index(device)
        with cupy.cuda.Device(index):
            buffer = cupy.empty(nbytes, dtype=cupy.uint8)
        memset_async, current_stream = cupy.cuda.runtime.memsetAsync, cupy.cuda.get_current_stream

        def flush():
            with cupy.cuda.Device(index):
                memset_async(buffer.data.ptr, 0, nbytes, current_stream().ptr)

        def close():
            nonlocal buffer
            buffer = None

        return CacheFlusher(flush, nbytes, cache[0], cache[1], close)

    def device_identity(self, device):
        """The GPU's PCI address (``0000:BB:DD.0``), as NVML and sysfs name it."""
        p = self.cupy.cuda.runtime.getDeviceProperties(self.index(device))
        if "pciBusID" not in p:
            return {}
        return {"pci_bus_id": f"{int(p.get('pciDomainID', 0)):04x}:{int(p['pciBusID']):02x}:"
                              f"{int(p.get('pciDeviceID', 0)):02x}.0"}

    def environment(self):
        cupy = self.cupy
        runtime = cupy.cuda.runtime
        return {"cupy": cupy.__version__, "cuda_runtime": runtime.runtimeGetVersion(),
                "cuda_driver": runtime.driverGetVersion(),
                "gpus": [d.name for d in self.devices()]}
