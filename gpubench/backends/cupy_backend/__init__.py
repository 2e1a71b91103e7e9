"""CuPy on CUDA GPUs: cuBLAS through ``cupy.matmul`` and hand-written CUDA kernels from ``kernels/cuda``.

The ``.cu`` files ship in the wheel as ``gpubench.kernels`` and are compiled at run time by NVRTC
through :class:`cupy.RawModule`; their text goes into each record's spec hash. Every case is
timed with CUDA events on its GPU's current stream (:class:`gpubench.harness.DeviceEventTimer`).

CuPy imports without its CUDA libraries and finds a driver even when it cannot run a kernel: a
``cupy-cuda13x`` wheel without ``[ctk]`` (or the ``nvidia-*`` wheels) fails on its first cuBLAS or
NVRTC call, and a driver older than the CUDA major CuPy was built for fails on the first kernel.
Since CUDA 12.2 every kernel CuPy compiles also needs the CUDA runtime headers (``vector_types.h``,
``cuda_fp16.h``): NVRTC loads without them and then fails every elementwise kernel. :meth:`CupyBackend.load`
probes the driver and both libraries and then compiles and launches a trivial elementwise kernel,
so such a machine skips CuPy cases with a reason that names the fix instead of failing every case
as an error.

Every case runs inside :meth:`CupyBackend.case_scope`: its GPU is the current device for the whole
case, and CuPy's float32 cuBLAS compute type (TF32 or not, a process-global setting) is set for the
case and restored after it.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import re

import numpy as np

from gpubench.backends.base import Backend, DeviceInfo
from gpubench.errors import Unavailable, require

CUPY_DTYPES = ("float64", "float32", "float16")
#: CUDA runtime errors that mean "no usable driver" rather than "no GPU".
_DRIVER_ERRORS = ("cudaErrorInsufficientDriver", "cudaErrorNoDevice", "cudaErrorInitializationError",
                  "cudaErrorSystemDriverMismatch", "cudaErrorCompatNotSupportedOnDevice", "cudaErrorStubLibrary")


#: The load probe's kernel: CuPy's elementwise path (its headers included) on one float32 array.
PROBE_KERNEL = ("float32 x", "float32 y", "y = x + 1.0f", "gpubench_probe")
#: NVRTC's words for a header it cannot find.
_MISSING_HEADER = re.compile(r'cannot open source file "([^"]+)"')

#: A shared library's file name in a loader's error text (``libcublasLt.so.13``, ``nvrtc64_120_0.dll``).
_LIBRARY = re.compile(r"\b(lib[\w.+-]*?\.so(?:\.\d+)*|[\w.+-]+\.dll)\b")


def _version_text(version: int) -> str:
    """CUDA's integer version (12040) as text (``12.4``)."""
    return f"{version // 1000}.{version % 1000 // 10}"


def _cupy_distribution(major: int) -> str | None:
    """The installed CuPy wheel's name (``cupy-cuda13x``), if CuPy came from such a wheel."""
    for name in (f"cupy-cuda{major}x", "cupy"):
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        return name
    return None


def _library_fix(major: int) -> str:
    """How to install the CUDA libraries CuPy loads at run time."""
    dist = _cupy_distribution(major)
    if dist and dist.startswith("cupy-cuda"):
        return f'pip install "{dist}[ctk]"'
    return f'pip install "cuda-toolkit[cublas,cudart,nvrtc]=={major}.*" (or install the CUDA {major} toolkit)'


def _missing_library(component: str, exc: BaseException, major: int) -> Unavailable:
    """The skip reason for a CUDA library CuPy could not load, naming the library and the fix."""
    text = str(exc)
    found = _LIBRARY.search(text)
    what = f"{found.group(1)} not found" if found else f"{component} unavailable ({text.splitlines()[0][:200]})"
    return Unavailable(f"cupy: {what} — {_library_fix(major)}")


def probe_cuda(cupy) -> int:
    """Check the driver, cuBLAS and NVRTC CuPy needs; return the device count or raise :class:`Unavailable`.

    * the driver: ``cudaDriverGetVersion`` is 0 without one; a major version below the CUDA major
      CuPy was built for cannot run it (CUDA's minor-version compatibility covers minors only);
    * cuBLAS: ``cupy.cuda.cublas`` loads ``libcublas``/``libcublasLt`` on first access;
    * NVRTC: ``nvrtc.getVersion()`` loads ``libnvrtc`` (CuPy compiles every kernel with it);
    * then the devices (``cudaGetDeviceCount``);
    * and a trivial elementwise kernel compiled and run on the first device (:func:`probe_kernel`).
    """
    runtime = cupy.cuda.runtime
    if getattr(runtime, "is_hip", False):
        return runtime.getDeviceCount()
    built = cupy.cuda.driver.get_build_version()
    major = built // 1000
    try:
        driver = runtime.driverGetVersion()
    except runtime.CUDARuntimeError:
        driver = 0
    if driver == 0:
        raise Unavailable("cupy: no CUDA driver found")
    if driver // 1000 < major:
        raise Unavailable(f"cupy: driver supports CUDA {_version_text(driver)}, this CuPy needs {major} — "
                          f'update the NVIDIA driver, or pip install "cupy-cuda{driver // 1000}x[ctk]"')
    try:
        cupy.cuda.cublas  # noqa: B018 - first access loads libcublas and libcublasLt
    except (ImportError, OSError, RuntimeError) as exc:
        raise _missing_library("cuBLAS", exc, major) from exc
    try:
        cupy.cuda.nvrtc.getVersion()
    except (ImportError, OSError, RuntimeError) as exc:
        raise _missing_library("NVRTC", exc, major) from exc
    try:
        count = runtime.getDeviceCount()
    except runtime.CUDARuntimeError as exc:
        text = str(exc)
        if "cudaErrorNoDevice" in text:
            raise Unavailable("cupy: no CUDA device found") from exc
        if any(code in text for code in _DRIVER_ERRORS):
            raise Unavailable("cupy: no CUDA driver found") from exc
        raise Unavailable(f"cupy: CUDA runtime error: {text.splitlines()[0]}") from exc
    if count:
        probe_kernel(cupy, major)
    return count


def probe_kernel(cupy, major: int) -> None:
    """Compile (NVRTC, with CuPy's and CUDA's headers) and run a trivial elementwise kernel on device 0.

    Raises :class:`Unavailable` naming the fix: the CUDA headers (``vector_types.h``, ``cuda_fp16.h``) that
    CuPy's kernels include since CUDA 12.2 come with ``[ctk]``'s ``cuda-runtime`` wheel or a CUDA toolkit;
    a driver too old for the PTX NVRTC wrote needs an update.
    """
    try:
        with cupy.cuda.Device(0):
            kernel = cupy.ElementwiseKernel(*PROBE_KERNEL)
            out = cupy.asnumpy(kernel(cupy.zeros(4, dtype=cupy.float32)))
    except Exception as exc:  # noqa: BLE001 - any failure here fails every CuPy kernel: a reason, not a crash
        text = str(exc)
        header = _MISSING_HEADER.search(text)
        if header:
            raise Unavailable(f"cupy: CUDA headers not found (NVRTC cannot open {header.group(1)}, which every "
                              f"CuPy kernel includes) — {_library_fix(major)}") from exc
        if "PTX" in text.upper() and "VERSION" in text.upper():
            raise Unavailable(f"cupy: the NVIDIA driver is too old for the kernels this CUDA {major} NVRTC "
                              f"compiles ({text.splitlines()[0][:160]}) — update the NVIDIA driver") from exc
        first = text.strip().splitlines()[0][:200] if text.strip() else ""
        raise Unavailable(f"cupy: a trivial kernel failed to compile or run ({type(exc).__name__}: {first})") \
            from exc
    if not np.array_equal(out, np.ones(4, np.float32)):
        raise Unavailable(f"cupy: a trivial kernel returned {out.tolist()}, not [1, 1, 1, 1]")


class StreamEvent:
    """A timing CUDA event of one GPU, recorded on that GPU's current stream whatever device is current."""

    def __init__(self, cupy, index: int):
        self.cupy, self.index = cupy, index
        with cupy.cuda.Device(index):
            self.event = cupy.cuda.Event()

    def record(self) -> None:
        cuda = self.cupy.cuda
        with cuda.Device(self.index):
            self.event.record(cuda.get_current_stream(self.index))

    def synchronize(self) -> None:
        self.event.synchronize()


def capture_graph(cupy, index: int, fn):
    """Capture one call of ``fn`` on GPU ``index`` into a CUDA graph by stream capture; return it.

    ``fn`` runs once on a fresh non-blocking stream first (compiling its kernel, creating the cuBLAS
    handle's state for that stream), then once more between ``begin_capture`` and ``end_capture``
    on the same stream. ``graph.launch()`` replays it on the current stream with one
    ``cudaGraphLaunch``. ``fn`` must not allocate (its buffers are the graph's static buffers).
    """
    cuda = cupy.cuda
    with cuda.Device(index):
        stream = cuda.Stream(non_blocking=True)
        with stream:
            fn()
            stream.synchronize()
            stream.begin_capture()
            fn()
            graph = stream.end_capture()
        stream.synchronize()
    return graph


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
        """Import CuPy and probe the driver, cuBLAS, NVRTC and the devices; say why (and the fix) when it cannot."""
        cupy = require("cupy", "cupy", self.extra)
        self._count = probe_cuda(cupy)
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

    @contextlib.contextmanager
    def case_scope(self, spec, device):
        """The case's GPU current for the whole case; CuPy's float32 compute type set for it and restored."""
        linalg = self.cupy._core._routines_linalg  # where CuPy keeps the per-dtype cuBLAS compute types
        with self.cupy.cuda.Device(self.index(device)):
            saved = linalg.get_compute_type(np.float32)
            wanted = linalg.COMPUTE_TYPE_TF32 if spec.param_dict.get("tf32") else linalg.COMPUTE_TYPE_DEFAULT
            linalg.set_compute_type(np.float32, wanted)
            try:
                yield
            finally:
                linalg.set_compute_type(np.float32, saved)

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

    def copy_in(self, handle, host, device):
        """Copy a host array of the same dtype (pageable) into an existing device array."""
        handle.set(host)

    def copy_out(self, handle, host, device):
        """Copy a device array into a host array of the same dtype; returns once the data is there."""
        handle.get(out=host)  # blocking by default

    def synchronize(self, device):
        """Wait for all work on ``device``."""
        self.cupy.cuda.Device(self.index(device)).synchronize()

    def timer(self, device):
        """CUDA events on the current stream of the case's GPU."""
        from gpubench.harness import DeviceEventTimer

        cupy, index = self.cupy, self.index(device)
        return DeviceEventTimer("cuda_event", lambda: StreamEvent(cupy, index),
                                lambda start, end: cupy.cuda.get_elapsed_time(start.event, end.event))

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
